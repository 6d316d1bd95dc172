"""Figures (PNG and PDF) drawn from the tidy rows and the saved example maps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers or CI

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from benchmarks import store  # noqa: E402
from benchmarks.files import write_atomically  # noqa: E402

# The qualitative grid shows the paper's maps, then the baselines; sign-split variants
# and controls are in the tables, where they do not crowd out the pictures.
GRID_FAMILIES = ("paper", "baseline", "extension")
CURVE_FAMILIES_SHOWN = ("paper", "baseline", "control")
DPI = 100  # enough for a 1.5-inch panel; 150 made the Imagenette grids 5-9 MB
MAX_PANELS = 8  # a metric's first variants, in its own order; every variant is in curves.csv


def _save(figure: plt.Figure, path: Path) -> None:
    """PNG and PDF. Images are drawn at the figure's dpi in both, not embedded at their own
    resolution: a grid of 224-px maps would otherwise make a PDF of several megabytes."""
    for image in figure.findobj(matplotlib.image.AxesImage):
        image.set_rasterized(True)
    # no creation date in the PDF: a figure redrawn from the same rows is the same file
    for suffix, metadata in ((".png", None), (".pdf", {"CreationDate": None})):
        target = path.with_suffix(suffix)
        write_atomically(
            target, lambda temporary: figure.savefig(temporary, format=suffix[1:], dpi=DPI, metadata=metadata)
        )
    plt.close(figure)


def _display_range(values: np.ndarray, signed: bool) -> tuple[float, float]:
    """Colour limits from the 99th percentile, so one extreme pixel does not wash out the map."""
    top = float(np.percentile(np.abs(values), 99)) or 1e-12
    return (-top, top) if signed else (0.0, top)


def _palette(methods: list[str]) -> dict[str, Any]:
    return dict(zip(methods, sns.color_palette("tab10" if len(methods) <= 10 else "tab20", len(methods))))


def _mean_band(axis: plt.Axes, curve: pd.DataFrame, colour: Any, label: str) -> None:
    """One method's mean curve with its 95% normal band, from ``mean``/``sem`` indexed by x."""
    x, mean, band = curve.index.get_level_values("x"), curve["mean"].to_numpy(), 1.96 * curve["sem"].to_numpy()
    axis.plot(x, mean, color=colour, linewidth=1.2, label=label)
    axis.fill_between(x, mean - band, mean + band, color=colour, alpha=0.15, linewidth=0)


def qualitative_grid(examples: dict[str, Any], methods_meta: dict[str, dict[str, str]], title: str) -> plt.Figure:
    names = [n for n in examples["maps"] if methods_meta.get(n, {}).get("family") in GRID_FAMILIES]
    images = examples["images"].float().div(255).permute(0, 2, 3, 1).numpy()
    rows, columns = len(images), 1 + len(names)
    figure, axes = plt.subplots(rows, columns, figsize=(1.3 * columns, 1.4 * rows + 0.6), squeeze=False, layout="constrained")
    class_names = examples["class_names"]
    for row in range(rows):
        axes[row, 0].imshow(images[row].squeeze(), cmap="gray" if images.shape[-1] == 1 else None)
        label, predicted = int(examples["labels"][row]), int(examples["predicted"][row])
        axes[row, 0].set_ylabel(f"{class_names[label]}\npred: {class_names[predicted]}", fontsize=6)
        for column, name in enumerate(names, start=1):
            values = examples["maps"][name][row].numpy()
            signed = examples["directions"][name] == "signed"
            low, high = _display_range(values, signed)
            axes[row, column].imshow(values, cmap="RdBu_r" if signed else "magma", vmin=low, vmax=high)
            if row == 0:
                axes[row, column].set_title(name, fontsize=7, rotation=30, ha="left")
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
    figure.suptitle(f"{title}\n(red/blue: signed maps, + red; magma: one-sided maps; per-map 99th-percentile scale)", fontsize=8)
    return figure


