"""The input contract, checked once where data enters: images, and every method's maps.

Images are float tensors (N,C,H,W) in [0, 1] on the model's device. Anything else is a
one-line :class:`UserError` that says what was found and how to convert it: 0-255 images
gave deletion values down to -1119 and uint8 ones crashed inside a convolution.

A map is (N,H,W), one per image; a wrong shape names the method and both shapes. A map
holding NaN or infinity is never scored: its image's rows carry NaN (so the summaries'
``n_nonfinite`` counts them) and :class:`NonFiniteMaps` says which method gave how many,
for the caller to report (the library prints nothing).

Errors raised inside a user's code (a plugin's method or metric) become one line naming
the plugin, the method or metric and the exception (:func:`user_code`), with the original
chained for a ``--debug`` traceback; errors in the library's own code stay tracebacks.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Optional

import torch
from torch import Tensor, nn

from signed_saliency.datasets.core import ImageSet
from signed_saliency.errors import MethodError, MetricError, UserError

# Resampling (antialiased resizing, blurring) overshoots [0, 1] by rounding; more than this
# is another scale.
RANGE_TOLERANCE = 1e-3


def _shape(x: Any) -> str:
    return str(tuple(x.shape)) if hasattr(x, "shape") else type(x).__name__


def check_images(x: Any, model: Optional[nn.Module] = None) -> None:
    """Refuse anything but float (N,C,H,W) images in [0, 1] (on ``model``'s device, when
    given), with a one-line :class:`UserError` saying how to convert what was passed."""
    if isinstance(x, ImageSet):
        raise UserError(
            f"got an ImageSet ({x.dataset} {x.split}, {len(x)} uint8 images): pass its float images, "
            "images.floats() (or images.floats(range(n)) for the first n), and images.labels as targets"
        )
    if not isinstance(x, Tensor):
        raise UserError(f"images must be a torch.Tensor (N,C,H,W) of floats in [0, 1], got {type(x).__name__}: "
                        "convert with torch.as_tensor(x)")
    if x.dim() != 4:
        hint = ": add the batch dimension with x.unsqueeze(0)" if x.dim() == 3 else ""
        raise UserError(f"images must have shape (N,C,H,W), got {tuple(x.shape)}{hint}")
    if x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
        raise UserError(f"images must be channels-first (N,C,H,W), got {tuple(x.shape)}: "
                        "convert with x.permute(0, 3, 1, 2)")
    if not x.is_floating_point():
        raise UserError(f"images are {str(x.dtype).removeprefix('torch.')}, expected floats in [0, 1]: "
                        "convert with x.float() / 255")
    if model is not None:
        device = next((p.device for p in model.parameters()), x.device)
        if x.device != device:
            raise UserError(f"images are on {x.device}, the model on {device}: move them with x.to({str(device)!r})")
    if x.numel() == 0:
        return
    finite = torch.isfinite(x)
    if not finite.all():
        raise UserError(f"images hold {int((~finite).sum())} NaN or infinite values: fix the data before explaining it")
    low, high = (float(v) for v in torch.aminmax(x))
    if low >= -RANGE_TOLERANCE and high <= 1 + RANGE_TOLERANCE:
        return
    if low >= 0 and high <= 255 + RANGE_TOLERANCE:
        raise UserError(f"images range over [{low:g}, {high:g}], which looks like 0-255: divide them by 255")
    raise UserError(
        f"images range over [{low:g}, {high:g}], expected [0, 1]; normalised images? pass the [0, 1] images and "
        "put the normalisation inside the model (signed_saliency.models.Normalize), so gradients are in pixel space"
    )


def check_maps(maps: Any, x: Tensor, method_name: str) -> None:
    """Raise a :class:`MethodError` naming the method and both shapes when ``maps`` is not
    an (N,H,W) tensor for ``x``."""
    expected = (x.shape[0], *x.shape[-2:])
    if not isinstance(maps, Tensor) or tuple(maps.shape) != expected:
        raise MethodError(
            f"method {method_name!r} returned a map of shape {_shape(maps)}, expected {expected} "
            f"(N,H,W) for images {tuple(x.shape)}"
        )


def nonfinite_images(maps: Tensor) -> Tensor:
    """(N,) bool, on ``maps``' device: the images whose (N,H,W) map holds NaN or infinity."""
    return ~torch.isfinite(maps).flatten(1).all(dim=1)


