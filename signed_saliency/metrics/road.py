"""ROAD (Rong et al., ICML 2022): remove pixels by noisy linear imputation, not a constant.

A black or white patch is itself a signal the model reacts to; ROAD instead fills each
removed pixel with the weighted mean of its 8 neighbours (1/6 direct, 1/12 diagonal),
so a removed region is a smooth interpolation of its border, plus a little noise so the
filled region cannot be recognised by its smoothness.

quantus 0.6's ``ROAD`` ranks channel values but imputes pixels, so it raises IndexError on
RGB input of any size; this one ranks and imputes pixels.

Two solvers give the same imputation (within 1e-5; tests/test_metrics_road.py), both in
:mod:`signed_saliency.metrics.road_solvers`:

- ``cg``: conjugate gradients in torch, on the model's device, for every image at every
  ROAD step in one batched solve (:func:`solve_cg`). This is what a GPU should run.
- ``exact``: scipy's SuperLU on the CPU (:func:`solve_exact`), the unknowns numbered in a
  nested-dissection order of the grid, images packed into block-diagonal systems of at most
  ``MAX_UNKNOWNS`` removed pixels (``python -m benchmarks.speed road`` sweeps the cap).

``auto``, the default, runs ``exact`` on a CPU and ``cg`` elsewhere. On a CPU, CG's
iterations are memory-bound passes over every pixel and their number grows with the side
of the largest removed region (15-70 at 32 px and 15-800 at 224 px, noisy to blob-shaped
maps), so it took 0.8-2x SuperLU's CPU time per solve at 32 px and 1-8x at 224 px (before
the dissection order made SuperLU 1.4-1.7x faster), and the whole metric 2-4x as long
(64 CIFAR-10 images, the paper's ResNet18, four methods' maps).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator, Sequence

import numpy as np
import torch
from torch import Tensor

from signed_saliency.errors import UserError
from signed_saliency.metrics.core import MetricCall, MetricOutput, register
from signed_saliency.metrics.setting_checks import at_least, each, fraction, one_of
from signed_saliency.metrics.perturbation import (
    class_scores, first_pixels, forward_batches, grid, normalised_auc, pixel_counts, positions, rank_pixels, scoring,
    stack_scores,
)
from signed_saliency.metrics.road_solvers import SOLVE_ELEMENTS, impute_in_place, solve_cg, solve_exact

ORDERS = ("morf", "lerf")
FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def add_noise_(filled: Tensor, removed: Tensor, noise: float, rng: np.random.Generator) -> Tensor:
    """ROAD's noisy variant, in place: ``noise`` * N(0,1) on every channel of the
    ``removed`` (N,1,H,W) pixels of ``filled`` (N,C,H,W), added after the solve.

    The draws come from NumPy's ``rng`` in image-major pixel order, one job at a time, so
    they depend neither on the solver nor on how images or jobs were grouped, and stay the
    draws that the suite's published ROAD numbers were made with.
    """
    if noise:
        draws = rng.standard_normal((int(removed.sum()), filled.shape[1]))
        channels_last = filled.permute(0, 2, 3, 1)
        channels_last[removed[:, 0]] += noise * torch.from_numpy(draws).to(filled)
    return filled


def impute(image: np.ndarray, removed: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    """``image`` (C,H,W) with the ``removed`` (H,W) pixels linearly imputed from their
    neighbours plus ``noise`` * N(0,1); one factorisation solves every channel."""
    filled = image[None].astype(np.float64)  # a copy, filled in place
    impute_in_place(filled, removed[None])
    return add_noise_(torch.from_numpy(filled), torch.from_numpy(removed)[None, None], noise, rng)[0].numpy().astype(image.dtype)


def _workers() -> int:
    # The solves run between model calls, so they may take the cores torch uses, no more.
    return max(1, min(torch.get_num_threads(), os.cpu_count() or 1, 8))


SOLVERS = ("auto", "cg", "exact")


def chosen_solver(solver: str, device: torch.device) -> str:
    """``solver`` itself, or for ``"auto"`` the faster one on ``device``: ``"exact"`` on a
    CPU (SuperLU beat batched CG there: see the module docstring),
    ``"cg"`` elsewhere."""
    if solver not in SOLVERS:
        raise UserError(f"unknown road solver {solver!r}; valid: {', '.join(SOLVERS)}")
    if solver == "auto":
        return "exact" if device.type == "cpu" else "cg"
    return solver


@register(
    "road",
    cost_ms=239,
    family="perturbation",
    forward_only=True,
    higher_is_better=True,
    curve_x="fraction of pixels imputed",
    reports_progress=True,
    unkeyed_settings=("solver",),
    implementation=lambda settings, device: {"solver": chosen_solver(settings["solver"], torch.device(device))},
    # Removing every pixel leaves no border to impute from (a singular system): fractions stay below 1.
    checks={"fractions": each(fraction(below_one=True)), "noise": at_least(0), "solver": one_of(SOLVERS)},
)
def road(
    call: MetricCall,
    *,
    fractions: Sequence[float] = FRACTIONS,
    noise: float = 0.01,
    solver: str = "auto",
) -> MetricOutput:
    """ROAD: accuracy and probability as the most (MoRF) or least (LeRF) relevant pixels are imputed.

    Pixels rank by map value, highest first (a signed map by its signed value), ties at
    random from ``seed``; MoRF removes the first round(p*H*W), LeRF the last. Curves
    ``{morf,lerf}/{accuracy,probability}`` over ``fractions`` (accuracy: argmax equals
    ``target``); values ``accuracy`` and ``probability``: LeRF's normalised AUC minus
    MoRF's (higher: the map separates relevant from irrelevant pixels better).
    ``solver`` solves the imputation: ``"cg"`` (batched conjugate gradients in torch on the
    model's device), ``"exact"`` (scipy's sparse LU on the CPU) or ``"auto"`` (exact on a
    CPU, cg elsewhere); their imputed pixels agree within 1e-5, their ROAD values as well
    but where a prediction sits at a tie. It reports each imputed step.
    """
    model = call.model
    height, width = call.maps.shape[-2:]
    counts = pixel_counts(fractions, height * width)
    xs = grid(fractions)
    curves: dict[str, Tensor] = {}
    with scoring(model, call.x, call.target, call.maps) as (x, target, maps), ThreadPoolExecutor(_workers()) as pool:
        method_of_solving = chosen_solver(solver, x.device)
        places = positions(rank_pixels(maps, call.generator()))
        reverse = height * width - 1 - places
        removed = {
            "morf": lambda count: first_pixels(places, count, height, width),
            "lerf": lambda count: first_pixels(reverse, count, height, width),
        }
        jobs = [(order, count) for order in ORDERS for count in counts]
        rng = np.random.default_rng(call.seed)
        if method_of_solving == "cg":
            # every image at every step in one batched solve, as far as memory allows
            jobs_per_solve = max(1, SOLVE_ELEMENTS // x.numel())
            solve = solve_cg
        else:
            jobs_per_solve = 1
            solve = lambda images, masks: solve_exact(images, masks, pool)  # noqa: E731

        def imputed() -> Iterator[Tensor]:
            call.report(0, len(jobs))
            for start in range(0, len(jobs), jobs_per_solve):
                part = jobs[start : start + jobs_per_solve]
                masks = torch.cat([removed[order](count) for order, count in part])
                filled = solve(x.repeat(len(part), 1, 1, 1), masks)
                for done, (images, mask) in enumerate(zip(filled.split(len(x)), masks.split(len(x))), start=start + 1):
                    yield add_noise_(images, mask, noise, rng).to(x.dtype)
                    call.report(done, len(jobs))

        logits = forward_batches(model, imputed())
        for i, order in enumerate(ORDERS):
            scores = stack_scores([class_scores(lg, target) for lg in logits[i * len(counts) : (i + 1) * len(counts)]])
            curves[f"{order}/accuracy"] = scores["allegiance"]
            curves[f"{order}/probability"] = scores["probability"]
    output = MetricOutput.of(curves=curves, xs=xs)
    for score in ("accuracy", "probability"):
        output.values[score] = normalised_auc(xs, output.curves[f"lerf/{score}"].y) - normalised_auc(
            xs, output.curves[f"morf/{score}"].y
        )
    return output
