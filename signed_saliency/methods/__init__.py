"""Explanation methods: one registry, one calling convention.

>>> from signed_saliency import methods
>>> m = methods.get("positive")            # m.name, m.direction, m.score, m.family
>>> maps = m(model, x, target)             # (N,H,W) float on x's device

A method declares what its map claims, and metrics read that instead of its name:

- ``direction``: ``increase`` (raising these pixels raises the score), ``decrease``
  (lowering them raises it), ``magnitude`` (importance only) or ``signed`` (both signs
  carry meaning).
- ``score``: ``logit`` (S_c) or ``margin`` (S_c minus the best other logit).

The runner keys finished work by a method's name and ``revision``: a change to what a
registered method computes or claims raises its revision, so its old results recompute.

A method function receives what its ``needs`` names:

- ``"gradients"``: a :class:`ClassGradients` holding dS_c/dI of the target class;
- ``"all-gradients"``: the same plus the elementwise max and min over every other class
  (what active and inactive compare against), streamed class by class so memory stays
  bounded for 1000-class models;
- ``"model"``: ``(model, x, target)``, for methods that run their own passes (captum).

Several gradient methods computed through :func:`explain` share a single forward and
backward pass; nothing is cached between calls.

Every ``signed`` method also registers ``<name>-positive`` (increase: ReLU of the map) and
``<name>-negative`` (decrease: ReLU of minus the map) by one rule, unless it is registered
with ``split_signs=False``. ``method.configure(**options)`` returns a copy with other
settings (``methods.get("integrated-gradients").configure(n_steps=64)``).

A method computed by another package names it in ``library`` (its PyPI name: ``captum``,
``zennit``, ``grad-cam``), which is imported only when the method runs; a missing one is a
one-line error saying what to install. :func:`library_versions` reports their versions
for a run's manifest. A method declared ``cost="slow"`` is left out of
:func:`quick_names`, the quick default.
"""

from __future__ import annotations

from signed_saliency.methods.core import (
    COSTS,
    DIRECTIONS,
    SCORES,
    ClassGradients,
    Method,
    class_gradients,
    explain,
    get,
    library_versions,
    names,
    quick_names,
    register,
    registry,
)

from importlib import import_module

from signed_saliency.registry import import_submodules

# Importing every module of this package registers its methods; the paper's maps first,
# so listings and tables start with them.
import_module(f"{__name__}.gradients")
import_submodules(__name__, __path__)

__all__ = [
    "COSTS",
    "DIRECTIONS",
    "SCORES",
    "ClassGradients",
    "Method",
    "class_gradients",
    "explain",
    "get",
    "library_versions",
    "names",
    "quick_names",
    "register",
    "registry",
]
