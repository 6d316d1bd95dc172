"""ROAD (Rong et al., ICML 2022): remove pixels by noisy linear imputation, not a constant.

A black or white patch is itself a signal the model reacts to; ROAD instead fills each
removed pixel with the weighted mean of its 8 neighbours (1/6 direct, 1/12 diagonal),
so a removed region is a smooth interpolation of its border, plus a little noise so the
filled region cannot be recognised by its smoothness.

quantus 0.6's ``ROAD`` ranks channel values but imputes pixels, so it raises IndexError on
RGB input of any size; this one ranks and imputes pixels.

Two solvers give the same imputation (within 1e-5; tests/test_metrics_road.py):

- ``cg``: conjugate gradients in torch, on the model's device, for every image at every
  ROAD step in one batched solve (:func:`solve_cg`). This is what a GPU should run.
- ``exact``: scipy's SuperLU on the CPU (:func:`solve_exact`), images packed into
  block-diagonal systems of at most ``MAX_UNKNOWNS`` removed pixels (packing saves per-call
  overhead, but SuperLU's time grows faster than the system, so a 32-image block at 224 px
  cost 1.58x the same images one by one; ``python -m benchmarks.speed road`` sweeps the cap).

``auto``, the default, runs ``exact`` on a CPU and ``cg`` elsewhere. On a CPU, CG's
iterations are memory-bound passes over every pixel and their number grows with the side
of the largest removed region (15-70 at 32 px and 15-800 at 224 px, noisy to blob-shaped
maps), so it took 0.8-2x SuperLU's CPU time per solve at 32 px and 1-8x at 224 px, and
the whole metric 2-4x as long (64 CIFAR-10 images, the paper's ResNet18, four methods' maps).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from signed_saliency.errors import UserError
from signed_saliency.lazy import lazy_import
from signed_saliency.metrics.core import MetricCall, MetricOutput, register
from signed_saliency.metrics.setting_checks import at_least, each, fraction, one_of
from signed_saliency.metrics.perturbation import (
    class_scores, first_pixels, forward_batches, grid, normalised_auc, pixel_counts, positions, rank_pixels, scoring,
    stack_scores,
)

csc_matrix = lazy_import("scipy.sparse", "csc_matrix")
splu = lazy_import("scipy.sparse.linalg", "splu")

# The ROAD paper's 8-neighbourhood: direct neighbours weigh 1/6, diagonal ones 1/12.
_DIRECT, _DIAGONAL = 1 / 6, 1 / 12
# (row offset, column offset, weight)
_NEIGHBOURS = np.array(
    [
        (-1, -1, _DIAGONAL), (-1, 0, _DIRECT), (-1, 1, _DIAGONAL),
        (0, -1, _DIRECT), (0, 1, _DIRECT),
        (1, -1, _DIAGONAL), (1, 0, _DIRECT), (1, 1, _DIAGONAL),
    ]
)  # fmt: skip
ORDERS = ("morf", "lerf")
FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
# Measured with `speed road` on one core: 32x32 images solve fastest in systems of about 3,000-4,000
# unknowns (32 images at 10% removed, 4 at 90%); a 224x224 image exceeds it on its own.
MAX_UNKNOWNS = 4096


def imputation_system(removed: np.ndarray) -> tuple[csc_matrix, np.ndarray, np.ndarray, np.ndarray]:
    """The linear system of the removed pixels of one image ``(H,W)`` or of several
    ``(G,H,W)`` at once (then block-diagonal: no equation crosses images).

    For each removed pixel i with in-image neighbours j (weights w_ij):
    ``sum_j w_ij * v_i - sum_{j removed} w_ij * v_j = sum_{j kept} w_ij * x_j``, i.e.
    v_i is the weighted mean of its neighbours, those off the image left out (as ROAD and
    quantus do). Returns the sparse matrix, the removed pixels' flat indices ``(k,)``
    (image-major), and the kept neighbours' flat indices and weights ``(8,k)`` (weight 0
    where the neighbour is removed or off the image), from which any channel's
    right-hand side is built.
    """
    images, height, width = removed.reshape(-1, *removed.shape[-2:]).shape
    pixels = np.flatnonzero(removed)
    count = pixels.size
    unknown = np.full(images * height * width, -1)
    unknown[pixels] = np.arange(count)
    image, within = np.divmod(pixels, height * width)
    rows, cols = np.divmod(within, width)
    near_rows = rows[None, :] + _NEIGHBOURS[:, :1].astype(int)
    near_cols = cols[None, :] + _NEIGHBOURS[:, 1:2].astype(int)
    inside = (near_rows >= 0) & (near_rows < height) & (near_cols >= 0) & (near_cols < width)
    near = np.where(inside, (image * height + near_rows) * width + near_cols, 0)
    weights = np.where(inside, _NEIGHBOURS[:, 2:3], 0.0)
    near_unknown = np.where(inside, unknown[near], -1)
    coupled = near_unknown >= 0
    equation = np.broadcast_to(np.arange(count), near.shape)
    diagonal = np.arange(count)
    matrix = csc_matrix(
        (
            np.concatenate([weights.sum(axis=0), -weights[coupled]]),
            (np.concatenate([diagonal, equation[coupled]]), np.concatenate([diagonal, near_unknown[coupled]])),
        ),
        shape=(count, count),
    )
    return matrix, pixels, near, np.where(coupled, 0.0, weights)


def _solve(images: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """``images`` (G,C,H,W) float64 with the ``removed`` (G,H,W) pixels imputed, no noise."""
    matrix, pixels, near, known_weights = imputation_system(removed)
    # channels first, then every image's pixels in one flat axis; a copy, filled in place
    values = images.transpose(1, 0, 2, 3).reshape(images.shape[1], -1).copy()
    if pixels.size:
        right = (values[:, near] * known_weights[None]).sum(axis=1).T
        # The matrix is symmetric positive definite (weights are symmetric, each diagonal
        # at least its row's off-diagonal sum): a symmetric ordering without pivoting
        # fills in far less than the default column ordering.
        factor = splu(matrix, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0, options={"SymmetricMode": True})
        values[:, pixels] = factor.solve(np.ascontiguousarray(right)).T
    return values.reshape(images.shape[1], images.shape[0], *images.shape[2:]).transpose(1, 0, 2, 3)


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
    filled = torch.from_numpy(_solve(image[None].astype(np.float64), removed[None]))
    add_noise_(filled, torch.from_numpy(removed)[None, None], noise, rng)
    return filled[0].numpy().astype(image.dtype)


def _workers() -> int:
    # The solves run between model calls, so they may take the cores torch uses, no more.
    return max(1, min(torch.get_num_threads(), os.cpu_count() or 1, 8))


def system_groups(unknowns: np.ndarray, max_unknowns: int) -> list[np.ndarray]:
    """Consecutive runs of images, each of at most ``max_unknowns`` removed pixels in all
    (or one image, where that image alone has more), given each image's count ``unknowns``."""
    groups, start, total = [], 0, 0
    for i, count in enumerate(unknowns.tolist()):
        if i > start and total + count > max_unknowns:
            groups.append(np.arange(start, i))
            start, total = i, 0
        total += count
    groups.append(np.arange(start, len(unknowns)))
    return groups


