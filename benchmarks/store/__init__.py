"""The run folder on disk: the only code that knows its layout.

    <out>/plan.json                  what the run plans (config, methods, metrics, shards)
    <out>/shards/<shard name>        one finished shard's rows, a pickle (git-ignored)
    <out>/archive/...                every finished shard's rows, committable (see .archive)
    <out>/examples/<dataset>-<model>.pt   images and maps for the qualitative figures
    <out>/skipped/<dataset>/<model>/<method>.json   a method that cannot explain a model, and why

A shard's *name* (:func:`shard_name`) is its path under ``shards/``; plan.json lists the
names and the archive keys its rows by them, so a name is also the shard's identity.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import pandas as pd

from benchmarks.files import write_atomically
from benchmarks.store import archive
from signed_saliency.errors import UserError

PLAN = "plan.json"
SHARDS = "shards"
EXAMPLES = "examples"
SKIPPED = "skipped"


_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def path_component(name: str) -> str:
    """``name`` as one component of a path: as it is where it is safe already (every shipped
    dataset and model, so their shards keep the names the committed archives hold them
    under), else its unsafe runs replaced by ``-`` and 6 hex digits of its hash appended,
    so that ``folder:/data/a-b`` and ``folder:/data/a/b`` stay apart."""
    if not _UNSAFE.search(name):
        return name
    return f"{_UNSAFE.sub('-', name).strip('-')}-{hashlib.sha256(name.encode()).hexdigest()[:6]}"


def shard_name(dataset: str, model: str, method: str, metric: str, batch: int, key: str) -> str:
    return f"{path_component(dataset)}/{path_component(model)}/{method}/{metric}/batch{batch:05d}-{key}.pkl"


def metric_of(name: str) -> str:
    """The metric of a shard from its :func:`shard_name`."""
    return name.split("/")[3]


def prepare_output(path: Path) -> Path:
    """``path``, created, once a file could be written there (else a one-line error)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"  # per process: slices of a run may share the folder
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise UserError(f"cannot write to output folder {path}: {error.strerror or error}") from None
    return path


def save_shard(directory: Path, name: str, scores: pd.DataFrame, curves: pd.DataFrame) -> None:
    def write(temporary: Path) -> None:
        with open(temporary, "wb") as handle:
            pickle.dump({"scores": scores, "curves": curves}, handle, protocol=pickle.HIGHEST_PROTOCOL)

    write_atomically(directory / SHARDS / name, write)


def find_shard(directories: list[Path], name: str) -> Path | None:
    """The first of ``directories`` holding the shard's pickle."""
    for directory in directories:
        path = directory / SHARDS / name
        if path.is_file():
            return path
    return None


def load_shard(path: Path) -> dict[str, pd.DataFrame]:
    with open(path, "rb") as handle:
        shard = pickle.load(handle)
    return shard | {"scores": archive.with_undefined(shard["scores"])}


def finished(out: Path, names: list[str], *, archived_count: bool = True) -> frozenset[str]:
    """Those of the shard ``names`` that are finished in ``out``: archived (unless not
    ``archived_count``), or pickled."""
    archived = archive.shards_held(out) if archived_count else set()
    return frozenset(name for name in names if name in archived or find_shard([out], name) is not None)


def save_skipped(out: Path, dataset: str, model: str, method: str, reason: str) -> None:
    """Record that ``method`` cannot explain ``model`` (its shards are left out, not missing);
    one file per pair, so slices of a run that meet the same pair never write one file."""
    record = {"dataset": dataset, "model": model, "method": method, "reason": reason}
    write_atomically(out / SKIPPED / dataset / model / f"{method}.json",
                     lambda temporary: temporary.write_text(json.dumps(record, indent=1)))


def skipped(directories: list[Path]) -> list[dict[str, str]]:
    """Every (dataset, model, method) pair recorded by :func:`save_skipped` in ``directories``."""
    records = {}
    for directory in directories:
        for path in sorted((directory / SKIPPED).glob("*/*/*.json")):
            record = json.loads(path.read_text())
            records[(record["dataset"], record["model"], record["method"])] = record
    return list(records.values())


def write_plan(out: Path, plan: dict[str, Any]) -> None:
    write_atomically(out / PLAN, lambda temporary: temporary.write_text(json.dumps(plan, indent=1)))


def read_plan(directory: Path) -> dict[str, Any]:
    path = directory / PLAN
    if not path.is_file():
        raise UserError(f"{directory} holds no plan.json: is it the --out folder of a benchmarks.run?")
    return json.loads(path.read_text())


def copy_plan(source: Path, out: Path) -> None:
    """``source``'s plan.json into ``out``, as it is: a merged folder is a run's folder too."""
    text = (source / PLAN).read_text()
    write_atomically(out / PLAN, lambda temporary: temporary.write_text(text))


