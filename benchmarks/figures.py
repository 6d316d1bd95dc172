"""Figures drawn from the tidy rows and the saved example maps.

Plots are PNG and PDF; image grids (example maps) are JPEG only, the one format that keeps
a grid of 224-px maps under a megabyte. Every file is written only when its bytes change,
and carries no date or software version, so a redrawn figure leaves git nothing to commit.

Curve figures answer one question per panel: the paper's maps against saliency and the
random control (at most seven lines), with every other family in a second figure of small
multiples (``-families``), one column per family and a shared y-axis per row.
"""

from __future__ import annotations

import io
import textwrap
from pathlib import Path
from typing import Any, Optional

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers or CI

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.cm import ScalarMappable  # noqa: E402
from matplotlib.colors import Normalize  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from benchmarks import store  # noqa: E402
from benchmarks.files import write_atomically  # noqa: E402

DPI = 100  # enough for a 1.5-inch panel; 150 made the Imagenette grids 5-9 MB
JPEG_QUALITIES = (85, 75, 65, 55)  # the first whose file fits in MAX_BYTES
MAX_BYTES = 950_000  # figures are committed: none over a megabyte
# Every curve panel draws these two as references: the map the paper refines, and the
# control that any map has to beat.
REFERENCE, CONTROL = "saliency", "random"
MAIN_FAMILY = "paper"
FAMILY_ORDER = ("baseline", "user", "sign-split", "extension", "control")  # small multiples' columns; others after
MAX_PER_COLUMN = 5  # other methods per small-multiple column: with the two references, 7 lines
# Distinct hues in a panel; grey and black are the references'.
LINE_COLOURS = [c for i, c in enumerate(sns.color_palette("tab10")) if i != 7]
REFERENCE_STYLE = {REFERENCE: {"color": "black", "linestyle": "-"}, CONTROL: {"color": "0.55", "linestyle": "--"}}

# What the parts of a variant's name mean, for legends, panel titles and the page.
VARIANT_WORDS = {
    "black": "pixels set to black",
    "white": "pixels set to white",
    "probability": "target's softmax probability",
    "logit": "target logit",
    "margin": "target logit minus the best other",
    "allegiance": "1 while the prediction is unchanged",
    "accuracy": "1 while the prediction is right",
    "highest-first": "highest pixels inserted first",
    "most-positive-first": "most positive pixels inserted first",
    "most-negative-first": "most negative pixels inserted first",
    "morf": "most relevant pixels removed first",
    "lerf": "least relevant pixels removed first",
    "saturate": "pixels moved to 0 or 1",
    "small": "pixels moved by 0.1",
    "against": "the map's top pixels moved against its claim",
    "along": "the same pixels moved the way it claims helps",
    "random": "random pixels moved against its claim",
    "darker": "a magnitude map's top pixels darkened",
    "brighter": "a magnitude map's top pixels brightened",
    "random-darker": "random pixels darkened",
    "random-brighter": "random pixels brightened",
    "best-of-sign": "|brighter - darker|, the gap had an oracle chosen the sign (not comparable with a signed map's)",
    "cascading": "layers re-initialised from the output down",
    "spearman": "Spearman correlation",
    "spearman-abs": "Spearman correlation of |map|",
    "ssim": "structural similarity",
    "hog": "similarity of HOG features",
    "wrong-polarity": "on images of the other polarity, where a faithful map puts little",
}
# A curve's y quantity, from the last part of its variant that names one.
QUANTITIES = {
    "probability": "target probability", "logit": "target logit", "margin": "target margin", "allegiance": "allegiance",
    "accuracy": "accuracy", "spearman": "Spearman ρ to the trained map", "spearman-abs": "Spearman ρ of |map|",
    "ssim": "SSIM to the trained map", "hog": "HOG similarity", "black": "allegiance", "white": "allegiance",
}


# Variants that score where a faithful map puts little: lower is better whatever the metric's direction.
CONTROL_VARIANTS = ("wrong-polarity",)


def explain_variant(variant: str, width: Optional[int] = None) -> str:
    """What a variant's parts mean; wrapped at ``width`` characters for a panel title."""
    text = "; ".join(VARIANT_WORDS[part] for part in variant.split("/") if part in VARIANT_WORDS)
    return textwrap.fill(text, width) if width else text


