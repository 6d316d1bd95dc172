"""An extension of the paper's active and inactive maps to the margin S_c - max_{q!=c} S_q.

The paper's ``active``/``inactive`` (the defaults everywhere) keep |g_c| where g_c beats
every other class's g_q. These keep by how much it beats the closest one: the rise of
S_c - S_q guaranteed for every q != c, whichever class ends up the runner-up.
"""

from __future__ import annotations

from torch import Tensor

from signed_saliency.methods.core import ClassGradients, register


@register("active-margin", direction="increase", score="margin", family="extension", needs="all-gradients")
def active_margin(grads: ClassGradients) -> Tensor:
    """Max over channels of ReLU(g_c - max_{q!=c} g_q); the paper's ``active`` is the default."""
    other_max, _ = grads.require_all_classes()
    return (grads.target - other_max).clamp(min=0).amax(dim=1)


@register("inactive-margin", direction="decrease", score="margin", family="extension", needs="all-gradients")
def inactive_margin(grads: ClassGradients) -> Tensor:
    """Max over channels of ReLU(min_{q!=c} g_q - g_c); the paper's ``inactive`` is the default."""
    _, other_min = grads.require_all_classes()
    return (other_min - grads.target).clamp(min=0).amax(dim=1)
