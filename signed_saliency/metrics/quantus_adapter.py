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

What differs from calling Quantus with its defaults, and why (each is checked in
tests/test_quantus_adapter.py):

- ``normalise`` divides each map by its own max |value| (``normalise_func=``
  :func:`normalise_each_by_max`), not the whole batch by the batch's max as Quantus's
  default does: a row must not depend on which images shared its batch.
- Features are channel values: Quantus broadcasts an (N,1,H,W) map to (N,C,H,W) and sorts
  C*H*W values, so ``features_in_step = C*k`` flips k whole pixels per step (the default
  flips H*W/32 pixels a step). Quantus 0.6 checks ``features_in_step`` against H*W only
  (``asserts.assert_features_in_step`` gets ``x.shape[2:]``), which refuses every
  whole-pixel step on RGB when 3 does not divide H*W: the check is replaced, during the
  call only, by the same check against C*H*W.
- SensitivityN counts ``n_max_percentage`` of H*W, not of the C*H*W features it steps
  through: the adapter passes C times the setting, so the setting is the fraction of
  features it says it is. SensitivityN correlates over the *images of a batch* at each
  step: each image's row carries its batch's value (the mean over steps).
- Sufficiency compares each image's map with the other maps of its batch: its rows depend
  on the batch (by Quantus's definition), and it keeps Quantus's batch normalisation,
  which it applies to a distance matrix rather than to maps.
- ``np.trapz`` is gone from NumPy 2.4; Quantus 0.6's ``utils.calculate_auc`` (IROF,
  PixelFlipping's per-sample AUC) still calls it. During the call only it is replaced by
  the same rule on ``np.trapezoid`` (NumPy itself is not patched).
- RandomLogit draws its other class from ``num_classes`` (default 1000, so on a 10-class
  model it picks classes that do not exist and fails with IndexError): it is the model's
  number of outputs, read from one forward pass, and not a setting.
- ROAD ranks C*H*W values but imputes H*W pixels, so on RGB images its indices overrun
  (IndexError): there its rows are NaN with ``error/IndexError``; use the native ``road``.
  Quantus also keeps only the batch's mean curve: its per-image curves are read before
  that post-processing.
- MPRT and SmoothMPRT average their per-layer similarities over a dict whose first key is
  "original" (the unchanged model) while the code skips "orig", so Quantus's average
  includes the original model's similarity (about 1 for SmoothMPRT). The adapter
  averages the randomised layers only.
- AttributionLocalisation takes ``abs`` by default, which ranks a signed map's negative
  pixels with its positive ones: here ``abs=False`` and ``positive_attributions=True``, so
  the share is of the (oriented) map's positive mass.
- IROF passes an (N,1,H,W) segment mask with (N,C,H,W) images to a function asserting
  equal shapes, so it fails on RGB, and its "mean" baseline is the whole batch's mean:
  :func:`irof_replacement_by_mask` covers every channel and takes each image's own mean.
- NonSensitivity XORs an (N, steps) array with an (N, features) one, so any
  ``features_in_step`` but 1 fails: it is fixed at 1 (one forward pass per channel value).
- Completeness compares floats with ``==`` (1 only for an exact sum), as Quantus does; a
  normalised map cannot sum to a difference of logits, so ``normalise`` is off.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence
from unittest import mock

import numpy as np
import torch
from torch import Tensor, nn

from signed_saliency.datasets.core import GroundTruth
from signed_saliency.errors import UserError
from signed_saliency.methods.core import Method, evaluation_mode, explain
from signed_saliency.metrics.core import Curve, Metric, MetricOutput, registry
from signed_saliency.metrics.perturbation import model_device
from signed_saliency.registry import UnknownNameError, describe

PREFIX = "quantus:"
PIXEL_STEPS = 32  # whole-pixel steps of the pixel-stepping metrics, as the native ``deletion``

Shape = tuple[int, int, int]  # (C,H,W) of one image


def _pixel_step(shape: Shape) -> int:
    channels, height, width = shape
    return channels * max(1, height * width // PIXEL_STEPS)


def _patch(shape: Shape) -> int:
    """An eighth of the side: 4 px at 32 px, 28 at 224 (Quantus's defaults, 8 and 4, are
    for 224 px, where 8 px patches make 784 steps)."""
    return max(1, shape[1] // 8)


# Settings that only make sense for one image size: name -> its default from (C,H,W).
SIZED: dict[str, Callable[[Shape], Any]] = {
    "features_in_step": _pixel_step,
    # a sixteenth of the features (Quantus's 224 is 0.15% of a 224 px RGB image's, 7% of a 32 px one's)
    "subset_size": lambda shape: max(1, int(np.prod(shape)) // 16),
    "patch_size": _patch,
    "perturb_patch_sizes": lambda shape: [_patch(shape)],
    "k": lambda shape: max(1, shape[1] * shape[2] // 16),  # TopKIntersection: pixels counted
}

# Quantus arguments that are not settings here: functions and dicts stay Quantus's, the
# rest the adapter sets for every call (see the module docstring).
_NOT_SETTINGS = {
    "self", "kwargs", "return_aggregate", "aggregate_func", "default_plot_func", "disable_warnings",
    "display_progressbar", "seed", "num_classes", "return_average_correlation", "return_last_correlation",
    "return_sample_correlation", "return_auc_per_sample", "compute_extra_scores",
}


def normalise_each_by_max(a: np.ndarray, **_: Any) -> np.ndarray:
    """Each map (first axis) divided by its own max |value|; an all-zero map stays zero."""
    peak = np.abs(a).reshape(len(a), -1).max(axis=1).reshape((-1,) + (1,) * (a.ndim - 1))
    return np.divide(a, peak, out=np.zeros_like(a), where=peak > 0)


def _calculate_auc(values: Any, dx: int = 1, batched: bool = False) -> np.ndarray:
    """Quantus 0.6's ``utils.calculate_auc`` on ``np.trapezoid`` (``np.trapz`` left NumPy 2.4)."""
    return np.trapezoid(np.array(values), dx=dx, axis=1 if batched else -1)


def irof_replacement_by_mask(arr: np.ndarray, mask: np.ndarray, **kwargs: Any) -> np.ndarray:
    """IROF's perturbation, fixed: Quantus 0.6 passes an (N,1,H,W) segment mask with
    (N,C,H,W) images to ``baseline_replacement_by_mask``, which asserts equal shapes (so
    IROF fails on RGB), and that computes a string baseline ("mean") over the whole batch.
    Here the mask covers every channel and each image gets its own baseline; the loop is
    over the images of one batch, as Quantus's own IROF loops over them for superpixels."""
    from quantus.functions.perturb_func import baseline_replacement_by_mask

    return np.concatenate([
        baseline_replacement_by_mask(arr=image[None], mask=np.broadcast_to(where[None], image[None].shape), **kwargs)
        for image, where in zip(arr, mask)
    ])


def _per_image(result: Any, n: int, metric: Any) -> tuple[np.ndarray, Optional[np.ndarray]]:
    return np.asarray(result, dtype=np.float64).reshape(n), None


def _curve_area(result: Any, n: int, metric: Any) -> tuple[np.ndarray, Optional[np.ndarray]]:
    curves = np.asarray(result, dtype=np.float64).reshape(n, -1)
    return _calculate_auc(curves, batched=True), curves


def _road(result: Any, n: int, metric: Any) -> tuple[np.ndarray, Optional[np.ndarray]]:
    curves = np.asarray(metric.evaluation_scores[0], dtype=np.float64).reshape(n, -1)
    return curves.mean(axis=1), curves


def _randomised_layers(result: Mapping[str, Sequence[float]], n: int, metric: Any) -> tuple[np.ndarray, None]:
    layers = [np.asarray(scores, dtype=np.float64) for layer, scores in result.items() if layer != "original"]
    return np.mean(layers, axis=0).reshape(n), None


def _batch_mean(result: Any, n: int, metric: Any) -> tuple[np.ndarray, None]:
    return np.full(n, np.nanmean(np.asarray(result, dtype=np.float64))), None


@dataclass(frozen=True)
class QuantusSpec:
    """How the adapter runs one Quantus class. ``overrides``: Quantus defaults changed for
    every call (said why in the module docstring); ``fixed``: the ones that are no setting."""

    category: str
    cost_ms: Optional[float] = None  # as Metric.cost_ms; measured, see the README's Quantus table
    reduce: Callable[[Any, int, Any], tuple[np.ndarray, Optional[np.ndarray]]] = _per_image
    overrides: Mapping[str, Any] = field(default_factory=dict)
    fixed: Mapping[str, Any] = field(default_factory=dict)
    explains: bool = False  # calls explain_func (re-explains changed inputs or models)
    per_image_normalise: bool = True
    keep_postprocess: bool = True


_CURVES = {"reduce": _curve_area}
SPECS: dict[str, QuantusSpec] = {
    # faithfulness
    "FaithfulnessCorrelation": QuantusSpec("faithfulness", cost_ms=119),
    "FaithfulnessEstimate": QuantusSpec("faithfulness", cost_ms=31),
    "MonotonicityCorrelation": QuantusSpec("faithfulness", cost_ms=3615),
    "Monotonicity": QuantusSpec("faithfulness", cost_ms=29),
    "PixelFlipping": QuantusSpec("faithfulness", cost_ms=41, **_CURVES),
    "RegionPerturbation": QuantusSpec("faithfulness", cost_ms=96, **_CURVES),
    "Selectivity": QuantusSpec("faithfulness", cost_ms=98, **_CURVES),
    "ROAD": QuantusSpec("faithfulness", cost_ms=13, reduce=_road, keep_postprocess=False),
    "IROF": QuantusSpec("faithfulness", cost_ms=187, fixed={"perturb_func": irof_replacement_by_mask}),
    "Infidelity": QuantusSpec("faithfulness", cost_ms=858),
    "SensitivityN": QuantusSpec("faithfulness", cost_ms=45, reduce=_batch_mean),
    "Sufficiency": QuantusSpec("faithfulness", cost_ms=3, per_image_normalise=False),
    # robustness
    "MaxSensitivity": QuantusSpec("robustness", cost_ms=966, explains=True),
    "AvgSensitivity": QuantusSpec("robustness", cost_ms=1031, explains=True),
    "LocalLipschitzEstimate": QuantusSpec("robustness", cost_ms=1100, explains=True),
    "RelativeInputStability": QuantusSpec("robustness", cost_ms=1366, explains=True),
    "RelativeOutputStability": QuantusSpec("robustness", cost_ms=1486, explains=True),
    "Continuity": QuantusSpec("robustness", cost_ms=162, explains=True),
    # localisation (needs_ground_truth)
    "PointingGame": QuantusSpec("localisation", cost_ms=2),
    "AttributionLocalisation": QuantusSpec("localisation", cost_ms=2, overrides={"abs": False, "positive_attributions": True}),
    "TopKIntersection": QuantusSpec("localisation", cost_ms=1),
    "RelevanceRankAccuracy": QuantusSpec("localisation", cost_ms=2),
    "RelevanceMassAccuracy": QuantusSpec("localisation", cost_ms=1),
    "AUC": QuantusSpec("localisation", cost_ms=10),
    # axiomatic
    "Completeness": QuantusSpec("axiomatic", cost_ms=4, overrides={"normalise": False}),
    "NonSensitivity": QuantusSpec("axiomatic", cost_ms=3001, fixed={"features_in_step": 1}),
    "InputInvariance": QuantusSpec("axiomatic", cost_ms=14, explains=True),
    # randomisation
    "MPRT": QuantusSpec("randomisation", cost_ms=62, reduce=_randomised_layers, explains=True),
    "SmoothMPRT": QuantusSpec("randomisation", cost_ms=1810, reduce=_randomised_layers, explains=True),
    "EfficientMPRT": QuantusSpec("randomisation", cost_ms=18, explains=True),
    "RandomLogit": QuantusSpec("randomisation", cost_ms=7, explains=True),
    # complexity
    "Sparseness": QuantusSpec("complexity", cost_ms=1),
    "Complexity": QuantusSpec("complexity", cost_ms=1),
    "EffectiveComplexity": QuantusSpec("complexity", cost_ms=2),
}


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


@contextlib.contextmanager
def quantus_fixes(channels: int) -> Iterator[None]:
    """Quantus 0.6 patched for one call (see the module docstring): its features-in-step
    check counts C*H*W features, and its AUC uses ``np.trapezoid``."""
    from quantus.helpers import asserts, utils

    def assert_features_in_step(features_in_step: int, input_shape: Sequence[int]) -> None:
        features = channels * int(np.prod(input_shape))
        if features % features_in_step:
            raise ValueError(f"features_in_step {features_in_step} does not divide the {features} features of an image")

    # Quantus prints its warnings (the library prints nothing) as well as raising them
    with mock.patch.object(asserts, "assert_features_in_step", assert_features_in_step), \
            mock.patch.object(utils, "calculate_auc", _calculate_auc), warnings.catch_warnings(), \
            contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


@contextlib.contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """NumPy's global generator and torch's seeded with ``seed`` (Quantus draws from both),
    and both restored afterwards."""
    state = np.random.get_state()
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        np.random.seed(seed)
        torch.manual_seed(seed)
        try:
            yield
        finally:
            np.random.set_state(state)


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
    """``quantus:<name>`` on one batch: what the metric function received."""

    name: str
    model: nn.Module
    x: Tensor
    target: Tensor
    maps: Tensor
    method: Method
    seed: int = 0
    ground_truth: Optional[GroundTruth] = None
    settings: Mapping[str, Any] = field(default_factory=dict)

    def run(self, images: Optional[np.ndarray] = None) -> tuple[np.ndarray, Optional[np.ndarray]]:
        """One direct call of the Quantus class as the adapter makes it, on ``images``
        (indices into the batch; all by default): per-image values (and curves, or None).
        Raises what Quantus raises."""
        spec = SPECS[self.name]
        selected = slice(None) if images is None else torch.as_tensor(images, dtype=torch.long)
        device = model_device(self.model, self.x.device)
        x_batch = self.x[selected].detach().float().cpu().numpy()
        call: dict[str, Any] = dict(
            x_batch=x_batch,
            y_batch=self.target[selected].cpu().numpy(),
            a_batch=attribution_batch(self.name, self.maps, self.method, self.ground_truth)[selected],
            channel_first=True,
            device=str(device),
            batch_size=len(x_batch),
        )
        if spec.category == "localisation":
            call["s_batch"] = self.ground_truth.mask[selected][:, None].cpu().numpy().astype(np.float32)
        if spec.explains:
            call["explain_func"] = explain_func(self.method)
        kwargs = quantus_kwargs(self.name, tuple(self.x.shape[1:]), self.settings, seed=self.seed)
        # out of inference mode, which a caller may be in: Quantus re-initialises layers in
        # place and our explain_func takes gradients
        with evaluation_mode(self.model), torch.inference_mode(False), seeded(self.seed, device), \
                quantus_fixes(self.x.shape[1]):
            if self.name == "RandomLogit":
                with torch.no_grad():
                    kwargs["num_classes"] = int(self.model(self.x[:1].to(device)).shape[1])
            metric = _quantus_class(self.name)(**kwargs)
            if not spec.keep_postprocess:
                metric.custom_postprocess = lambda **_: None
            result = metric(model=self.model, **call)
        return spec.reduce(result, len(x_batch), metric)

    def score(self) -> MetricOutput:
        """The batch as a :class:`MetricOutput` (see the module docstring): in one call, or
        image by image if that fails, failures as NaN + ``error/<class>``."""
        n = len(self.x)
        _check_settings(self.name, tuple(self.x.shape[1:]), self.settings, self.seed)
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
                    errors[i] = type(error).__name__
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


_CALL = [
    inspect.Parameter(p, inspect.Parameter.POSITIONAL_OR_KEYWORD) for p in ("model", "x", "target", "maps", "method")
] + [
    inspect.Parameter("seed", inspect.Parameter.KEYWORD_ONLY, default=0),
    inspect.Parameter("ground_truth", inspect.Parameter.KEYWORD_ONLY, default=None),
]


def quantus_metric(full_name: str) -> Metric:
    """The :class:`Metric` of ``quantus:<Class>``; raises :class:`UnknownNameError` listing
    the supported names for any other."""
    name = full_name[len(PREFIX):]
    if name not in SPECS:
        raise UnknownNameError("metric", full_name, supported_names())
    cls = _quantus_class(name)
    defaults = default_settings(name)

    def fn(model, x, target, maps, method, *, seed=0, ground_truth=None, **settings) -> MetricOutput:
        return QuantusCall(name, model, x, target, maps, method, seed, ground_truth, settings).score()

    # the settings as keyword-only parameters, where Metric.defaults and check_settings read them
    fn.__signature__ = inspect.Signature(
        _CALL + [inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=v) for k, v in defaults.items()]
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
        description=f"Quantus {version} {name}: {summary}" if summary else f"Quantus {version} {name}",
    )


registry.add_resolver(PREFIX, quantus_metric)
