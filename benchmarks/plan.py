"""The plan of a run: shards, their keys, and where their rows live on disk.

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
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

import signed_saliency
from signed_saliency import methods, metrics
from benchmarks.files import write_atomically


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
    def relative_path(self) -> str:
        return f"{self.dataset}/{self.model}/{self.method}/{self.metric}/batch{self.batch:05d}-{self.key}.pkl"


def metric_of(relative_path: str) -> str:
    """The metric of a shard from its :attr:`Shard.relative_path`."""
    return relative_path.split("/")[3]


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


def parse_shard_spec(text: str) -> tuple[int, int]:
    """``"i/n"`` with 0 <= i < n (a Slurm array's ``$SLURM_ARRAY_TASK_ID/$N``)."""
    from signed_saliency.errors import UserError

    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise UserError(f"--shard must look like i/n (e.g. 0/4), got {text!r}") from None
    if not 0 <= index < count:
        raise UserError(f"--shard i/n needs 0 <= i < n, got {text!r}")
    return index, count


def select_groups(groups: list[Group], index: int, count: int) -> list[Group]:
    return groups[index::count]


def save_shard(directory: Path, shard: Shard, scores: pd.DataFrame, curves: pd.DataFrame) -> None:
    def write(temporary: Path) -> None:
        with open(temporary, "wb") as handle:
            pickle.dump({"scores": scores, "curves": curves}, handle, protocol=pickle.HIGHEST_PROTOCOL)

    write_atomically(directory / "shards" / shard.relative_path, write)


def find_shard(directories: list[Path], relative_path: str) -> Path | None:
    """The first of ``directories`` holding the shard's pickle (its ``relative_path``)."""
    for directory in directories:
        path = directory / "shards" / relative_path
        if path.is_file():
            return path
    return None


def load_shard(path: Path) -> dict[str, pd.DataFrame]:
    with open(path, "rb") as handle:
        return pickle.load(handle)
