"""The headline: methods x metrics with their CIs and marks, the effects heatmap and the
forest plots, as HTML and inline SVG."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import pandas as pd

from benchmarks.page.folder import ALPHA, CONTROL_FAMILIES, FAMILY_COLOURS, Folder, escape


def headline_cells(run: Folder, dataset: str, model: str) -> pd.DataFrame:
    """Per (method, metric): the method's headline variant (its first in the metric's own
    order, as the terminal summary shows it), with its mean, CI, n and the Holm-corrected
    test against saliency. ``better``: +1/-1 where the difference from saliency is
    significant and in the metric's better/worse direction, 0 where it is not; ``advantage``:
    the rank-biserial effect signed so that + is better than saliency."""
    block = run.summary[(run.summary["dataset"] == dataset) & (run.summary["model"] == model)]
    cells = block.drop_duplicates(["method", "metric"], keep="first").copy()
    tests = run.significance
    if len(tests):
        tests = tests[(tests["dataset"] == dataset) & (tests["model"] == model)]
        cells = cells.merge(tests[["method", "metric", "variant", "p_holm", "effect_size"]],
                            on=["method", "metric", "variant"], how="left")
    else:
        cells = cells.assign(p_holm=np.nan, effect_size=np.nan)
    sign = cells["metric"].map(lambda m: 1.0 if run.plan["metrics"].get(m, {}).get("higher_is_better") else -1.0)
    cells["advantage"] = cells["effect_size"] * sign
    significant = cells["p_holm"] < ALPHA
    cells["better"] = np.where(significant, np.sign(cells["advantage"]), 0.0)
    cells["best"] = _best_in_column(cells, run.plan)
    return cells


def _best_in_column(cells: pd.DataFrame, plan: dict[str, Any]) -> pd.Series:
    """The best mean per (metric, variant) among the explanations: methods scored on another
    variant of a metric (a decrease map's deletion to white, a magnitude map's
    best-of-sign) are not on its scale, so each variant gets its own best; controls never."""
    family = cells["method"].map(lambda m: plan["methods"].get(m, {}).get("family"))
    eligible = cells[~family.isin(CONTROL_FAMILIES) & cells["mean"].notna()]
    best = pd.Series(False, index=cells.index)
    for (metric, _), group in eligible.groupby(["metric", "variant"], sort=False):
        if len(group) < 2:
            continue
        higher = plan["metrics"].get(metric, {}).get("higher_is_better", True)
        best.loc[group["mean"].idxmax() if higher else group["mean"].idxmin()] = True
    return best


def arrow(plan: dict[str, Any], metric: str) -> str:
    return "↑" if plan["metrics"].get(metric, {}).get("higher_is_better") else "↓"


def _mark(better: float) -> str:
    if better > 0:
        return '<span class="up" title="significantly better than saliency">▲</span>'
    if better < 0:
        return '<span class="down" title="significantly worse than saliency">▼</span>'
    return ""


def _number(value: float) -> str:
    if not np.isfinite(value):
        return "–"
    return f"{value:.3g}" if abs(value) >= 1000 or (value != 0 and abs(value) < 0.001) else f"{value:.3f}"


def _grid(cells: pd.DataFrame, plan: dict[str, Any]) -> tuple[list[str], list[str], dict[tuple[str, str], pd.Series]]:
    methods = [m for m in plan["methods"] if m in set(cells["method"])]
    metrics = [m for m in plan["metrics"] if m in set(cells["metric"])]
    return methods, metrics, {(row.method, row.metric): row for row in cells.itertuples(index=False)}


def _method_cell(plan: dict[str, Any], method: str) -> str:
    meta = plan["methods"].get(method, {})
    colour = FAMILY_COLOURS.get(meta.get("family"), "#444")
    title = f"family {meta.get('family')}, direction {meta.get('direction')}, score {meta.get('score')}"
    return f'<td title="{escape(title)}"><span style="color:{colour}">■</span> {escape(method)}</td>'


def _header(plan: dict[str, Any], metrics: list[str]) -> str:
    columns = "".join(
        f'<th title="{escape(plan["metrics"][m].get("family", ""))}; '
        f'{"higher" if plan["metrics"][m].get("higher_is_better") else "lower"} is better">'
        f'{escape(m)} {arrow(plan, m)}</th>' for m in metrics)
    return f"<thead><tr><th>method</th>{columns}</tr></thead>"


def _left_out(cell) -> str:
    """The values a cell leaves out; a summary.csv from before n_undefined has only failures."""
    undefined = int(getattr(cell, "n_undefined", 0) or 0)
    return ((f", {undefined} undefined by design" if undefined else "")
            + (f", {cell.n_nonfinite} failed (non-finite)" if cell.n_nonfinite else ""))


def headline_table(cells: pd.DataFrame, plan: dict[str, Any]) -> str:
    methods, metrics, at = _grid(cells, plan)
    mixed = {metric for metric in metrics if cells.loc[cells["metric"] == metric, "variant"].nunique() > 1}
    rows = []
    for method in methods:
        tds = [_method_cell(plan, method)]
        for metric in metrics:
            cell = at.get((method, metric))
            if cell is None:
                tds.append('<td title="not scored: the metric makes no claim about this map">–</td>')
                continue
            title = (f"{metric} {cell.variant or ''}: mean {cell.mean:.4g} [{cell.ci_low:.4g}, {cell.ci_high:.4g}], "
                     f"n = {cell.n}" + _left_out(cell)
                     + (f"; vs saliency: Holm p = {cell.p_holm:.2g}, effect {cell.effect_size:+.2f}"
                        if np.isfinite(cell.p_holm) else ""))
            variant = f'<span class="variant">{escape(cell.variant)}</span>' if metric in mixed else ""
            star = " ★" if cell.best else ""
            tds.append(f'<td class="{"best" if cell.best else ""}" title="{escape(title)}">{_number(cell.mean)}'
                       f'{star}{_mark(cell.better)}<span class="ci">[{_number(cell.ci_low)}, {_number(cell.ci_high)}]</span>'
                       f"{variant}</td>")
        rows.append("<tr>" + "".join(tds) + "</tr>")
    return f'<div class="scroll"><table>{_header(plan, metrics)}<tbody>{"".join(rows)}</tbody></table></div>'


def _effect_colour(advantage: float) -> tuple[str, str]:
    """Background and text colour for an advantage in [-1, 1]: blue better, red worse."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    if not np.isfinite(advantage):
        return "#ffffff", "#999999"
    background = to_hex(colormaps["RdBu"](0.5 + 0.5 * float(np.clip(advantage, -1, 1))))
    return background, "#ffffff" if abs(advantage) > 0.6 else "#222222"


