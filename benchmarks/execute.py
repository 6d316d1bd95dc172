"""Computing the plan: each group's maps, then the library's batch loop, into shard files.

A shard is written as soon as its metric call returns, so a kill loses at most the call in
flight; past a deadline no new metric starts.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Optional

import torch
from torch import nn
from tqdm.auto import tqdm

from benchmarks import store
from benchmarks.config import RunConfig
from benchmarks.plan import Group, Shard, stable_hash
from benchmarks.prepare import PreparedDataset
from benchmarks.provenance import StageTimer
from signed_saliency import engine, methods, metrics
from signed_saliency.checks import NonFiniteMaps, find_nonfinite
from signed_saliency.errors import UserError
from signed_saliency.datasets.core import ImageSet
from signed_saliency.methods.core import Method, UnsupportedModelError, predict
from signed_saliency.metrics.core import Metric, Progress


@contextmanager
def step_bar(metric: Metric, quiet: bool) -> Iterator[Optional[Progress]]:
    """A second, transient bar for the steps inside one metric call, for metrics that
    report them: at 224 px one randomisation call runs for about 20 minutes."""
    if quiet or not metric.reports_progress:
        yield None
        return
    bar: Optional[tqdm] = None  # opened at the metric's first report, which knows the total

    def update(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc=f"  {metric.name}", unit="step", leave=False, position=1, dynamic_ncols=True)
        bar.update(done - bar.n)

    try:
        yield update
    finally:
        if bar is not None:
            bar.close()


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``x`` on ``device``; to a GPU from pinned memory without blocking, so the copy runs
    while the host prepares the next work (the stream orders it before any kernel using it)."""
    if device.type != "cuda":
        return x.to(device)
    return x.pin_memory().to(device, non_blocking=True)


def _batch(item: PreparedDataset, group: Group, seed: int, device: torch.device) -> engine.Batch:
    """The group's images as the library's batch: maps explain the predicted class."""
    positions = list(group.image_positions)
    images = item.images
    return engine.make_batch(
        item.models[group.model].module, to_device(images.floats(positions), device),
        image_ids=images.indices[positions].tolist(), seed=seed + group.batch,
        ground_truth=images.ground_truth.select(positions, device) if images.ground_truth is not None else None,
    )


def _root(method: Method) -> Method:
    while method.parent is not None:
        method = method.parent
    return method


def explain_supported(model: nn.Module, x: torch.Tensor, target: torch.Tensor, chosen: list[Method],
                      unsupported: dict[str, str]) -> dict[str, torch.Tensor]:
    """The maps of those of ``chosen`` that can explain ``model``; a method (with its sign
    splits) raising :class:`UnsupportedModelError` goes into ``unsupported`` (name to why).
    Methods that read the model are explained root by root, so one that fails costs the
    others nothing; the gradient methods still share their one pass."""
    calls: dict[Optional[Method], list[Method]] = defaultdict(list)
    for method in chosen:
        root = _root(method)
        if root.name not in unsupported:
            calls[root if root.needs == "model" else None].append(method)
    maps: dict[str, torch.Tensor] = {}
    for root, call in calls.items():
        try:
            maps.update(methods.explain(model, x, target, call))
        except UnsupportedModelError as error:
            if root is None:
                raise
            unsupported.update({method.name: str(error) for method in [root, *call]})
    return maps


def _by_metric(pending: list[Shard]) -> dict[Metric, dict[Method, Shard]]:
    chosen: dict[Metric, dict[Method, Shard]] = defaultdict(dict)
    for shard in pending:
        chosen[metrics.get(shard.metric)][methods.get(shard.method)] = shard
    return chosen


