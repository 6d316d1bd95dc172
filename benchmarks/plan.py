"""The plan of a run: its shards, their keys, what is finished, and in what order the rest runs.

A shard is one (dataset, model, batch of images, method, metric). Its key hashes
everything its rows depend on (the dataset entry, the image indices, the checkpoint's
sha256, the metric's settings and revision, the seed, the package version), so a rerun finds finished
shards by key and a changed config or checkpoint simply names new keys: stale rows are
never mixed with new ones.

Shards of one (dataset, model, batch) form a *group*: the runner computes the group's maps
once, sharing one gradient pass among its methods, then runs each pending shard. ``--shard
i/n`` takes every n-th group, so a slice is deterministic and keeps that sharing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

import signed_saliency
from benchmarks import store
from signed_saliency import methods, metrics
from signed_saliency.errors import UserError

if TYPE_CHECKING:
    from benchmarks.config import RunConfig
    from benchmarks.prepare import PreparedDataset


def stable_hash(payload: Any, length: int = 16) -> str:
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


@dataclass(frozen=True)
class Shard:
    dataset: str
    model: str
    batch: int
    method: str
    metric: str
    key: str

    @property
    def name(self) -> str:
        """The shard's identity in plan.json and the archive (see :func:`store.shard_name`)."""
        return store.shard_name(self.dataset, self.model, self.method, self.metric, self.batch, self.key)


@dataclass(frozen=True)
class Group:
    """The shards of one (dataset, model, batch), whose maps are computed together."""

    dataset: str
    model: str
    batch: int
    image_positions: tuple[int, ...]  # positions in the run's chosen images
    shards: tuple[Shard, ...]


def _key_extras(metric: str, method: str, precision: str) -> dict[str, Any]:
    # Only what differs from the defaults is added, so the keys of shards written before
    # metrics and methods had revisions and runs had precisions stay valid: a fixed metric
    # or method (revision 2, ...) and a perturbation metric run in bf16 name new keys.
    spec, explained_by = metrics.get(metric), methods.get(method)
    revision = spec.revision_for(explained_by)
    extras: dict[str, Any] = {"revision": revision} if revision > 1 else {}
    if explained_by.revision > 1:
        extras["method_revision"] = explained_by.revision
    if precision != "float32" and spec.forward_only:
        extras["precision"] = precision
    return extras


def make_group(
    *,
    dataset: str,
    model: str,
    batch: int,
    image_positions: tuple[int, ...],
    image_indices: tuple[int, ...],
    dataset_entry: dict[str, Any],
    checkpoint_sha256: str,
    method_names: list[str],
    metric_settings: dict[str, dict[str, Any]],
    seed: int,
    precision: str = "float32",
) -> Group:
    base = {
        "dataset": dataset_entry,
        "images": stable_hash(image_indices),
        "checkpoint": checkpoint_sha256,
        "seed": seed,
        "batch": batch,
        "version": signed_saliency.__version__,
    }
    shards = tuple(
        Shard(
            dataset=dataset,
            model=model,
            batch=batch,
            method=method,
            metric=metric,
            key=stable_hash({**base, "method": method, "metric": metric, "settings": settings, **_key_extras(metric, method, precision)}),
        )
        for method in method_names
        for metric, settings in metric_settings.items()
    )
    return Group(dataset=dataset, model=model, batch=batch, image_positions=image_positions, shards=shards)


def build_plan(config: RunConfig, prepared: list[PreparedDataset]) -> list[Group]:
    """Every group of the run: each (dataset, model) in ``config.batch_size`` batches."""
    # The key holds the resolved settings, so a changed default also makes shards stale.
    metric_settings = {metric.name: config.metric_settings(metric.name) for metric in config.chosen_metrics()}
    method_names = config.method_names()
    groups = []
    for item in prepared:
        entry = {
            "name": item.run.name,
            "split": item.images.split,
            "image_size": item.images.image_size,
            "options": item.run.options,
        }
        indices = item.images.indices.tolist()
        for model in item.models.values():
            for batch, start in enumerate(range(0, len(indices), config.batch_size)):
                positions = tuple(range(start, min(start + config.batch_size, len(indices))))
                groups.append(
                    make_group(
                        dataset=item.run.name, model=model.name, batch=batch, image_positions=positions,
                        image_indices=tuple(indices[p] for p in positions), dataset_entry=entry,
                        checkpoint_sha256=model.sha256, method_names=method_names,
                        metric_settings=metric_settings, seed=config.seed, precision=item.run.precision,
                    )
                )
    return groups


def plan_document(config: RunConfig, groups: list[Group], checkpoints: dict[str, dict[str, str]]) -> dict[str, Any]:
    """What plan.json holds: the report reads methods' claims and metrics' orientation from it."""
    return {
        "config": config.to_dict(),
        "methods": {method.name: {"direction": method.direction, "score": method.score, "family": method.family}
                    for method in config.chosen_methods()},
        "metrics": {metric.name: {"family": metric.family, "higher_is_better": metric.higher_is_better,
                                  "curve_x": metric.curve_x} for metric in config.chosen_metrics()},
        "checkpoints": checkpoints,
        "shards": [shard.name for group in groups for shard in group.shards],
    }


def parse_shard_spec(text: str) -> tuple[int, int]:
    """``"i/n"`` with 0 <= i < n (a Slurm array's ``$SLURM_ARRAY_TASK_ID/$N``)."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise UserError(f"--shard must look like i/n (e.g. 0/4), got {text!r}") from None
    if not 0 <= index < count:
        raise UserError(f"--shard i/n needs 0 <= i < n, got {text!r}")
    return index, count


def select_groups(groups: list[Group], index: int, count: int) -> list[Group]:
    return groups[index::count]


def started_batches(groups: list[Group], finished: frozenset[str]) -> frozenset[tuple[str, int]]:
    """(dataset, batch) of every group with a finished shard."""
    return frozenset((group.dataset, group.batch) for group in groups
                     if any(shard.name in finished for shard in group.shards))


def execution_order(groups: list[Group], seed: int, started: frozenset[tuple[str, int]] = frozenset()) -> list[Group]:
    """The groups one batch position at a time, every (dataset, model) at each, so a run
    stopped early has covered every model of a dataset on the same images. The batches of
    a dataset run in a seeded order rather than 0, 1, 2, ...: a whole split is stored
    class by class, so in order a stopped run would have covered its first classes alone.
    Batches ``started`` ((dataset, batch) with a finished shard) come first: finishing
    them costs least and keeps the tables over whole batches (new methods, fixed metrics)."""
    rank: dict[tuple[str, int], int] = {}
    for dataset in dict.fromkeys(group.dataset for group in groups):
        batches = sorted({group.batch for group in groups if group.dataset == dataset})
        order = torch.randperm(len(batches), generator=torch.Generator().manual_seed(seed)).tolist()
        rank.update({(dataset, batches[index]): position for position, index in enumerate(order)})
    return sorted(groups, key=lambda group: ((group.dataset, group.batch) not in started, rank[group.dataset, group.batch]))
