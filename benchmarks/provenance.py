"""Provenance: what a run's results came from and what they cost.

``manifest.json`` records the config, plugins, package versions, checkpoints, git commit,
device and threads, and ``runs``: one record per invocation that computed shards still held,
so a suite computed over several sessions adds up to its whole cost.
"""

from __future__ import annotations

import json
import platform
import subprocess
import time
import uuid
from collections import defaultdict
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Optional

from benchmarks import store
from benchmarks.files import write_atomically
from signed_saliency import methods

MANIFEST = "manifest.json"


class StageTimer:
    """Wall time per stage, for the manifest."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - start


def new_run_id() -> str:
    """The start time, then random digits: unique within the second too, and in start order."""
    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


def _git_commit() -> Optional[str]:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, cwd=Path(__file__).parent
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for name in ["signed-saliency", "torch", "torchvision", "captum", "quantus", "numpy", "scipy", "pandas", "seaborn"]:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def runs_still_held(runs: list[dict[str, Any]], shards_held: int) -> list[dict[str, Any]]:
    """The newest ``runs`` whose computed shards add up to at most ``shards_held``. Shards
    are lost all together (a new machine, a cleared folder), so once the count overflows,
    the older runs' work is gone and what is held was recomputed by the newer ones."""
    kept, computed = [], 0
    for invocation in reversed(runs):
        computed += invocation["shards_computed"]
        if computed > shards_held:
            break
        kept.append(invocation)
    return kept[::-1]


def run_record(stage_seconds: dict[str, float], wall_seconds: float, shards_computed: int) -> dict[str, Any]:
    """One invocation's entry in the manifest's ``runs``."""
    import torch

    return {
        "wall_seconds": round(wall_seconds, 1),
        "shards_computed": shards_computed,
        "torch_threads": torch.get_num_threads(),
        "stage_seconds": {stage: round(seconds, 2) for stage, seconds in sorted(stage_seconds.items())},
    }


def _unreported_path(out: Path, run_id: str) -> Path:
    return out / f"run-unreported-{run_id}.json"


def record_unreported_run(out: Path, run_id: str, record: dict[str, Any]) -> None:
    """Keep a running invocation's record so far beside its shards: one killed before its
    report (or a slice, which leaves the report to a later run) still counts in the
    manifest that the next report writes. ``run_id`` starts with the start time, so the
    records sort in the order the runs began."""
    write_atomically(_unreported_path(out, run_id), lambda temporary: temporary.write_text(json.dumps(record)))


def read_manifest(folder: Path) -> dict[str, Any]:
    """``folder``'s manifest.json, or {} where it has none (a slice writes none)."""
    path = folder / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else {}


def unreported_records(folder: Path, exclude: Optional[Path] = None) -> tuple[list[Path], list[dict[str, Any]]]:
    """The run records of ``folder``'s invocations that never reported (their paths, and the
    records marked ``reported: False``), but ``exclude``."""
    paths = sorted(path for path in folder.glob(_unreported_path(folder, "*").name) if path != exclude)
    return paths, [{**json.loads(path.read_text()), "reported": False} for path in paths]


def merge_manifests(directories: list[Path], out: Path) -> list[Path]:
    """A merged folder's manifest: the config, versions and machine of the first input that
    has a manifest (the inputs are slices of one plan), and every input's run records (its
    manifest's ``runs``, then the invocations that never reported, as a slice's), each
    marked with its ``folder``; ``merged_from`` lists the inputs. Return the inputs that hold
    no manifest.json (a slice writes none)."""
    merged: dict[str, Any] = {}
    runs, without = [], []
    for directory in directories:
        manifest = read_manifest(directory)
        if not manifest:
            without.append(directory)
        merged = merged or manifest
        _, unreported = unreported_records(directory)
        runs += [{**record, "folder": str(directory)} for record in [*manifest.get("runs", []), *unreported]]
    merged = {key: value for key, value in merged.items() if key not in ("wall_seconds", "stage_seconds")}
    merged.update(runs=runs, merged_from=[str(directory) for directory in directories])
    write_atomically(out / MANIFEST, lambda t: t.write_text(json.dumps(merged, indent=2)))
    return without


def write_manifest(
    out: Path,
    config,
    checkpoints: dict[str, dict[str, str]],
    device,
    stage_seconds: dict[str, float],
    wall_seconds: float,
    plugins: list[str],
    shards_computed: int,
    shards_held: int,
    run_id: Optional[str] = None,
) -> None:
    """Provenance of the run; ``runs`` keeps one entry per invocation that computed shards
    still among the ``shards_held`` finished ones, so a run resumed over several sessions
    adds up to its whole cost, and one whose shards were lost and recomputed is not counted
    twice. Invocations that never reported (killed, or slices) are added from their
    :func:`record_unreported_run` records, marked ``"reported": false``."""
    import torch

    runs = read_manifest(out).get("runs", [])
    own = _unreported_path(out, run_id) if run_id is not None else None
    unreported, records = unreported_records(out, exclude=own)
    runs += records
    this_run = run_record(stage_seconds, wall_seconds, shards_computed)
    if shards_computed:
        runs.append(this_run)
    runs = runs_still_held(runs, shards_held)
    manifest = {
        "config": config.to_dict(),
        "plugins": plugins,
        "versions": {**package_versions(), **methods.library_versions(config.method_names())},
        # how each metric's numbers were computed here, where a setting leaves it open
        "implementations": {
            metric.name: how for metric in config.chosen_metrics()
            if (how := metric.implementation_on(config.metric_settings(metric.name), device))
        },
        "checkpoints": checkpoints,
        # (dataset, model, method) pairs left out: the method cannot explain the architecture
        "skipped": store.skipped([out]),
        "git_commit": _git_commit(),
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "wall_seconds": this_run["wall_seconds"],
        "stage_seconds": this_run["stage_seconds"],
        "runs": runs,
    }
    write_atomically(out / MANIFEST, lambda t: t.write_text(json.dumps(manifest, indent=2)))
    for path in unreported + ([own] if own is not None else []):
        path.unlink(missing_ok=True)
