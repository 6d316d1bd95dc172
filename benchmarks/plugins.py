"""``--plugin``: import the user's modules that register methods, metrics, datasets or models.

A plugin is a module name on the Python path (``my_methods``, ``lab.saliency``) or a
Python file's path, relative to the working directory or absolute (``./my_methods.py``,
``/home/me/my_methods.py``). A file is imported under its stem (``my_methods``), so the
library's messages name it as they name a module. Whatever goes wrong while importing one
(no such module or file, a syntax error, a method registered with a bad ``direction``) is
a one-line :class:`UserError` naming the plugin, with the original exception chained for
``--debug``.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from signed_saliency.errors import UserError


def is_file_spec(spec: str) -> bool:
    """A path rather than a module name: it ends in .py or holds a path separator."""
    return spec.endswith(".py") or "/" in spec or "\\" in spec


def _failed(spec: str, error: Exception) -> UserError:
    """The one line for an exception raised while a plugin's code ran; a UserError (a method
    registered with a bad direction, say) keeps its own words."""
    text = " ".join(str(error).split())
    if not isinstance(error, UserError):
        text = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return UserError(f"plugin {spec!r} failed to import: {text}")


def _import_file(spec: str) -> ModuleType:
    path = Path(spec).expanduser().resolve()
    if not path.is_file():
        raise UserError(f"plugin {spec!r}: no such file {path}")
    name = path.stem
    loaded = sys.modules.get(name)
    if loaded is not None and getattr(loaded, "__file__", None) and Path(loaded.__file__).resolve() == path:
        return loaded  # imported already: its registrations are in place
    if loaded is not None:
        raise UserError(f"plugin {spec!r}: a module named {name!r} is already imported from elsewhere; rename the file")
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise UserError(f"plugin {spec!r}: {path} is not a Python file Python can import")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module  # as import does: dataclasses and pickling look the module up
    try:
        module_spec.loader.exec_module(module)
    except Exception as error:
        del sys.modules[name]
        raise _failed(spec, error) from error
    return module


def _import_module(spec: str) -> ModuleType:
    try:
        return importlib.import_module(spec)
    except ModuleNotFoundError as error:
        if error.name and spec.startswith(error.name):
            raise UserError(
                f"plugin {spec!r} not found: no module {error.name!r} on the Python path "
                f"(run from its folder, add it to PYTHONPATH, or give the file's path, e.g. ./{spec.replace('.', '/')}.py)"
            ) from None
        raise _failed(spec, error) from error
    except Exception as error:
        raise _failed(spec, error) from error


def import_plugins(specs: list[str]) -> list[ModuleType]:
    """Import each plugin (a module name or a file's path) in order; one-line errors."""
    return [_import_file(spec) if is_file_spec(spec) else _import_module(spec) for spec in specs]
