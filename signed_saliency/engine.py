"""The engine: methods x metrics on a batch of images, as tidy rows.

>>> from signed_saliency import evaluate
>>> scores = evaluate(model, images, methods=["saliency", "positive"], metrics=["deletion"])

Each row of ``scores`` is one (image, method, metric, variant) with its ``value``; with
``curves=True`` a second frame holds the per-image curves as (…, x, y) rows. Nothing is
written to disk: the ``benchmarks`` runner adds configs, caching, shards and reports on
top of :func:`score_batch`, the same function this uses.
"""

from __future__ import annotations

import warnings
from typing import Any, Iterable, Mapping, Optional, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from signed_saliency import methods as method_registry
from signed_saliency import metrics as metric_registry
from signed_saliency.checks import (
    NonFiniteMaps,
    NonFiniteMapsWarning,
    blank_nonfinite,
    check_images,
    find_nonfinite,
    without_nonfinite,
)
from signed_saliency.datasets.core import GroundTruth
from signed_saliency.errors import UserError
from signed_saliency.lazy import lazy_import
from signed_saliency.methods.core import Method, predict
from signed_saliency.metrics.core import Metric, MetricOutput, Progress
from signed_saliency.metrics.perturbation import model_device

pd = lazy_import("pandas")

SCORE_COLUMNS = ["image", "target", "predicted", "method", "metric", "variant", "value"]
CURVE_COLUMNS = ["image", "method", "metric", "variant", "x", "y"]


def _as_numpy(values: Tensor) -> np.ndarray:
    return values.detach().to("cpu", torch.float64).numpy()


def score_batch(
    model: nn.Module,
    x: Tensor,
    target: Tensor,
    predicted: Tensor,
    maps: Mapping[str, Tensor],
    methods: Sequence[Method],
    metric: Metric,
    *,
    image_ids: Sequence[int],
    seed: int = 0,
    ground_truth: Optional[GroundTruth] = None,
    settings: Optional[Mapping[str, Any]] = None,
    progress: Optional[Progress] = None,
) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    """One metric on several methods' maps of one batch (``maps`` keyed by method name)
    -> ``{method name: (score rows, curve rows)}``; see :meth:`Metric.score_methods`.
    An image whose map is not finite is not scored: its rows carry NaN."""
    nonfinite = find_nonfinite({method.name: maps[method.name] for method in methods})
    outputs = metric.score_methods(
        model, x, target, without_nonfinite(maps, nonfinite), methods, seed=seed, ground_truth=ground_truth,
        progress=progress, **dict(settings or {}),
    )
    blank_nonfinite(outputs, nonfinite)
    return {
        method.name: _rows(outputs[method.name], method, metric, image_ids, target, predicted) for method in methods
    }


def _rows(
    output: MetricOutput, method: Method, metric: Metric, image_ids: Sequence[int], target: Tensor, predicted: Tensor
) -> tuple[pd.DataFrame, pd.DataFrame]:
    ids = np.asarray(image_ids)
    n = len(ids)
    score_frames = [
        pd.DataFrame(
            {
                "image": ids,
                "target": target.cpu().numpy(),
                "predicted": predicted.cpu().numpy(),
                "method": method.name,
                "metric": metric.name,
                "variant": variant,
                "value": _as_numpy(values).reshape(n),
            }
        )
        for variant, values in output.values.items()
    ]
    curve_frames = []
    for variant, curve in output.curves.items():
        y = _as_numpy(curve.y)
        steps = y.shape[1]
        curve_frames.append(
            pd.DataFrame(
                {
                    "image": np.repeat(ids, steps),
                    "method": method.name,
                    "metric": metric.name,
                    "variant": variant,
                    "x": np.tile(_as_numpy(curve.x), n),
                    "y": y.reshape(-1),
                }
            )
        )
    scores = pd.concat(score_frames, ignore_index=True) if score_frames else pd.DataFrame(columns=SCORE_COLUMNS)
    curves = pd.concat(curve_frames, ignore_index=True) if curve_frames else pd.DataFrame(columns=CURVE_COLUMNS)
    return scores, curves


def _chosen(entries: Optional[Iterable], registry, kind: str) -> list:
    """The entries named (or given) in ``entries``; every registered one for None. An empty
    list is an error rather than "everything": it is more likely a filter that matched nothing."""
    if entries is None:
        entries = registry.names()
    else:
        entries = list(entries)
        if not entries:
            raise UserError(f"no {kind}s to evaluate: name some, or pass None for every registered {kind}")
    return [registry.get(entry) if isinstance(entry, str) else entry for entry in entries]


def evaluate(
    model: nn.Module,
    images: Tensor,
    targets: Optional[Tensor] = None,
    methods: Optional[Iterable[str | Method]] = None,
    metrics: Optional[Iterable[str | Metric]] = None,
    *,
    settings: Optional[Mapping[str, Mapping[str, Any]]] = None,
    ground_truth: Optional[GroundTruth] = None,
    seed: int = 0,
    batch_size: int = 64,
    curves: bool = False,
) -> pd.DataFrame | tuple[pd.DataFrame, pd.DataFrame]:
    """Tidy scores of ``methods`` x ``metrics`` on ``images`` ((N,C,H,W) floats in [0,1]).

    ``targets`` default to the model's predicted classes; ``methods``/``metrics`` default
    (when None) to everything registered, and an empty list of either is an error;
    ``settings`` maps a metric name to its keyword settings.
    Batch ``b`` draws its randomness from ``seed + b``, so results do not depend on how
    work is split elsewhere as long as the batches are the same. Images in another form
    are a one-line :class:`UserError` saying how to convert them; maps holding NaN or
    infinity are not scored (their rows are NaN) and a :class:`NonFiniteMapsWarning` names
    their methods and counts.
    """
    check_images(images)
    chosen_methods = _chosen(methods, method_registry, "method")
    chosen_metrics = _chosen(metrics, metric_registry, "metric")
    settings = settings or {}
    for metric in chosen_metrics:
        metric.check_settings(dict(settings.get(metric.name, {})))
    device = model_device(model, images.device)
    score_frames, curve_frames = [], []
    nonfinite = NonFiniteMaps()
    for batch_index, start in enumerate(range(0, len(images), batch_size)):
        x = images[start : start + batch_size].to(device)
        predicted = predict(model, x)
        target = predicted if targets is None else targets[start : start + batch_size].to(device)
        truth = None
        if ground_truth is not None:
            truth = GroundTruth(
                mask=ground_truth.mask[start : start + batch_size].to(device),
                polarity=ground_truth.polarity[start : start + batch_size].to(device),
            )
        maps = method_registry.explain(model, x, target, chosen_methods)
        nonfinite = nonfinite.merged(find_nonfinite(maps))
        for metric in chosen_metrics:
            rows = score_batch(
                model, x, target, predicted, maps, chosen_methods, metric,
                image_ids=range(start, start + len(x)), seed=seed + batch_index,
                ground_truth=truth, settings=settings.get(metric.name),
            )
            for scores, batch_curves in rows.values():
                score_frames.append(scores)
                curve_frames.append(batch_curves)
    if nonfinite:
        warnings.warn(nonfinite.message(), NonFiniteMapsWarning, stacklevel=2)
    scores = pd.concat(score_frames, ignore_index=True) if score_frames else pd.DataFrame(columns=SCORE_COLUMNS)
    if not curves:
        return scores
    all_curves = pd.concat(curve_frames, ignore_index=True) if curve_frames else pd.DataFrame(columns=CURVE_COLUMNS)
    return scores, all_curves
