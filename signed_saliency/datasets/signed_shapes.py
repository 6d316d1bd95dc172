"""Signed shapes: a synthetic dataset whose right explanation, sign included, is known.

Each image is a textured mid-grey background with one shape (circle, square, triangle,
cross or ring) that is either brighter or darker than it; the class is (shape, polarity).
Because brightness is all that separates a bright class from its dark twin, a model that
learned the task must raise a bright class's score when the object's pixels brighten and a
dark class's score when they darken: the object's pixels are where a map should point, and
the polarity is the sign a signed map should give them.

Images are generated from a seed, never read from files. The intensities are bounded so
that the object and the background never overlap: the background stays within
``0.5 ± (TEXTURE + GRAIN)`` and the object sits at least ``MIN_CONTRAST`` beyond that, which
is what lets a test recover the mask from the pixels alone.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from signed_saliency.datasets.core import GroundTruth, ImageSet, register

SHAPES = ("circle", "square", "triangle", "cross", "ring")
POLARITIES = ("bright", "dark")
CLASS_NAMES = tuple(f"{polarity}-{shape}" for shape in SHAPES for polarity in POLARITIES)

BACKGROUND = 0.5
TEXTURE = 0.06  # amplitude of the smooth background variation
GRAIN = 0.02  # amplitude of the per-pixel, per-channel noise
MIN_CONTRAST, MAX_CONTRAST = 0.2, 0.35  # object offset from the background it covers
MIN_RADIUS, MAX_RADIUS = 0.2, 0.32  # shape half-extent, as a fraction of the image side
TEXTURE_CELLS = 4  # the smooth texture is this many random values per side, upsampled

DEFAULT_SIZES = {"train": 5000, "test": 1000}
SPLIT_STREAMS = {"train": 1, "test": 2}
# Images are drawn in fixed blocks, each from its own generator, so image i is the same
# whatever n is asked for and a small test set is a prefix of the full one.
BLOCK = 64


def shape_masks(shape: Tensor, centre: Tensor, radius: Tensor, size: int) -> Tensor:
    """(N,size,size) bool masks for shape indices ``shape`` (N,), centres (N,2) as (row,
    column) and half-extents ``radius`` (N,), all in pixels."""
    coords = torch.arange(size, dtype=torch.float32) + 0.5
    masks = torch.zeros(len(shape), size, size, dtype=torch.bool)
    for index, name in enumerate(SHAPES):
        chosen = (shape == index).nonzero().squeeze(1)
        if len(chosen):
            dy = coords.view(1, -1, 1) - centre[chosen, 0].view(-1, 1, 1)
            dx = coords.view(1, 1, -1) - centre[chosen, 1].view(-1, 1, 1)
            masks[chosen] = _OUTLINES[name](dx, dy, radius[chosen].view(-1, 1, 1))
    return masks


def _ring(dx: Tensor, dy: Tensor, r: Tensor) -> Tensor:
    distance = torch.sqrt(dx**2 + dy**2)
    return (distance <= r) & (distance >= 0.55 * r)


def _cross(dx: Tensor, dy: Tensor, r: Tensor) -> Tensor:
    arm = r / 3
    return ((dx.abs() <= arm) & (dy.abs() <= r)) | ((dy.abs() <= arm) & (dx.abs() <= r))


_OUTLINES = {
    "circle": lambda dx, dy, r: dx**2 + dy**2 <= r**2,
    # A square has more area than a circle of the same half-extent; shrinking it keeps
    # the shapes of similar size, so size does not give the class away.
    "square": lambda dx, dy, r: torch.maximum(dx.abs(), dy.abs()) <= 0.85 * r,
    # Upward triangle: apex at -r, base at +0.7r, widening linearly.
    "triangle": lambda dx, dy, r: (dy >= -r) & (dy <= 0.7 * r) & (dx.abs() <= 0.62 * (dy + r)),
    "cross": _cross,
    "ring": _ring,
}


def polarity_of_labels(labels: Tensor) -> Tensor:
    """+1 for a bright object's class, -1 for a dark one's: the class says the polarity
    (bright classes are even), so a results table's labels give it back."""
    return 1 - 2 * (labels % len(POLARITIES))


