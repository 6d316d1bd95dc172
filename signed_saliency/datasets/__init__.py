"""Datasets: one registry; ``datasets.get(name).load(split, root=..., image_size=...)``."""

from signed_saliency.datasets.core import DatasetSpec, GroundTruth, ImageSet, get, names, register, registry

from signed_saliency.registry import import_submodules

import_submodules(__name__, __path__)

__all__ = ["DatasetSpec", "GroundTruth", "ImageSet", "get", "names", "register", "registry"]
