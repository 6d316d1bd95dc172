"""``python -m benchmarks.report DIR [DIR ...]``: tables, statistics and figures from shards.

Every output is a pure function of the tidy rows, so merging the shard folders of a
sliced run (``--shard i/n``) gives the same report as one whole run.

Writes into ``--out`` (default: the first DIR): scores.csv, curves.csv, summary.csv/.md/.tex,
significance.csv, figures/ and archive/ (every finished shard's rows, committable: a shard
whose pickle is gone is read from there; see benchmarks.store.archive).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd

from benchmarks import figures, meta, page, provenance, statistics, store
from benchmarks.files import write_atomically
from benchmarks.plugins import import_plugins
from benchmarks.store import archive
from signed_saliency.errors import UserError

# significance.csv tests every method against this one: the map the paper's maps refine
REFERENCE = "saliency"


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
        nonfinite, undefined = int(block["n_nonfinite"].sum()), int(block["n_undefined"].sum())
        note = (f"; excluded: {undefined} values undefined by design (see the metric's doc), {nonfinite} failed "
                "(non-finite)" if nonfinite or undefined else "")
        n = statistics.image_count(block["n"])
        parts.append(f"### {dataset} / {model} / {metric}\n\nmean [95% bootstrap CI], n = {n} images{note}\n")
        parts.append(table.rename_axis(columns=None).reset_index().to_markdown(index=False))
        parts.append("")
    return "\n".join(parts)


def nonfinite_warning(scores: pd.DataFrame) -> str:
    """A line naming each method with maps that held NaN or infinity and how many: the
    images whose every row of that method is non-finite (a map that is not scored), from
    the rows, so a resumed or merged run warns as the run that computed them did."""
    finite = scores.assign(finite=np.isfinite(scores["value"].to_numpy(float)) | scores["undefined"].to_numpy(bool))
    per_image = finite.groupby(["dataset", "model", "method", "image"], sort=False, observed=True)["finite"].any()
    blank = (~per_image).groupby(level=["dataset", "model", "method"], sort=False, observed=True).sum()
    listed = [f"{method} ({count}, {dataset}/{model})" for (dataset, model, method), count in blank.items() if count]
    return f"warning: non-finite maps, not scored (their rows are NaN): {', '.join(listed)}" if listed else ""


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
        lines.append(f"\n{dataset} / {model}: mean over {statistics.image_count(block['n'])} images, headline variant of each metric "
                     "(every variant with its n and 95% CI: summary.md)")
        lines.append(table.to_string(float_format=lambda v: f"{v:.3f}", na_rep="-"))
    return "\n".join(lines)


def merge_provenance(directories: list[Path], out: Path, scores: pd.DataFrame) -> None:
    """The inputs' example maps and manifests into the merged folder ``out``, with one line
    on what is missing and how to add it (slices save neither maps nor a manifest)."""
    held = {path.stem for path in store.merge_examples(directories, out)}
    lacking = [f"{d}-{m}" for d, m in dict.fromkeys(zip(scores["dataset"], scores["model"]))
               if store.pair_stem(d, m) not in held]
    without = provenance.merge_manifests(directories, out)
    if lacking or len(without) == len(directories):
        missing = [f"example maps of {', '.join(lacking)}"] * bool(lacking)
        missing += ["manifest (machine, versions)"] * (len(without) == len(directories))
        print(f"note: the merged report has no {' and no '.join(missing)}, which slices do not save: to add them, run "
              f"python -m benchmarks.run with the same config and --out {out} (it reuses every shard), or copy a "
              "whole run's examples/ and manifest.json into it", file=sys.stderr)


def build_report(directories: list[Path], out: Path, *, draw_figures: bool = True) -> str:
    """Write every table and figure; return the terminal summary."""
    collected = store.collect(directories)
    plan, scores, curves, missing = collected.plan, collected.scores, collected.curves, collected.missing
    if missing:
        print(f"warning: {len(missing)} of {len(plan['shards'])} shards are not finished; the report covers the rest",
              file=sys.stderr)
    if scores.empty:
        raise UserError("no finished shards to report on")
    for record in collected.skipped:
        print(f"note: {record['method']} was skipped on {record['dataset']}/{record['model']}: {record['reason']}",
              file=sys.stderr)
    out.mkdir(parents=True, exist_ok=True)
    if all(out.resolve() != directory.resolve() for directory in directories):
        # the merged folder is a run's folder too: a later report, rerun or benchmarks.paper reads its plan
        store.copy_plan(directories[0], out)
        merge_provenance(directories, out, scores)
    # Tables follow the plan: methods and metrics in the order the plan lists them, each
    # metric's variants in the order it reports them (rows arrive in plan order).
    ordered = scores.assign(
        method=pd.Categorical(scores["method"], categories=list(plan["methods"]), ordered=True),
        metric=pd.Categorical(scores["metric"], categories=list(plan["metrics"]), ordered=True),
        variant=pd.Categorical(scores["variant"], categories=list(dict.fromkeys(scores["variant"])), ordered=True),
    ).sort_values(["dataset", "model", "metric", "method", "variant", "image"], kind="stable")
    _write_csv(in_scores_order(scores), out / "scores.csv")
    archive.write(out, collected.rows, collected.archived.get(out))
    if not curves.empty:
        _write_csv(curves.sort_values(statistics.GROUP + ["image", "x"], kind="stable"), out / "curves.csv")
    else:  # every row came from the archive: a curves.csv left from before would not match scores.csv
        (out / "curves.csv").unlink(missing_ok=True)
    seed = int(plan["config"]["seed"])
    ordered = ordered.astype({"method": str, "metric": str, "variant": str}).reset_index(drop=True)
    summary = statistics.summarise(ordered, seed=seed)
    _write_csv(summary, out / "summary.csv")
    warning = nonfinite_warning(scores)
    heading = f"# Summary: {plan['config']['name']}\n\n" + (f"**{warning}**\n\n" if warning else "")
    write_atomically(out / "summary.md", lambda t: t.write_text(heading + markdown_table(summary)))
    write_atomically(out / "summary.tex", lambda t: t.write_text(statistics.latex_table(summary)))
    if REFERENCE not in set(scores["method"]):
        print(f"warning: {REFERENCE!r} is not among the methods reported on, so significance.csv (every method "
              f"against {REFERENCE}) is empty: add {REFERENCE} to --methods for the paired tests", file=sys.stderr)
    significance = statistics.significance(scores, reference=REFERENCE)
    _write_csv(significance, out / "significance.csv")
    meta.write_meta(out, scores, plan)
    if draw_figures:
        figures.draw_all(out, scores, collected.curve_means, plan)
    return terminal_summary(summary, plan) + (f"\n\n{warning}" if warning else "")


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.report", description=__doc__.splitlines()[0])
    parser.add_argument("directories", nargs="+", type=Path, help="--out folders of benchmarks.run (shards of one plan)")
    parser.add_argument("--out", type=Path, help="where to write (default: the first directory)")
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE", help="import MODULE first")
    parser.add_argument("--no-figures", action="store_true")
    args = parser.parse_args(argv)
    try:
        import_plugins(args.plugin)
        out = args.out or args.directories[0]
        summary = build_report(args.directories, out, draw_figures=not args.no_figures)
        page.write_page(out)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(summary)
    print(f"\nreport in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
