"""The engine: methods x metrics on a batch of images, as tidy rows.

>>> from signed_saliency import evaluate
>>> scores = evaluate(model, images, methods=["saliency", "positive"], metrics=["deletion"])

Each row of ``scores`` is one (image, method, metric, variant) with its ``value`` and
``undefined`` (true where the value is NaN by the metric's definition, not by failure); with
``curves=True`` a second frame holds the per-image curves as (…, x, y) rows. Nothing is
written to disk: the ``benchmarks`` runner adds configs, caching, shards and reports on
top of :func:`score_maps`, the one batch loop this uses too.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from typing import Any, Callable, ContextManager, Iterable, Iterator, Mapping, Optional, Sequence

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
from signed_saliency.runtime import model_device

pd = lazy_import("pandas")

# ``undefined``: the value is NaN because the metric's definition gives none on that image
# (see MetricOutput.undefined); any other NaN is a failure
SCORE_COLUMNS = ["image", "target", "predicted", "method", "metric", "variant", "value", "undefined"]
CURVE_COLUMNS = ["image", "method", "metric", "variant", "x", "y"]
# Images per batch, in evaluate() and per shard in the runner: batch b draws its randomness
# from seed + b, so the two give the same rows only on the same batches.
BATCH_SIZE = 32

Rows = dict[str, tuple["pd.DataFrame", "pd.DataFrame"]]  # method name -> (score rows, curve rows)


@dataclass(frozen=True)
class Batch:
    """One batch of images, as every metric call on it sees them."""

    x: Tensor  # (N,C,H,W) in [0,1], on the model's device
    target: Tensor  # (N,) the classes the maps explain
    predicted: Tensor  # (N,) the model's classes
    image_ids: Sequence[int]  # what the rows call the images
    seed: int
    ground_truth: Optional[GroundTruth] = None


def make_batch(
    model: nn.Module,
    x: Tensor,
    *,
    image_ids: Sequence[int],
    seed: int,
    target: Optional[Tensor] = None,
    ground_truth: Optional[GroundTruth] = None,
) -> Batch:
    """A :class:`Batch` whose target is the predicted class unless ``target`` is given."""
    predicted = predict(model, x)
    return Batch(x=x, target=predicted if target is None else target.to(x.device), predicted=predicted,
                 image_ids=image_ids, seed=seed, ground_truth=ground_truth)


def _as_numpy(values: Tensor) -> np.ndarray:
    return values.detach().to("cpu", torch.float64).numpy()


def metric_calls(metric: Metric, methods: Sequence[Method]) -> list[list[Method]]:
    """The methods of each call of ``metric``: all in one for a jointly scored metric, else one each."""
    return [list(methods)] if metric.jointly else [[method] for method in methods]


def score_batch(
    model: nn.Module,
    batch: Batch,
    maps: Mapping[str, Tensor],
    *,
    methods: Sequence[Method],
    metric: Metric,
    settings: Optional[Mapping[str, Any]] = None,
    progress: Optional[Progress] = None,
    nonfinite: Optional[NonFiniteMaps] = None,
) -> Rows:
    """One call of ``metric`` on several methods' maps of one batch (``maps`` keyed by
    method name); see :meth:`Metric.score_methods`. An image whose map is not finite is not
    scored: its rows carry NaN (``nonfinite``: which those are, if the caller knows)."""
    if nonfinite is None:
        nonfinite = find_nonfinite({method.name: maps[method.name] for method in methods})
    outputs = metric.score_methods(
        model, batch.x, batch.target, without_nonfinite(maps, nonfinite), methods, seed=batch.seed,
        ground_truth=batch.ground_truth, progress=progress, **dict(settings or {}),
    )
    blank_nonfinite(outputs, nonfinite)
    return {method.name: _rows(outputs[method.name], method, metric, batch) for method in methods}


def _no_progress(metric: Metric, methods: list[Method]) -> ContextManager[Optional[Progress]]:
    return contextlib.nullcontext()


def score_maps(
    model: nn.Module,
    batch: Batch,
    maps: Mapping[str, Tensor],
    chosen: Mapping[Metric, Sequence[Method]],
    *,
    settings: Optional[Mapping[str, Mapping[str, Any]]] = None,
    forward_model: Optional[nn.Module] = None,
    around_call: Callable[[Metric, list[Method]], ContextManager[Optional[Progress]]] = _no_progress,
    stop: Callable[[], bool] = lambda: False,
    nonfinite: Optional[NonFiniteMaps] = None,
) -> Iterator[tuple[Metric, list[Method], Rows]]:
    """The batch loop: every metric of ``chosen`` on its methods' maps, one call at a time,
    yielding each call's rows as it finishes.

    ``forward_model`` (a low-precision copy, say) runs the forward-only metrics' passes.
    ``around_call`` wraps each call and may give it a progress callback; ``stop`` is asked
    before each metric but the first (whose maps are paid for), and ends the loop when true.
    ``nonfinite``: :func:`find_nonfinite` of ``maps``, if the caller has it; else found here,
    once for every call (a device sync on a GPU).
    """
    settings = settings or {}
    nonfinite = find_nonfinite(maps) if nonfinite is None else nonfinite
    for position, (metric, methods) in enumerate(chosen.items()):
        if position and stop():
            return
        scorer = forward_model if metric.forward_only and forward_model is not None else model
        for call in metric_calls(metric, methods):
            with around_call(metric, call) as progress:
                rows = score_batch(scorer, batch, maps, methods=call, metric=metric,
                                   settings=settings.get(metric.name), progress=progress, nonfinite=nonfinite)
            yield metric, call, rows


def _rows(output: MetricOutput, method: Method, metric: Metric, batch: Batch) -> tuple[pd.DataFrame, pd.DataFrame]:
    ids = np.asarray(batch.image_ids)
    n = len(ids)
    score_frames = [
        pd.DataFrame(
            {
                "image": ids,
                "target": batch.target.cpu().numpy(),
                "predicted": batch.predicted.cpu().numpy(),
                "method": method.name,
                "metric": metric.name,
                "variant": variant,
                "value": _as_numpy(values).reshape(n),
                "undefined": output.undefined[variant].numpy().reshape(n) if variant in output.undefined
                else np.zeros(n, dtype=bool),
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
        return list(registry)
    entries = list(entries)
    if not entries:
        raise UserError(f"no {kind}s to evaluate: name some, or pass None for every registered {kind}")
    return [entry if not isinstance(entry, str) else registry.get(entry) for entry in entries]


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
    batch_size: int = BATCH_SIZE,
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
        index = slice(start, start + batch_size)
        batch = make_batch(
            model, images[index].to(device), image_ids=range(start, min(start + batch_size, len(images))),
            seed=seed + batch_index, target=None if targets is None else targets[index],
            ground_truth=None if ground_truth is None else ground_truth.select(index, device),
        )
        maps = method_registry.explain(model, batch.x, batch.target, chosen_methods)
        batch_nonfinite = find_nonfinite(maps)
        nonfinite = nonfinite.merged(batch_nonfinite)
        for _, _, rows in score_maps(model, batch, maps, dict.fromkeys(chosen_metrics, chosen_methods), settings=settings,
                                     nonfinite=batch_nonfinite):
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
