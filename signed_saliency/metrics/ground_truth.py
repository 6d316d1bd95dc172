"""Ground-truth metrics for signed-shapes: is the map on the object, with the right sign?

On signed-shapes the object's pixels are what the class depends on, and its polarity says
which way: brightening a bright object's pixels raises its class's score, darkening a dark
one's does. So each method's claim can be checked against the truth, reading its
``direction``:

- ``increase`` (brightening here raises the score): right on bright objects;
- ``decrease`` (darkening here raises the score; values are the strength of that claim,
  non-negative, as ``negative`` returns them): right on dark objects;
- ``signed``: its positive part is an increase claim and its negative part a decrease
  claim, so on every image one part is right and the other wrong;
- ``magnitude``: claims no direction and is read as |map| on every image.

Variants: ``""`` scores the claim on the images where it is the right one, and
``wrong-polarity`` the same claim where the object has the opposite polarity (for a
signed map, its opposite-sign part on every image), where a faithful map puts little.
Every variant has one value per image of the batch, so rows stay aligned across variants;
an image a variant does not apply to (a dark object for an increase map's ``""``) is NaN and
marked undefined by design in the output, as is a score with nothing to score (a map that is
zero everywhere has no peak to point with; a mask that is empty or full has no ROC AUC), so
reports count them apart from failures. Magnitude maps have no ``wrong-polarity``.
"""

from __future__ import annotations

from typing import Iterator

import torch
from torch import Tensor

from signed_saliency.datasets.core import GroundTruth
from signed_saliency.metrics.core import MetricCall, MetricOutput, register
from signed_saliency.metrics.similarity import average_ranks


def _nan_like(values: Tensor) -> Tensor:
    return torch.full_like(values, float("nan"))


def claims(maps: Tensor, direction: str, polarity: Tensor) -> Iterator[tuple[str, Tensor, Tensor]]:
    """Yield (variant, score, applies): ``score`` (N,H,W) is larger where the map claims
    more strongly what the variant checks; ``applies`` (N,) bool marks the images it checks."""
    if direction == "signed":
        oriented = maps * polarity.view(-1, 1, 1).to(maps.dtype)
        yield "", oriented, applies(direction, "", polarity)
        yield "wrong-polarity", -oriented, applies(direction, "wrong-polarity", polarity)
    elif direction in ("increase", "decrease"):
        for variant in ("", "wrong-polarity"):
            yield variant, maps.clamp(min=0), applies(direction, variant, polarity)
    elif direction == "magnitude":
        yield "", maps.abs(), applies(direction, "", polarity)
    else:
        raise ValueError(f"unknown direction {direction!r}")


def applies(direction: str, variant: str, polarity: Tensor) -> Tensor:
    """(N,) bool: the images on which ``variant`` checks a ``direction`` map's claim: an
    increase map's ``""`` the bright objects, its ``wrong-polarity`` the dark ones (a
    decrease map's the other way round); a signed or magnitude map's, every image."""
    if direction in ("signed", "magnitude"):
        return torch.ones_like(polarity, dtype=torch.bool)
    right = (polarity > 0) if direction == "increase" else (polarity < 0)
    return right if variant == "" else ~right


def _truth(maps: Tensor, ground_truth: GroundTruth) -> tuple[Tensor, Tensor]:
    mask = ground_truth.mask.to(maps.device).bool()
    if mask.shape != maps.shape:
        raise ValueError(f"ground-truth masks {tuple(mask.shape)} do not match maps {tuple(maps.shape)}")
    return mask, ground_truth.polarity.to(maps.device).long()


def mass_inside(score: Tensor, mask: Tensor) -> Tensor:
    """Share of each map's positive mass that lies inside its mask; 0 for a map with none."""
    mass = score.clamp(min=0).flatten(1).double()
    total = mass.sum(dim=1)
    inside = (mass * mask.flatten(1)).sum(dim=1)
    return torch.where(total > 0, inside / total.clamp(min=torch.finfo(torch.float64).tiny), 0.0).float()


