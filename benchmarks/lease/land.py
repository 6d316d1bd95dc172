"""Land a lease's returned files in ``results/paper``, checking every byte on the way.

    python -m benchmarks.lease.land /work/.device/FILES_AT          # the run tool's files_at
    python -m benchmarks.run --config paper --parts paper-deletion,paper-suite \\
        --datasets imagenette --models resnet18 --stop-after 0.01    # report them (computes nothing)

Checks every returned file against the sha256 the job wrote into ``lease-report.json``,
joins the split files and checks the whole ones; then writes the weights and their
manifest to ``results/paper/checkpoints/`` (the manifest's sha256 is the joined file's, and
the loader checks it again on every load), merges the parts' archived rows into
``results/paper/<part>/archive/`` (the rows already there stay), and leaves the device's
run records beside them as ``run-unreported-*.json``, which the next report of the part
adds to its manifest's runs (the wall time of every stage, and on which GPU). The parts'
summaries and the paper's tables are then rebuilt by that report: the command above
(``--stop-after`` starts no shard, and the suite's ``after`` step rebuilds Table 1, Tables
2-3, the comparisons and the figures), or ``python -m benchmarks.paper results/paper``
alone after reports made otherwise.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tarfile
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from benchmarks.lease.job import REPORT, RESULTS_TAR
from benchmarks.lease.stage import PART_FOLDERS, sha256_file


class LandError(Exception):
    """A returned file is missing or does not match its sha256, or landing would overwrite."""


def check_files(files_at: Path) -> dict:
    """The job's report, once every file its last call packed is there with its sha256."""
    path = files_at / REPORT
    if not path.is_file():
        raise LandError(f"{path} not found: point at the run tool's files_at folder of the lease's last call")
    report = json.loads(path.read_text())
    files = report["calls"][-1].get("files", {})
    for name, entry in files.items():
        if not (files_at / name).is_file():
            raise LandError(f"{name} did not come back (listed in {REPORT})")
        if sha256_file(files_at / name) != entry["sha256"]:
            raise LandError(f"{name} does not match the sha256 it was packed with")
    return report


def join_parts(files_at: Path, files: dict, whole: str, dest: Path) -> Path:
    """The file ``whole`` from its parts (or itself, if it came back whole) at ``dest``,
    checked against the sha256 of the file that was split."""
    parts = sorted(((entry["part"], name, entry) for name, entry in files.items() if entry.get("of") == whole))
    if not parts or [number for number, _, _ in parts] != list(range(1, parts[0][2]["parts"] + 1)):
        raise LandError(f"{whole}: parts missing (have {[name for _, name, _ in parts]})")
    with open(dest, "wb") as joined:
        for _, name, _ in parts:
            with open(files_at / name, "rb") as part:
                shutil.copyfileobj(part, joined)
    if sha256_file(dest) != parts[0][2]["whole_sha256"]:
        raise LandError(f"{whole}: the joined parts do not match the sha256 of the file that was split")
    return dest


def land_weights(files_at: Path, files: dict, checkpoints: Path, replace: bool) -> Optional[str]:
    wholes = {entry["of"] for entry in files.values() if entry.get("of", "").endswith(".pt")}
    if not wholes:
        return None
    (whole,) = wholes
    manifest_path = files_at / whole.replace(".pt", ".json")
    manifest = json.loads(manifest_path.read_text())
    checkpoints.mkdir(parents=True, exist_ok=True)
    target = checkpoints / whole
    if target.is_file() and not replace:
        if sha256_file(target) == manifest["sha256"]:
            return f"{target} is there already"
        raise LandError(f"{target} exists with other weights: pass --replace to replace them")
    split_sha256 = next(entry["whole_sha256"] for entry in files.values() if entry.get("of") == whole)
    if split_sha256 != manifest["sha256"]:
        raise LandError(f"{whole} does not match its manifest's sha256")
    with tempfile.TemporaryDirectory(dir=checkpoints) as temporary:
        # join_parts holds the joined file to the sha256 of the file that was split, which is the manifest's
        shutil.move(join_parts(files_at, files, whole, Path(temporary) / whole), target)
    shutil.copyfile(manifest_path, target.with_suffix(".json"))
    return f"{target} ({manifest['test_accuracy']:.4f} test accuracy, {manifest.get('device_name', manifest['device'])})"


def land_rows(files_at: Path, report: dict, results: Path) -> list[str]:
    from benchmarks import provenance
    from benchmarks.store import archive

    files = report["calls"][-1]["files"]
    if not any(entry.get("of") == RESULTS_TAR for entry in files.values()):
        return []
    landed = []
    started = datetime.fromtimestamp(report["calls"][-1]["started"], timezone.utc)
    device_name = report["calls"][-1].get("machine", {}).get("gpu")
    with tempfile.TemporaryDirectory() as temporary:
        unpacked = Path(temporary)
        with tarfile.open(join_parts(files_at, files, RESULTS_TAR, unpacked / RESULTS_TAR)) as tar:
            tar.extractall(unpacked, filter="data")
        for part in PART_FOLDERS:
            folder = unpacked / part
            if not folder.is_dir():
                continue
            rows = archive.read(folder)
            archive.write(results / part, rows)
            # the device's runs, for the next report's manifest: their wall time by stage
            manifest = provenance.read_manifest(folder)
            runs = manifest.get("runs", []) + provenance.unreported_records(folder)[1]
            for number, run in enumerate(runs):
                record = {**run, "device": manifest.get("device"), "device_name": device_name}
                record.pop("reported", None)
                name = f"run-unreported-{started:%Y%m%dT%H%M%S}-lease{number:02d}.json"
                (results / part / name).write_text(json.dumps(record))
            landed.append(f"{part}: {len(rows)} shards' rows merged into {results / part / 'archive'}, "
                          f"{len(runs)} run records beside them")
    return landed


def land(files_at: Path, results: Path, replace: bool = False) -> list[str]:
    report = check_files(files_at)
    files = report["calls"][-1]["files"]
    weights = land_weights(files_at, files, results / "checkpoints", replace)
    return ([weights] if weights else []) + land_rows(files_at, report, results)


def main(argv: Optional[list[str]] = None) -> int:
    from benchmarks.paths import RESULTS_DIR

    parser = argparse.ArgumentParser(prog="python -m benchmarks.lease.land", description=__doc__.splitlines()[0])
    parser.add_argument("files_at", type=Path, help="the folder the run tool put the last call's files in")
    parser.add_argument("--results", type=Path, default=RESULTS_DIR / "paper")
    parser.add_argument("--replace", action="store_true", help="replace weights already landed with other ones")
    args = parser.parse_args(argv)
    try:
        for line in land(args.files_at, args.results, args.replace):
            print(f"landed {line}")
    except LandError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print("now report them: python -m benchmarks.run --config paper --parts paper-deletion,paper-suite "
          "--datasets imagenette --models resnet18 --stop-after 0.01")
    return 0


if __name__ == "__main__":
    sys.exit(main())
