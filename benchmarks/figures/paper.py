"""The paper suite's figures: its maps per (dataset, model), the randomisation check of
every model, and accuracy by epoch."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from benchmarks import store
from benchmarks.figures.common import LINE_COLOURS, MAIN_FAMILY, REFERENCE_STYLE, figure_legend, mean_band, save, y_label
from benchmarks.figures.maps import paper_maps_figure


def randomisation_figure(
    curve_means: pd.DataFrame, methods_meta: dict[str, dict[str, str]], measures: tuple[str, ...], x_label: str
) -> plt.Figure:
    """Model-parameter randomisation of every model: one column per (dataset, model), one row per
    similarity measure, the paper's maps beside the random control; a map that stays
    similar as layers are re-initialised ignores the model."""
    shown = [m for m in dict.fromkeys(curve_means["method"])
             if methods_meta.get(m, {}).get("family") == MAIN_FAMILY or m in REFERENCE_STYLE]
    curve_means = curve_means[curve_means["method"].isin(shown) & curve_means["variant"].isin(measures)]
    stats = curve_means.set_index(["dataset", "model", "variant", "method", "x"])
    panels = list(dict.fromkeys(zip(curve_means["dataset"], curve_means["model"])))
    figure, axes = plt.subplots(len(measures), len(panels), figsize=(3.0 * len(panels) + 2.4, 2.6 * len(measures)),
                                squeeze=False, sharey="row", layout="constrained")
    colours = dict(zip([m for m in shown if m not in REFERENCE_STYLE], LINE_COLOURS))
    for (dataset, model, variant, method), curve in stats.groupby(level=["dataset", "model", "variant", "method"], sort=False):
        style = REFERENCE_STYLE.get(method, {"color": colours.get(method), "linestyle": "-"})
        mean_band(axes[measures.index(variant), panels.index((dataset, model))], curve, method, **style)
    for row, measure in enumerate(measures):
        for column, (dataset, model) in enumerate(panels):
            axis = axes[row, column]
            axis.set_title(f"{dataset} / {model}: {measure}", fontsize=8)
            axis.set_xlabel(x_label, fontsize=7)
            axis.tick_params(labelsize=7)
        axes[row, 0].set_ylabel(y_label(measure, False, False), fontsize=8)
    figure_legend(figure, axes.flat, shown, {})
    figure.suptitle("Model-parameter randomisation, cascading (layers re-initialised from the output down):\n"
                    "similarity of each map to the trained model's (mean, 95% band)", fontsize=9)
    return figure


def draw_accuracy_by_epoch(folder: Path, frame: pd.DataFrame) -> None:
    sns.set_theme(style="whitegrid", context="paper")
    save(accuracy_by_epoch_figure(frame), folder / "accuracy-by-epoch")


def accuracy_by_epoch_figure(frame: pd.DataFrame) -> plt.Figure:
    """Test accuracy after every epoch of each tracked run, one panel per (dataset, model),
    with the paper's final-epoch accuracy dashed: how far Table 1's single number moves."""
    panels = list(dict.fromkeys(zip(frame["dataset"], frame["model"])))
    figure, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.0), squeeze=False, layout="constrained")
    for axis, (dataset, model) in zip(axes[0], panels):
        block = frame[(frame["dataset"] == dataset) & (frame["model"] == model)]
        sns.lineplot(block, x="epoch", y="accuracy", hue="run", marker="o", markersize=3, linewidth=1.0, ax=axis)
        paper = block["paper_accuracy"].dropna()
        if len(paper):
            axis.axhline(paper.iloc[0], color="black", linestyle="--", linewidth=0.8, label=f"paper: {paper.iloc[0]:.4f}")
        axis.set_title(f"{dataset} / {model}", fontsize=9)
        axis.set_ylabel("test accuracy (higher is better)")
        axis.legend(fontsize=7, frameon=False)
    return figure


def draw_paper_figures(
    folder: Path, parts: list[Path], map_names: tuple[str, ...], rows: int, measures: tuple[str, ...]
) -> None:
    """The paper's figure and one example per class for every (dataset, model) with saved
    examples, and the randomisation figure of every model that ran the sanity check."""
    sns.set_theme(style="white", context="paper")
    drawn = set()
    for part in parts:
        for path in store.example_files(part):
            if path.stem in drawn:
                continue
            drawn.add(path.stem)
            examples = store.load_examples(path)
            save(paper_maps_figure(examples, map_names, rows, path.stem), folder / f"paper-maps-{path.stem}",
                  formats=("jpg",))
            save(paper_maps_figure(examples, map_names, len(examples["images"]), f"{path.stem}: one image per class"),
                  folder / f"classes-{path.stem}", formats=("jpg",))
    # One randomisation figure, a column per model, gathered from every part that ran the
    # check; a model checked in two parts is drawn from the first, as Tables 2-3 take a
    # model's deletion from the first part that ran it.
    curves, methods_meta, x_label, drawn_models = [], {}, "", set()
    for part in parts:
        plan = store.read_plan(part)
        if "randomisation" not in plan["metrics"]:
            continue
        curve_means = store.collect([part], only_metrics={"randomisation"}).curve_means
        models = zip(curve_means["dataset"], curve_means["model"])
        curve_means = curve_means[np.array([model not in drawn_models for model in models], dtype=bool)]
        if curve_means.empty:
            continue
        drawn_models |= set(zip(curve_means["dataset"], curve_means["model"]))
        curves.append(curve_means)
        methods_meta = {**plan["methods"], **methods_meta}
        x_label = x_label or plan["metrics"]["randomisation"]["curve_x"]
    if curves:
        sns.set_theme(style="whitegrid", context="paper")
        save(randomisation_figure(pd.concat(curves, ignore_index=True), methods_meta, measures, x_label),
              folder / "randomisation")
