"""Plugins: modules imported before anything is looked up, whose decorated functions
register methods, metrics, datasets or models (``--plugin MODULE``)."""

from __future__ import annotations

import importlib

from signed_saliency.errors import UserError


def import_plugins(modules: list[str]) -> None:
    for module in modules:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as error:
            if error.name and module.startswith(error.name):
                raise UserError(f"plugin module {module!r} not found (is it on PYTHONPATH?)") from None
            raise
