"""Figures drawn from the tidy rows and the saved example maps.

Plots are PNG and PDF; image grids (example maps) are JPEG only, the one format that keeps
a grid of 224-px maps under a megabyte. Every file is written only when its bytes change,
and carries no date or software version, so a redrawn figure leaves git nothing to commit.

Curve figures answer one question per panel: the paper's maps against saliency and the
random control (at most seven lines), with every other family in a second figure of small
multiples (``-families``), one column per family and a shared y-axis per row.

Rooms: ``common`` (words, labels, the file writer), ``curves``, ``maps`` (image grids) and
``paper`` (the paper suite's figures).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# first: it selects matplotlib's file-only backend before anything draws
from benchmarks.figures.common import VARIANT_WORDS, explain_variant, save

import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from benchmarks import store  # noqa: E402
from benchmarks.figures.curves import bar_figure, curve_caption, curve_figure, families_figure
from benchmarks.figures.maps import paper_maps_figure, qualitative_grid
from benchmarks.figures.paper import (
    accuracy_by_epoch_figure, draw_accuracy_by_epoch, draw_paper_figures, randomisation_figure,
)

__all__ = [
    "VARIANT_WORDS", "accuracy_by_epoch_figure", "bar_figure", "curve_caption", "curve_figure", "draw_accuracy_by_epoch",
    "draw_all", "draw_paper_figures", "explain_variant", "families_figure", "paper_maps_figure", "qualitative_grid",
    "randomisation_figure",
]


def draw_all(out: Path, scores: pd.DataFrame, curve_means: pd.DataFrame, plan: dict[str, Any]) -> None:
    """``curve_means``: per curve point, ``mean`` and ``sem`` over images (store.Collected.curve_means)."""
    folder = out / "figures"
    methods_meta, metrics_meta = plan["methods"], plan["metrics"]
    sns.set_theme(style="whitegrid", context="paper")
    for path in store.example_files(out):
        examples = store.load_examples(path)
        save(qualitative_grid(examples, methods_meta, path.stem), folder / f"maps-{path.stem}", formats=("jpg",))
    if not curve_means.empty:
        for (dataset, model, metric), block in curve_means.groupby(["dataset", "model", "metric"], sort=False):
            arguments = (block, methods_meta, f"{metric}: {dataset} / {model}", metrics_meta[metric]["curve_x"],
                         metrics_meta[metric].get("higher_is_better", True))
            save(curve_figure(*arguments), folder / f"curves-{metric}-{store.pair_stem(dataset, model)}")
            others = families_figure(*arguments)
            if others is not None:
                save(others, folder / f"curves-{metric}-{store.pair_stem(dataset, model)}-families")
    truth = scores[scores["metric"].map(lambda m: metrics_meta.get(m, {}).get("family") == "ground-truth")]
    for (dataset, model), block in truth.groupby(["dataset", "model"], sort=False):
        save(bar_figure(block, f"ground truth: {dataset} / {model}", metrics_meta), folder / f"ground-truth-{store.pair_stem(dataset, model)}")
