"""The randomisation checks' HOG features: batched here against skimage image by image.

    python -m benchmarks.speed hog [--size 32] [--batch 64] [--threads 1] [--clock cpu]

The randomisation check compares every method's maps with the trained model's once per
randomised model (12-45 of them), so it computes HOG features of tens of thousands of maps
per batch of images. skimage computes them one image at a time, as the suite once did;
signed_saliency.metrics.similarity now computes them on the whole batch with the same
values (tests/test_randomisation.py checks them against skimage). Prints milliseconds per
map for skimage's loop and the batched version, and their ratio (> 1: the batched version
is faster). The maps are random Gaussian noise: the cost does not depend on their values.
"""

from __future__ import annotations

import numpy as np
import torch

from benchmarks.speed import best_seconds, suite_parser
from signed_saliency.metrics.similarity import HOG_BLOCK, _hog_features, _scaled, hog_cell


def skimage_hog(maps: torch.Tensor, pixels_per_cell: int) -> np.ndarray:
    from skimage.feature import hog

    cell = hog_cell(*maps.shape[1:], pixels_per_cell)
    return np.stack(
        [hog(m, pixels_per_cell=(cell, cell), cells_per_block=(HOG_BLOCK, HOG_BLOCK)) for m in maps.numpy()]
    )


def main(argv: list[str] | None = None) -> None:
    parser = suite_parser("python -m benchmarks.speed hog", __doc__.splitlines()[0], repeats=3)
    parser.set_defaults(threads=1)
    parser.add_argument("--cell", type=int, default=8, help="pixels per cell, as the randomisation metric's hog_cell")
    args = parser.parse_args(argv)
    if args.size < HOG_BLOCK:
        parser.error(f"--size must be at least {HOG_BLOCK}: HOG needs one block of {HOG_BLOCK}x{HOG_BLOCK} cells")
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    maps = _scaled(torch.randn(args.batch, args.size, args.size, generator=torch.Generator().manual_seed(0)))
    theirs, ours = (
        best_seconds(fn, args.repeats, device, args.clock) / args.batch
        for fn in (lambda: skimage_hog(maps, args.cell), lambda: _hog_features(maps, args.cell))
    )
    print(f"{args.batch} maps at {args.size} px, {args.threads} thread(s), {args.clock} clock")
    print(f"skimage {1000 * theirs:.3f} ms/map, batched {1000 * ours:.3f} ms/map: {theirs / ours:.1f}x faster")


if __name__ == "__main__":
    main()
