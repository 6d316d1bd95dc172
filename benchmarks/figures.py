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

from benchmarks.plan import write_atomically  # noqa: E402

# The qualitative grid shows the paper's maps, then the baselines; sign-split variants
# and controls are in the tables, where they do not crowd out the pictures.
GRID_FAMILIES = ("paper", "baseline", "extension")
CURVE_FAMILIES_SHOWN = ("paper", "baseline", "control")


def _save(figure: plt.Figure, path: Path) -> None:
    for suffix in (".png", ".pdf"):
        target = path.with_suffix(suffix)
        write_atomically(target, lambda temporary: figure.savefig(temporary, format=suffix[1:], dpi=150, bbox_inches="tight"))
    plt.close(figure)


def _display_range(values: np.ndarray, signed: bool) -> tuple[float, float]:
    """Colour limits from the 99th percentile, so one extreme pixel does not wash out the map."""
    top = float(np.percentile(np.abs(values), 99)) or 1e-12
    return (-top, top) if signed else (0.0, top)


def qualitative_grid(examples: dict[str, Any], methods_meta: dict[str, dict[str, str]], title: str) -> plt.Figure:
    names = [n for n in examples["maps"] if methods_meta.get(n, {}).get("family") in GRID_FAMILIES]
    images = examples["images"].float().div(255).permute(0, 2, 3, 1).numpy()
    rows, columns = len(images), 1 + len(names)
    figure, axes = plt.subplots(rows, columns, figsize=(1.3 * columns, 1.4 * rows), squeeze=False)
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


def curve_figure(block: pd.DataFrame, methods_meta: dict[str, dict[str, str]], title: str) -> plt.Figure:
    shown = [m for m in dict.fromkeys(block["method"]) if methods_meta.get(m, {}).get("family") in CURVE_FAMILIES_SHOWN]
    block = block[block["method"].isin(shown)]
    variants = list(dict.fromkeys(block["variant"]))
    grid = sns.relplot(
        data=block, x="x", y="y", hue="method", hue_order=shown, col="variant", col_order=variants,
        col_wrap=min(4, len(variants)), kind="line", errorbar=("se", 1.96), height=2.4, aspect=1.2,
        facet_kws={"sharey": False}, palette="tab10" if len(shown) <= 10 else "tab20",
    )
    grid.set_titles("{col_name}", size=8)
    grid.figure.suptitle(f"{title} (mean, 95% normal band over images)", y=1.02, fontsize=9)
    return grid.figure


def bar_figure(block: pd.DataFrame, title: str) -> plt.Figure:
    block = block.assign(panel=block["metric"] + np.where(block["variant"] != "", "/" + block["variant"], ""))
    panels = list(dict.fromkeys(block["panel"]))
    grid = sns.catplot(
        data=block, x="value", y="method", col="panel", col_order=panels, col_wrap=min(4, len(panels)),
        kind="bar", errorbar=("se", 1.96), height=3.0, aspect=0.9, sharex=False, color="tab:blue",
    )
    grid.set_titles("{col_name}", size=8)
    grid.figure.suptitle(f"{title} (mean, 95% normal interval)", y=1.02, fontsize=9)
    return grid.figure


def draw_all(out: Path, scores: pd.DataFrame, curves: pd.DataFrame, plan: dict[str, Any]) -> None:
    folder = out / "figures"
    methods_meta, metrics_meta = plan["methods"], plan["metrics"]
    sns.set_theme(style="whitegrid", context="paper")
    for path in sorted((out / "examples").glob("*.pt")):
        examples = torch.load(path, weights_only=False)
        _save(qualitative_grid(examples, methods_meta, path.stem), folder / f"maps-{path.stem}")
    if not curves.empty:
        for (dataset, model, metric), block in curves.groupby(["dataset", "model", "metric"], sort=False):
            _save(curve_figure(block, methods_meta, f"{metric}: {dataset} / {model}"), folder / f"curves-{metric}-{dataset}-{model}")
    truth = scores[scores["metric"].map(lambda m: metrics_meta.get(m, {}).get("family") == "ground-truth")]
    for (dataset, model), block in truth.groupby(["dataset", "model"], sort=False):
        _save(bar_figure(block, f"ground truth: {dataset} / {model}"), folder / f"ground-truth-{dataset}-{model}")