def _y_label(variant: str, higher_is_better: bool, moved: bool) -> str:
    """The quantity and which way is better: a curve that removes what the map ranks first
    is better falling (LeRF's, which removes it last, rising)."""
    parts = variant.split("/")
    quantity = next((QUANTITIES[part] for part in reversed(parts) if part in QUANTITIES), "value")
    if moved:  # sign-flip: the change from the unperturbed score; moving against a claim should lower it
        return f"change in {quantity}\n(lower is better)"
    better = "higher" if ("lerf" in parts or (higher_is_better and "morf" not in parts)) else "lower"
    return f"{quantity}\n({better} is better)"


def curve_caption(metric: str, families: bool) -> str:
    """The page's caption of a metric's curve figure."""
    shown = ("Every other method, in small multiples. Each column one family (or its increase/decrease half), "
             "beside saliency (black) and the random control (grey, dashed); one y-axis per row." if families else
             "The paper's maps beside saliency (black) and the random control (grey, dashed); every other family "
             "in the small multiples below.")
    note = (" Sign flip: each map's top pixels moved against what it claims helps (an increase map's darkened, a "
            "decrease map's brightened, a signed map's each against its own sign), a magnitude map's darkened and "
            "brightened, so each column compares the maps that move pixels the same way."
            if metric == "sign-flip" else "")
    return shown + note + " Panel titles explain the variant's parts."


def _file_part(dataset: str, model: str) -> str:
    """(dataset, model) in a figure's file name, as the shards name them (``folder:PATH`` holds slashes)."""
    return f"{store.path_component(dataset)}-{store.path_component(model)}"


def _save(figure: plt.Figure, path: Path, formats: tuple[str, ...] = ("png", "pdf")) -> None:
    """Each format's bytes, written only when they differ from the file's. Images are drawn
    at the figure's dpi in the PDF too, not embedded at their own resolution (a grid of
    224-px maps would make a PDF of several megabytes). Same-named files of the other
    formats are removed: they would be stale."""
    for image in figure.findobj(matplotlib.image.AxesImage):
        image.set_rasterized(True)
    encoders = {
        "png": lambda: _palette_png(_render(figure, "png", metadata={"Software": None})),
        "pdf": lambda: _render(figure, "pdf", metadata={"CreationDate": None, "Creator": None, "Producer": None}),
        "jpg": lambda: _jpeg(figure),
    }
    for suffix, encode in encoders.items():
        target = path.with_suffix(f".{suffix}")
        if suffix not in formats:
            target.unlink(missing_ok=True)
            continue
        data = encode()
        # the first format laid the figure out; the others reuse it (the layout of the
        # small multiples costs as much as drawing them)
        figure.set_layout_engine("none")
        if not (target.is_file() and target.read_bytes() == data):
            write_atomically(target, lambda temporary: temporary.write_bytes(data))
    plt.close(figure)


def _render(figure: plt.Figure, suffix: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format=suffix, dpi=DPI, **options)
    return buffer.getvalue()


def _jpeg(figure: plt.Figure) -> bytes:
    """The best of :data:`JPEG_QUALITIES` that fits in :data:`MAX_BYTES` (a grid of 23
    Imagenette maps on 6 images is 0.9 MB at 85), else the smallest."""
    for quality in JPEG_QUALITIES:
        data = _render(figure, "jpg", pil_kwargs={"quality": quality, "optimize": True})
        if len(data) <= MAX_BYTES:
            break
    return data


def _palette_png(data: bytes) -> bytes:
    """The PNG in 256 colours: a third of the bytes for plots of lines and bands, which
    hold few colours (the deletion small multiples went from 1 MB to 0.3 MB)."""
    from PIL import Image

    image = Image.open(io.BytesIO(data)).convert("RGB")
    buffer = io.BytesIO()
    image.quantize(colors=256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE).save(
        buffer, format="png", optimize=True)
    return buffer.getvalue()


def _display_range(values: np.ndarray, signed: bool) -> tuple[float, float]:
    """Colour limits from the 99th percentile, so one extreme pixel does not wash out the map."""
    top = float(np.percentile(np.abs(values), 99)) or 1e-12
    return (-top, top) if signed else (0.0, top)


def _mean_band(axis: plt.Axes, curve: pd.DataFrame, label: str, **style: Any) -> None:
    """One method's mean curve with its 95% normal band, from ``mean``/``sem`` indexed by x."""
    axis.xaxis.set_major_locator(MaxNLocator(5))
    x, mean, band = curve.index.get_level_values("x"), curve["mean"].to_numpy(), 1.96 * curve["sem"].to_numpy()
    axis.plot(x, mean, linewidth=1.3, label=label, **style)
    axis.fill_between(x, mean - band, mean + band, color=style["color"], alpha=0.12, linewidth=0)


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


