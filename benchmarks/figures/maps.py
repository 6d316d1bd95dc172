"""Image grids: every method's example maps, and the paper's figure of its maps."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize


def _display_range(values: np.ndarray, signed: bool) -> tuple[float, float]:
    """Colour limits from the 99th percentile, so one extreme pixel does not wash out the map."""
    top = float(np.percentile(np.abs(values), 99)) or 1e-12
    return (-top, top) if signed else (0.0, top)


def _image_grid_size(examples: dict[str, Any]) -> float:
    """Inches per map: small images need no more than an inch, 224-px ones some detail."""
    return 1.0 if examples["images"].shape[-1] <= 64 else 1.35


def _image_title(examples: dict[str, Any], index: int) -> tuple[str, str]:
    class_names = examples["class_names"]
    label, predicted = int(examples["labels"][index]), int(examples["predicted"][index])
    if not examples.get("comparable", True):  # the model's classes are not the dataset's (ImageNet's, say)
        return f"{class_names[label]}\npred: class {predicted}", "black"
    return (f"{class_names[label]}\npred: {class_names[predicted]}", "black" if label == predicted else "tab:red")


def qualitative_grid(examples: dict[str, Any], methods_meta: dict[str, dict[str, str]], title: str) -> plt.Figure:
    """Every method that ran, one per row (family and direction beside the name), on the
    example images, one per column. Each map is divided by its own 99th-percentile |value|,
    so the two colourbars (signed maps centred at 0, one-sided from 0) hold for all."""
    names = [name for name in methods_meta if name in examples["maps"]]
    names += [name for name in examples["maps"] if name not in names]
    images = examples["images"].float().div(255).permute(0, 2, 3, 1).numpy()
    size = _image_grid_size(examples)
    rows, columns = 1 + len(names), len(images)
    figure, axes = plt.subplots(rows, columns, figsize=(size * columns + 2.0, size * rows + 1.4), squeeze=False,
                                layout="constrained")
    for column, image in enumerate(images):
        axes[0, column].imshow(image.squeeze(), cmap="gray" if image.shape[-1] == 1 else None)
        text, colour = _image_title(examples, column)
        axes[0, column].set_title(text, fontsize=8, color=colour)
    axes[0, 0].set_ylabel("image", rotation=0, ha="right", va="center", fontsize=9)
    signed_scale = Normalize(-1, 1)
    one_sided_scale = Normalize(0, 1)
    for row, name in enumerate(names, start=1):
        signed = examples["directions"][name] == "signed"
        for column in range(columns):
            values = examples["maps"][name][column].numpy()
            _, top = _display_range(values, signed=False)
            axes[row, column].imshow(values / top, cmap="RdBu_r" if signed else "magma",
                                     norm=signed_scale if signed else one_sided_scale)
        meta = methods_meta.get(name, {})
        axes[row, 0].set_ylabel(f"{name}\n{meta.get('family', '?')}, {examples['directions'][name]}",
                                rotation=0, ha="right", va="center", fontsize=8)
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
    scales = [(ScalarMappable(signed_scale, "RdBu_r"), "signed map / its 99th percentile |value|\n"
               "(red: brightening raises the score)")] * any(examples["directions"][n] == "signed" for n in names)
    scales += [(ScalarMappable(one_sided_scale, "magma"), "one-sided map / its 99th percentile")] * any(
        examples["directions"][n] != "signed" for n in names)
    for index, (mappable, label) in enumerate(scales):  # side by side under the last row
        below = axes[-1, index * columns // len(scales): (index + 1) * columns // len(scales) or 1]
        figure.colorbar(mappable, ax=below, location="bottom", shrink=0.9, label=label)
    figure.suptitle(f"Example maps: {title}", fontsize=10)
    return figure


def paper_maps_figure(examples: dict[str, Any], map_names: tuple[str, ...], rows: int, title: str) -> plt.Figure:
    """The paper's figure: each image, then its maps on one colour scale per row (the 99th
    percentile of the row's maps), so a one-sided map reads as the part of saliency it keeps."""
    names = [name for name in map_names if name in examples["maps"]]
    images = examples["images"][:rows].float().div(255).permute(0, 2, 3, 1).numpy()
    size = 1.5 if examples["images"].shape[-1] <= 64 else 1.7
    figure, axes = plt.subplots(len(images), 1 + len(names), figsize=(size * (1 + len(names)) + 1.0, size * len(images) + 0.9),
                                squeeze=False, layout="constrained")
    scale = Normalize(0, 1)
    for row, image in enumerate(images):
        axes[row, 0].imshow(image.squeeze(), cmap="gray" if image.shape[-1] == 1 else None)
        text, colour = _image_title(examples, row)
        axes[row, 0].set_ylabel(text, fontsize=8, color=colour)
        values = np.stack([examples["maps"][name][row].numpy() for name in names])
        _, high = _display_range(values, signed=False)
        for column, name in enumerate(names, start=1):
            axes[row, column].imshow(values[column - 1] / high, cmap="magma", norm=scale)
            if row == 0:
                axes[row, column].set_title(name, fontsize=9)
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
    figure.colorbar(ScalarMappable(scale, "magma"), ax=axes, location="right", shrink=0.6,
                    label="map / the row's 99th percentile")
    figure.suptitle(f"{title} (one colour scale per row)", fontsize=9)
    return figure
