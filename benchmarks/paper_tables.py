"""Tables 2-3 of the paper (deletion AUC of allegiance, lower is better) beside ours.

    python -m benchmarks.paper_tables results/paper/deletion-cifar10-cnn [more run folders]

Reads each run's summary.csv (a ``paper-deletion`` config run) and writes
results/paper/tables2_3.csv and .md: the published value, ours under the paper's own
protocol (``deletion-paper``) with the difference, and ours under the fair ``deletion``
(every map deletes the same number of pixels per step; normalised AUC over [0, 1]).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional

import pandas as pd

from benchmarks.files import write_atomically
from benchmarks.paths import RESULTS_DIR

# (baseline, map) -> published AUC per (dataset, model) column, from the paper's Tables 2-3.
PUBLISHED = {
    ("black", "saliency"): (0.23, 0.23, 0.24, 0.26),
    ("black", "positive"): (0.14, 0.11, 0.12, 0.14),
    ("black", "active"): (0.15, 0.11, 0.16, 0.14),
    ("white", "saliency"): (0.21, 0.22, 0.21, 0.23),
    ("white", "negative"): (0.14, 0.12, 0.11, 0.18),
    ("white", "inactive"): (0.15, 0.12, 0.14, 0.16),
}
COLUMNS = (("cifar10", "cnn"), ("cifar10", "resnet18"), ("imagenette", "cnn"), ("imagenette", "resnet18"))


def build(summaries: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (baseline, method), published in PUBLISHED.items():
        for (dataset, model), paper_value in zip(COLUMNS, published):
            block = summaries[(summaries["dataset"] == dataset) & (summaries["model"] == model)
                              & (summaries["method"] == method)]
            ours = block[(block["metric"] == "deletion-paper") & (block["variant"] == baseline)]
            fair = block[(block["metric"] == "deletion") & (block["variant"] == f"{baseline}/allegiance")]
            rows.append({
                "baseline": baseline,
                "map": method,
                "dataset": dataset,
                "model": model,
                "published": paper_value,
                "paper_protocol": float(ours["mean"].iloc[0]) if len(ours) else float("nan"),
                "difference": float(ours["mean"].iloc[0]) - paper_value if len(ours) else float("nan"),
                "fair_deletion": float(fair["mean"].iloc[0]) if len(fair) else float("nan"),
                "n_images": int(ours["n"].iloc[0]) if len(ours) else 0,
            })
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame) -> str:
    shown = table[table["n_images"] > 0]
    if shown.empty:
        return "No paper-deletion runs found yet.\n"
    lines = [
        "# Tables 2-3: deletion AUC of allegiance (lower is better)",
        "",
        "`published`: the paper. `paper protocol`: our `deletion-paper` (the public code's rule: min-max",
        "normalised maps, pixels strictly above the rank threshold and non-zero, trapezoid over [0, 0.9]).",
        "`fair`: our `deletion` (the same number of pixels for every map at every step, ties in seeded",
        "random order; normalised AUC over [0, 1]).",
        "",
        shown.rename(columns={"paper_protocol": "paper protocol", "fair_deletion": "fair", "n_images": "images"})
        .to_markdown(index=False, floatfmt=".3f"),
        "",
    ]
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.paper_tables", description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="folders of paper-deletion runs (holding summary.csv)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "paper")
    args = parser.parse_args(argv)
    missing = [run for run in args.runs if not (run / "summary.csv").is_file()]
    if missing:
        print(f"error: no summary.csv in {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    table = build(pd.concat([pd.read_csv(run / "summary.csv", keep_default_na=False, na_values=[""]) for run in args.runs]))
    write_atomically(args.out / "tables2_3.csv", lambda t: table.to_csv(t, index=False, float_format="%.4f"))
    text = markdown(table)
    write_atomically(args.out / "tables2_3.md", lambda t: t.write_text(text))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
