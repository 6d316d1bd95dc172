"""Imports deferred to first use, so that ``import signed_saliency`` costs little more than torch.

Importing the package imports every module of it (each registers its methods, metrics,
datasets and models), yet most calls need none of the heavy libraries some modules use:
importing any part of torchvision imports all of it, ``torch._dynamo`` included (its
detection ops), captum loads matplotlib and IPython, and pandas and scipy take their own
second. A one-line error from the CLI should not wait for them.

``name = lazy_import("package.module", "Attribute")`` binds a stand-in that imports the
module the first time it is called, read from (``name.attribute``) or used in
``isinstance``, so modules keep their imports at the top where a reader looks for them.
Scientific Python's ``lazy_loader`` and ``importlib.util.LazyLoader`` do not fit: both
import a submodule's parent packages at once, and ``torchvision``'s ``__init__`` is the
expensive part.
"""

from __future__ import annotations

import importlib
from typing import Any, Optional


class LazyImport:
    """Stands for ``module`` (or ``module.attribute``, a dotted path) until first used."""

    __slots__ = ("_module", "_attribute", "_target")

    def __init__(self, module: str, attribute: Optional[str] = None):
        self._module = module
        self._attribute = attribute
        self._target: Any = None

    def resolve(self) -> Any:
        """The module or attribute itself, imported now if it was not yet."""
        if self._target is None:
            target = importlib.import_module(self._module)
            for part in self._attribute.split(".") if self._attribute else ():
                target = getattr(target, part)
            self._target = target
        return self._target

    def __getattr__(self, name: str) -> Any:
        return getattr(self.resolve(), name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolve()(*args, **kwargs)

    def __instancecheck__(self, instance: Any) -> bool:
        return isinstance(instance, self.resolve())

    def __subclasscheck__(self, subclass: type) -> bool:
        return issubclass(subclass, self.resolve())

    def __repr__(self) -> str:
        path = f"{self._module}.{self._attribute}" if self._attribute else self._module
        state = "imported" if self._target is not None else "not imported yet"
        return f"<lazy import of {path}, {state}>"


def lazy_import(module: str, attribute: Optional[str] = None) -> Any:
    """``module`` (``import module``) or its ``attribute`` (``from module import attribute``;
    a dotted path reaches further), imported at first use."""
    return LazyImport(module, attribute)
