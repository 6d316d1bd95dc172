"""How the Quantus adapter runs each Quantus 0.6 class, and the defects of Quantus 0.6 it fixes.

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
import io
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence
from unittest import mock

import numpy as np

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