def roc_auc(score: Tensor, mask: Tensor) -> Tensor:
    """ROC AUC of each map's scores against its mask (Mann-Whitney, ties counted half);
    NaN where the mask is empty or full."""
    score, mask = score.flatten(1), mask.flatten(1)
    ranks = average_ranks(score)
    positives = mask.sum(dim=1).double()
    negatives = mask.shape[1] - positives
    rank_sum = (ranks * mask).sum(dim=1)
    auc = (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)
    return auc.where((positives > 0) & (negatives > 0), _nan_like(auc)).float()


def pointing(maps: Tensor, mask: Tensor) -> Tensor:
    """Share of the pixels where |map| peaks that lie inside the mask (1 or 0 unless the
    peak is tied); NaN for a map that is zero everywhere."""
    magnitude = maps.abs().flatten(1)
    peak = magnitude.amax(dim=1, keepdim=True)
    at_peak = magnitude == peak
    hit = (at_peak & mask.flatten(1)).sum(dim=1).double() / at_peak.sum(dim=1)
    return hit.where(peak.squeeze(1) > 0, _nan_like(hit)).float()


def _nothing_to_score(values: Tensor) -> Tensor:
    # the measures here are NaN only where their definition gives no value (maps reach
    # metrics finite), so on these measures a NaN is undefined by design
    return values.isnan()


def _per_claim(call: MetricCall, measure) -> MetricOutput:
    mask, polarity = _truth(call.maps, call.ground_truth)
    values, undefined = {}, {}
    for variant, score, applies in claims(call.maps.detach(), call.method.direction, polarity):
        values[variant] = measure(score, mask)
        undefined[variant] = ~applies | _nothing_to_score(values[variant])
    return MetricOutput.of(values, undefined=undefined)


@register("sign-localisation", cost_ms=3, family="ground-truth", higher_is_better=True, needs_ground_truth=True)
def sign_localisation(call: MetricCall) -> MetricOutput:
    """Share of the map's claimed mass that lies on the object (0 if it claims nothing)."""
    return _per_claim(call, mass_inside)


@register("mask-auc", cost_ms=2, family="ground-truth", higher_is_better=True, needs_ground_truth=True)
def mask_auc(call: MetricCall) -> MetricOutput:
    """ROC AUC of the map's claim against the object mask (0.5 = chance).

    The claim is the map oriented by the variant's sign (see :func:`claims`), so a signed
    map's wrong-sign pixels rank below the pixels where it claims nothing.
    """
    return _per_claim(call, roc_auc)


@register("pointing-game", cost_ms=0.1, family="ground-truth", higher_is_better=True, needs_ground_truth=True)
def pointing_game(call: MetricCall) -> MetricOutput:
    """Whether the peak of |map| lies on the object, sign ignored (every image)."""
    mask, _ = _truth(call.maps, call.ground_truth)
    hits = pointing(call.maps.detach(), mask)
    return MetricOutput.of({"": hits}, undefined={"": _nothing_to_score(hits)})


@register("sign-agreement", cost_ms=0.1, family="ground-truth", higher_is_better=True, needs_ground_truth=True, revision=2)
def sign_agreement(call: MetricCall) -> MetricOutput:
    """Share of a signed map's mass on the object whose sign is the object's polarity.

    Signed maps only (empty output for the rest). An increase or decrease map claims one
    sign everywhere by declaration, so its "agreement" would be 1 on every image of the
    matching polarity and 0 on the others whatever the map looks like: on a balanced
    dataset 0.5 for every such method, which measures the dataset, not the map. Their sign
    is tested by ``sign-localisation`` and ``mask-auc``, whose ``""`` and ``wrong-polarity``
    variants compare where the map puts its mass on the two polarities. Undefined (NaN)
    where the map puts no mass on the object.
    """
    if call.method.direction != "signed":
        return MetricOutput()
    maps = call.maps
    mask, polarity = _truth(maps, call.ground_truth)
    inside = (maps.detach() * mask).flatten(1).double()
    total = inside.abs().sum(dim=1)
    agreeing = (inside * polarity.view(-1, 1)).clamp(min=0).sum(dim=1)
    share = agreeing / total.clamp(min=torch.finfo(torch.float64).tiny)
    return MetricOutput.of({"": share}, undefined={"": total == 0})
