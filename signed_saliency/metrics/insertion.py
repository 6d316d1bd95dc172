"""Insertion (Petsiuk et al., RISE 2018): restore pixels into a blurred image in map order."""

from __future__ import annotations

from torch import Tensor

from signed_saliency.metrics.core import MetricCall, MetricOutput, register
from signed_saliency.metrics.setting_checks import above, at_least, odd_size
from signed_saliency.metrics.perturbation import (
    baseline_image, class_scores, first_pixels, forward_batches, grid, normalised_auc, pixel_counts, positions,
    rank_pixels, replace_pixels, scoring, stack_scores,
)


def insertion_orders(maps: Tensor, direction: str) -> dict[str, Tensor]:
    """The map-derived keys to insert by, highest first, per variant.

    A signed map claims pixels both ways, so it is tested both ways:
    ``most-positive-first`` (the pixels whose brightening it says helps) and
    ``most-negative-first`` (those whose darkening helps). An increase, decrease or
    magnitude map stores importance as a non-negative value: ``highest-first``.
    """
    if direction == "signed":
        return {"most-positive-first": maps, "most-negative-first": -maps}
    return {"highest-first": maps}


@register("insertion", cost_ms=62, family="perturbation", forward_only=True, higher_is_better=True, curve_x="fraction of pixels inserted",
          checks={"steps": at_least(1), "blur_kernel": odd_size, "blur_sigma": above(0)})
def insertion(
    call: MetricCall,
    *,
    steps: int = 32,
    blur_kernel: int = 11,
    blur_sigma: float = 5.0,
) -> MetricOutput:
    """RISE insertion: the target's probability as original pixels replace a blurred image.

    Start from the image Gaussian-blurred (``blur_kernel``, ``blur_sigma``; RISE's 11 and
    5) and at step k restore round(k/steps * H*W) original pixels (every channel) in the
    order of :func:`insertion_orders`, ties broken at random from ``seed``. Per variant
    the probability curve over the inserted fraction 0..1 and its normalised AUC.
    """
    model = call.model
    height, width = call.maps.shape[-2:]
    fractions = [k / steps for k in range(steps + 1)]
    counts = pixel_counts(fractions, height * width)
    xs = grid(fractions)
    with scoring(model, call.x, call.target, call.maps) as (x, target, maps):
        blurred = baseline_image(x, "blur", blur_kernel=blur_kernel, blur_sigma=blur_sigma)
        gen = call.generator()
        orders = {
            name: positions(rank_pixels(key, gen)) for name, key in insertion_orders(maps, call.method.direction).items()
        }
        # Every order starts from the same blurred image and ends at the original one.
        ends = forward_batches(model, [blurred, x])
        batches = (
            replace_pixels(blurred, first_pixels(places, count, height, width), x)
            for places in orders.values()
            for count in counts[1:-1]
        )
        logits = forward_batches(model, batches)
        inner = len(counts) - 2
        curves = {
            name: stack_scores(
                [class_scores(lg, target) for lg in [ends[0], *logits[i * inner : (i + 1) * inner], ends[1]]]
            )["probability"]
            for i, name in enumerate(orders)
        }
    return MetricOutput.of(curves=curves, xs=xs, area=normalised_auc)
