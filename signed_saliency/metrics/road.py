"""ROAD (Rong et al., ICML 2022): remove pixels by noisy linear imputation, not a constant.

A black or white patch is itself a signal the model reacts to; ROAD instead fills each
removed pixel with the weighted mean of its 8 neighbours (1/6 direct, 1/12 diagonal),
so a removed region is a smooth interpolation of its border, plus a little noise so the
filled region cannot be recognised by its smoothness.

quantus 0.6's ``ROAD`` ranks channel values but imputes pixels, so it raises IndexError on
RGB input of any size; this one ranks and imputes pixels.

The solves are CPU work (scipy's SuperLU, in a pool of at most torch's thread count, run
between model calls so the two do not compete for cores): about 1 ms of CPU per image and
step at 32x32, as much as a forward of the CIFAR ResNet18, so ROAD costs about twice its
forward passes there, and far more on larger images (a 224x224 image takes 20 ms at 10%
removed and 0.5 s at 90%, which makes ROAD most of a 224-px suite's time).

Images are solved together, as one block-diagonal system, only up to ``MAX_UNKNOWNS``
removed pixels: packing saves per-call overhead on small systems, but SuperLU's time grows
faster than the system's size, so a 32-image block at 224 px cost 1.58x the same images
solved one by one (``python -m benchmarks.speed road`` sweeps the cap). CHOLMOD
(scikit-sparse) factorises these systems about 1.6x faster again, but needs SuiteSparse
built from source, so SuperLU stays.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from signed_saliency.lazy import lazy_import
from signed_saliency.metrics.core import Curve, MetricOutput, Progress, at_least, each, fraction, ignore_progress, register
from signed_saliency.metrics.perturbation import (
    class_scores,
    first_pixels,
    forward_batches,
    grid,
    normalised_auc,
    pixel_counts,
    positions,
    rank_pixels,
    scoring,
    stack_scores,
    to_cpu,
)
from signed_saliency.runtime import generator

csc_matrix = lazy_import("scipy.sparse", "csc_matrix")
splu = lazy_import("scipy.sparse.linalg", "splu")

# (row offset, column offset, weight): the ROAD paper's 8-neighbourhood.
_NEIGHBOURS = np.array(
    [
        (-1, -1, 1 / 12), (-1, 0, 1 / 6), (-1, 1, 1 / 12),
        (0, -1, 1 / 6), (0, 1, 1 / 6),
        (1, -1, 1 / 12), (1, 0, 1 / 6), (1, 1, 1 / 12),
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


def _add_noise(images: np.ndarray, removed: np.ndarray, noise: float, rng: np.random.Generator) -> None:
    """ROAD's noisy variant: ``noise`` * N(0,1) on every removed value, drawn in
    image-major pixel order, so the draws do not depend on how images were grouped."""
    if noise:
        channels_last = images.transpose(0, 2, 3, 1)
        channels_last[removed] += noise * rng.standard_normal((int(removed.sum()), images.shape[1]))


def impute(image: np.ndarray, removed: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    """``image`` (C,H,W) with the ``removed`` (H,W) pixels linearly imputed from their
    neighbours plus ``noise`` * N(0,1); one factorisation solves every channel."""
    filled = _solve(image[None].astype(np.float64), removed[None])
    _add_noise(filled, removed[None], noise, rng)
    return filled[0].astype(image.dtype)


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


def impute_batch(
    images: np.ndarray,
    removed: Tensor,
    noise: float,
    rng: np.random.Generator,
    pool: ThreadPoolExecutor,
    max_unknowns: int = MAX_UNKNOWNS,
) -> np.ndarray:
    """:func:`impute` for a batch ``images`` (N,C,H,W) float64 and masks ``removed`` (N,1,H,W).

    The pool's workers solve :func:`system_groups`' block-diagonal systems (SuperLU
    releases the GIL); the values do not depend on the grouping, beyond rounding.
    """
    masks = removed[:, 0].cpu().numpy()
    groups = system_groups(masks.reshape(len(masks), -1).sum(axis=1), max_unknowns)
    filled = np.concatenate(list(pool.map(lambda group: _solve(images[group], masks[group]), groups)))
    _add_noise(filled, masks, noise, rng)
    return filled


# Removing every pixel leaves no border to impute from (a singular system): fractions stay below 1.
@register("road", family="perturbation", forward_only=True, higher_is_better=True, curve_x="fraction of pixels imputed",
          checks={"fractions": each(fraction(below_one=True)), "noise": at_least(0)})
def road(
    model: nn.Module,
    x: Tensor,
    target: Tensor,
    maps: Tensor,
    method,
    *,
    seed: int = 0,
    ground_truth=None,
    fractions: Sequence[float] = FRACTIONS,
    noise: float = 0.01,
    progress: Progress = ignore_progress,
) -> MetricOutput:
    """ROAD: accuracy and probability as the most (MoRF) or least (LeRF) relevant pixels are imputed.

    Pixels rank by map value, highest first (a signed map by its signed value), ties at
    random from ``seed``; MoRF removes the first round(p*H*W), LeRF the last. Curves
    ``{morf,lerf}/{accuracy,probability}`` over ``fractions`` (accuracy: argmax equals
    ``target``); values ``accuracy`` and ``probability``: LeRF's normalised AUC minus
    MoRF's (higher: the map separates relevant from irrelevant pixels better).
    ``progress`` hears of each imputed step (the solves are most of ROAD's time).
    """
    height, width = maps.shape[-2:]
    counts = pixel_counts(fractions, height * width)
    xs = grid(fractions)
    output = MetricOutput()
    curves: dict[str, Tensor] = {}
    with scoring(model, x, target, maps) as (x, target, maps), ThreadPoolExecutor(_workers()) as pool:
        # The masks feed the CPU solver: making them there saves a device round trip per step.
        places = positions(rank_pixels(maps, generator(seed))).cpu()
        reverse = height * width - 1 - places
        removed = {
            "morf": lambda count: first_pixels(places, count, height, width),
            "lerf": lambda count: first_pixels(reverse, count, height, width),
        }
        jobs = [(order, count) for order in ORDERS for count in counts]
        rng = np.random.default_rng(seed)
        images = x.detach().to(device="cpu", dtype=torch.float64).numpy()

        def imputed() -> Iterator[Tensor]:
            progress(0, len(jobs))
            for done, (order, count) in enumerate(jobs, start=1):
                yield torch.from_numpy(impute_batch(images, removed[order](count), noise, rng, pool)).to(x)
                progress(done, len(jobs))

        logits = forward_batches(model, imputed())
        for i, order in enumerate(ORDERS):
            scores = stack_scores([class_scores(lg, target) for lg in logits[i * len(counts) : (i + 1) * len(counts)]])
            curves[f"{order}/accuracy"] = scores["allegiance"]
            curves[f"{order}/probability"] = scores["probability"]
    for key, curve in to_cpu(curves).items():
        output.curves[key] = Curve(xs, curve)
    for score in ("accuracy", "probability"):
        output.values[score] = normalised_auc(xs, output.curves[f"lerf/{score}"].y) - normalised_auc(
            xs, output.curves[f"morf/{score}"].y
        )
    return output