def curve_figure(block: pd.DataFrame, methods_meta: dict[str, dict[str, str]], title: str, x_label: str) -> plt.Figure:
    """One panel per variant, one line per method: the mean curve over images with a 95%
    normal band, from per-point ``mean`` and ``sem`` (pooled beforehand, not by seaborn:
    the per-image points are not all on one machine, and seaborn's per-point statistics
    took most of a report's time)."""
    shown = [m for m in dict.fromkeys(block["method"]) if methods_meta.get(m, {}).get("family") in CURVE_FAMILIES_SHOWN]
    variants = list(dict.fromkeys(block["variant"]))[:MAX_PANELS]
    stats = block[block["method"].isin(shown) & block["variant"].isin(variants)].set_index(["variant", "method", "x"])
    columns = min(4, len(variants))
    rows = -(-len(variants) // columns)
    figure, axes = plt.subplots(
        rows, columns, figsize=(3.0 * columns + 2.2, 2.4 * rows), squeeze=False, layout="constrained"
    )
    colours = _palette(shown)
    axis_of = dict(zip(variants, axes.flat))
    for (variant, method), curve in stats.groupby(level=["variant", "method"], sort=False):
        _mean_band(axis_of[variant], curve, colours[method], method)
    for variant, axis in axis_of.items():
        axis.set_title(variant or "value", fontsize=8)
        axis.set_xlabel(x_label, fontsize=7)
        axis.tick_params(labelsize=7)
    for axis in axes.flat[len(variants):]:
        axis.set_visible(False)
    legend = {}
    for axis in axis_of.values():
        for handle, label in zip(*axis.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    ordered = [m for m in shown if m in legend]
    figure.legend([legend[m] for m in ordered], ordered, loc="outside right center", fontsize=7, frameon=False)
    figure.suptitle(f"{title} (mean over images, 95% normal band)", fontsize=9)
    return figure


def bar_figure(block: pd.DataFrame, title: str) -> plt.Figure:
    """One panel per metric variant: each method's mean with its 95% normal interval."""
    block = block.assign(panel=block["metric"] + np.where(block["variant"] != "", "/" + block["variant"], ""))
    stats = block.groupby(["panel", "method"], sort=False)["value"].agg(["mean", "sem"]).fillna({"sem": 0.0})
    panels = list(dict.fromkeys(block["panel"]))
    methods_order = list(dict.fromkeys(block["method"]))
    columns = min(4, len(panels))
    rows = -(-len(panels) // columns)
    figure, axes = plt.subplots(
        rows, columns, figsize=(2.6 * columns + 1.5, 0.16 * len(methods_order) * rows + 1.0),
        squeeze=False, sharey=True, layout="constrained",
    )
    for axis, panel in zip(axes.flat, panels):
        values = stats.loc[panel].reindex(methods_order)
        axis.barh(np.arange(len(methods_order)), values["mean"], xerr=1.96 * values["sem"],
                  color="tab:blue", error_kw={"linewidth": 0.8})
        axis.set_title(panel, fontsize=8)
        axis.tick_params(labelsize=7)
    axes[0, 0].set_yticks(np.arange(len(methods_order)), methods_order)
    axes[0, 0].invert_yaxis()
    for axis in axes.flat[len(panels):]:
        axis.set_visible(False)
    figure.suptitle(f"{title} (mean, 95% normal interval; NaN where a map makes no such claim)", fontsize=9)
    return figure


def draw_all(out: Path, scores: pd.DataFrame, curve_means: pd.DataFrame, plan: dict[str, Any]) -> None:
    """``curve_means``: per curve point, ``mean`` and ``sem`` over images (store.Collected.curve_means)."""
    folder = out / "figures"
    methods_meta, metrics_meta = plan["methods"], plan["metrics"]
    sns.set_theme(style="whitegrid", context="paper")
    for path in store.example_files(out):
        examples = store.load_examples(path)
        _save(qualitative_grid(examples, methods_meta, path.stem), folder / f"maps-{path.stem}")
    if not curve_means.empty:
        for (dataset, model, metric), block in curve_means.groupby(["dataset", "model", "metric"], sort=False):
            figure = curve_figure(block, methods_meta, f"{metric}: {dataset} / {model}", metrics_meta[metric]["curve_x"])
            _save(figure, folder / f"curves-{metric}-{dataset}-{model}")
    truth = scores[scores["metric"].map(lambda m: metrics_meta.get(m, {}).get("family") == "ground-truth")]
    for (dataset, model), block in truth.groupby(["dataset", "model"], sort=False):
        _save(bar_figure(block, f"ground truth: {dataset} / {model}"), folder / f"ground-truth-{dataset}-{model}")


def paper_maps_figure(examples: dict[str, Any], map_names: tuple[str, ...], rows: int, title: str) -> plt.Figure:
    """The paper's figure: each image, then its maps on one colour scale per row (the 99th
    percentile of the row's maps), so a one-sided map reads as the part of saliency it keeps."""
    names = [name for name in map_names if name in examples["maps"]]
    images = examples["images"][:rows].float().div(255).permute(0, 2, 3, 1).numpy()
    figure, axes = plt.subplots(len(images), 1 + len(names), figsize=(1.5 * (1 + len(names)), 1.5 * len(images) + 0.5),
                                squeeze=False, layout="constrained")
    class_names = examples["class_names"]
    for row, image in enumerate(images):
        axes[row, 0].imshow(image.squeeze(), cmap="gray" if image.shape[-1] == 1 else None)
        label, predicted = int(examples["labels"][row]), int(examples["predicted"][row])
        axes[row, 0].set_ylabel(class_names[label] + ("" if label == predicted else f"\n(pred: {class_names[predicted]})"),
                                fontsize=7)
        values = np.stack([examples["maps"][name][row].numpy() for name in names])
        _, high = _display_range(values, signed=False)
        for column, name in enumerate(names, start=1):
            axes[row, column].imshow(values[column - 1], cmap="magma", vmin=0.0, vmax=high)
            if row == 0:
                axes[row, column].set_title(name, fontsize=8)
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
    figure.suptitle(f"{title} (one colour scale per row)", fontsize=8)
    return figure


def randomisation_figure(
    curve_means: pd.DataFrame, methods_meta: dict[str, dict[str, str]], measures: tuple[str, ...], x_label: str
) -> plt.Figure:
    """Model-parameter randomisation of every model: one column per (dataset, model), one row per
    similarity measure; a map that stays similar as layers are re-initialised ignores the model."""
    shown = [m for m in dict.fromkeys(curve_means["method"]) if methods_meta.get(m, {}).get("family") in CURVE_FAMILIES_SHOWN]
    curve_means = curve_means[curve_means["method"].isin(shown) & curve_means["variant"].isin(measures)]
    stats = curve_means.set_index(["dataset", "model", "variant", "method", "x"])
    panels = list(dict.fromkeys(zip(curve_means["dataset"], curve_means["model"])))
    figure, axes = plt.subplots(len(measures), len(panels), figsize=(3.0 * len(panels) + 2.0, 2.5 * len(measures)),
                                squeeze=False, layout="constrained")
    colours = _palette(shown)
    for (dataset, model, variant, method), curve in stats.groupby(level=["dataset", "model", "variant", "method"], sort=False):
        _mean_band(axes[measures.index(variant), panels.index((dataset, model))], curve, colours[method], method)
    for row, measure in enumerate(measures):
        for column, (dataset, model) in enumerate(panels):
            axes[row, column].set_title(f"{dataset} / {model}: {measure}", fontsize=8)
            axes[row, column].set_xlabel(x_label, fontsize=7)
            axes[row, column].tick_params(labelsize=7)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside right center", fontsize=7, frameon=False)
    figure.suptitle("Model-parameter randomisation (cascading):\nsimilarity to the trained model's map (mean, 95% band)",
                    fontsize=9)
    return figure


def draw_accuracy_by_epoch(folder: Path, frame: pd.DataFrame) -> None:
    sns.set_theme(style="whitegrid", context="paper")
    _save(accuracy_by_epoch_figure(frame), folder / "accuracy-by-epoch")


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
        axis.set_ylabel("test accuracy")
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
            _save(paper_maps_figure(examples, map_names, rows, path.stem), folder / f"paper-maps-{path.stem}")
            _save(paper_maps_figure(examples, map_names, len(examples["images"]), f"{path.stem}: one image per class"),
                  folder / f"classes-{path.stem}")
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
        _save(randomisation_figure(pd.concat(curves, ignore_index=True), methods_meta, measures, x_label),
              folder / "randomisation")
