"""``python -m benchmarks.report DIR [DIR ...]``: tables, statistics and figures from shards.

Every output is a pure function of the tidy rows, so merging the shard folders of a
sliced run (``--shard i/n``) gives the same report as one whole run.

Writes into ``--out`` (default: the first DIR): scores.csv, curves.csv, summary.csv/.md/.tex,
significance.csv, figures/ and archive/ (every finished shard's rows, committable: a shard
whose pickle is gone is read from there; see benchmarks.archive).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import pandas as pd

from benchmarks import archive, page, statistics
from benchmarks.files import write_atomically
from benchmarks.plan import find_shard, load_shard, metric_of
from signed_saliency.errors import UserError

# significance.csv tests every method against this one: the map the paper's maps refine
REFERENCE = "saliency"


def read_plan(directory: Path) -> dict[str, Any]:
    path = directory / "plan.json"
    if not path.is_file():
        raise UserError(f"{directory} holds no plan.json: is it the --out folder of a benchmarks.run?")
    return json.loads(path.read_text())


@dataclass
class Collected:
    """What a plan's finished shards hold, from ``shards/`` or else the archive."""

    plan: dict[str, Any]
    scores: pd.DataFrame
    curves: pd.DataFrame  # per image, of the shards whose pickles are here (curves.csv)
    curve_statistics: pd.DataFrame  # per shard and curve point, of every finished shard (the figures)
    missing: list[str]
    rows: dict[str, dict[str, pd.DataFrame]]  # shard to its scores and curve statistics: what is archived

    @property
    def curve_means(self) -> pd.DataFrame:
        return archive.pooled_curves(self.curve_statistics)


def collect(directories: list[Path], only_metrics: Optional[set[str]] = None, *, curves: bool = True) -> Collected:
    """The plan and every finished shard's rows across ``directories`` (of ``only_metrics``
    if given; without the curves where ``curves`` is false), plus the missing shards. A
    shard's pickle wins over its archived rows."""
    plans = [read_plan(directory) for directory in directories]
    plan = plans[0]
    for directory, other in zip(directories[1:], plans[1:]):
        if other["shards"] != plan["shards"]:
            raise UserError(f"{directory} was run with another config than {directories[0]}: its plan differs")
    archived: dict[str, dict[str, pd.DataFrame]] = {}
    for directory in reversed(directories):
        archived.update(archive.read(directory))
    per_image_curves, rows, missing = [], {}, []
    for relative in plan["shards"]:
        if only_metrics is not None and metric_of(relative) not in only_metrics:
            continue
        path = find_shard(directories, relative)
        if path is not None:
            shard = load_shard(path)
            if curves:
                per_image_curves.append(shard["curves"])
            rows[relative] = {
                "scores": shard["scores"],
                "curve-statistics": archive.curve_statistics(shard["curves"]) if curves else pd.DataFrame(),
            }
        elif relative in archived:
            rows[relative] = archived[relative]
        else:
            missing.append(relative)
    return Collected(
        plan=plan,
        scores=_concat([shard["scores"] for shard in rows.values()]),
        curves=_concat(per_image_curves),
        curve_statistics=_concat([shard["curve-statistics"] for shard in rows.values()]),
        missing=missing,
        rows=rows,
    )


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Shards a metric had nothing to say in (a magnitude map under a sign metric) hold
    empty, untyped frames: leave them out so the columns keep their dtypes."""
    non_empty = [frame for frame in frames if len(frame)]
    return pd.concat(non_empty, ignore_index=True) if non_empty else pd.DataFrame()


def image_count(n: pd.Series) -> str:
    """The cells' numbers of images, "1000" or a range "143-1000": n differs by cell where a
    value is undefined on some images (a constant map has no Spearman), and after a run
    stopped part-way, which has some metrics on more batches than others."""
    fewest, most = int(n.min()), int(n.max())
    return f"{most}" if fewest == most else f"{fewest}-{most}"


def in_scores_order(scores: pd.DataFrame) -> pd.DataFrame:
    """Score rows in scores.csv's order, which the paired tests also meet their groups in."""
    return scores.sort_values(statistics.GROUP + ["image"], kind="stable") if len(scores) else scores


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    write_atomically(path, lambda temporary: frame.to_csv(temporary, index=False, float_format="%.10g"))


def markdown_table(summary: pd.DataFrame) -> str:
    """One table per (dataset, model, metric): methods down, variants across, mean [95% CI]."""
    parts = []
    cell = summary.assign(text=summary.apply(statistics.mean_and_interval, axis=1))
    for (dataset, model, metric), block in cell.groupby(["dataset", "model", "metric"], sort=False):
        table = block.pivot(index="method", columns="variant", values="text")
        table = table.reindex(index=list(dict.fromkeys(block["method"])), columns=list(dict.fromkeys(block["variant"])))
        nonfinite = int(block["n_nonfinite"].sum())
        note = f"; {nonfinite} non-finite values excluded" if nonfinite else ""
        n = image_count(block["n"])
        parts.append(f"### {dataset} / {model} / {metric}\n\nmean [95% bootstrap CI], n = {n} images{note}\n")
        parts.append(table.rename_axis(columns=None).reset_index().to_markdown(index=False))
        parts.append("")
    return "\n".join(parts)


