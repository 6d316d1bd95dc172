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
import json
import sys
from pathlib import Path
from typing import Any, Optional

import pandas as pd

from benchmarks import page, statistics, table1
from benchmarks.files import write_atomically
from benchmarks.report import collect, image_count, in_scores_order, read_plan, runs_still_held, terminal_summary
from signed_saliency.errors import UserError

# (baseline, map) -> the published AUC per (dataset, model) column of the paper's Tables 2-3.
PUBLISHED = {
    ("black", "saliency"): (0.23, 0.23, 0.24, 0.26),
    ("black", "positive"): (0.14, 0.11, 0.12, 0.14),
    ("black", "active"): (0.15, 0.11, 0.16, 0.14),
    ("white", "saliency"): (0.21, 0.22, 0.21, 0.23),
    ("white", "negative"): (0.14, 0.12, 0.11, 0.18),
    ("white", "inactive"): (0.15, 0.12, 0.14, 0.16),
}
COLUMNS = (("cifar10", "cnn"), ("cifar10", "resnet18"), ("imagenette", "cnn"), ("imagenette", "resnet18"))
# The paper's figure: the image, then these maps, named as the paper names them.
FIGURE_MAPS = ("saliency", "positive", "negative", "active", "inactive")
FIGURE_ROWS = 4
RANDOMISATION_MEASURES = ("cascading/spearman", "cascading/ssim")
# The paper's question as paired comparisons (map, against): does the sign help over
# saliency, does "active" add to "positive", and is the gain the sign split's own (the
# positive or negative part of other attributions) rather than these maps'?
QUESTIONS = (
    ("positive", "saliency"), ("negative", "saliency"), ("active", "saliency"), ("inactive", "saliency"),
    ("active", "positive"), ("inactive", "negative"),
    ("positive", "gradient-positive"), ("negative", "gradient-negative"),
    ("integrated-gradients-positive", "positive"), ("smoothgrad-positive", "positive"),
    ("integrated-gradients-negative", "negative"), ("smoothgrad-negative", "negative"),
)


def _read_csv(path: Path) -> pd.DataFrame:
    # variants are "" for single-valued metrics: keep them as empty strings, not NaN
    return pd.read_csv(path, keep_default_na=False, na_values=[""]).fillna({"variant": ""})


def p_value(p: float) -> str:
    # scipy's p underflows to 0 long before 10,000 paired images stop being significant
    return f"{p:.1e}" if p > 0 else "< 1e-300"


def is_suite_part(part: dict[str, Any]) -> bool:
    """A part that ran more than the two deletions: the paired comparisons and the
    headline tables come from these."""
    return len(part["plan"]["metrics"]) > 2


def load_parts(parts: list[Path]) -> list[dict[str, Any]]:
    """Each finished part's plan, summary and significance (a part not yet reported is skipped)."""
    loaded = []
    for folder in parts:
        if not (folder / "summary.csv").is_file():
            continue
        loaded.append({
            "folder": folder,
            "plan": read_plan(folder),
            "summary": _read_csv(folder / "summary.csv"),
            "significance": _read_csv(folder / "significance.csv"),
            "manifest": json.loads((folder / "manifest.json").read_text()) if (folder / "manifest.json").is_file() else {},
        })
    return loaded


def _deletion_part(loaded: list[dict[str, Any]], dataset: str, model: str) -> Optional[dict[str, Any]]:
    """The first part (in the suite's order) that ran the paper's deletion on this model:
    the paper suite lists its whole-test-set deletion part first."""
    for part in loaded:
        summary = part["summary"]
        if ((summary["dataset"] == dataset) & (summary["model"] == model) & (summary["metric"] == "deletion-paper")).any():
            return part
    return None


