"""A run, stage by stage: prepare, plan, execute, report; and a suite, part by part."""

from __future__ import annotations

import importlib
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch

from benchmarks import page, plan, prepare, provenance, report, reproduce, store
from benchmarks.config import RunConfig, SuiteConfig
from benchmarks.execute import execute, save_examples
from benchmarks.paths import portable


class Interrupted(Exception):
    """Ctrl-C during the shards: every finished shard is on disk (each is written
    atomically), so a rerun of the same command resumes from them."""

    def __init__(self, saved: int, total: int):
        super().__init__(f"interrupted: {saved} of {total} shards saved; rerun the same command to resume")
        self.saved, self.total = saved, total


@dataclass(frozen=True)
class RunOptions:
    """How to run, beyond what the config plans."""

    quiet: bool = False
    plugins: list[str] = field(default_factory=list)
    shard: tuple[int, int] = (0, 1)  # slice i of n of the plan's groups
    deadline: Optional[float] = None  # a time.perf_counter() value past which no new metric starts
    checkpoint: Optional[prepare.CheckpointChoice] = None  # the weights of the run's one model
    reuse_archive: bool = True  # shards archived in the output folder count as finished
    # the committed folder whose archived rows the computed shards must reproduce
    reproduce: Optional[Path] = None


def run_config(
    config: RunConfig,
    options: RunOptions,
    out: Path,
    show_summary: bool,
    compute: Callable[[plan.Group], bool] = lambda group: True,
) -> None:
    """Plan ``config``, compute the shards of the groups ``compute`` picks (in this slice
    of the plan), then report on every finished shard."""
    shard_index, shard_count = options.shard
    device = prepare.resolve_device(config.device)
    torch.set_num_threads(config.threads)
    timer = provenance.StageTimer()
    started = time.perf_counter()
    prepared = prepare.prepare(config, device, timer, options.quiet, options.checkpoint)
    checkpoints = prepare.checkpoints(prepared)
    groups = plan.build_plan(config, prepared)
    store.write_plan(out, plan.plan_document(config, groups, checkpoints))
    # looked up once: the execution order, the work and the report's count all start from it
    names = [shard.name for group in groups for shard in group.shards]
    finished = store.finished(out, names, archived_count=options.reuse_archive)
    picked = plan.execution_order([group for group in plan.select_groups(groups, shard_index, shard_count) if compute(group)],
                                  config.seed, plan.started_batches(groups, finished))
    run_id = provenance.new_run_id()

    def record_progress(computed: int) -> None:
        record = provenance.run_record(timer.seconds, time.perf_counter() - started, computed)
        provenance.record_unreported_run(out, run_id, record)

    try:
        computed = execute(picked, prepared, config, out, device, timer, options.quiet, options.deadline, finished,
                           record_progress)
    except KeyboardInterrupt:
        raise Interrupted(len(store.finished(out, names)), len(names)) from None
    if shard_count > 1:
        if not options.quiet:
            print(f"slice {shard_index}/{shard_count} done in {out}; once every slice is done, rerun without --shard "
                  "on the same folder to report, or merge separate folders with: python -m benchmarks.report DIR ...")
        return
    if options.reproduce is not None:
        reproduction = reproduce.compare(out, options.reproduce, names)
        complete = len(store.finished(out, names, archived_count=False)) == len(names)
        if reproduction.reproduced and complete:
            # the committed report stands: rebuilt here, it would differ by the manifest's times alone
            print(f"{reproduction.message()}; the committed report {portable(options.reproduce)} stands", file=sys.stderr)
            shutil.rmtree(out)  # so the next default run recomputes too
            return
        print(reproduction.message() if complete else f"{reproduction.message()} (stopped before the end: rerun to finish)",
              file=sys.stderr)
        if complete:
            print(f"this machine's own numbers follow; the committed ones stay in {portable(options.reproduce)}",
                  file=sys.stderr)
    held = len(store.finished(out, names, archived_count=options.reuse_archive))
    if not held:
        print(f"note: {config.name}: nothing computed yet, so no report", file=sys.stderr)
        return
    with timer("examples"):
        save_examples(prepared, config, out, device)
    with timer("report"):
        summary = report.build_report([out], out)
    provenance.write_manifest(out, config, checkpoints, device, timer.seconds, time.perf_counter() - started,
                              plugins=options.plugins, shards_computed=computed, shards_held=held, run_id=run_id)
    page.write_page(out)  # after the manifest, which the page puts in words
    if show_summary:
        print(summary)
        print(f"\nresults in {out}")


def run_suite(
    suite: SuiteConfig,
    parts: list[RunConfig],
    options: RunOptions,
    out: Path,
    only_parts: Optional[list[str]] = None,
    compute: Callable[[plan.Group], bool] = lambda group: True,
) -> None:
    """Every part (validated by the caller before the first starts) into its own subfolder,
    then the suite's ``after`` module over the parts' folders.

    ``compute`` chooses what is computed now, not what the parts plan: each part's report
    covers every finished shard of its whole plan, so the suite can be brought up to date
    one model at a time as models get trained. ``only_parts`` runs only some parts;
    ``after`` still covers them all, each from what its folder holds."""
    for number, config in enumerate(parts, start=1):
        if only_parts and config.name not in only_parts:
            continue
        if not options.quiet:
            print(f"[{suite.name} part {number}/{len(parts)}] {config.name}", file=sys.stderr)
        run_config(config, options, store.prepare_output(out / config.name), show_summary=False, compute=compute)
    if suite.after and options.shard[1] == 1:
        text = importlib.import_module(suite.after).write(out, [out / config.name for config in parts])
        if not options.quiet:
            print(text)
            print(f"\nresults in {out}")
