"""Decoding an ImageFolder tree (``<split>/<class>/<image>``) straight into a uint8 tensor.

torchvision's ``ImageFolder`` opens every file through PIL one at a time; decoding the raw
bytes with ``torchvision.io.decode_image`` in a few threads (it releases the GIL) is several
times faster and gives the same pixels up to libjpeg's rounding.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch
from torch import Tensor

from signed_saliency.datasets.core import ImageSet
from signed_saliency.errors import UserError
from signed_saliency.lazy import lazy_import

io = lazy_import("torchvision.io")
TF = lazy_import("torchvision.transforms.v2.functional")

EXTENSIONS = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class FolderListing:
    """The files of one split in ImageFolder order: classes sorted, files sorted within each."""

    paths: tuple[Path, ...]
    labels: Tensor  # long (N,)
    class_folders: tuple[str, ...]


def list_folder(folder: Path) -> FolderListing:
    """List ``folder/<class>/<image>``."""
    class_folders = sorted(entry.name for entry in folder.iterdir() if entry.is_dir())
    paths: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(class_folders):
        files = sorted(p for p in (folder / name).iterdir() if p.suffix.lower() in EXTENSIONS)
        paths += files
        labels += [label] * len(files)
    return FolderListing(tuple(paths), torch.tensor(labels, dtype=torch.long), tuple(class_folders))


def decode_bytes(data: Tensor, image_size: int) -> tuple[Tensor, bool]:
    """One encoded image -> ((3, image_size, image_size) uint8, whether it was greyscale)."""
    image = io.decode_image(data, mode=io.ImageReadMode.UNCHANGED)
    greyscale = image.shape[0] in (1, 2)
    if image.shape[0] != 3:
        # greyscale (+alpha), CMYK or RGBA: let the decoder do the colour conversion
        image = io.decode_image(data, mode=io.ImageReadMode.RGB)
    if image.shape[-2:] != (image_size, image_size):
        image = TF.resize(image, [image_size, image_size], antialias=True)
    return image, greyscale


def decode_files(paths: Sequence[Path], image_size: int, threads: int = 4) -> tuple[Tensor, Tensor]:
    """Decode ``paths`` -> ((N,3,S,S) uint8 images, (N,) bool greyscale flags)."""
    images = torch.empty((len(paths), 3, image_size, image_size), dtype=torch.uint8)
    greyscale = torch.zeros(len(paths), dtype=torch.bool)

    def work(chunk: range) -> None:
        for i in chunk:
            images[i], greyscale[i] = decode_bytes(io.read_file(str(paths[i])), image_size)

    step = max(1, -(-len(paths) // (threads * 8)))
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(work, (range(i, min(i + step, len(paths))) for i in range(0, len(paths), step))))
    return images, greyscale


def first_per_class(labels: Tensor, n: int) -> Tensor:
    """Positions of the first ``n`` images of each class, in split order."""
    keep = torch.zeros(len(labels), dtype=torch.bool)
    for label in labels.unique():
        keep[torch.nonzero(labels == label).squeeze(1)[:n]] = True
    return torch.nonzero(keep).squeeze(1)


def load_folder(
    dataset: str,
    split: str,
    folder: Path,
    class_names: Sequence[str],
    image_size: int,
    *,
    drop_greyscale: bool = False,
    per_class: Optional[int] = None,
) -> ImageSet:
    """An :class:`ImageSet` of one ImageFolder split; ``indices`` count files in ImageFolder
    order over the whole split, so they stay the same whatever ``per_class`` keeps."""
    listing = list_folder(folder)
    if len(listing.class_folders) != len(class_names):
        raise UserError(
            f"{folder} has {len(listing.class_folders)} class folders, expected {len(class_names)}: "
            "point the data root at an unmodified copy of the dataset"
        )
    indices = torch.arange(len(listing.paths))
    if per_class is not None:
        indices = first_per_class(listing.labels, per_class)
    images, greyscale = decode_files([listing.paths[i] for i in indices], image_size)
    labels = listing.labels[indices]
    if drop_greyscale:
        images, labels, indices = images[~greyscale], labels[~greyscale], indices[~greyscale]
    return ImageSet(dataset, split, images, labels, tuple(class_names), indices)