def solve_exact(
    images: Tensor, removed: Tensor, pool: ThreadPoolExecutor, max_unknowns: int = MAX_UNKNOWNS
) -> Tensor:
    """The imputation of ``images`` (N,C,H,W) at ``removed`` (N,1,H,W), no noise, float64 on
    the images' device, by scipy's sparse LU: the reference the torch solver is held to.

    The pool's workers solve :func:`system_groups`' block-diagonal systems (SuperLU
    releases the GIL); the values do not depend on the grouping, beyond rounding.
    """
    arrays = images.detach().to(device="cpu", dtype=torch.float64).numpy()
    masks = removed[:, 0].cpu().numpy()
    groups = system_groups(masks.reshape(len(masks), -1).sum(axis=1), max_unknowns)
    filled = np.concatenate(list(pool.map(lambda group: _solve(arrays[group], masks[group]), groups)))
    return torch.from_numpy(filled).to(images.device)


# The torch solver. The system is ``A v = b`` on the removed pixels, with
# ``A = D - W_RR``: D the weight of each pixel's in-image neighbours, W_RR the weights
# between removed pixels. A is symmetric (the stencil is) and positive definite (diagonally
# dominant, strictly so in every group of removed pixels that touches a kept one, which each
# does while an image keeps a pixel), so conjugate gradients converge to the exact solution.
# Its product with a vector is the 8-neighbour stencil over the whole image, masked: a
# handful of batched element-wise operations, which run on any device for every image and
# every ROAD step at once.
#
# Stopping at a largest residual of 1e-9 left every imputed value within 3e-7 of SuperLU's
# at 32 and 224 px, from 10% to 90% removed, for noisy, smooth and blob-shaped maps (the
# error is at most the residual times the condition number, which grows with the size of
# the removed regions: about 1e2-1e4 here); the tests hold it to 1e-5.
CG_TOLERANCE = 1e-9
# Unknowns (pixels x channels x images) per batched solve: the iteration's vectors and
# temporaries, a dozen float64 tensors of this size, take about 3 GB; 64 images at 32 px
# solve all 18 ROAD steps at once, at 224 px three at a time.
SOLVE_ELEMENTS = 2**25
# A converged system leaves the batch (so the easy ones stop costing), checked this often:
# each check waits for the device.
CG_CHECK_EVERY = 4


