"""The job's settings: its command line, and the folders and time it works in."""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from benchmarks.lease.progress import call_started

DATASET = "imagenette"
STAGES = ("decode", "train", "table1", "tables2-3", "suite")


@dataclass(frozen=True)
class Settings:
    model: str
    epochs: int
    device: str
    threads: int
    work: Path
    data_root: Path
    cache: Path
    out: Path
    deadline: float  # time.time() after which nothing may run but pack
    pack_seconds: float
    report_seconds: dict[str, float]  # what a benchmarks.run report needs after its last metric
    slices: dict[str, int]  # benchmarks.run --shard slices run side by side, per part
    limit: Optional[int]
    track_test_accuracy: bool
    images: dict[str, Optional[int]]  # --n-images per part (None: the config's)
    suite_metrics: Optional[str]

    @property
    def stem(self) -> str:
        return f"{DATASET}-{self.model}"

    @property
    def checkpoint(self) -> Path:
        # where benchmarks.run looks after the shipped checkpoints, which are not in the tree
        return self.cache / "checkpoints" / f"{self.stem}.pt"

    def left(self) -> float:
        return self.deadline - time.time()


def parse_args(argv: Optional[list[str]]) -> tuple[Settings, list[str]]:
    lease_root = Path(os.environ.get("LEASE_ROOT", "/root/lease"))
    parser = argparse.ArgumentParser(prog="python -m benchmarks.lease.job", description="The lease's job: train the Imagenette ResNet18, score it, archive its rows, pack ``$OUT``.")
    parser.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated, in order (default: {','.join(STAGES)})")
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--epochs", type=int, default=50, help="the paper's 50; fewer only to rehearse")
    parser.add_argument("--limit", type=int, help="train on a seeded subset (rehearsal)")
    parser.add_argument("--track-test-accuracy", action="store_true",
                        help="score val after every epoch (the manifest's test_accuracy_by_epoch; ~0.5 s an epoch on a GPU)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch CPU threads (default: all)")
    parser.add_argument("--tables-images", type=int, help="val images for Tables 2-3 (default: all; rehearsal)")
    parser.add_argument("--suite-images", type=int, help="images for the suite (default: the config's 500; rehearsal)")
    parser.add_argument("--suite-metrics", default=None,
                        help="comma-separated (default: every registered metric but road)")
    parser.add_argument("--call-seconds", type=float, default=600, help="the call's limit (the run tool's timeout_s)")
    parser.add_argument("--margin", type=float, default=25, help="seconds kept free at the call's end")
    parser.add_argument("--pack-seconds", type=float, default=20)
    parser.add_argument("--tables-report-seconds", type=float, default=60, help="Tables 2-3's report after its last shard")
    parser.add_argument("--suite-report-seconds", type=float, default=120, help="the suite's report and examples")
    parser.add_argument("--tables-slices", type=int, default=4, help="Tables 2-3 runs side by side (--shard i/n)")
    parser.add_argument("--suite-slices", type=int, default=8,
                        help="suite runs side by side (default 8: one 64-image batch each)")
    parser.add_argument("--work", type=Path, default=lease_root / "work")
    parser.add_argument("--data-root", type=Path, default=lease_root / "data")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", lease_root / "out")))
    args = parser.parse_args(argv)
    stages = [stage for stage in args.stages.split(",") if stage]
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        parser.error(f"unknown stage {', '.join(unknown)}; stages: {', '.join(STAGES)}")
    if args.suite_metrics is None:
        from signed_saliency import metrics

        args.suite_metrics = ",".join(name for name in metrics.names() if name != "road")
    from benchmarks.paths import cache_dir

    settings = Settings(
        model=args.model, epochs=args.epochs, device=args.device, threads=args.threads, work=args.work,
        data_root=args.data_root, cache=cache_dir(), out=args.out,
        deadline=call_started() + args.call_seconds - args.margin, pack_seconds=args.pack_seconds,
        report_seconds={"tables2-3": args.tables_report_seconds, "suite": args.suite_report_seconds},
        slices={"tables2-3": args.tables_slices, "suite": args.suite_slices},
        limit=args.limit, track_test_accuracy=args.track_test_accuracy,
        images={"tables2-3": args.tables_images, "suite": args.suite_images}, suite_metrics=args.suite_metrics,
    )
    return settings, stages
