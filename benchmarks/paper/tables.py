"""Tables 2-3, the paired comparisons, the headline tables and the timings, from the
parts :func:`benchmarks.paper.load_parts` loaded."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import pandas as pd

from benchmarks import statistics, store
from benchmarks.provenance import runs_still_held
from benchmarks.report import in_scores_order, terminal_summary
from benchmarks.statistics import image_count

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


def p_value(p: float) -> str:
    # scipy's p underflows to 0 long before 10,000 paired images stop being significant
    return f"{p:.1e}" if p > 0 else "< 1e-300"


def is_suite_part(part: dict[str, Any]) -> bool:
    """A part that ran more than the two deletions: the paired comparisons and the
    headline tables come from these."""
    return len(part["plan"]["metrics"]) > 2


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
    return in_scores_order(store.collect([folder], curves=False).scores)


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