def _panels(block: pd.DataFrame, methods_meta: dict[str, dict[str, str]]) -> tuple[list[tuple[str, dict[str, str]]], int]:
    """The panels of a metric's curve figure, each a title and the curve variant drawn for
    each method in it, and the number of columns to lay them out in. A metric whose curves
    move pixels against or along a map's claim (sign flip) pairs each map's "against" with
    a magnitude map's move the same way: darkening beside darkening, brightening beside
    brightening; every other metric gets one panel per curve variant."""
    variants = list(dict.fromkeys(block["variant"]))
    if not any(v.endswith("/against") for v in variants):
        panels = [(variant, {m: variant for m in dict.fromkeys(block.loc[block["variant"] == variant, "method"])})
                  for variant in variants]
        return panels, min(4, len(panels))
    available = set(zip(block["method"], block["variant"]))
    panels = []
    for prefix in dict.fromkeys(v.rsplit("/", 1)[0] for v in variants if v.endswith("/against")):
        for side, claim, move in (("darken", "increase", "darker"), ("brighten", "decrease", "brighter")):
            chosen = {}
            for method in dict.fromkeys(block["method"]):
                direction = methods_meta.get(method, {}).get("direction")
                curve = f"{prefix}/against" if direction in (claim, "signed") else f"{prefix}/{move}"
                if direction in (claim, "signed", "magnitude") and (method, curve) in available:
                    chosen[method] = curve
            panels.append((f"{prefix}: top pixels {side}ed", chosen))
    return panels, 2


def _draw_panel(axis: plt.Axes, stats: pd.DataFrame, chosen: dict[str, str], methods: list[str],
                colours: dict[str, Any], labels: dict[str, str]) -> None:
    """The references, then ``methods``, each its ``chosen`` curve (``stats`` indexed by
    method, variant and x)."""
    for method in [REFERENCE, CONTROL, *methods]:
        if method not in chosen:
            continue
        style = REFERENCE_STYLE.get(method, {"color": colours.get(method, "tab:blue"), "linestyle": "-"})
        _mean_band(axis, stats.loc[(method, chosen[method])], labels.get(method, method), **style)


def _label(method: str, methods_meta: dict[str, dict[str, str]]) -> str:
    return f"{method} ({methods_meta.get(method, {}).get('direction', '?')})"


TITLE_WIDTH = 46  # characters of a panel title's line at 8 pt in a 3-inch panel


def _panel_title(title: str) -> str:
    return f"{title}\n{explain_variant(title.split(':')[0], TITLE_WIDTH)}"


