"""Imagenette v2 (fastai): ten easy ImageNet classes, squashed to square images.

Read from ``<root>/imagenette2-224/<split>/<wnid>/*.JPEG`` (the 224x224 copy) when there is
one, else from torchvision's download (``<root>/imagenette2-320``, resized on load). The library
only reads: :func:`download` fetches that copy when ``benchmarks.data`` asks (``--download``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from signed_saliency.datasets._folder import load_folder
from signed_saliency.datasets.core import ImageSet, register
from signed_saliency.errors import DatasetNotFoundError, UserError

WNIDS = (
    "n01440764", "n02102040", "n02979186", "n03000684", "n03028079",
    "n03394916", "n03417042", "n03425413", "n03445777", "n03888257",
)  # fmt: skip
CLASS_NAMES = (
    "tench", "English springer", "cassette player", "chain saw", "church",
    "French horn", "garbage truck", "gas pump", "golf ball", "parachute",
)  # fmt: skip
COPY_FOLDER = "imagenette2-224"
# torchvision's 320px archive: a tenth of the full one's size and still larger than 224
TORCHVISION_SIZE, TORCHVISION_FOLDER = "320px", "imagenette2-320"


def source_path(split: str, root: Optional[Path]) -> Optional[Path]:
    """Where ``split`` is read from under ``root``, or None when it is not there."""
    if root is None:
        return None
    for folder in (root / COPY_FOLDER / split, root / TORCHVISION_FOLDER / split):
        if folder.is_dir():
            return folder
    return None


def download(split: str, root: Path) -> None:
    """Fetch torchvision's copy of ``split`` into ``root`` where the loader would not find one."""
    if source_path(split, root) is not None:
        return
    try:
        from torchvision.datasets import Imagenette
    except ImportError:
        raise UserError(
            "this torchvision has no Imagenette dataset (added in 0.17): upgrade torchvision, or download "
            f"imagenette2-320.tgz from fastai and unpack it under the data root as {TORCHVISION_FOLDER}/"
        ) from None
    try:
        Imagenette(str(root), split=split, size=TORCHVISION_SIZE, download=True)
    except OSError as error:  # URLError and friends: no network, a proxy, a full disk
        raise DatasetNotFoundError(f"could not download Imagenette into {root}: {error}") from None


@register(
    "imagenette",
    class_names=CLASS_NAMES,
    default_image_size=224,
    splits=("train", "val"),
    evaluation_split="val",
    source=source_path,
    download=download,
)
def imagenette(
    split: str,
    *,
    root: Optional[Path],
    image_size: int,
    drop_greyscale: bool = False,
    per_class: Optional[int] = None,
) -> ImageSet:
    """Imagenette v2, 224x224 by default (train 9,469 / val 3,925; 242 greyscale -> RGB)."""
    folder = source_path(split, root)
    if folder is None:
        looked = f"{root / COPY_FOLDER / split} and {root / TORCHVISION_FOLDER / split}" if root else COPY_FOLDER
        raise DatasetNotFoundError(
            f"Imagenette {split!r} not found: looked for {looked}. Set the data root (--data-root or "
            "$SIGNED_SALIENCY_DATA) to the folder holding imagenette2-224/, or pass --download to "
            "fetch it with torchvision"
        )
    return load_folder(
        "imagenette", split, folder, CLASS_NAMES, image_size, drop_greyscale=drop_greyscale, per_class=per_class
    )

