"""Sign flip: does a map's sign say which way to move a pixel?

The paper's central claim is that positive (increase) maps name pixels whose brightening
raises the score and negative (decrease) maps pixels whose darkening does. Deletion cannot
test that: it moves every pixel to one baseline. This metric moves the top-k% pixels of a
map *against* what the map says helps, and as controls the same pixels the other way
(*along*) and k% random pixels against. If the sign is informative, going against lowers
the score more than going along.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from signed_saliency.metrics.core import MetricCall, MetricOutput, register
from signed_saliency.metrics.setting_checks import at_least, each, fraction, one_of
from signed_saliency.metrics.perturbation import (
    class_scores, first_pixels, forward_batches, grid, normalised_auc, pixel_counts, positions, random_ranking,
    rank_pixels, scoring,
)

REGIMES = ("saturate", "small")
_SCORES = ("logit", "margin")


def against_direction(maps: Tensor, direction: str) -> Tensor:
    """Per pixel, ``(N,1,H,W)``: +1 to brighten or -1 to darken, the way the map says
    lowers the score. Increase maps: darken; decrease maps: brighten; signed maps: against
    each pixel's own sign (a zero pixel, which claims nothing, is darkened)."""
    if direction == "increase":
        moves = torch.full_like(maps, -1.0)
    elif direction == "decrease":
        moves = torch.ones_like(maps)
    elif direction == "signed":
        moves = torch.where(maps < 0, 1.0, -1.0).to(maps)
    else:
        raise ValueError(f"a {direction!r} map claims no direction to move a pixel in")
    return moves.unsqueeze(1)


def move_pixels(x: Tensor, mask: Tensor, moves: Tensor, regime: str, eps: float) -> Tensor:
    """Move every channel of the masked pixels: ``saturate`` to 1 (``moves`` > 0) or 0,
    ``small`` by ``eps * moves``, clipped to [0,1]."""
    if regime == "saturate":
        moved = (moves > 0).to(x.dtype).expand_as(x)
    elif regime == "small":
        moved = (x + eps * moves).clamp(0.0, 1.0)
    else:
        raise ValueError(f"unknown regime {regime!r}; valid: {', '.join(REGIMES)}")
    return torch.where(mask, moved, x)


@register("sign-flip", cost_ms=62, family="perturbation", forward_only=True, higher_is_better=True, curve_x="fraction of pixels moved",
          checks={"fractions": each(fraction()), "regimes": each(one_of(REGIMES)), "eps": at_least(0)})
def sign_flip(
    call: MetricCall,
    *,
    fractions: Sequence[float] = (0.01, 0.02, 0.05, 0.1, 0.2),
    regimes: Sequence[str] = REGIMES,
    eps: float = 0.1,
) -> MetricOutput:
    """Score change when the top-k% pixels move against the map's claimed helpful direction.

    For each k in ``fractions`` and each regime (``saturate``: to 0 or 1; ``small``: by
    ``eps``, clipped to [0,1]) three perturbations: the map's top-k% pixels moved against
    its claim (``against``), the same pixels moved the other way (``along``), and k%
    random pixels (drawn from ``seed``) moved against what the map claims for them
    (``random``). Increase and decrease maps rank by value; signed maps rank by |map| and
    move each pixel against its own sign.

    Curves ``{regime}/{score}/{against,along,random}``, score in logit and margin (the
    method's own ``score`` first, then the other): the change from the unperturbed score, over
    k = 0 (change 0) and ``fractions``. Value ``{regime}/{score}``: the normalised area
    of along minus against, the mean score gap; positive means the sign was informative.

    Magnitude maps claim no sign, so their top pixels move both ways: curves ``darker``,
    ``brighter``, ``random-darker``, ``random-brighter`` and value
    ``{regime}/{score}/best-of-sign``, |area(brighter) - area(darker)|: what the gap would
    be had an oracle picked one sign per image. It bounds what a sign could add to the
    map's pixels, but it is not comparable with the signed value. (The per-pixel best of
    signs would take a model call per sign pattern, so it is not reported.)
    """
    model, method = call.model, call.method
    height, width = call.maps.shape[-2:]
    counts = pixel_counts(fractions, height * width)
    xs = grid([0.0, *fractions])
    # the score the method's map is about first, then the other
    scores = sorted(_SCORES, key=lambda score: score != method.score)
    with scoring(model, call.x, call.target, call.maps) as (x, target, maps):
        gen = call.generator()
        if method.direction == "magnitude":
            top = positions(rank_pixels(maps, gen))
            anywhere = positions(random_ranking(maps, gen))
            darker = torch.full_like(maps, -1.0).unsqueeze(1)
            plans = {
                "darker": (top, darker),
                "brighter": (top, -darker),
                "random-darker": (anywhere, darker),
                "random-brighter": (anywhere, -darker),
            }
        else:
            moves = against_direction(maps, method.direction)
            top = positions(rank_pixels(maps.abs() if method.direction == "signed" else maps, gen))
            anywhere = positions(random_ranking(maps, gen))
            plans = {"against": (top, moves), "along": (top, -moves), "random": (anywhere, moves)}

        jobs = [(regime, name, count) for regime in regimes for name in plans for count in counts]
        batches = (
            move_pixels(x, first_pixels(plans[name][0], count, height, width), plans[name][1], regime, eps)
            for regime, name, count in jobs
        )
        logits = iter(forward_batches(model, batches))
        start = class_scores(forward_batches(model, [x])[0], target)
        changes: dict[tuple[str, str, str], list[Tensor]] = {}
        for regime, name, _ in jobs:
            moved = class_scores(next(logits), target)
            for score in scores:
                changes.setdefault((regime, score, name), [torch.zeros_like(start[score])]).append(
                    moved[score] - start[score]
                )

    output = MetricOutput.of(curves={"/".join(key): torch.stack(ys, dim=1) for key, ys in changes.items()}, xs=xs)
    for regime in regimes:
        for score in scores:
            area = {name: normalised_auc(xs, output.curves[f"{regime}/{score}/{name}"].y) for name in plans}
            if method.direction == "magnitude":
                output.values[f"{regime}/{score}/best-of-sign"] = (area["brighter"] - area["darker"]).abs()
            else:
                output.values[f"{regime}/{score}"] = area["along"] - area["against"]
    return output