def curve_figure(block: pd.DataFrame, methods_meta: dict[str, dict[str, str]], title: str, x_label: str,
                 higher_is_better: bool = True) -> plt.Figure:
    """The paper's maps against saliency and the random control: one panel per variant
    (see :func:`_panels`), the mean curve over images with a 95% normal band, from
    per-point ``mean`` and ``sem`` (pooled beforehand: the per-image points are not all on
    one machine)."""
    panels, columns = _panels(block, methods_meta)
    shown = [m for m in dict.fromkeys(block["method"])
             if methods_meta.get(m, {}).get("family") == MAIN_FAMILY and m not in REFERENCE_STYLE]
    stats = block.set_index(["method", "variant", "x"]).sort_index()
    rows = -(-len(panels) // columns)
    moved = any(v.endswith("/against") for v in block["variant"])
    # sign flip's rows compare darkening with brightening on one quantity: one y-axis each
    figure, axes = plt.subplots(rows, columns, figsize=(3.3 * columns + 2.6, 2.7 * rows + 0.4), squeeze=False,
                                sharey="row" if moved else False, layout="constrained")
    colours = dict(zip(shown, LINE_COLOURS))
    labels = {m: _label(m, methods_meta) for m in dict.fromkeys(block["method"])}
    for axis, (panel, chosen) in zip(axes.flat, panels):
        _draw_panel(axis, stats, chosen, shown, colours, labels)
        axis.set_title(_panel_title(panel), fontsize=8)
        axis.set_xlabel(x_label, fontsize=8)
        axis.set_ylabel(_y_label(next(iter(chosen.values()), panel), higher_is_better, moved), fontsize=8)
        axis.tick_params(labelsize=7)
    for axis in axes.flat[len(panels):]:
        axis.set_visible(False)
    _figure_legend(figure, axes.flat[: len(panels)], [REFERENCE, CONTROL, *shown], labels)
    figure.suptitle(f"{title}: the paper's maps (mean over images, 95% band)", fontsize=10)
    return figure


def _figure_legend(figure: plt.Figure, axes, order: list[str], labels: dict[str, str]) -> None:
    handles = {}
    for axis in axes:
        for handle, label in zip(*axis.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    ordered = [labels.get(m, m) for m in order if labels.get(m, m) in handles]
    figure.legend([handles[label] for label in ordered], ordered, loc="outside right center", fontsize=8, frameon=False)


def _columns(methods: list[str], methods_meta: dict[str, dict[str, str]]) -> list[tuple[str, list[str]]]:
    """The other methods in columns of at most :data:`MAX_PER_COLUMN`, one family each; a
    larger family is split by direction (the sign split's positive and negative halves),
    then cut."""
    families: dict[str, list[str]] = {}
    for method in methods:
        families.setdefault(methods_meta.get(method, {}).get("family", "?"), []).append(method)
    columns = []
    ordered = sorted(families.items(), key=lambda item: FAMILY_ORDER.index(item[0]) if item[0] in FAMILY_ORDER
                     else len(FAMILY_ORDER))
    for family, members in ordered:
        if len(members) <= MAX_PER_COLUMN:
            columns.append((family, members))
            continue
        by_direction: dict[str, list[str]] = {}
        for method in members:
            by_direction.setdefault(methods_meta.get(method, {}).get("direction", "?"), []).append(method)
        for direction, group in by_direction.items():
            for start in range(0, len(group), MAX_PER_COLUMN):
                columns.append((f"{family}, {direction}", group[start:start + MAX_PER_COLUMN]))
    return columns


def families_figure(block: pd.DataFrame, methods_meta: dict[str, dict[str, str]], title: str, x_label: str,
                    higher_is_better: bool = True) -> Optional[plt.Figure]:
    """Every method outside the paper's maps, in small multiples: a row per panel of
    :func:`curve_figure`, a column per family, saliency and the random control in each;
    one y-axis per row. None when no other method ran."""
    ran = set(block["method"])
    others = [m for m in [*methods_meta, *dict.fromkeys(block["method"])] if m in ran
              and methods_meta.get(m, {}).get("family") != MAIN_FAMILY and m not in REFERENCE_STYLE]
    others = list(dict.fromkeys(others))
    if not others:
        return None
    panels, _ = _panels(block, methods_meta)
    columns = _columns(others, methods_meta)
    stats = block.set_index(["method", "variant", "x"]).sort_index()
    figure, axes = plt.subplots(len(panels), len(columns), figsize=(2.9 * len(columns) + 1.0, 2.3 * len(panels) + 1.6),
                                squeeze=False, sharey="row", layout="constrained")
    labels = {m: _label(m, methods_meta) for m in dict.fromkeys(block["method"])}
    moved = any(v.endswith("/against") for v in block["variant"])
    for column, (family, members) in enumerate(columns):
        colours = dict(zip(members, LINE_COLOURS))
        for row, (panel, chosen) in enumerate(panels):
            axis = axes[row, column]
            _draw_panel(axis, stats, chosen, members, colours, labels)
            heading = f"{family}\n{panel}" if row == 0 else panel
            explained = f"\n{explain_variant(panel.split(':')[0], TITLE_WIDTH)}" if column == 0 else ""
            axis.set_title(heading + explained, fontsize=8)
            axis.tick_params(labelsize=7)
            if column == 0:
                axis.set_ylabel(_y_label(next(iter(chosen.values()), panel), higher_is_better, moved), fontsize=8)
            if row == len(panels) - 1:
                axis.set_xlabel(x_label, fontsize=8)
        handles = [plt.Line2D([], [], linewidth=1.3, **REFERENCE_STYLE.get(m, {"color": colours.get(m)}))
                   for m in [REFERENCE, CONTROL, *members]]
        axes[-1, column].legend(handles, [labels.get(m, m) for m in [REFERENCE, CONTROL, *members]], fontsize=7,
                                frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.28))
    figure.suptitle(f"{title}: every other family (mean over images, 95% band)", fontsize=10)
    return figure


def bar_figure(block: pd.DataFrame, title: str, metrics_meta: Optional[dict[str, dict[str, Any]]] = None) -> plt.Figure:
    """One panel per metric variant: each method's mean with its 95% normal interval."""
    metrics_meta = metrics_meta or {}
    block = block.assign(panel=block["metric"] + np.where(block["variant"] != "", "/" + block["variant"], ""))
    stats = block.groupby(["panel", "method"], sort=False)["value"].agg(["mean", "sem"]).fillna({"sem": 0.0})
    panels = list(dict.fromkeys(block["panel"]))
    higher = {panel: metrics_meta.get(panel.split("/")[0], {}).get("higher_is_better", True)
              != panel.endswith(CONTROL_VARIANTS) for panel in panels}
    methods_order = list(dict.fromkeys(block["method"]))
    columns = min(4, len(panels))
    rows = -(-len(panels) // columns)
    figure, axes = plt.subplots(
        rows, columns, figsize=(2.8 * columns + 1.8, 0.17 * len(methods_order) * rows + 1.4),
        squeeze=False, sharey=True, layout="constrained",
    )
    for axis, panel in zip(axes.flat, panels):
        values = stats.loc[panel].reindex(methods_order)
        axis.barh(np.arange(len(methods_order)), values["mean"], xerr=1.96 * values["sem"],
                  color="tab:blue", error_kw={"linewidth": 0.8})
        explained = explain_variant(panel.split("/", 1)[1], TITLE_WIDTH) if "/" in panel else ""
        axis.set_title(f"{panel}\n{explained}".strip(), fontsize=8)
        axis.set_xlabel(f"mean ({'higher' if higher[panel] else 'lower'} is better)", fontsize=8)
        axis.tick_params(labelsize=7)
    axes[0, 0].set_yticks(np.arange(len(methods_order)), methods_order)
    axes[0, 0].invert_yaxis()
    for axis in axes.flat[len(panels):]:
        axis.set_visible(False)
    figure.suptitle(f"{title} (mean, 95% normal interval; no bar where a map makes no such claim)", fontsize=9)
    return figure


def draw_all(out: Path, scores: pd.DataFrame, curve_means: pd.DataFrame, plan: dict[str, Any]) -> None:
    """``curve_means``: per curve point, ``mean`` and ``sem`` over images (store.Collected.curve_means)."""
    folder = out / "figures"
    methods_meta, metrics_meta = plan["methods"], plan["metrics"]
    sns.set_theme(style="whitegrid", context="paper")
    for path in store.example_files(out):
        examples = store.load_examples(path)
        _save(qualitative_grid(examples, methods_meta, path.stem), folder / f"maps-{path.stem}", formats=("jpg",))
    if not curve_means.empty:
        for (dataset, model, metric), block in curve_means.groupby(["dataset", "model", "metric"], sort=False):
            arguments = (block, methods_meta, f"{metric}: {dataset} / {model}", metrics_meta[metric]["curve_x"],
                         metrics_meta[metric].get("higher_is_better", True))
            _save(curve_figure(*arguments), folder / f"curves-{metric}-{_file_part(dataset, model)}")
            others = families_figure(*arguments)
            if others is not None:
                _save(others, folder / f"curves-{metric}-{_file_part(dataset, model)}-families")
    truth = scores[scores["metric"].map(lambda m: metrics_meta.get(m, {}).get("family") == "ground-truth")]
    for (dataset, model), block in truth.groupby(["dataset", "model"], sort=False):
        _save(bar_figure(block, f"ground truth: {dataset} / {model}", metrics_meta), folder / f"ground-truth-{_file_part(dataset, model)}")


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
        _mean_band(axes[measures.index(variant), panels.index((dataset, model))], curve, method, **style)
    for row, measure in enumerate(measures):
        for column, (dataset, model) in enumerate(panels):
            axis = axes[row, column]
            axis.set_title(f"{dataset} / {model}: {measure}", fontsize=8)
            axis.set_xlabel(x_label, fontsize=7)
            axis.tick_params(labelsize=7)
        axes[row, 0].set_ylabel(_y_label(measure, False, False), fontsize=8)
    _figure_legend(figure, axes.flat, shown, {})
    figure.suptitle("Model-parameter randomisation, cascading (layers re-initialised from the output down):\n"
                    "similarity of each map to the trained model's (mean, 95% band)", fontsize=9)
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
            _save(paper_maps_figure(examples, map_names, rows, path.stem), folder / f"paper-maps-{path.stem}",
                  formats=("jpg",))
            _save(paper_maps_figure(examples, map_names, len(examples["images"]), f"{path.stem}: one image per class"),
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
        _save(randomisation_figure(pd.concat(curves, ignore_index=True), methods_meta, measures, x_label),
              folder / "randomisation")