def _block(n: int, size: int, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One block of ``n`` images: float images (n,3,size,size), labels, masks, polarity."""
    labels = torch.randint(len(CLASS_NAMES), (n,), generator=generator)
    shape = labels // len(POLARITIES)
    polarity = polarity_of_labels(labels)

    radius = size * (MIN_RADIUS + (MAX_RADIUS - MIN_RADIUS) * torch.rand(n, generator=generator))
    # The whole shape fits inside the image with a pixel to spare.
    free = (size - 2 * (radius + 1)).clamp(min=0)
    centre = (radius + 1)[:, None] + free[:, None] * torch.rand(n, 2, generator=generator)
    masks = shape_masks(shape, centre, radius, size)

    coarse = (2 * torch.rand(n, 1, TEXTURE_CELLS, TEXTURE_CELLS, generator=generator) - 1) * TEXTURE
    # Bilinear upsampling keeps values between the coarse ones, so the bound holds.
    texture = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    grain = (2 * torch.rand(n, 3, size, size, generator=generator) - 1) * GRAIN
    background = BACKGROUND + texture + grain

    contrast = MIN_CONTRAST + (MAX_CONTRAST - MIN_CONTRAST) * torch.rand(n, generator=generator)
    offset = (polarity * contrast).view(n, 1, 1, 1) * masks[:, None].float()
    images = (background + offset).clamp(0, 1)
    return images, labels, masks, polarity


def generate(n: int, size: int = 32, seed: int = 0, stream: int = 0) -> tuple[Tensor, Tensor, GroundTruth]:
    """``n`` images as uint8 (n,3,size,size), their labels and ground truth; image i
    depends only on (seed, stream, i, size)."""
    images, labels, masks, polarity = [], [], [], []
    for block in range(math.ceil(n / BLOCK)):
        count = min(BLOCK, n - block * BLOCK)
        generator = torch.Generator().manual_seed(((seed * 16 + stream) * 1_000_003 + block) % (2**63))
        # Always draw a whole block, then keep a prefix, so the last block's images do
        # not depend on how many of them are kept.
        block_images, block_labels, block_masks, block_polarity = _block(BLOCK, size, generator)
        images.append(block_images[:count])
        labels.append(block_labels[:count])
        masks.append(block_masks[:count])
        polarity.append(block_polarity[:count])
    if n == 0:
        return (
            torch.empty(0, 3, size, size, dtype=torch.uint8),
            torch.empty(0, dtype=torch.long),
            GroundTruth(mask=torch.empty(0, size, size, dtype=torch.bool), polarity=torch.empty(0, dtype=torch.long)),
        )
    as_uint8 = torch.cat(images).mul_(255).round_().to(torch.uint8)
    truth = GroundTruth(mask=torch.cat(masks), polarity=torch.cat(polarity).long())
    return as_uint8, torch.cat(labels).long(), truth


@register(
    "signed-shapes",
    class_names=CLASS_NAMES,
    default_image_size=32,
    splits=("train", "test"),
    evaluation_split="test",
    has_ground_truth=True,
)
def signed_shapes(
    split: str,
    *,
    root: Optional[Path],
    image_size: int,
    n: Optional[int] = None,
    seed: int = 0,
) -> ImageSet:
    """Synthetic bright/dark shapes with object masks and polarity (train 5,000 / test 1,000)."""
    del root  # generated, nothing to read
    count = DEFAULT_SIZES[split] if n is None else int(n)
    images, labels, truth = generate(count, image_size, seed=seed, stream=SPLIT_STREAMS[split])
    return ImageSet(
        dataset="signed-shapes",
        split=split,
        images=images,
        labels=labels,
        class_names=CLASS_NAMES,
        indices=torch.arange(count),
        ground_truth=truth,
    )