def neighbour_sum(values: Tensor) -> Tensor:
    """Each pixel's weighted sum of its in-image 8 neighbours (those off the image count 0)."""
    height, width = values.shape[-2:]
    padded = F.pad(values, (1, 1, 1, 1))
    rows, columns = slice(1, height + 1), slice(1, width + 1)
    up, down, left, right = slice(0, height), slice(2, height + 2), slice(0, width), slice(2, width + 2)
    direct = padded[..., up, columns] + padded[..., down, columns] + padded[..., rows, left] + padded[..., rows, right]
    diagonal = padded[..., up, left] + padded[..., up, right] + padded[..., down, left] + padded[..., down, right]
    return direct * _DIRECT + diagonal * _DIAGONAL


def solve_cg(images: Tensor, removed: Tensor, tolerance: float = CG_TOLERANCE) -> Tensor:
    """The imputation of ``images`` (N,C,H,W) at ``removed`` (N,1,H,W), no noise, float64 on
    the images' device, by conjugate gradients on every image and channel at once, each
    image stopping when its largest residual is at most ``tolerance``."""
    images = images.detach().double()
    height, width = images.shape[-2:]
    degree = neighbour_sum(images.new_ones(1, 1, height, width))
    filled = images.clone()
    active = torch.arange(len(images), device=images.device)
    mask = removed.to(images.dtype)
    right = mask * neighbour_sum(images * (1 - mask))
    # Any start converges to the same solution; the image itself is closer than zero.
    solution = mask * images
    residual = right - mask * (degree * solution - neighbour_sum(solution))
    direction = residual.clone()
    squared = residual.square().sum(dim=(1, 2, 3))
    tiny = torch.finfo(images.dtype).tiny
    # CG ends in at most as many steps as there are unknowns (in exact arithmetic)
    for step in range(2 * height * width + CG_CHECK_EVERY):
        if step % CG_CHECK_EVERY == 0:
            done = residual.abs().amax(dim=(1, 2, 3)) <= tolerance
            if done.any():
                filled[active[done]] = torch.where(removed[active[done]], solution[done], filled[active[done]])
                keep = ~done
                active, mask, solution, residual, direction, squared = (
                    t[keep] for t in (active, mask, solution, residual, direction, squared)
                )
            if not len(active):
                return filled
        product = mask * (degree * direction - neighbour_sum(direction))
        step_size = (squared / (direction * product).sum(dim=(1, 2, 3)).clamp(min=tiny)).view(-1, 1, 1, 1)
        solution = solution + step_size * direction
        residual = residual - step_size * product
        previous, squared = squared, residual.square().sum(dim=(1, 2, 3))
        direction = residual + (squared / previous.clamp(min=tiny)).view(-1, 1, 1, 1) * direction
    raise RuntimeError(f"ROAD's imputation did not converge for {len(active)} images")


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
