"""Metrics: one registry; see :mod:`signed_saliency.metrics.core` for the calling convention."""

from signed_saliency.metrics.core import Curve, JointCall, Metric, MetricCall, MetricOutput, get, names, register, registry

from signed_saliency.registry import import_submodules

import_submodules(__name__, __path__)

__all__ = ["Curve", "JointCall", "Metric", "MetricCall", "MetricOutput", "get", "names", "register", "registry"]
