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
import torch  # noqa: E402

from benchmarks.files import write_atomically  # noqa: E402

# The qualitative grid shows the paper's maps, then the baselines; sign-split variants
# and controls are in the tables, where they do not crowd out the pictures.
GRID_FAMILIES = ("paper", "baseline", "extension")
CURVE_FAMILIES_SHOWN = ("paper", "baseline", "control")
MAX_PANELS = 8  # a metric's first variants, in its own order; every variant is in curves.csv


def _save(figure: plt.Figure, path: Path) -> None:
    for suffix in (".png", ".pdf"):
        target = path.with_suffix(suffix)
        write_atomically(target, lambda temporary: figure.savefig(temporary, format=suffix[1:], dpi=150))
    plt.close(figure)


def _display_range(values: np.ndarray, signed: bool) -> tuple[float, float]:
    """Colour limits from the 99th percentile, so one extreme pixel does not wash out the map."""
    top = float(np.percentile(np.abs(values), 99)) or 1e-12
    return (-top, top) if signed else (0.0, top)


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
    normal band. Aggregated with pandas first: seaborn's per-point statistics and
    matplotlib's tight bounding boxes took most of a report's time."""
    shown = [m for m in dict.fromkeys(block["method"]) if methods_meta.get(m, {}).get("family") in CURVE_FAMILIES_SHOWN]
    variants = list(dict.fromkeys(block["variant"]))[:MAX_PANELS]
    stats = (
        block[block["method"].isin(shown) & block["variant"].isin(variants)]
        .groupby(["variant", "method", "x"], sort=False)["y"]
        .agg(["mean", "sem"])
        .fillna({"sem": 0.0})
    )
    columns = min(4, len(variants))
    rows = -(-len(variants) // columns)
    figure, axes = plt.subplots(
        rows, columns, figsize=(3.0 * columns + 2.2, 2.4 * rows), squeeze=False, layout="constrained"
    )
    colours = dict(zip(shown, sns.color_palette("tab10" if len(shown) <= 10 else "tab20", len(shown))))
    axis_of = dict(zip(variants, axes.flat))
    for (variant, method), curve in stats.groupby(level=["variant", "method"], sort=False):
        x, mean, band = curve.index.get_level_values("x"), curve["mean"].to_numpy(), 1.96 * curve["sem"].to_numpy()
        axis_of[variant].plot(x, mean, color=colours[method], linewidth=1.2, label=method)
        axis_of[variant].fill_between(x, mean - band, mean + band, color=colours[method], alpha=0.15, linewidth=0)
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


def draw_all(out: Path, scores: pd.DataFrame, curves: pd.DataFrame, plan: dict[str, Any]) -> None:
    folder = out / "figures"
    methods_meta, metrics_meta = plan["methods"], plan["metrics"]
    sns.set_theme(style="whitegrid", context="paper")
    for path in sorted((out / "examples").glob("*.pt")):
        examples = torch.load(path, weights_only=False)
        _save(qualitative_grid(examples, methods_meta, path.stem), folder / f"maps-{path.stem}")
    if not curves.empty:
        for (dataset, model, metric), block in curves.groupby(["dataset", "model", "metric"], sort=False):
            figure = curve_figure(block, methods_meta, f"{metric}: {dataset} / {model}", metrics_meta[metric]["curve_x"])
            _save(figure, folder / f"curves-{metric}-{dataset}-{model}")
    truth = scores[scores["metric"].map(lambda m: metrics_meta.get(m, {}).get("family") == "ground-truth")]
    for (dataset, model), block in truth.groupby(["dataset", "model"], sort=False):
        _save(bar_figure(block, f"ground truth: {dataset} / {model}"), folder / f"ground-truth-{dataset}-{model}")
