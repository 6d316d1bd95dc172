"""The paper's tables and figures, built from the parts of a ``--config paper`` run.

    python -m benchmarks.run --config paper        # runs the parts, then this
    python -m benchmarks.paper results/paper       # rebuild from finished parts (e.g. merged shards)
    python -m benchmarks.paper OUT --config SUITE  # the same for another suite with after = "benchmarks.paper"

Writes into the run folder:

- ``table1.csv/.md``: test accuracy of the shipped checkpoints beside the paper's;
- ``tables2_3.csv/.md``: deletion AUC of allegiance under the paper's protocol
  (``deletion-paper``) beside the published value, and under the fair ``deletion`` with a
  paired Wilcoxon test against saliency;
- ``headline.md``: every method under every metric, headline variant, per (dataset, model);
- ``comparisons.csv/.md``: the paper's question as paired tests (positive vs saliency,
  active vs positive, the sign split of other attributions vs positive, ...);
- ``figures/accuracy-by-epoch``: the test accuracy after every epoch of the runs that tracked it;
- ``figures/paper-maps-*``: the paper's figure (image, saliency, positive, negative, active,
  inactive), ``figures/classes-*``: one correctly classified image per class, and
  ``figures/randomisation``: the model-randomisation sanity check of every model;
- ``timings.csv/.md``: wall time of every part's stages and their share of the whole.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Optional

from benchmarks import figures, page, store, table1
from benchmarks.config import SuiteConfig, load_config
from benchmarks.files import write_atomically
from benchmarks.page.folder import read_table
from benchmarks.provenance import read_manifest
from benchmarks.paper.tables import (
    comparisons,
    comparisons_markdown,
    headline,
    is_suite_part,
    per_image_scores,
    tables2_3,
    tables2_3_markdown,
    timings,
    timings_markdown,
)
from signed_saliency.errors import UserError

# The paper's figure: the image, then these maps, named as the paper names them.
FIGURE_MAPS = ("saliency", "positive", "negative", "active", "inactive")
FIGURE_ROWS = 4
RANDOMISATION_MEASURES = ("cascading/spearman", "cascading/ssim")


def load_parts(parts: list[Path]) -> list[dict[str, Any]]:
    """Each finished part's plan, summary and significance (a part not yet reported is skipped)."""
    loaded = []
    for folder in parts:
        if not (folder / "summary.csv").is_file():
            continue
        loaded.append({
            "folder": folder,
            "plan": store.read_plan(folder),
            "summary": read_table(folder / "summary.csv"),
            "significance": read_table(folder / "significance.csv"),
            "manifest": read_manifest(folder),
        })
    return loaded


def write(out: Path, parts: list[Path]) -> str:
    """Build every table and figure; return the text to print."""
    loaded = load_parts(parts)
    accuracy_text = table1.write(out, table1.table())
    by_epoch = table1.accuracy_by_epoch()
    if not by_epoch.empty:
        figures.draw_accuracy_by_epoch(out / "figures", by_epoch)
    if not loaded:
        return accuracy_text + "\nNo part has finished shards yet: Tables 2-3 and the figures wait for them.\n"
    deletion = tables2_3(loaded)
    deletion_text = tables2_3_markdown(deletion)
    write_atomically(out / "tables2_3.csv", lambda t: deletion.to_csv(t, index=False, float_format="%.4f"))
    write_atomically(out / "tables2_3.md", lambda t: t.write_text(deletion_text))
    write_atomically(out / "headline.md", lambda t: t.write_text(headline(loaded)))
    # The paired tests need per-image rows: a part whose shards are gone and whose archive
    # was not committed has only its summary, and comparing nothing would overwrite the
    # committed comparisons with an empty table.
    rows = {part["folder"]: per_image_scores(part["folder"]) for part in filter(is_suite_part, loaded)}
    without_rows = [folder.name for folder, scores in rows.items() if scores.empty]
    if without_rows:
        print(f"warning: {', '.join(without_rows)} has a summary but no per-image rows (no shards/ and no "
              "archive/; rerunning the part here brings them back): comparisons.csv/.md left as they are",
              file=sys.stderr)
    else:
        tests = comparisons(loaded, rows)
        plan_metrics = {name: meta for part in loaded for name, meta in part["plan"]["metrics"].items()}
        write_atomically(out / "comparisons.csv", lambda t: tests.to_csv(t, index=False, float_format="%.6g"))
        write_atomically(out / "comparisons.md", lambda t: t.write_text(comparisons_markdown(tests, plan_metrics)))
    times = timings(loaded)
    times_text = timings_markdown(times, loaded)
    write_atomically(out / "timings.csv", lambda t: times.to_csv(t, index=False, float_format="%.2f"))
    write_atomically(out / "timings.md", lambda t: t.write_text(times_text))
    figures.draw_paper_figures(out / "figures", [part["folder"] for part in loaded], FIGURE_MAPS, FIGURE_ROWS,
                               RANDOMISATION_MEASURES)
    page.write_page(out, parts)
    return "\n".join([accuracy_text, deletion_text, times_text])


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.paper", description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the --out folder of the suite's run (its parts are its subfolders)")
    # The suite names its parts and their order (Tables 2-3 take the first part that ran
    # a model's deletion), which the folders alone do not say.
    parser.add_argument("--config", default="paper", metavar="SUITE",
                        help='the suite config run into OUT, one with after = "benchmarks.paper" (default: paper)')
    args = parser.parse_args(argv)
    try:
        suite = load_config(args.config)
        if not isinstance(suite, SuiteConfig):
            raise UserError(f"config {args.config!r} is not a suite (it has no parts): --config names the suite run into OUT")
        parts = [args.out / Path(part).stem for part in suite.parts]
        if not any((part / "summary.csv").is_file() for part in parts):
            raise UserError(f"no finished part in {args.out}: "
                            f"run python -m benchmarks.run --config {args.config} --out {args.out} first")
        text = write(args.out, parts)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(text)
    return 0