def terminal_summary(summary: pd.DataFrame, plan: dict[str, Any]) -> str:
    """Methods down, metrics across. Each cell is the first variant the method has in the
    metric's own order (its headline: e.g. deletion's black probability curve for an
    increase map, white for a decrease map); arrows say which way is better."""
    if summary.empty:
        return "no results"
    headline = summary.drop_duplicates(["dataset", "model", "method", "metric"], keep="first")
    arrows = {name: "↑" if meta["higher_is_better"] else "↓" for name, meta in plan["metrics"].items()}
    lines = []
    for (dataset, model), block in headline.groupby(["dataset", "model"], sort=False):
        table = block.pivot(index="method", columns="metric", values="mean")
        table = table.reindex(index=list(dict.fromkeys(block["method"])), columns=list(dict.fromkeys(block["metric"])))
        table.columns = [f"{name}{arrows.get(name, '')}" for name in table.columns]
        lines.append(f"\n{dataset} / {model}: mean over {image_count(block['n'])} images, headline variant of each metric "
                     "(every variant with its n and 95% CI: summary.md)")
        lines.append(table.to_string(float_format=lambda v: f"{v:.3f}", na_rep="-"))
    return "\n".join(lines)


def build_report(directories: list[Path], out: Path, *, figures: bool = True) -> str:
    """Write every table and figure; return the terminal summary."""
    collected = collect(directories)
    plan, scores, curves, missing = collected.plan, collected.scores, collected.curves, collected.missing
    if missing:
        print(f"warning: {len(missing)} of {len(plan['shards'])} shards are not finished; the report covers the rest",
              file=sys.stderr)
    if scores.empty:
        raise UserError("no finished shards to report on")
    out.mkdir(parents=True, exist_ok=True)
    if all(out.resolve() != directory.resolve() for directory in directories):
        # the merged folder is a run's folder too: a later report, rerun or benchmarks.paper reads its plan
        plan_text = (directories[0] / "plan.json").read_text()
        write_atomically(out / "plan.json", lambda temporary: temporary.write_text(plan_text))
    # Tables follow the plan: methods and metrics in the order the plan lists them, each
    # metric's variants in the order it reports them (rows arrive in plan order).
    ordered = scores.assign(
        method=pd.Categorical(scores["method"], categories=list(plan["methods"]), ordered=True),
        metric=pd.Categorical(scores["metric"], categories=list(plan["metrics"]), ordered=True),
        variant=pd.Categorical(scores["variant"], categories=list(dict.fromkeys(scores["variant"])), ordered=True),
    ).sort_values(["dataset", "model", "metric", "method", "variant", "image"], kind="stable")
    _write_csv(in_scores_order(scores), out / "scores.csv")
    archive.write(out, collected.rows)
    if not curves.empty:
        _write_csv(curves.sort_values(statistics.GROUP + ["image", "x"], kind="stable"), out / "curves.csv")
    else:  # every row came from the archive: a curves.csv left from before would not match scores.csv
        (out / "curves.csv").unlink(missing_ok=True)
    seed = int(plan["config"]["seed"])
    summary = statistics.summarise(ordered.astype({"method": str, "metric": str, "variant": str}), seed=seed)
    _write_csv(summary, out / "summary.csv")
    write_atomically(out / "summary.md", lambda t: t.write_text(f"# Summary: {plan['config']['name']}\n\n" + markdown_table(summary)))
    write_atomically(out / "summary.tex", lambda t: t.write_text(statistics.latex_table(summary)))
    if REFERENCE not in set(scores["method"]):
        print(f"warning: {REFERENCE!r} is not among the methods reported on, so significance.csv (every method "
              f"against {REFERENCE}) is empty: add {REFERENCE} to --methods for the paired tests", file=sys.stderr)
    significance = statistics.significance(scores, reference=REFERENCE)
    _write_csv(significance, out / "significance.csv")
    if figures:
        from benchmarks import figures as figure_module

        figure_module.draw_all(out, scores, collected.curve_means, plan)
    page.write_page(out)
    return terminal_summary(summary, plan)


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

    previous = out / "manifest.json"
    runs = json.loads(previous.read_text()).get("runs", []) if previous.is_file() else []
    own = _unreported_path(out, run_id) if run_id is not None else None
    unreported = sorted(path for path in out.glob(_unreported_path(out, "*").name) if path != own)
    runs += [{**json.loads(path.read_text()), "reported": False} for path in unreported]
    this_run = run_record(stage_seconds, wall_seconds, shards_computed)
    if shards_computed:
        runs.append(this_run)
    runs = runs_still_held(runs, shards_held)
    manifest = {
        "config": config.to_dict(),
        "plugins": plugins,
        "versions": package_versions(),
        "checkpoints": checkpoints,
        "git_commit": _git_commit(),
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "wall_seconds": this_run["wall_seconds"],
        "stage_seconds": this_run["stage_seconds"],
        "runs": runs,
    }
    write_atomically(out / "manifest.json", lambda t: t.write_text(json.dumps(manifest, indent=2)))
    for path in unreported + ([own] if own is not None else []):
        path.unlink(missing_ok=True)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.report", description=__doc__.splitlines()[0])
    parser.add_argument("directories", nargs="+", type=Path, help="--out folders of benchmarks.run (shards of one plan)")
    parser.add_argument("--out", type=Path, help="where to write (default: the first directory)")
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE", help="import MODULE first")
    parser.add_argument("--no-figures", action="store_true")
    args = parser.parse_args(argv)
    try:
        from benchmarks.run import import_plugins

        import_plugins(args.plugin)
        out = args.out or args.directories[0]
        summary = build_report(args.directories, out, figures=not args.no_figures)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(summary)
    print(f"\nreport in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
