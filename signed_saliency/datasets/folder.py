"""Your own images: ``folder:PATH`` is a dataset read from an ImageFolder tree.

    datasets.get("folder:data/pets").load(image_size=224)   # data/pets/<class>/<image>.jpg

The layout is torchvision's ``ImageFolder``: one folder per class under ``PATH``, labels
numbered by the class folders' sorted names, images (.jpg, .jpeg, .png) sorted within
each. Every image is decoded to RGB and resized (squashed, as Imagenette's copy is) to
``image_size`` squared, 224 unless asked otherwise: give the size your model expects. The
dataset has one split, ``all``; for a tree with ``train/`` and ``val/`` splits, point
``PATH`` at the split to evaluate.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Optional

from signed_saliency.datasets._folder import EXTENSIONS, list_folder, load_folder
from signed_saliency.datasets.core import DatasetSpec, ImageSet, registry
from signed_saliency.errors import DatasetNotFoundError, UserError

DEFAULT_IMAGE_SIZE = 224
SPLIT = "all"


def _load(name: str, folder: Path, split: str, *, root: Optional[Path], image_size: int) -> ImageSet:
    del root  # the folder is the whole source
    listing = list_folder(folder)
    counts = listing.labels.bincount(minlength=len(listing.class_folders)).tolist()
    empty = [class_name for class_name, count in zip(listing.class_folders, counts) if count == 0]
    if empty:
        nested = any(entry.is_dir() for entry in (folder / empty[0]).iterdir())
        hint = f"; it holds folders: is {folder} a folder of splits? point at one, {folder / empty[0]}" if nested else ""
        raise UserError(
            f"class folder {folder / empty[0]} has no {'/'.join(EXTENSIONS)} images{hint}"
            + (f" ({len(empty)} class folders are empty)" if len(empty) > 1 else "")
        )
    return load_folder(name, split, folder, listing.class_folders, image_size)


def _source(folder: Path, split: str, root: Optional[Path]) -> Path:
    """Where every split of a folder dataset is read from, whatever the data root."""
    return folder


def folder_dataset(path: str) -> DatasetSpec:
    """The dataset ``folder:<path>``: classes from ``path``'s subfolders (checked now),
    images read when loaded."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise DatasetNotFoundError(f"dataset folder:{path}: {folder.absolute()} is not a folder")
    classes = sorted(entry.name for entry in folder.iterdir() if entry.is_dir())
    if not classes:
        raise UserError(
            f"dataset folder:{path} has no class folders: put each class's images in {folder}/<class>/ (ImageFolder layout)"
        )
    name = f"folder:{path}"
    return DatasetSpec(
        name=name,
        fn=functools.partial(_load, name, folder),
        class_names=tuple(classes),
        default_image_size=DEFAULT_IMAGE_SIZE,
        splits=(SPLIT,),
        evaluation_split=SPLIT,
        description=f"images under {folder}, {len(classes)} classes from its folders",
        source=functools.partial(_source, folder.resolve()),
    )


registry.add_resolver("folder:", lambda name: folder_dataset(name.partition(":")[2]), "folder:PATH")