def tables2_3(loaded: list[dict[str, Any]]) -> pd.DataFrame:
    rows = []
    for (baseline, method), published in PUBLISHED.items():
        for (dataset, model), paper_value in zip(COLUMNS, published):
            row = {"baseline": baseline, "map": method, "dataset": dataset, "model": model, "published": paper_value}
            part = _deletion_part(loaded, dataset, model)
            if part is not None:
                summary, significance = part["summary"], part["significance"]

                def pick(frame: pd.DataFrame, metric: str, variant: str) -> pd.DataFrame:
                    return frame[(frame["dataset"] == dataset) & (frame["model"] == model) & (frame["method"] == method)
                                 & (frame["metric"] == metric) & (frame["variant"] == variant)]

                ours = pick(summary, "deletion-paper", baseline)
                fair = pick(summary, "deletion", f"{baseline}/allegiance")
                test = pick(significance, "deletion", f"{baseline}/allegiance")
                if len(ours):
                    row |= {"paper_protocol": ours["mean"].iloc[0], "difference": ours["mean"].iloc[0] - paper_value,
                            "n_images": int(ours["n"].iloc[0])}
                if len(fair):
                    row |= {"fair": fair["mean"].iloc[0], "fair_ci_low": fair["ci_low"].iloc[0],
                            "fair_ci_high": fair["ci_high"].iloc[0]}
                if len(test):
                    row |= {"fair_p_holm_vs_saliency": test["p_holm"].iloc[0],
                            "fair_effect_vs_saliency": test["effect_size"].iloc[0]}
            rows.append(row)
    columns = ["baseline", "map", "dataset", "model", "published", "paper_protocol", "difference", "fair",
               "fair_ci_low", "fair_ci_high", "fair_p_holm_vs_saliency", "fair_effect_vs_saliency", "n_images"]
    return pd.DataFrame(rows).reindex(columns=columns).astype({"n_images": "Int64"})