def execute(
    groups: list[Group],
    prepared: list[PreparedDataset],
    config: RunConfig,
    out: Path,
    device: torch.device,
    timer: StageTimer,
    quiet: bool,
    deadline: Optional[float] = None,
    finished: frozenset[str] = frozenset(),
    after_call: Callable[[int], None] = lambda computed: None,
) -> int:
    """Compute every shard not in ``finished`` (names), batch by batch; return how many were
    computed, as ``after_call`` also hears after each metric call. Past ``deadline`` (a
    ``time.perf_counter()`` value) no new metric starts: a metric's methods finish together,
    so its tables compare them on the same images, and at 224 px one batch under every
    metric is an hour on 2 cores, too coarse a step."""
    by_dataset = {item.run.name: item for item in prepared}
    pending_by_group = [(group, [shard for shard in group.shards if shard.name not in finished]) for group in groups]
    total = sum(len(pending) for _, pending in pending_by_group)
    progress = tqdm(total=total, desc="shards", unit="shard", disable=quiet or total == 0, dynamic_ncols=True)
    computed = 0
    stopped = False
    nonfinite: dict[tuple[str, str], NonFiniteMaps] = {}  # the maps not scored, to warn of once
    # per (dataset, model): the methods that cannot explain it, and why; their shards are
    # recorded as skipped rather than failing the run
    unsupported: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)

    def past_deadline() -> bool:
        nonlocal stopped
        if deadline is None or time.perf_counter() <= deadline:
            return False
        progress.write(f"--stop-after reached: {total - computed} shards left for the next run", file=sys.stderr)
        stopped = True
        return True

    @contextmanager
    def around_call(metric: Metric, call: list[Method]) -> Iterator[Optional[Progress]]:
        names = " + ".join(method.name for method in call) if len(call) < 4 else f"{len(call)} methods"
        progress.set_postfix_str(f"{group.dataset}/{group.model} {names} x {metric.name}")
        with timer(f"metric {metric.name}"), step_bar(metric, quiet) as steps:
            yield steps

    def run_group(group: Group, pending: list[Shard]) -> None:
        """The group's maps, then its shards, each written as its metric call returns."""
        nonlocal computed
        item = by_dataset[group.dataset]
        model = item.models[group.model]
        progress.set_postfix_str(f"{group.dataset}/{group.model} batch {group.batch}: maps")
        key = (group.dataset, group.model)
        known = set(unsupported[key])
        with timer("maps"):
            batch = _batch(item, group, config.seed, device)
            chosen = [methods.get(name) for name in dict.fromkeys(shard.method for shard in pending)]
            maps = explain_supported(model.module, batch.x, batch.predicted, chosen, unsupported[key])
        for name in sorted(unsupported[key].keys() - known):
            if not any(shard.method == name for shard in pending):
                continue
            reason = unsupported[key][name]
            progress.write(f"warning: skipping {name} on {group.dataset}/{group.model}: {reason}", file=sys.stderr)
            store.save_skipped(out, group.dataset, group.model, name, reason)
        explained = [shard for shard in pending if shard.method in maps]
        progress.update(len(pending) - len(explained))
        pending = explained
        batch_nonfinite = find_nonfinite(maps)
        nonfinite[key] = nonfinite.get(key, NonFiniteMaps()).merged(batch_nonfinite)
        label_of = dict(zip(batch.image_ids, item.images.labels[list(group.image_positions)].tolist()))
        shards = _by_metric(pending)
        calls = engine.score_maps(
            model.module, batch, maps, {metric: list(chosen) for metric, chosen in shards.items()},
            settings=config.settings, forward_model=model.forward_module, around_call=around_call, stop=past_deadline,
            nonfinite=batch_nonfinite,
        )
        for metric, call, rows in calls:
            for method in call:
                scores, curves = rows[method.name]
                for frame in (scores, curves):
                    frame.insert(0, "model", group.model)
                    frame.insert(0, "dataset", group.dataset)
                scores.insert(3, "label", scores["image"].map(label_of).astype("int64"))
                with timer("write shards"):
                    store.save_shard(out, shards[metric][method].name, scores, curves)
                computed += 1
                progress.update()
            after_call(computed)

    for group, pending in pending_by_group:
        if not pending:
            continue
        if past_deadline():
            break
        try:
            run_group(group, pending)
        except torch.OutOfMemoryError:
            progress.close()
            raise UserError(
                f"out of memory on {device} in {group.dataset}/{group.model} batch {group.batch} at batch size "
                f"{config.batch_size}: the {computed} shards computed are saved; rerun with --batch-size "
                f"{max(1, config.batch_size // 2)} (finished shards of other batch sizes are not reused)"
            ) from None
        if stopped:
            break
    progress.close()
    for (dataset, model_name), record in nonfinite.items():
        if record:
            print(f"warning: {dataset}/{model_name}: {record.message()}", file=sys.stderr)
    return computed


def example_positions(labels: torch.Tensor, count: int, correct: Optional[torch.Tensor] = None) -> list[int]:
    """One image of each class in class order, then a second of each, up to ``count``;
    within a class the correctly classified images (where ``correct`` says) come first."""
    correct = torch.ones_like(labels, dtype=torch.bool) if correct is None else correct
    order = sorted(range(len(labels)), key=lambda position: (not bool(correct[position]), position))
    seen: dict[int, int] = defaultdict(int)
    occurrence = {}
    for position in order:
        label = int(labels[position])
        occurrence[position] = seen[label]
        seen[label] += 1
    return sorted(occurrence, key=lambda position: (occurrence[position], int(labels[position])))[:count]


def predict_all(model: nn.Module, images: ImageSet, batch_size: int, device: torch.device) -> torch.Tensor:
    return torch.cat([
        predict(model, images.floats(list(range(start, min(start + batch_size, len(images))))).to(device)).cpu()
        for start in range(0, len(images), batch_size)
    ])


def save_examples(prepared: list[PreparedDataset], config: RunConfig, out: Path, device: torch.device) -> None:
    """Images and every method's maps for a few images of each (dataset, model), one
    correctly classified image per class while classes last: what the qualitative
    figures draw."""
    if config.examples < 1:
        return
    chosen = config.chosen_methods()
    method_names = [method.name for method in chosen]
    # revisions too: a fixed method's maps must not be drawn from a cache of the old ones
    revisions = [method.revision for method in chosen]
    for item in prepared:
        for model in item.models.values():
            path = store.examples_path(out, item.run.name, model.name)
            key = stable_hash([item.images.indices.tolist(), model.sha256, method_names, revisions, config.examples])
            if store.examples_key(path) == key:
                continue
            predicted_all = predict_all(model.module, item.images, config.batch_size, device)
            # a model of other classes (ImageNet's, on a folder of 10) is never "correct" by the labels
            comparable = model.num_classes == len(item.images.class_names)
            positions = example_positions(item.images.labels, config.examples,
                                          predicted_all == item.images.labels if comparable else None)
            x = item.images.floats(positions).to(device)
            predicted = predicted_all[positions].to(device)
            # no maps of a method that cannot explain the model: execute() has said why
            maps = explain_supported(model.module, x, predicted, chosen, {})
            store.save_examples(path, {
                "key": key,
                "images": item.images.images[positions],
                "labels": item.images.labels[positions],
                "predicted": predicted.cpu(),
                "class_names": item.images.class_names,
                "comparable": comparable,  # whether predictions number the dataset's classes
                "maps": {name: value.cpu() for name, value in maps.items()},
                "directions": {method.name: method.direction for method in chosen},
            })
