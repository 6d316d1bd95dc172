"""Decoded datasets cached on disk: the second load of a split is a memory map, not 50,000 JPEGs.

A cache file is keyed by dataset, split, image size, loader options and a fingerprint of
the source files (their folder, count and total size), so a changed data root or a new
download is decoded afresh instead of served stale.

Downloads (``--download``) happen here too: the library's loaders only read, and fetching a
dataset with torchvision is the one step of loading that writes files.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Optional

import torch

from benchmarks.files import write_atomically
from benchmarks.paths import cache_dir, default_data_root
from signed_saliency import datasets
from signed_saliency.datasets.core import GroundTruth, ImageSet

FORMAT_VERSION = 1  # bump when ImageSet's fields or a loader's decoding change


def load_images(
    dataset_name: str,
    split: Optional[str] = None,
    *,
    root: Optional[str | Path] = None,
    image_size: Optional[int] = None,
    download: bool = False,
    **options,
) -> ImageSet:
    """``datasets.get(dataset_name).load(...)``, through the on-disk cache; with
    ``download``, a split that is not cached is first fetched with torchvision where it is
    missing (:func:`download_split`)."""
    spec = datasets.get(dataset_name)
    split = split or spec.evaluation_split
    root = Path(root).expanduser() if root is not None else default_data_root()
    image_size = image_size or spec.default_image_size
    path = _cache_path(spec, split, root, image_size, options)
    if download and (path is None or not path.is_file()):
        download_split(spec.name, split, root)
        # the source may only exist now that it has been downloaded
        path = _cache_path(spec, split, root, image_size, options)
    if path is not None and path.is_file():
        return _read(path)
    images = spec.load(split, root=root, image_size=image_size, **options)
    if path is not None:
        _write(images, path)
    return images


def download_split(dataset_name: str, split: str, root: Path) -> None:
    """Fetch ``split`` of a dataset into ``root`` where the dataset's loader would not find it
    (a no-op for a dataset with nothing to fetch): the dataset's registered ``download``."""
    spec = datasets.get(dataset_name)
    if spec.download is not None:
        spec.download(split, root)


def source_fingerprint(source: Path) -> dict:
    """Path, number of files and their total size: cheap (stat only) and changes when a
    file is added, removed or replaced by one of another size."""
    if source.is_file():
        return {"file": str(source.resolve()), "bytes": source.stat().st_size}
    count = size = 0
    for directory, _, files in os.walk(source):
        for name in files:
            count += 1
            size += os.stat(os.path.join(directory, name)).st_size
    return {"folder": str(source.resolve()), "files": count, "bytes": size}


def _cache_path(spec: datasets.DatasetSpec, split: str, root: Path, image_size: int, options: dict) -> Optional[Path]:
    """The cache file for this request, or None when its source is not on disk yet. A
    dataset's registered ``source(split, root)`` names the folder or file its split is read
    from; one without (generated data) has no source to fingerprint."""
    fingerprint = {}
    if spec.source is not None:
        source = spec.source(split, root)
        if source is None:
            return None
        fingerprint = source_fingerprint(source)
    key = {
        "version": FORMAT_VERSION,
        "dataset": spec.name,
        "split": split,
        "image_size": image_size,
        "options": {k: options[k] for k in sorted(options)},
        "source": fingerprint,
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", spec.name)  # folder:PATH holds slashes
    return cache_dir() / "images" / f"{stem}-{split}-{image_size}-{digest}.pt"


def _write(images: ImageSet, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    stored = {
        "dataset": images.dataset,
        "split": images.split,
        "images": images.images.contiguous(),
        "labels": images.labels,
        "class_names": list(images.class_names),
        "indices": images.indices,
    }
    if images.ground_truth is not None:
        stored["mask"], stored["polarity"] = images.ground_truth.mask, images.ground_truth.polarity
    write_atomically(path, lambda temporary: torch.save(stored, temporary))


def _read(path: Path) -> ImageSet:
    stored = torch.load(path, mmap=True, weights_only=True)
    truth = GroundTruth(stored["mask"], stored["polarity"]) if "mask" in stored else None
    return ImageSet(
        stored["dataset"],
        stored["split"],
        stored["images"],
        stored["labels"],
        tuple(stored["class_names"]),
        stored["indices"],
        ground_truth=truth,
    )