def tables2_3_markdown(table: pd.DataFrame) -> str:
    def number(value: Any, fmt: str) -> str:
        return "-" if pd.isna(value) else format(value, fmt)

    header = ["deleted to", "map", "dataset / model", "published", "paper protocol", "difference",
              "fair [95% CI]", "fair vs saliency: p (Holm), effect", "images"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in table.itertuples(index=False):
        ran = not pd.isna(row.paper_protocol)
        fair = (f"{row.fair:.3f} [{row.fair_ci_low:.3f}, {row.fair_ci_high:.3f}]" if not pd.isna(row.fair) else "-")
        test = (f"{p_value(row.fair_p_holm_vs_saliency)}, {row.fair_effect_vs_saliency:+.2f}"
                if not pd.isna(row.fair_p_holm_vs_saliency) else "-")
        lines.append("| " + " | ".join([
            row.baseline, row.map, f"{row.dataset} / {row.model}", f"{row.published:.2f}",
            number(row.paper_protocol, ".3f") if ran else "not run yet", number(row.difference, "+.3f"),
            fair, test, number(row.n_images, ".0f"),
        ]) + " |")
    return "\n".join([
        "# Tables 2-3: deletion AUC of allegiance (lower is better)",
        "",
        "`paper protocol`: our `deletion-paper`, the public code's rule (min-max normalised maps; pixels",
        "strictly above the rank threshold and non-zero are deleted; trapezoid over [0, 0.9]).",
        "`fair`: our `deletion` (the same number of pixels for every map at every step, ties in seeded",
        "random order; normalised AUC over [0, 1]), with a paired Wilcoxon signed-rank test against",
        "saliency over the same images (Holm-corrected p; matched-pairs rank-biserial effect, negative:",
        "the map's curve falls faster than saliency's).",
        "",
        *lines,
        "",
    ])


def per_image_scores(folder: Path) -> pd.DataFrame:
    """A part's per-image rows from its shards or, in a fresh clone, its committed archive."""
    return in_scores_order(collect([folder], curves=False).scores)


def comparisons(loaded: list[dict[str, Any]], rows: dict[Path, pd.DataFrame]) -> pd.DataFrame:
    """:data:`QUESTIONS` on every variant of every metric of the parts that ran more than
    deletion (``rows``: their :func:`per_image_scores` by folder), with the first map's
    headline variant marked (its first in the metric's order)."""
    frames = []
    for part in filter(is_suite_part, loaded):
        tests = statistics.paired_comparisons(rows[part["folder"]], list(QUESTIONS))
        first_variant = part["summary"].drop_duplicates(["dataset", "model", "method", "metric"])
        first_variant = first_variant.set_index(["dataset", "model", "method", "metric"])["variant"]
        keys = list(zip(tests["dataset"], tests["model"], tests["method"], tests["metric"]))
        tests["headline"] = [first_variant.get(key) == variant for key, variant in zip(keys, tests["variant"])]
        means = part["summary"].set_index(["dataset", "model", "method", "metric", "variant"])["mean"]
        tests["mean"] = [means.get(key) for key in zip(tests["dataset"], tests["model"], tests["method"], tests["metric"], tests["variant"])]
        tests["reference_mean"] = [means.get(key) for key in zip(tests["dataset"], tests["model"], tests["reference"], tests["metric"], tests["variant"])]
        frames.append(tests)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def comparisons_markdown(tests: pd.DataFrame, plan_metrics: dict[str, Any]) -> str:
    if tests.empty:
        return "# The paper's question, paired\n\nNo suite part has finished yet.\n"
    parts = [
        "# The paper's question, paired",
        "",
        "Each cell: the map's mean, the reference's mean on the same images, and the matched-pairs",
        "rank-biserial effect (+1: the map scores higher on every image) with its Holm-corrected",
        "Wilcoxon p (`*` p < 0.01). Headline variant of each metric for the first map; the arrow",
        "says which way is better. Every variant: comparisons.csv.",
        "",
    ]
    shown = tests[tests["headline"]]
    for (dataset, model), block in shown.groupby(["dataset", "model"], sort=False):
        block = block.assign(
            pair=block["method"] + " vs " + block["reference"],
            column=[f"{metric}{'↑' if plan_metrics.get(metric, {}).get('higher_is_better') else '↓'}"
                    for metric in block["metric"]],
            cell=[f"{m:.3f} / {r:.3f}, {e:+.2f}{'*' if p < 0.01 else ''}"
                  for m, r, e, p in zip(block["mean"], block["reference_mean"], block["effect_size"], block["p_holm"])],
        )
        table = block.pivot(index="pair", columns="column", values="cell")
        table = table.reindex(index=list(dict.fromkeys(block["pair"])), columns=list(dict.fromkeys(block["column"])))
        parts += [f"## {dataset} / {model} ({image_count(block['n'])} images)", "", table.fillna("-").rename_axis(columns=None).reset_index()
                  .to_markdown(index=False), ""]
    return "\n".join(parts)


def headline(loaded: list[dict[str, Any]]) -> str:
    """Every part's method-by-metric table except the deletion-only ones."""
    blocks = [
        f"## {part['folder'].name}\n\n```{terminal_summary(part['summary'], part['plan'])}\n```\n"
        for part in filter(is_suite_part, loaded)
    ]
    return "# Every method under every metric (headline variant; all variants with CIs in each part's summary.md)\n\n" + "\n".join(blocks)


def timings(loaded: list[dict[str, Any]]) -> pd.DataFrame:
    """Seconds per (part, stage) over every invocation that computed shards: the cost of
    regenerating the results, however many sessions a resumed run took. A part cannot hold
    more shards than its plan names, which also drops the runs of manifests written before
    they tracked lost shards."""
    rows = []
    for part in loaded:
        for invocation in runs_still_held(part["manifest"].get("runs", []), len(part["plan"]["shards"])):
            stages = invocation["stage_seconds"]
            for stage, seconds in {**stages, "other": invocation["wall_seconds"] - sum(stages.values())}.items():
                rows.append({"part": part["folder"].name, "stage": stage, "seconds": max(seconds, 0.0),
                             "threads": invocation["torch_threads"]})
    frame = pd.DataFrame(rows, columns=["part", "stage", "seconds", "threads"])
    frame = frame.groupby(["part", "stage", "threads"], as_index=False, sort=False)["seconds"].sum()
    total = frame["seconds"].sum()
    return frame.assign(share=frame["seconds"] / total if total else 0.0)


def timings_markdown(frame: pd.DataFrame, loaded: list[dict[str, Any]]) -> str:
    devices = sorted({str(part["manifest"].get("device", "?")) for part in loaded})
    total = frame["seconds"].sum()
    shown = frame.sort_values("seconds", ascending=False).assign(
        seconds=lambda f: f["seconds"].round(1), share=lambda f: (100 * f["share"]).round(1))
    return (f"# Wall time: {total / 60:.1f} min ({', '.join(devices)}), summed over the runs that computed shards\n\n"
            + shown.rename(columns={"share": "share %"}).to_markdown(index=False) + "\n")


def write(out: Path, parts: list[Path]) -> str:
    """Build every table and figure; return the text to print."""
    from benchmarks import figures

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
        from benchmarks.config import SuiteConfig, load_config

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


if __name__ == "__main__":
    sys.exit(main())
