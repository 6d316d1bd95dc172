"""ROAD's imputation solves: CPU time per image against the size of the systems they are packed into.

    python -m benchmarks.speed road [--size 32] [--batch 32] [--threads 1] [--clock cpu]

ROAD packs consecutive images into one block-diagonal system of at most ``max_unknowns``
removed pixels (signed_saliency.metrics.road_solvers.MAX_UNKNOWNS). Each row solves the same masks
(the top pixels of smoothed random maps, at ROAD's default fractions) under one cap and
prints milliseconds per image and step, and the time relative to the default cap (> 1:
slower than the default). "whole batch" is one system for all images, which is what each
worker solved before the cap, with batch = the images per worker (32 at 64 images and 2
threads). The last row is the torch solver (``road``'s ``solver = "cg"``), one batched
conjugate-gradient solve per fraction, on ``--device``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.speed import fastest_seconds, suite_parser
from signed_saliency.metrics.perturbation import first_pixels, pixel_counts, positions, rank_pixels
from signed_saliency.metrics.road import FRACTIONS
from signed_saliency.metrics.road_solvers import MAX_UNKNOWNS, solve_cg, solve_exact
from signed_saliency.runtime import generator


def smooth_maps(batch: int, size: int, seed: int = 0) -> torch.Tensor:
    """Random maps blurred over about a twentieth of the image, so the removed pixels form
    blobs as a real map's do rather than isolated points."""
    noise = torch.randn(batch, 1, size, size, generator=torch.Generator().manual_seed(seed))
    width = max(1, size // 20)
    kernel = torch.ones(1, 1, 2 * width + 1, 2 * width + 1) / (2 * width + 1) ** 2
    return F.conv2d(F.pad(noise, [width] * 4, mode="reflect"), kernel)[:, 0]


def main(argv: list[str] | None = None) -> None:
    parser = suite_parser("python -m benchmarks.speed road", __doc__.splitlines()[0], repeats=1)
    parser.set_defaults(batch=32, threads=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    maps = smooth_maps(args.batch, args.size)
    places = positions(rank_pixels(maps, generator(0)))
    masks = [first_pixels(places, count, args.size, args.size) for count in pixel_counts(FRACTIONS, args.size**2)]
    images = torch.from_numpy(np.random.default_rng(0).random((args.batch, 3, args.size, args.size)))
    default_label = f"{MAX_UNKNOWNS:,} (default)"
    caps = {"one image": 1, "1,024": 1024, default_label: MAX_UNKNOWNS, "16,384": 16384}
    caps["whole batch"] = args.batch * args.size**2

    print(f"{args.batch} images at {args.size} px, {len(FRACTIONS)} fractions, {args.threads} worker(s), {args.clock} clock\n")
    print(f"{'max unknowns':<22}" + "".join(f"{f:>7.1f}" for f in FRACTIONS) + f"{'all':>8}{'vs default':>12}")
    with ThreadPoolExecutor(args.threads) as pool:
        solve_exact(images[:1], masks[0][:1], pool)  # warm-up
        rows = {}
        for label, cap in caps.items():
            rows[label] = [
                fastest_seconds(lambda: solve_exact(images, mask, pool, cap), args.repeats, device, args.clock)
                for mask in masks
            ]
        on_device = images.to(device)
        rows[f"cg on {device}"] = [
            fastest_seconds(lambda: solve_cg(on_device, mask.to(device)), args.repeats, device, args.clock) for mask in masks
        ]
        default = sum(rows[default_label])
        for label, seconds in rows.items():
            per_image = [1e3 * s / args.batch for s in seconds]
            print(f"{label:<22}" + "".join(f"{ms:>7.1f}" for ms in per_image) + f"{sum(per_image):>8.1f}{sum(seconds) / default:>11.2f}x")
    print("\n(ms per image and step; 'all' sums the fractions)")


if __name__ == "__main__":
    main()
