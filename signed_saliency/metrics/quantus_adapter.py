"""Any Quantus metric by name: ``metrics.get("quantus:FaithfulnessCorrelation")``.

The registry resolves a ``quantus:<Class>`` name on first use (see
:meth:`signed_saliency.registry.Registry.add_resolver`) into a :class:`Metric` that runs
that Quantus 0.6 class on one batch, exactly as a direct Quantus call would, with:

- ``x_batch`` the images (the models take [0,1] images and normalise inside),
  ``y_batch`` the targets, ``a_batch`` the method's maps as (N,1,H,W);
- ``explain_func`` calling this project's :func:`signed_saliency.methods.explain` with the
  method under test, so robustness, randomisation and invariance metrics re-explain their
  perturbed inputs or changed models with the same method;
- ``s_batch`` the ground-truth masks (signed-shapes) for localisation metrics, which
  register with ``needs_ground_truth``. A signed map is oriented by the object's
  polarity first (times +1 on a bright object, -1 on a dark one), as the native
  ground-truth metrics read it: its claim about the object is then its largest values;
- Quantus's global NumPy draws and torch's seeded from the call's ``seed`` (both
  restored afterwards), and the class's own ``seed`` (randomisation) set to it.

Settings are the class's own keyword arguments that are plain values (callables and
dicts stay Quantus's). Those that only make sense for one image size default to None,
which means "from the image size" (:data:`SIZED`). Every instance is built with
``return_aggregate=False``, since rows are per image.

Each call returns variant ``""``: one value per image (NaN where Quantus gives NaN).
Curve metrics (PixelFlipping, Selectivity, RegionPerturbation, ROAD) add their per-image
curves and take as value Quantus's own per-image area (trapezoid, dx=1; ROAD: the mean
accuracy over its percentages). A metric that fails on a batch is retried image by image;
an image that still fails gets NaN in ``""`` and a 1 in variant ``error/<exception class>``
(0 on the batch's other images), so a report counts both and the run goes on. A setting
that the Quantus class refuses when it is built is a UserError before any image; one that
Quantus only checks against the data (a ``subset_size`` larger than the image, say) fails
every image that way.

What differs from calling Quantus with its defaults, and why, is in
:mod:`signed_saliency.metrics.quantus_specs`, with how each class is run.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

import numpy as np
import torch
from torch import Tensor, nn

from signed_saliency.datasets.core import GroundTruth
from signed_saliency.errors import UserError
from signed_saliency.methods.core import Method, explain
from signed_saliency.metrics.core import Curve, Metric, MetricCall, MetricOutput, registry
from signed_saliency.metrics.quantus_specs import (
    _NOT_SETTINGS, SIZED, SPECS, Shape, normalise_each_by_max, quantus_fixes,
)
from signed_saliency.metrics.setting_checks import name_or_number
from signed_saliency.registry import UnknownNameError, describe
from signed_saliency.runtime import evaluation_mode, model_device, output_count, seeded_random

PREFIX = "quantus:"


def supported_names() -> list[str]:
    """Every ``quantus:<Class>`` name the registry resolves."""
    return [PREFIX + name for name in SPECS]


def _quantus():
    try:
        return importlib.import_module("quantus")
    except ImportError:
        raise UserError("quantus: metrics need the quantus package (pip install quantus)") from None


def _quantus_class(name: str) -> type:
    return getattr(_quantus(), name)


def default_settings(name: str) -> dict[str, Any]:
    """The settings of ``quantus:<name>`` and their defaults (None: from the image size)."""
    spec = SPECS[name]
    parameters = inspect.signature(_quantus_class(name).__init__).parameters.values()
    settings = {}
    for p in parameters:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.name in _NOT_SETTINGS or p.name in spec.fixed:
            continue
        default = spec.overrides.get(p.name, p.default)
        if p.name in SIZED:
            default = None
        if callable(default) or isinstance(default, dict) or p.name.endswith(("_func", "_kwargs")):
            continue
        settings[p.name] = default
    return settings


def quantus_kwargs(name: str, shape: Shape, settings: Mapping[str, Any], *, seed: int = 0) -> dict[str, Any]:
    """The keyword arguments the adapter builds ``quantus.<name>`` with, for images of
    ``shape`` (C,H,W): ``settings`` over the defaults, sized ones filled in, the fixes."""
    spec = SPECS[name]
    values = {**default_settings(name), **settings}
    kwargs = {key: SIZED[key](shape) if value is None and key in SIZED else value for key, value in values.items()}
    kwargs.update(spec.fixed)
    if name == "SensitivityN":
        kwargs["n_max_percentage"] = kwargs["n_max_percentage"] * shape[0]
    if spec.per_image_normalise:
        kwargs["normalise_func"] = normalise_each_by_max
    accepted = inspect.signature(_quantus_class(name).__init__).parameters
    kwargs.update({key: value for key, value in {"return_aggregate": False, "seed": seed}.items() if key in accepted})
    kwargs.update(disable_warnings=True, display_progressbar=False)
    return kwargs


def explain_func(method: Method) -> Callable[..., np.ndarray]:
    """Quantus's ``explain_func``: ``method``'s maps of ``inputs`` for ``targets``, (N,1,H,W)."""

    def explain_with_method(model: nn.Module, inputs: np.ndarray, targets: np.ndarray, **_: Any) -> np.ndarray:
        device = model_device(model, torch.device("cpu"))
        x = torch.as_tensor(np.asarray(inputs), dtype=torch.float32, device=device)
        target = torch.as_tensor(np.asarray(targets), dtype=torch.long, device=device).reshape(-1)
        maps = explain(model, x, target, [method])[method.name]
        return maps[:, None].cpu().numpy()

    return explain_with_method


def attribution_batch(name: str, maps: Tensor, method: Method, ground_truth: Optional[GroundTruth]) -> np.ndarray:
    """The maps as Quantus's ``a_batch`` (N,1,H,W); a signed map oriented by the object's
    polarity for a localisation metric."""
    if SPECS[name].category == "localisation" and method.direction == "signed":
        maps = maps * ground_truth.polarity.to(maps.device, maps.dtype).view(-1, 1, 1)
    return maps[:, None].detach().float().cpu().numpy()


@dataclass(frozen=True)
class QuantusCall:
    """``quantus:<name>`` on one batch: the metric call it received, and its settings."""

    name: str
    call: MetricCall
    settings: Mapping[str, Any] = field(default_factory=dict)

    def run(self, images: Optional[np.ndarray] = None) -> tuple[np.ndarray, Optional[np.ndarray]]:
        """One direct call of the Quantus class as the adapter makes it, on ``images``
        (indices into the batch; all by default): per-image values (and curves, or None).
        Raises what Quantus raises."""
        spec = SPECS[self.name]
        selected = slice(None) if images is None else torch.as_tensor(images, dtype=torch.long)
        device = self.call.device
        x_batch = self.call.x[selected].detach().float().cpu().numpy()
        arguments: dict[str, Any] = dict(
            x_batch=x_batch,
            y_batch=self.call.target[selected].cpu().numpy(),
            a_batch=attribution_batch(self.name, self.call.maps, self.call.method, self.call.ground_truth)[selected],
            channel_first=True,
            device=str(device),
            batch_size=len(x_batch),
        )
        if spec.category == "localisation":
            arguments["s_batch"] = self.call.ground_truth.mask[selected][:, None].cpu().numpy().astype(np.float32)
        if spec.explains:
            arguments["explain_func"] = explain_func(self.call.method)
        kwargs = quantus_kwargs(self.name, tuple(self.call.x.shape[1:]), self.settings, seed=self.call.seed)
        # out of inference mode, which a caller may be in: Quantus re-initialises layers in
        # place and our explain_func takes gradients
        with evaluation_mode(self.call.model), torch.inference_mode(False), seeded_random(device, self.call.seed), \
                quantus_fixes(self.call.x.shape[1]):
            if self.name == "RandomLogit":
                kwargs["num_classes"] = output_count(self.call.model, self.call.x[:1].to(device))
            metric = _quantus_class(self.name)(**kwargs)
            if not spec.keep_postprocess:
                metric.custom_postprocess = lambda **_: None
            result = metric(model=self.call.model, **arguments)
        return spec.reduce(result, len(x_batch), metric)

    def score(self) -> MetricOutput:
        """The batch as a :class:`MetricOutput` (see the module docstring): in one call, or
        image by image if that fails, failures as NaN + ``error/<class>``."""
        n = len(self.call.x)
        _check_settings(self.name, tuple(self.call.x.shape[1:]), self.settings, self.call.seed)
        errors: list[Optional[str]] = [None] * n
        try:
            values, curves = self.run()
        except Exception:  # noqa: BLE001 - any Quantus failure becomes counted NaN rows
            values, curves, rows = np.full(n, np.nan), None, []
            for i in range(n):
                try:
                    value, curve = self.run(images=np.array([i]))
                    values[i] = value[0]
                    rows.append(curve)
                except Exception as error:  # noqa: BLE001
                    # a user's method's exception arrives wrapped (MethodError) with the cause chained
                    errors[i] = type(error.__cause__ or error).__name__
                    rows.append(None)
            lengths = {row.shape[1] for row in rows if row is not None}
            if len(lengths) == 1:
                width = lengths.pop()
                curves = np.stack([row[0] if row is not None else np.full(width, np.nan) for row in rows])
        output = MetricOutput(values={"": torch.as_tensor(values, dtype=torch.float32)})
        if curves is not None:
            steps = curves.shape[1]
            grid = torch.arange(1, steps + 1, dtype=torch.float32) / steps
            output.curves[""] = Curve(grid, torch.as_tensor(curves, dtype=torch.float32))
        for kind in sorted({e for e in errors if e is not None}):
            output.values[f"error/{kind}"] = torch.tensor([float(e == kind) for e in errors])
        return output


def _check_settings(name: str, shape: Shape, settings: Mapping[str, Any], seed: int) -> None:
    """Build the Quantus instance once, so a bad setting is a UserError before any image."""
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            _quantus_class(name)(**quantus_kwargs(name, shape, settings, seed=seed))
    except (TypeError, ValueError, AssertionError) as error:
        raise UserError(f"metric {PREFIX + name!r}: Quantus refuses its settings {dict(settings)}: {error}") from None


def quantus_metric(full_name: str) -> Metric:
    """The :class:`Metric` of ``quantus:<Class>``; raises :class:`UnknownNameError` listing
    the supported names for any other."""
    name = full_name[len(PREFIX):]
    if name not in SPECS:
        raise UnknownNameError("metric", full_name, supported_names())
    cls = _quantus_class(name)
    defaults = default_settings(name)

    def fn(call: MetricCall, **settings) -> MetricOutput:
        return QuantusCall(name, call, settings).score()

    # the settings as keyword-only parameters, where Metric.defaults and check_settings read them
    fn.__signature__ = inspect.Signature(
        [inspect.Parameter("call", inspect.Parameter.POSITIONAL_ONLY)]
        + [inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=v) for k, v in defaults.items()]
    )
    version = getattr(_quantus(), "__version__", "?")
    summary = describe(cls).rstrip(".")
    return Metric(
        name=full_name,
        fn=fn,
        family=SPECS[name].category,
        higher_is_better=cls.score_direction.name == "HIGHER",
        needs_ground_truth=SPECS[name].category == "localisation",
        cost_ms=SPECS[name].cost_ms,
        curve_x="fraction of the perturbation steps",
        # Quantus takes a baseline as a name or a number: a string default is no type to hold a value to
        checks={key: name_or_number for key, value in defaults.items() if isinstance(value, str)},
        description=f"Quantus {version} {name}: {summary}" if summary else f"Quantus {version} {name}",
    )


registry.add_resolver(PREFIX, quantus_metric)
