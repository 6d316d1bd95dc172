"""Deletion: remove the pixels a map ranks first and watch the target's score fall.

Two metrics:

- ``deletion-paper``: the protocol of the paper's code, as it ran (a threshold on the
  min-max normalised map; the fraction actually deleted depends on ties and zeros);
- ``deletion``: the fair version, deleting exactly the same number of pixels for every
  method, ties broken at random, with probability, logit, margin and allegiance curves.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor

from signed_saliency.metrics.core import MetricCall, MetricOutput, register
from signed_saliency.metrics.setting_checks import above, at_least, each, fraction, odd_size, one_of, optional
from signed_saliency.metrics.perturbation import (
    BASELINES, baseline_image, class_scores, default_baselines, first_pixels, forward_batches, grid,
    normalised_auc, pixel_counts, positions, rank_pixels, replace_pixels, scoring, stack_scores,
)

PAPER_FRACTIONS = (0.0, 0.03, 0.05, 0.07, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
_PAPER_VALUES = {"black": 0.0, "white": 1.0}


def paper_masks(maps: Tensor, fractions: Sequence[float]) -> Tensor:
    """The pixels the paper's code deletes, ``(T,N,H,W)`` bool, one slice per fraction.

    Each map is min-max normalised; at fraction p, with ``value`` the
    ``round(p*H*W)``-th largest normalised value, a pixel goes when it is strictly above
    ``value`` and not 0. So tied pixels at the threshold stay, the map's minimum never
    goes, and fewer than p*H*W pixels may go. A constant map normalises to 0/0 = NaN in
    the paper's code, and NaN compares false, so it deletes nothing; here such a map is
    set to 0 instead, which the ``!= 0`` rule turns into the same "nothing deleted".
    """
    low = maps.amin(dim=(1, 2), keepdim=True)
    span = maps.amax(dim=(1, 2), keepdim=True) - low
    normalised = torch.where(span > 0, (maps - low) / span, torch.zeros_like(maps))
    ordered = normalised.flatten(1).sort(dim=1, descending=True).values
    indices = torch.tensor(pixel_counts(fractions, ordered.shape[1]), device=maps.device)
    if indices.numel() and int(indices.max()) >= ordered.shape[1]:
        raise ValueError("deletion-paper fractions must stay below 1 (the rule indexes the sorted map)")
    thresholds = ordered[:, indices].T[:, :, None, None]
    return (normalised > thresholds) & (normalised != 0)


@register("deletion-paper", cost_ms=59, family="perturbation", forward_only=True, higher_is_better=False, curve_x="fraction of pixels deleted",
          checks={"fractions": each(fraction(below_one=True)), "baselines": optional(each(one_of(tuple(_PAPER_VALUES))))})
def deletion_paper(
    call: MetricCall,
    *,
    fractions: Sequence[float] = PAPER_FRACTIONS,
    baselines: Optional[Sequence[str]] = None,
) -> MetricOutput:
    """The paper's deletion: allegiance as pixels above a normalised-map threshold turn black or white.

    At each fraction p the pixels :func:`paper_masks` names get every channel set to 0
    (``black``) or 1 (``white``); allegiance is 1 while the argmax still equals the
    unperturbed image's. Baselines default to the direction's (increase: black,
    decrease: white, magnitude and signed: both, as the paper ran saliency). Per image:
    the 0/1 curve over p and its trapezoid area over [0, max p] (not normalised, so at
    most 0.9 on the paper's grid; the mean over images is the paper's AUC). ``target``
    is unused: the paper compares with the unperturbed prediction.
    """
    model = call.model
    chosen = tuple(baselines) if baselines is not None else default_baselines(call.method)
    xs = grid(fractions)
    with scoring(model, call.x, call.maps) as (x, maps):
        masks = paper_masks(maps, fractions).unsqueeze(2)
        reference = forward_batches(model, [x])[0].argmax(dim=1)
        batches = (
            replace_pixels(x, mask, x.new_tensor(_PAPER_VALUES[name])) for name in chosen for mask in masks
        )
        logits = forward_batches(model, batches)
        steps = len(fractions)
        kept = {
            name: torch.stack([lg.argmax(dim=1) == reference for lg in logits[i * steps : (i + 1) * steps]], dim=1)
            for i, name in enumerate(chosen)
        }
    return MetricOutput.of(curves=kept, xs=xs, area=lambda xs, curve: torch.trapezoid(curve, xs, dim=1))


# How a map's values rank the pixels to delete, by name (see :func:`deletion_ranking`).
RANKINGS = {"map": lambda maps: maps, "negated": torch.neg, "magnitude": torch.abs}


def deletion_ranking(direction: str, baseline: str) -> str:
    """Which of :data:`RANKINGS` orders the pixels deleted towards ``baseline``: the map
    itself, except for a signed map, which claims that its positive pixels raise the score
    when brightened and its negative ones when darkened. Deleting to black darkens, so the
    most positive go first; to white brightens, so the most negative; towards a mean or
    blurred image, which moves some pixels up and others down, the largest either way."""
    if direction != "signed" or baseline == "black":
        return "map"
    return "negated" if baseline == "white" else "magnitude"


# Revision 2 for signed maps: deleting to white ranked them most positive first, against
# their claim (brightening those pixels raises the score)
@register("deletion", cost_ms=127, family="perturbation", forward_only=True, higher_is_better=False, curve_x="fraction of pixels deleted",
          direction_revisions={"signed": 2},
          checks={"steps": at_least(1), "baselines": optional(each(one_of(BASELINES))), "mean": optional(each(at_least(0))),
                  "blur_kernel": odd_size, "blur_sigma": above(0)})
def deletion(
    call: MetricCall,
    *,
    steps: int = 32,
    baselines: Optional[Sequence[str]] = None,
    mean: Optional[Sequence[float]] = None,
    blur_kernel: int = 11,
    blur_sigma: float = 5.0,
) -> MetricOutput:
    """Fair deletion: exactly round(k/steps * H*W) pixels deleted at step k, for every map.

    Pixels go in decreasing map value, ties (zeros included) in a random order drawn from
    ``seed``. A signed map is read by its claim (see :func:`deletion_ranking`). Deleted
    pixels take the baseline's value in every channel: ``black``, ``white``, ``mean``
    (the per-channel ``mean`` setting) or ``blur`` (the image blurred, ``blur_kernel``,
    ``blur_sigma``). By default the baselines the direction implies (increase: black,
    decrease: white, magnitude and signed: both).

    Variants ``{baseline}/{score}`` for score in probability, logit, margin (the target's
    logit minus the best other one) and allegiance (argmax unchanged from the unperturbed
    image): per-image curves over the deleted fraction 0..1 and their normalised AUC.
    """
    model = call.model
    chosen = tuple(baselines) if baselines is not None else default_baselines(call.method)
    height, width = call.maps.shape[-2:]
    counts = pixel_counts([k / steps for k in range(steps + 1)], height * width)
    xs = grid([k / steps for k in range(steps + 1)])
    with scoring(model, call.x, call.target, call.maps) as (x, target, maps):
        rankings = {name: deletion_ranking(call.method.direction, name) for name in chosen}
        # one sort per distinct ranking, not per baseline: most maps rank every baseline alike
        places = {
            ranking: positions(rank_pixels(RANKINGS[ranking](maps), call.generator()))
            for ranking in dict.fromkeys(rankings.values())
        }
        fills = {
            name: baseline_image(x, name, mean=mean, blur_kernel=blur_kernel, blur_sigma=blur_sigma)
            for name in chosen
        }
        original = forward_batches(model, [x])[0]
        reference = original.argmax(dim=1)
        batches = (
            replace_pixels(x, first_pixels(places[rankings[name]], count, height, width), fills[name])
            for name in chosen
            for count in counts[1:]
        )
        logits = forward_batches(model, batches)
        start = class_scores(original, target, reference)
        curves = {}
        for i, name in enumerate(chosen):
            scores = stack_scores(
                [start] + [class_scores(lg, target, reference) for lg in logits[i * steps : (i + 1) * steps]]
            )
            curves.update({f"{name}/{score}": curve for score, curve in scores.items()})
    return MetricOutput.of(curves=curves, xs=xs, area=normalised_auc)
