"""The lease's job: train the Imagenette ResNet18, score it, archive its rows, pack ``$OUT``.

    bash benchmarks/lease/job.sh run                 # on the lent machine (job.sh calls this)
    python -m benchmarks.lease.rehearse              # the same on this machine's CPU, tiny

Stages, in order, each through the suite's own command line (so the job follows the suite
as it changes, and computes exactly the shards the paper config plans):

1. ``decode``: both splits decoded into the image cache at once (two processes);
2. ``train``: ``python -m benchmarks.train`` with the paper's protocol (AdamW 1e-3, batch
   128, 50 epochs, seed 42, float32 with the GPU's default math), channels-last;
3. ``table1``: Table 1's row, the accuracy ``benchmarks.train`` measured on the fp16 weights;
4. ``tables2-3``: ``python -m benchmarks.run --config paper-deletion`` for this model on all
   3,925 val images (``deletion-paper`` and the fair ``deletion``): Tables 2-3's column;
5. ``suite``: ``python -m benchmarks.run --config paper-suite`` for this model on its 500
   images, every metric but ROAD by default (ROAD's solves are CPU work: they run as well
   on the CPU machines, and the archive joins the rows);
   each part runs as several ``--shard i/n`` slices side by side (the suite's similarity
   measures are single-threaded CPU work in each run), then one run reports them all;
6. ``pack``: the weights split under the 16 MiB limit, their manifest, the parts' archived
   rows, a report of every stage and the log, into ``$OUT`` (at most 8 files).

Everything the stages write lives under the work folder outside the tree, which outlives
the call while the machine stays warm, so the same command run again resumes: training
from its last epoch, the suite from its finished shards. A stage starts only if the call
has time left for it; a stage still running near the call's end is stopped so that
``pack`` always runs. Every line says how far into the call it was printed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Optional

from benchmarks.lease.progress import call_started, log
from benchmarks.lease.settings import DATASET, Settings, parse_args
from benchmarks.lease.stage import PART_FOLDERS, MiB, sha256_file
from benchmarks.lease.streams import stream, stream_all

PART_BYTES = 15 * MiB  # the return limit is 16 MiB a file
MAX_FILES = 8
PARTS = dict(zip(("tables2-3", "suite"), PART_FOLDERS))  # stage -> the paper config's part it runs
REPORT = "lease-report.json"
RESULTS_TAR = "results.tar"
EPOCH_LINE = re.compile(r"epoch (\d+)/(\d+) loss ([\d.]+) \(([\d.]+) s\)")


class Job:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.report_path = settings.work / REPORT
        previous = json.loads(self.report_path.read_text()) if self.report_path.is_file() else {}
        self.report = {"calls": previous.get("calls", []), "stages": previous.get("stages", {})}
        self.call = {"started": call_started(), "stages": {}}
        self.report["calls"].append(self.call)

    def python(self, *args: str) -> list[str]:
        return [sys.executable, *args]

    def record(self, stage: str, status: str, seconds: float, **details) -> None:
        entry = {"status": status, "seconds": round(seconds, 1), **details}
        self.call["stages"][stage] = entry
        if status != "skipped: done before":
            # the last call that did something decides a stage's status; seconds add up over calls
            before = self.report["stages"].get(stage, {})
            self.report["stages"][stage] = {**entry, "seconds": round(before.get("seconds", 0) + seconds, 1)}
        self.save()

    def save(self) -> None:
        self.settings.work.mkdir(parents=True, exist_ok=True)
        self.report_path.write_text(json.dumps(self.report, indent=1) + "\n")

    def done(self, stage: str) -> bool:
        return self.report["stages"].get(stage, {}).get("status") == "done"

    # -- stages ---------------------------------------------------------------------------

    def decode(self) -> str:
        """Both splits into the image cache at once: each load decodes with 4 threads, and
        the train and tables stages then read the cache as a memory map."""
        code = "import sys; from benchmarks.data import load_images; load_images('imagenette', sys.argv[1], root=sys.argv[2])"
        root = self.settings.data_root
        # a later lease, which finds the model trained, stages val alone
        splits = [split for split in ("train", "val") if (root / "imagenette2-224" / split).is_dir()]
        processes = [subprocess.Popen(self.python("-c", code, split, str(root))) for split in splits]
        codes = [process.wait() for process in processes]
        return "done" if not any(codes) else f"failed (exit {codes})"

    def train(self) -> str:
        s = self.settings
        if s.checkpoint.is_file() and s.checkpoint.with_suffix(".json").is_file():
            log(f"{s.checkpoint} is there already (trained in an earlier call, or carried): not training")
            return "done"
        command = self.python(
            "-m", "benchmarks.train", "--dataset", DATASET, "--model", s.model, "--epochs", str(s.epochs),
            "--device", s.device, "--channels-last", "--threads", str(s.threads), "--data-root", str(s.data_root),
            "--out", str(s.work / "train"), "--dest", str(s.checkpoint),
        )
        if s.limit:
            command += ["--limit", str(s.limit)]
        if s.track_test_accuracy:
            command.append("--track-test-accuracy")
        started = time.time()

        def project(line: str) -> None:
            match = EPOCH_LINE.search(line)
            if match:
                epoch, epochs = int(match[1]), int(match[2])
                rate = (time.time() - started) / max(1, epoch)  # this call's epochs, load included
                finish = (epochs - epoch) * rate
                fits = "fits" if finish < s.left() - s.pack_seconds else "does NOT fit: a next call resumes it"
                log(f"training: epoch {epoch}/{epochs}, {rate:.1f} s an epoch, done in about {finish:.0f} s; "
                    f"{s.left():.0f} s left in this call ({fits})")

        status = stream(command, s.deadline - s.pack_seconds, project)
        if status == "done" and not s.checkpoint.is_file():
            status = "failed (no checkpoint written)"
        return status

    def table1(self) -> str:
        from benchmarks.table1 import PAPER

        manifest = json.loads(self.settings.checkpoint.with_suffix(".json").read_text())
        accuracy, paper = manifest["test_accuracy"], PAPER[self.settings.model, DATASET]
        row = {"model": self.settings.model, "accuracy": accuracy, "paper": paper,
               "difference": round(accuracy - paper, 4), "within_0.03": abs(accuracy - paper) <= 0.03,
               "epochs": manifest["epochs"],
               "train_seconds": manifest["train_seconds"], "device_name": manifest.get("device_name"),
               "float32_math": manifest.get("float32_math"), "sha256": manifest["sha256"]}
        self.call["table1"] = row
        log(f"Table 1: {self.settings.model} on Imagenette: {accuracy:.4f} (paper {paper}, "
            f"difference {row['difference']:+.4f}); trained {manifest['epochs']} epochs in {manifest['train_seconds']} s "
            f"on {manifest.get('device_name') or manifest['device']}, float32 math {manifest.get('float32_math')}")
        return "done"

    def part(self, stage: str) -> str:
        """One part of the paper suite for this model through ``benchmarks.run``, stopped
        in time for its report (which archives the finished shards) and the pack. With
        ``slices`` > 1, that many ``--shard i/n`` runs share the GPU and the cores (the
        suite's similarity measures and ROAD are single-threaded CPU work per run), then
        one unsliced run computes nothing (``--stop-after`` has passed when it starts) and
        reports every shard they finished."""
        s = self.settings
        config, slices = PARTS[stage], s.slices[stage]
        minutes = (s.left() - s.pack_seconds - s.report_seconds[stage]) / 60

        def command(stop_after: float, threads: int, *extra: str) -> list[str]:
            line = self.python(
                "-m", "benchmarks.run", "--config", config, "--datasets", DATASET, "--models", s.model,
                "--device", s.device, "--threads", str(threads), "--data-root", str(s.data_root),
                "--out", str(s.work / config), "--stop-after", f"{stop_after:.4g}", *extra,
            )
            if s.images.get(stage):
                line += ["--n-images", str(s.images[stage])]
            if stage == "suite" and s.suite_metrics:
                line += ["--metrics", s.suite_metrics]
            return line

        if slices > 1:
            threads = max(1, s.threads // slices)
            status = stream_all([command(minutes, threads, "--shard", f"{i}/{slices}") for i in range(slices)],
                                s.deadline - s.pack_seconds)
            if status == "stopped for time":
                return status
            status = stream(command(0.001, s.threads), s.deadline - s.pack_seconds)
        else:
            status = stream(command(minutes, s.threads), s.deadline - s.pack_seconds)
        if status == "done":
            status = self.check_part(config)
        return status

    def check_part(self, config: str) -> str:
        """Done only if the part scored the weights trained here and has no shard left."""
        folder = self.settings.work / config
        plan = json.loads((folder / "plan.json").read_text())
        ours = json.loads(self.settings.checkpoint.with_suffix(".json").read_text())["sha256"]
        used = plan["checkpoints"].get(self.settings.stem, {}).get("sha256")
        if used != ours:
            return f"failed (it scored checkpoint {str(used)[:12]}..., not the one trained here: is results/ in the tree?)"
        from benchmarks.store.archive import shards_held

        left = len(set(plan["shards"]) - shards_held(folder))
        return "done" if left == 0 else f"stopped for time ({left} of {len(plan['shards'])} shards left)"

    # -- the run --------------------------------------------------------------------------

    def run(self, stages: list[str]) -> None:
        import platform

        import torch

        s = self.settings
        gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
        self.call["machine"] = {"gpu": gpu, "torch": torch.__version__, "python": platform.python_version(),
                                "cpus": os.cpu_count()}
        log(f"job: {gpu or 'no GPU'}, torch {torch.__version__}, {os.cpu_count()} cores; stages {', '.join(stages)}; "
            f"{s.left():.0f} s until this call must pack")
        needs = {"table1": "train", "tables2-3": "train", "suite": "train"}
        minimum = {"decode": 10, "train": 30, "table1": 0, "tables2-3": 30, "suite": 30}
        for stage in stages:
            if self.done(stage) and stage != "table1":
                log(f"{stage}: done in an earlier call")
                self.record(stage, "skipped: done before", 0)
                continue
            if stage in needs and not self.done(needs[stage]):
                log(f"{stage}: skipped, {needs[stage]} is not done")
                self.record(stage, f"skipped: {needs[stage]} not done", 0)
                continue
            extra = s.report_seconds.get(stage, 0)
            if s.left() - s.pack_seconds < minimum[stage] + extra:
                log(f"{stage}: skipped, {s.left():.0f} s left is too little (a next call resumes it)")
                self.record(stage, "skipped: no time left", 0)
                continue
            log(f"{stage}: starting")
            started = time.time()
            try:
                status = self.part(stage) if stage in PARTS else getattr(self, stage.replace("-", "_"))()
            except Exception as error:  # a broken stage must not cost the pack
                status = f"failed ({type(error).__name__}: {error})"
            self.record(stage, status, time.time() - started)
            log(f"{stage}: {status} after {time.time() - started:.0f} s")
        self.pack()

    def pack(self) -> None:
        """Into ``$OUT`` (flat): the weights in parts, their manifest, the parts' archives
        and manifests in one tar, this report and (written by job.sh) the log."""
        s = self.settings
        s.out.mkdir(parents=True, exist_ok=True)
        files: dict[str, dict] = {}
        if s.checkpoint.is_file():
            files |= split_file(s.checkpoint, s.out)
            shutil.copyfile(s.checkpoint.with_suffix(".json"), s.out / f"{s.stem}.json")
            files[f"{s.stem}.json"] = {}
        members = [path for config in PARTS.values() for path in part_files(s.work / config)]
        if members:
            tar_path = s.work / RESULTS_TAR
            with tarfile.open(tar_path, "w") as tar:
                for path in members:
                    tar.add(path, arcname=path.relative_to(s.work).as_posix())
            files |= split_file(tar_path, s.out)
        for name, entry in files.items():
            path = s.out / name
            entry.update(bytes=path.stat().st_size, sha256=sha256_file(path))
        self.call["files"] = files
        self.call["wall_seconds"] = round(time.time() - call_started(), 1)
        self.save()
        shutil.copyfile(self.report_path, s.out / REPORT)
        count = len(list(s.out.iterdir())) + (0 if (s.out / "job.log").exists() else 1)
        log(f"packed {len(files)} files into {s.out} ({sum(e['bytes'] for e in files.values()) / MiB:.1f} MiB) "
            f"+ {REPORT} + job.log: {count} of at most {MAX_FILES}")
        if count > MAX_FILES:
            log(f"WARNING: more than {MAX_FILES} files: some will not come back")


def part_files(folder: Path) -> list[Path]:
    """What landing needs of a part's output folder: its archive, its manifest (the run's
    wall time by stage), the records of runs stopped before their report, its summary."""
    if not folder.is_dir():
        return []
    named = [folder / "manifest.json", folder / "summary.csv", *sorted(folder.glob("run-unreported-*.json"))]
    archive = sorted(p for p in (folder / "archive").rglob("*") if p.is_file())
    return [p for p in named if p.is_file()] + archive


def split_file(path: Path, out: Path) -> dict[str, dict]:
    """``path`` into ``out``, whole if it is under the return limit, else as
    ``<name>.part1``, ``.part2``, ...; returns the names written, with the whole file's
    sha256 and the parts' order (what :func:`benchmarks.lease.land.join_parts` checks)."""
    whole = {"of": path.name, "whole_sha256": sha256_file(path), "whole_bytes": path.stat().st_size}
    if path.stat().st_size <= PART_BYTES:
        shutil.copyfile(path, out / path.name)
        return {path.name: {**whole, "part": 1, "parts": 1}}
    written = {}
    with open(path, "rb") as f:
        for number, block in enumerate(iter(lambda: f.read(PART_BYTES), b""), start=1):
            name = f"{path.name}.part{number}"
            (out / name).write_bytes(block)
            written[name] = {**whole, "part": number}
    for entry in written.values():
        entry["parts"] = len(written)
    return written


def main(argv: Optional[list[str]] = None) -> int:
    settings, stages = parse_args(argv)
    Job(settings).run(stages)
    return 0


if __name__ == "__main__":
    sys.exit(main())
