"""How concentrated a map is, whatever it claims: both read |map| only.

``sparseness``: the Gini index of |map| (Chalasani et al., 2020; Quantus' Sparseness);
higher is sparser. ``complexity``: the entropy of |map| / sum |map| (Bhatt et al., 2020;
Quantus' Complexity); lower is simpler. A map that is zero everywhere has no distribution
to measure: both are undefined there, NaN and marked so (Quantus' epsilon would give it a
Gini index of 0, the value of a perfectly uniform map).
"""

from __future__ import annotations

import torch
from torch import Tensor

from signed_saliency.metrics.core import MetricCall, MetricOutput, register


def gini(maps: Tensor) -> Tensor:
    """Gini index of each (N,...) map's absolute values, flattened; float32 (N,)."""
    values = maps.detach().abs().flatten(1).double().sort(dim=1).values
    n = values.shape[1]
    weights = 2 * torch.arange(1, n + 1, dtype=torch.float64, device=values.device) - n - 1
    total = values.sum(dim=1)
    index = (weights * values).sum(dim=1) / (n * total)
    return index.where(total > 0, torch.full_like(index, float("nan"))).float()


def entropy(maps: Tensor) -> Tensor:
    """Shannon entropy (nats) of each map's |values| normalised to sum 1; float32 (N,)."""
    values = maps.detach().abs().flatten(1).double()
    total = values.sum(dim=1, keepdim=True)
    share = values / total
    result = -torch.special.xlogy(share, share).sum(dim=1)
    return result.where(total.squeeze(1) > 0, torch.full_like(result, float("nan"))).float()


def _zero(maps: Tensor) -> Tensor:
    """(N,) bool: the maps that are zero everywhere."""
    return ~maps.detach().flatten(1).any(dim=1)


@register("sparseness", cost_ms=0.2, family="complexity", higher_is_better=True)
def sparseness(call: MetricCall) -> MetricOutput:
    """Gini index of |map|: 0 for a uniform map, towards 1 for a single pixel."""
    return MetricOutput.of({"": gini(call.maps)}, undefined={"": _zero(call.maps)})


@register("complexity", cost_ms=0.2, family="complexity", higher_is_better=False)
def complexity(call: MetricCall) -> MetricOutput:
    """Entropy of |map| / sum |map|: 0 for a single pixel, log(H*W) for a uniform map."""
    return MetricOutput.of({"": entropy(call.maps)}, undefined={"": _zero(call.maps)})
