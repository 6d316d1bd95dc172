"""signed-saliency: how faithful are (signed) gradient explanations of image classifiers?

The library is pure: batched tensor functions and registries, no files written, nothing
printed. Orchestration, configs and I/O live in the ``benchmarks`` package.
"""

from signed_saliency import datasets, methods, metrics, models
from signed_saliency.engine import evaluate
from signed_saliency.errors import UserError
from signed_saliency.registry import Registry, UnknownNameError

__version__ = "0.1.0"
__all__ = [
    "Registry",
    "UnknownNameError",
    "UserError",
    "datasets",
    "evaluate",
    "methods",
    "metrics",
    "models",
    "__version__",
]
