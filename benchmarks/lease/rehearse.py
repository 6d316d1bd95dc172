"""The whole lease on this machine's CPU, tiny: cut, stage, run the job, check what returns, land.

    python -m benchmarks.lease.rehearse                             # the CNN, 1 image a class, 1 epoch
    python -m benchmarks.lease.rehearse --model resnet18 --per-class 2 --work /tmp/lease-rehearsal

Each call is simulated as the run tool makes it: a fresh copy of exactly what would travel
(the tracked and untracked-unignored files, ``results/`` aside, plus the carried paths) in
its own folder, its own empty ``$OUT``, and ``LEASE_ROOT`` (standing for the warm machine's
``/root/lease``) kept from call to call. The data is a few images a class cut into as many
chunks as the real data makes, one carried per call, the job riding on the last. Then the
returned files are checked against the return limits and landed into a scratch
``results/paper`` of the work folder (never the repository's).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from benchmarks.lease import land, stage, travel
from benchmarks.lease.progress import log

REPO = Path(__file__).resolve().parents[2]
RETURN_FILES, RETURN_FILE_BYTES, RETURN_BYTES = 8, 16 * stage.MiB, 64 * stage.MiB
RETURN_NAME = re.compile(r"^[A-Za-z0-9._-]+$")


def device_tree(dest: Path, carry: dict[str, Path], repo: Path = REPO) -> int:
    """Copy what a call from ``repo`` carries, ``results/`` aside, into ``dest``, with
    ``carry`` (path in the tree -> file here); return its bytes, checked against the limit."""
    sizes = travel.travelling_files(repo, without=[travel.RESULTS])
    for name in sizes:
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo / name, target, follow_symlinks=False)
    for name, source in carry.items():
        for file in travel._files_under(source):
            target = dest / name / file.relative_to(source) if source.is_dir() else dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(file, target)
            sizes[str(target.relative_to(dest))] = file.stat().st_size
    total = sum(sizes.values())
    if total > travel.LIMIT:
        raise SystemExit(f"a call would carry {total / stage.MiB:.1f} MiB, over the 64 MiB limit")
    return total


def returned_problems(out: Path) -> list[str]:
    """What in ``out`` would not come back: the run tool's limits on files from ``$OUT``."""
    files = [p for p in out.rglob("*") if p.is_file()]
    problems = [f"{len(files)} files, more than {RETURN_FILES}"] if len(files) > RETURN_FILES else []
    for path in files:
        relative = path.relative_to(out)
        if len(relative.parts) > 3:
            problems.append(f"{relative}: more than 2 folders down")
        if not all(RETURN_NAME.match(part) for part in relative.parts):
            problems.append(f"{relative}: a name with characters other than letters, digits, '.', '_', '-'")
        if path.stat().st_size > RETURN_FILE_BYTES:
            problems.append(f"{relative}: over 16 MiB")
    if sum(p.stat().st_size for p in files) > RETURN_BYTES:
        problems.append("over 64 MiB together")
    return problems


def call(tree: Path, out: Path, machine: Path, command: list[str]) -> float:
    """One simulated call: ``command`` in ``tree`` with a fresh ``$OUT``; returns its seconds."""
    out.mkdir(parents=True)
    env = {**os.environ, "OUT": str(out), "LEASE_ROOT": str(machine), "PYTHON": sys.executable,
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    env.pop("LEASE_CALL_STARTED", None)
    env.pop("PYTHONPATH", None)  # job.sh puts the tree itself first, as there
    started = time.time()
    done = subprocess.run(command, cwd=tree, env=env)
    if done.returncode:
        raise SystemExit(f"the simulated call failed (exit {done.returncode}): {' '.join(command)}")
    return time.time() - started


def rehearse(work: Path, data_root: Path, chunks: int, per_class: int, job_options: list[str]) -> dict:
    """Every call of a lease in order; returns the seconds of each and what landed."""
    shutil.rmtree(work, ignore_errors=True)
    here = work / "here" / stage.CARRIED  # stands for the checkout's .device-data/
    files = stage.source_files(data_root, per_class=per_class)
    members = [stage.tar_bytes((data_root / f).stat().st_size) for f in files]
    # room for an even share and one more file: the cut then makes exactly ``chunks``
    room = sum(members) / chunks + max(members) + stage.chunk_reserve(len(files))
    manifest = stage.cut(data_root, here, per_class=per_class, max_mib=room / stage.MiB)
    names = [chunk["name"] for chunk in manifest["chunks"]]
    machine, seconds = work / "machine", {}
    wheels = {".whl": REPO / ".whl"} if (REPO / ".whl").is_dir() else {}
    for number, name in enumerate(names, start=1):
        last = number == len(names)
        carry = {f".device-data/{name}": here / name, f".device-data/{stage.MANIFEST}": here / stage.MANIFEST}
        if last:
            carry |= wheels
        tree = work / f"call-{number}"
        carried = device_tree(tree, carry)
        command = ["bash", "benchmarks/lease/job.sh", "run" if last else "stage"]
        if last:
            command += job_options
        log(f"rehearsal call {number}/{len(names)}: {carried / stage.MiB:.2f} MiB travel; "
            f"{' '.join(command)}")
        seconds[f"call {number}"] = round(call(tree, work / f"out-{number}", machine, command), 1)
    out = work / f"out-{len(names)}"
    problems = returned_problems(out)
    if problems:
        raise SystemExit("what the job returns breaks the limits: " + "; ".join(problems))
    landed = land.land(out, work / "results" / "paper")
    report = json.loads((out / land.REPORT).read_text())
    return {"seconds": seconds, "landed": landed, "stages": report["stages"],
            "returned": sorted(p.name for p in out.iterdir())}


def main(argv: Optional[list[str]] = None) -> int:
    from benchmarks.paths import default_data_root

    parser = argparse.ArgumentParser(prog="python -m benchmarks.lease.rehearse", description=__doc__.splitlines()[0],
                                     epilog="Options after -- go to the job (python -m benchmarks.lease.job --help).")
    parser.add_argument("--work", type=Path, default=Path("/tmp/lease-rehearsal"))
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--chunks", type=int, default=3, help="chunks to cut the tiny data into (as the real data)")
    parser.add_argument("--per-class", type=int, default=1, help="images of each class in each split")
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("job_options", nargs="*", help="more job options (after --)")
    args = parser.parse_args(argv)
    job_options = ["--device", "cpu", "--threads", "1", "--model", args.model, "--epochs", str(args.epochs),
                   "--tables-images", "2", "--suite-images", "2", "--suite-metrics", "sparseness,deletion-paper",
                   "--tables-slices", "1", "--suite-slices", "2",
                   *args.job_options]
    started = time.time()
    result = rehearse(args.work, args.data_root or default_data_root(), args.chunks, args.per_class, job_options)
    print(json.dumps(result, indent=1))
    print(f"rehearsed the whole lease in {time.time() - started:.0f} s; everything is in {args.work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