def pair_stem(dataset: str, model: str) -> str:
    """(dataset, model) in file names (example maps, figures), as the shards name them:
    ``folder:PATH`` holds slashes."""
    return f"{path_component(dataset)}-{path_component(model)}"


def examples_path(out: Path, dataset: str, model: str) -> Path:
    return out / EXAMPLES / f"{pair_stem(dataset, model)}.pt"


def examples_key(path: Path) -> Optional[str]:
    """The key the examples at ``path`` were saved under, None when there are none."""
    import torch

    return torch.load(path, weights_only=False).get("key") if path.is_file() else None


def save_examples(path: Path, payload: dict[str, Any]) -> None:
    import torch

    def write(temporary: Path) -> None:
        # through a handle: given a path, torch names the archive's records after the file,
        # here a random temporary name, so the same examples would differ byte for byte
        with open(temporary, "wb") as handle:
            torch.save(payload, handle)

    write_atomically(path, write)


def example_files(directory: Path) -> list[Path]:
    return sorted((directory / EXAMPLES).glob("*.pt"))


def merge_examples(directories: list[Path], out: Path) -> list[Path]:
    """Copy into ``out`` the example maps it lacks from the other ``directories``, the first
    holding each (dataset, model) winning, as a shard's rows come from the first folder
    holding it; return ``out``'s example files."""
    for directory in directories:
        if directory.resolve() == out.resolve():
            continue
        for path in example_files(directory):
            target = out / EXAMPLES / path.name
            if not target.is_file():
                target.parent.mkdir(parents=True, exist_ok=True)
                data = path.read_bytes()
                write_atomically(target, lambda temporary: temporary.write_bytes(data))
    return example_files(out)


def load_examples(path: Path) -> dict[str, Any]:
    import torch

    return torch.load(path, weights_only=False)


@dataclass
class Collected:
    """What a plan's finished shards hold, from ``shards/`` or else the archive."""

    plan: dict[str, Any]
    scores: pd.DataFrame
    curves: pd.DataFrame  # per image, of the shards whose pickles are here (curves.csv)
    curve_statistics: pd.DataFrame  # per shard and curve point, of every finished shard (the figures)
    missing: list[str]
    skipped: list[dict[str, str]]  # (dataset, model, method) pairs a method cannot explain: see save_skipped
    rows: dict[str, dict[str, pd.DataFrame]]  # shard to its scores and curve statistics: what is archived
    # each directory's whole archive as read, for archive.write; empty when collect filtered what it read
    archived: dict[Path, dict[str, dict[str, pd.DataFrame]]]

    @property
    def curve_means(self) -> pd.DataFrame:
        return archive.pooled_curves(self.curve_statistics)


def collect(directories: list[Path], only_metrics: Optional[set[str]] = None, *, curves: bool = True) -> Collected:
    """The plan and every finished shard's rows across ``directories`` (of ``only_metrics``
    if given; without the curves where ``curves`` is false), plus the missing shards (not
    those of a skipped pair). A shard's pickle wins over its archived rows."""
    plans = [read_plan(directory) for directory in directories]
    plan = plans[0]
    for directory, other in zip(directories[1:], plans[1:]):
        if other["shards"] != plan["shards"]:
            raise UserError(f"{directory} was run with another config than {directories[0]}: its plan differs")
    read = {directory: archive.read(directory, only_metrics, curves=curves) for directory in directories}
    archived: dict[str, dict[str, pd.DataFrame]] = {}
    for directory in reversed(directories):
        archived.update(read[directory])
    skipped_pairs = skipped(directories)
    left_out = {(record["dataset"], record["model"], record["method"]) for record in skipped_pairs}
    per_image_curves, rows, missing = [], {}, []
    for name in plan["shards"]:
        if only_metrics is not None and metric_of(name) not in only_metrics:
            continue
        if tuple(name.split("/")[:3]) in left_out:
            continue
        path = find_shard(directories, name)
        if path is not None:
            shard = load_shard(path)
            if curves:
                per_image_curves.append(shard["curves"])
            rows[name] = {
                "scores": shard["scores"],
                "curve-statistics": archive.curve_statistics(shard["curves"]) if curves else pd.DataFrame(),
            }
        elif name in archived:
            rows[name] = archived[name]
        else:
            missing.append(name)
    return Collected(
        plan=plan,
        scores=_concat([shard["scores"] for shard in rows.values()]),
        curves=_concat(per_image_curves),
        curve_statistics=_concat([shard["curve-statistics"] for shard in rows.values()]),
        missing=missing,
        skipped=skipped_pairs,
        rows=rows,
        archived=read if only_metrics is None and curves else {},
    )


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Shards a metric had nothing to say in (a magnitude map under a sign metric) hold
    empty, untyped frames: leave them out so the columns keep their dtypes."""
    non_empty = [frame for frame in frames if len(frame)]
    return pd.concat(non_empty, ignore_index=True) if non_empty else pd.DataFrame()
