"""Curve figures: one question per panel, the paper's maps against saliency and the random
control (at most seven lines), every other family in small multiples (``-families``), one
column per family with a shared y-axis per row; and the ground truth's bars."""

from __future__ import annotations

from typing import Any, Optional

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from benchmarks.figures.common import (
    CONTROL, CONTROL_VARIANTS, FAMILY_ORDER, LINE_COLOURS, MAIN_FAMILY, MAX_PER_COLUMN, REFERENCE, REFERENCE_STYLE,
    TITLE_WIDTH, explain_variant, figure_legend, mean_band, method_label, panel_title, y_label,
)


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
        mean_band(axis, stats.loc[(method, chosen[method])], labels.get(method, method), **style)


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
    labels = {m: method_label(m, methods_meta) for m in dict.fromkeys(block["method"])}
    for axis, (panel, chosen) in zip(axes.flat, panels):
        _draw_panel(axis, stats, chosen, shown, colours, labels)
        axis.set_title(panel_title(panel), fontsize=8)
        axis.set_xlabel(x_label, fontsize=8)
        axis.set_ylabel(y_label(next(iter(chosen.values()), panel), higher_is_better, moved), fontsize=8)
        axis.tick_params(labelsize=7)
    for axis in axes.flat[len(panels):]:
        axis.set_visible(False)
    figure_legend(figure, axes.flat[: len(panels)], [REFERENCE, CONTROL, *shown], labels)
    figure.suptitle(f"{title}: the paper's maps (mean over images, 95% band)", fontsize=10)
    return figure


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
    labels = {m: method_label(m, methods_meta) for m in dict.fromkeys(block["method"])}
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
                axis.set_ylabel(y_label(next(iter(chosen.values()), panel), higher_is_better, moved), fontsize=8)
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