def effect_heatmap(cells: pd.DataFrame, plan: dict[str, Any], reference: Optional[str]) -> str:
    """Rank-biserial effects against ``reference`` as a coloured table: crisp at any zoom, and each
    cell says its number, which an image's colour scale cannot."""
    methods, metrics, at = _grid(cells, plan)
    rows = []
    for method in methods:
        tds = [_method_cell(plan, method)]
        for metric in metrics:
            cell = at.get((method, metric))
            if method == reference:
                tds.append('<td style="background:#eee;color:#777">ref.</td>')
            elif cell is None or not np.isfinite(cell.advantage):
                tds.append('<td style="color:#999">–</td>')
            else:
                background, text = _effect_colour(cell.advantage)
                mark = "▲" if cell.better > 0 else "▼" if cell.better < 0 else ""
                tds.append(f'<td style="background:{background};color:{text}" title="{escape(metric)} '
                           f'{escape(cell.variant)}: Holm p = {cell.p_holm:.2g}">{cell.advantage:+.2f}{mark}</td>')
        rows.append("<tr>" + "".join(tds) + "</tr>")
    return f'<div class="scroll"><table>{_header(plan, metrics)}<tbody>{"".join(rows)}</tbody></table></div>'


def forest_plot(cells: pd.DataFrame, metric: str, plan: dict[str, Any], reference: Optional[str]) -> str:
    """One metric's methods, best first: the mean as a dot on its 95% CI, ``reference``'s
    mean dashed. Inline SVG written here: a few KB per plot, sharp at any zoom, no image files."""
    block = cells[(cells["metric"] == metric) & cells["mean"].notna()]
    higher = plan["metrics"].get(metric, {}).get("higher_is_better", True)
    block = block.sort_values("mean", ascending=not higher, kind="stable")
    if block.empty:
        return ""
    low = float(np.nanmin(block[["ci_low", "mean"]].to_numpy()))
    high = float(np.nanmax(block[["ci_high", "mean"]].to_numpy()))
    span = (high - low) or 1.0
    low, high = low - 0.04 * span, high + 0.04 * span
    mixed = block["variant"].nunique() > 1
    labels = [m + (f" ({v})" if mixed and v else "") for m, v in zip(block["method"], block["variant"])]
    label_width = 12 + 6 * max(len(label) for label in labels)  # about 6 px a character at 11 px
    plot_width, row, top = 220, 15, 6
    height = top + row * len(block) + 30

    def x(value: float) -> float:
        return label_width + plot_width * (value - low) / (high - low)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_width + plot_width + 10}" height="{height}" '
             f'font-family="system-ui,sans-serif" font-size="11">']
    for tick in _ticks(low, high):
        parts.append(f'<line x1="{x(tick):.1f}" x2="{x(tick):.1f}" y1="{top}" y2="{height - 24}" stroke="#eee"/>'
                     f'<text x="{x(tick):.1f}" y="{height - 12}" text-anchor="middle" fill="#555">{_number(tick)}</text>')
    dashed = block[block["method"] == reference]
    if len(dashed):
        at = x(float(dashed["mean"].iloc[0]))
        parts.append(f'<line x1="{at:.1f}" x2="{at:.1f}" y1="{top}" y2="{height - 24}" stroke="#333" '
                     f'stroke-dasharray="3,3"/>')
    for index, (cell, label) in enumerate(zip(block.itertuples(index=False), labels)):
        y = top + row * index + row / 2
        colour = FAMILY_COLOURS.get(plan["methods"].get(cell.method, {}).get("family"), "#444")
        weight = ' font-weight="bold"' if cell.best else ""
        mark = " ▲" if cell.better > 0 else " ▼" if cell.better < 0 else ""
        parts.append(
            f'<text x="{label_width - 6}" y="{y + 4:.1f}" text-anchor="end"{weight}>{escape(label)}{mark}</text>'
            f'<line x1="{x(cell.ci_low):.1f}" x2="{x(cell.ci_high):.1f}" y1="{y:.1f}" y2="{y:.1f}" stroke="{colour}" '
            f'stroke-width="2"/><circle cx="{x(cell.mean):.1f}" cy="{y:.1f}" r="3.2" fill="{colour}">'
            f"<title>{escape(label)}: {cell.mean:.4g} [{cell.ci_low:.4g}, {cell.ci_high:.4g}]</title></circle>")
    direction = "higher" if higher else "lower"
    parts.append(f'<text x="{label_width + plot_width / 2}" y="{height - 1}" text-anchor="middle" fill="#333">'
                 f"{escape(metric)} ({direction} is better)</text></svg>")
    return "".join(parts)


def _ticks(low: float, high: float) -> list[float]:
    from matplotlib.ticker import MaxNLocator

    return [tick for tick in MaxNLocator(4).tick_values(low, high) if low <= tick <= high]
