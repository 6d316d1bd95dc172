"""Models: one registry; ``models.get(name).build(num_classes)`` takes images in [0,1]."""

from signed_saliency.models.core import ModelSpec, get, names, register, registry

from signed_saliency.registry import import_submodules

import_submodules(__name__, __path__)

__all__ = ["ModelSpec", "get", "names", "register", "registry"]