class NonFiniteMapsWarning(UserWarning):
    """What :func:`signed_saliency.evaluate` warns with: some maps held NaN or infinity."""


@dataclass(frozen=True)
class NonFiniteMaps:
    """Which images' maps held NaN or infinity: ``images[method]`` is (N,) bool."""

    images: Mapping[str, Tensor] = field(default_factory=dict)

    @property
    def counts(self) -> dict[str, int]:
        """{method: how many images} for every method with a non-finite map."""
        counts = {name: int(flags.sum()) for name, flags in self.images.items()}
        return {name: count for name, count in counts.items() if count}

    def __bool__(self) -> bool:
        return bool(self.counts)

    def message(self) -> str:
        """One line for the terminal and summaries; empty when every map was finite."""
        listed = ", ".join(f"{name} ({count})" for name, count in self.counts.items())
        return f"non-finite maps, not scored (their rows are NaN): {listed}" if listed else ""

    def merged(self, other: NonFiniteMaps) -> NonFiniteMaps:
        """Both records, a method's images of ``other`` after its own (e.g. batch after batch)."""
        images = dict(self.images)
        for name, flags in other.images.items():
            images[name] = torch.cat([images[name], flags.cpu()]) if name in images else flags.cpu()
        return NonFiniteMaps(images)


def find_nonfinite(maps: Mapping[str, Tensor]) -> NonFiniteMaps:
    """The non-finite maps among ``{method: (N,H,W) maps}``."""
    return NonFiniteMaps({name: nonfinite_images(m).cpu() for name, m in maps.items()})


def without_nonfinite(maps: Mapping[str, Tensor], nonfinite: NonFiniteMaps) -> dict[str, Tensor]:
    """``maps`` with each non-finite image's map replaced by zeros, so that a metric runs on
    well-formed input; :func:`blank_nonfinite` then discards what it gave those images."""
    cleaned = dict(maps)
    for name, flags in nonfinite.images.items():
        if name in cleaned and flags.any():
            cleaned[name] = cleaned[name].masked_fill(flags.to(cleaned[name].device).view(-1, 1, 1), 0.0)
    return cleaned


def blank_nonfinite(outputs: Mapping[str, Any], nonfinite: NonFiniteMaps) -> Mapping[str, Any]:
    """Set the values and curves of each image with a non-finite map to NaN, in place, in
    ``{method: MetricOutput}``; returns ``outputs``."""
    for name, output in outputs.items():
        flags = nonfinite.images.get(name)
        if flags is None or not flags.any():
            continue
        for variant, values in output.values.items():
            output.values[variant] = values.masked_fill(flags.to(values.device).view(values.shape), float("nan"))
            if variant in output.undefined:  # a map that is not finite is a failure, whatever else
                output.undefined[variant] = output.undefined[variant] & ~flags.to(values.device).view(values.shape)
        for curve in output.curves.values():
            curve.y = curve.y.masked_fill(flags.to(curve.y.device).view(-1, 1), float("nan"))
    return outputs


def origin(fn: Callable) -> str:
    """The module a method's or metric's function was written in (through partials)."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    return getattr(fn, "__module__", None) or "?"


def is_library_code(fn: Callable) -> bool:
    return origin(fn).split(".")[0] == "signed_saliency"


@contextlib.contextmanager
def user_code(kind: str, name: str, fn: Callable) -> Iterator[None]:
    """Run a method's or metric's own code: an exception from a user's (not the library's)
    becomes a one-line :class:`MethodError`/:class:`MetricError` naming the plugin, the
    ``kind`` ("method" or "metric"), ``name`` and the exception, the original chained.
    Out of memory passes through: it is the device's, not the plugin's, and a runner
    answers it with a smaller batch size."""
    try:
        yield
    except (UserError, torch.OutOfMemoryError):
        raise
    except Exception as error:
        if is_library_code(fn):
            raise
        error_class = MethodError if kind == "method" else MetricError
        detail = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise error_class(
            f"{kind} {name!r} (plugin {origin(fn)}) raised {type(error).__name__}" + (f": {detail}" if detail else "")
        ) from error
