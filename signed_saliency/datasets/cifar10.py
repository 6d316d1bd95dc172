"""CIFAR-10 (Krizhevsky, 2009): 32x32 RGB, ten classes.

Read from an ImageFolder JPEG copy (``<root>/cifar10-jpg/<split>/<class>/*.jpg``) when there
is one, else from torchvision's own download (``<root>/cifar-10-batches-py``). The library only
reads: :func:`download` fetches that copy when ``benchmarks.data`` asks (``--download``). The ``sample``
split is 256 test images shipped inside the package, so examples run with no data at all.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from signed_saliency.datasets._folder import decode_bytes, first_per_class, load_folder
from signed_saliency.datasets.core import ImageSet, register
from signed_saliency.errors import DatasetNotFoundError
from signed_saliency.lazy import lazy_import

TF = lazy_import("torchvision.transforms.v2.functional")

CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
JPEG_FOLDER = "cifar10-jpg"
TORCHVISION_FOLDER = "cifar-10-batches-py"
SAMPLE_FILE = "cifar10_test_sample.npz"


def source_path(split: str, root: Optional[Path]) -> Optional[Path]:
    """Where ``split`` is read from: the shipped file for the sample; under ``root`` the JPEG
    copy first, else torchvision's batches; None when neither is there."""
    if split == "sample":
        return Path(str(resources.files("signed_saliency.datasets").joinpath("data", SAMPLE_FILE)))
    if root is None:
        return None
    for folder in (root / JPEG_FOLDER / split, root / TORCHVISION_FOLDER):
        if folder.is_dir():
            return folder
    return None


def download(split: str, root: Path) -> None:
    """Fetch torchvision's copy of ``split`` into ``root`` where the loader would not find one."""
    if split == "sample" or (root / JPEG_FOLDER / split).is_dir():
        return  # shipped, or read from the JPEG copy: torchvision's files would not be read
    from torchvision.datasets import CIFAR10

    try:
        # checks a copy already there against its checksums and fetches a missing or broken one
        CIFAR10(str(root), train=split == "train", download=True)
    except OSError as error:  # URLError and friends: no network, a proxy, a full disk
        raise DatasetNotFoundError(f"could not download CIFAR-10 into {root}: {error}") from None


@register(
    "cifar10",
    class_names=CLASS_NAMES,
    default_image_size=32,
    splits=("train", "test", "sample"),
    evaluation_split="test",
    source=source_path,
    download=download,
)
def cifar10(
    split: str,
    *,
    root: Optional[Path],
    image_size: int,
    per_class: Optional[int] = None,
) -> ImageSet:
    """CIFAR-10, 32x32 (train 50,000 / test 10,000 / sample 256 test images shipped)."""
    if split == "sample":
        images = load_sample(image_size)
    else:
        folder = source_path(split, root)
        if folder is not None and folder.parent.name == JPEG_FOLDER:
            return load_folder("cifar10", split, folder, CLASS_NAMES, image_size, per_class=per_class)
        if folder is None:
            raise DatasetNotFoundError(
                f"CIFAR-10 {split!r} not found: looked for {root / JPEG_FOLDER / split if root else JPEG_FOLDER} "
                f"and {root / TORCHVISION_FOLDER if root else TORCHVISION_FOLDER}. Set the data root "
                "(--data-root or $SIGNED_SALIENCY_DATA) to the folder holding cifar10-jpg/, or pass "
                "--download to fetch it with torchvision"
            )
        images = _load_torchvision(split, root, image_size)
    if per_class is not None:
        images = images.subset(first_per_class(images.labels, per_class))
    return images


def _load_torchvision(split: str, root: Path, image_size: int) -> ImageSet:
    from torchvision.datasets import CIFAR10

    source = CIFAR10(str(root), train=split == "train", download=False)
    images = torch.from_numpy(source.data).permute(0, 3, 1, 2).contiguous()
    if image_size != images.shape[-1]:
        images = TF.resize(images, [image_size, image_size], antialias=True)
    labels = torch.tensor(source.targets, dtype=torch.long)
    return ImageSet("cifar10", split, images, labels, CLASS_NAMES, torch.arange(len(labels)))


def load_sample(image_size: int = 32) -> ImageSet:
    """The shipped sample: the JPEG files themselves are stored (a quarter of the raw
    pixels' size), so the sample decodes to exactly the pixels of the full test split."""
    with source_path("sample", None).open("rb") as f:
        stored = np.load(f)
        jpeg, offsets = torch.from_numpy(stored["jpeg"]), stored["offsets"].tolist()
        labels, indices = torch.from_numpy(stored["labels"]), torch.from_numpy(stored["indices"])
    images = torch.stack([decode_bytes(jpeg[a:b], image_size)[0] for a, b in zip(offsets[:-1], offsets[1:])])
    return ImageSet("cifar10", "sample", images, labels.long(), CLASS_NAMES, indices.long())
