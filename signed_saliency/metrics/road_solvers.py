"""ROAD's imputation system and its two solvers (see :mod:`signed_saliency.metrics.road`).

For each removed pixel i with in-image neighbours j (weights w_ij, 1/6 direct, 1/12
diagonal): ``sum_j w_ij * v_i - sum_{j removed} w_ij * v_j = sum_{j kept} w_ij * x_j``,
i.e. v_i is the weighted mean of its neighbours, those off the image left out (as ROAD and
quantus do). The matrix ``A = D - W_RR`` is symmetric (the stencil is) and positive
definite (diagonally dominant, strictly so in every group of removed pixels that touches a
kept one, which each does while an image keeps a pixel).

- :func:`solve_exact`: scipy's SuperLU on the CPU, the reference. The unknowns are numbered
  in a nested-dissection order of the image grid (:func:`dissection_order`, computed once
  per image size) and SuperLU keeps that order: halving the grid by a one-pixel line,
  recursively, is a near-optimal fill-reducing order for a 2-D stencil, and any subset of
  the grid (the removed pixels) inherits it. Against SuperLU's own minimum-degree ordering
  (and the earlier set-up through COO) it made the solves 1.7x faster at 224 px and 1.45x
  at 32 px (saliency maps of the CIFAR-10 ResNet18, one core).
- :func:`solve_cg`: conjugate gradients in torch, on any device, every image and ROAD step
  at once; its matrix-vector product is the 8-neighbour stencil over the whole image, masked.
"""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from signed_saliency.lazy import lazy_import

csc_matrix = lazy_import("scipy.sparse", "csc_matrix")
splu = lazy_import("scipy.sparse.linalg", "splu")

# The ROAD paper's 8-neighbourhood: direct neighbours weigh 1/6, diagonal ones 1/12.
DIRECT, DIAGONAL = 1 / 6, 1 / 12
# (row offset, column offset, weight)
NEIGHBOURS = np.array(
    [
        (-1, -1, DIAGONAL), (-1, 0, DIRECT), (-1, 1, DIAGONAL),
        (0, -1, DIRECT), (0, 1, DIRECT),
        (1, -1, DIAGONAL), (1, 0, DIRECT), (1, 1, DIAGONAL),
    ]
)  # fmt: skip
# Images are solved in block-diagonal systems of about this many unknowns (32 images of
# 32x32 at 10% removed, 4 at 90%), several per ROAD step for the pool's workers to share; a
# 224x224 image exceeds it on its own. Measured with `speed road` on one core: at 32 px
# larger systems were within noise on saliency maps (and 0.7x on smooth ones), while two
# 224x224 images in one system cost 1.1-1.2x the two alone.
MAX_UNKNOWNS = 4096


@functools.lru_cache(maxsize=16)
def dissection_order(height: int, width: int, leaf: int = 16) -> np.ndarray:
    """The flat indices of an ``height`` x ``width`` grid in a nested-dissection order:
    the longer side halved by a one-pixel line, both halves first (recursively), the line
    last; blocks of at most ``leaf`` pixels row by row."""
    parts: list[np.ndarray] = []

    def dissect(top: int, bottom: int, left: int, right: int) -> None:
        if bottom <= top or right <= left:
            return
        if (bottom - top) * (right - left) <= leaf:
            parts.append((np.arange(top, bottom)[:, None] * width + np.arange(left, right)).ravel())
        elif bottom - top >= right - left:
            middle = (top + bottom) // 2
            dissect(top, middle, left, right)
            dissect(middle + 1, bottom, left, right)
            parts.append(middle * width + np.arange(left, right))
        else:
            middle = (left + right) // 2
            dissect(top, bottom, left, middle)
            dissect(top, bottom, middle + 1, right)
            parts.append(np.arange(top, bottom) * width + middle)

    dissect(0, height, 0, width)
    order = np.concatenate(parts)
    order.flags.writeable = False  # cached, shared by every call and thread
    return order


def impute_in_place(images: np.ndarray, removed: np.ndarray) -> None:
    """Fills the ``removed`` (G,H,W) pixels of ``images`` (G,C,H,W, float64) by solving
    their system, block-diagonal over images (no equation crosses images), no noise."""
    count, channels, height, width = images.shape
    order = dissection_order(height, width)
    # np.take: several times faster than indexing with an array
    image, place = np.nonzero(np.take(removed.reshape(count, -1), order, axis=1))
    if not image.size:
        return
    rows, cols = np.divmod(order[place], width)
    # the unknowns on a grid padded by one pixel, which is never removed, so that every
    # pixel has 8 neighbours; they are numbered in the dissection order
    padded = (image * (height + 2) + rows + 1) * (width + 2) + cols + 1
    # int32, as SuperLU takes its indices (a copy otherwise)
    unknown = np.full(count * (height + 2) * (width + 2), -1, dtype=np.int32)
    unknown[padded] = numbers = np.arange(padded.size, dtype=np.int32)
    near = padded[:, None] + (NEIGHBOURS[:, 0] * (width + 2) + NEIGHBOURS[:, 1]).astype(int)
    columns = np.concatenate([numbers[:, None], np.take(unknown, near)], axis=1)
    values = np.concatenate([_degree(height, width)[rows, cols, None], np.broadcast_to(-NEIGHBOURS[:, 2], near.shape)], axis=1)
    coupled = columns >= 0
    # symmetric: each unknown's row is its column
    starts = np.concatenate([[0], np.cumsum(np.count_nonzero(coupled, axis=1))]).astype(np.int32)
    matrix = csc_matrix((values[coupled], columns[coupled], starts), shape=(padded.size,) * 2)
    # the right-hand sides: the kept neighbours' weighted sums (removed pixels and the border at 0)
    kept = np.zeros((channels, count, height + 2, width + 2))
    kept[:, :, 1:-1, 1:-1] = np.where(removed, 0.0, images.transpose(1, 0, 2, 3))
    right = np.take(kept.reshape(channels, -1), near, axis=1) @ NEIGHBOURS[:, 2]
    # The matrix is symmetric positive definite: no pivoting, and the dissection order kept.
    factor = splu(matrix, permc_spec="NATURAL", diag_pivot_thresh=0.0, options={"SymmetricMode": True})
    images[image, :, rows, cols] = factor.solve(np.ascontiguousarray(right.T))


@functools.lru_cache(maxsize=16)
def _degree(height: int, width: int) -> np.ndarray:
    """Each pixel's total weight of its in-image neighbours ``(H,W)``."""
    degree = neighbour_sum(torch.ones(1, 1, height, width, dtype=torch.float64))[0, 0].numpy()
    degree.flags.writeable = False  # cached, shared by every call and thread
    return degree


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
    filled = images.detach().to(device="cpu", dtype=torch.float64, copy=True)
    arrays, masks = filled.numpy(), removed[:, 0].cpu().numpy()
    groups = [slice(group[0], group[-1] + 1) for group in system_groups(masks.sum(axis=(1, 2)), max_unknowns) if group.size]
    # SuperLU releases the GIL, and the groups fill disjoint images
    list(pool.map(lambda group: impute_in_place(arrays[group], masks[group]), groups))
    return filled.to(images.device)


# The torch solver. A's product with a vector is the 8-neighbour stencil over the whole
# image, masked: a handful of batched element-wise operations, which run on any device for
# every image and every ROAD step at once.
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
    return direct * DIRECT + diagonal * DIAGONAL


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
