"""``report.html``: a results folder's answer on one static page.

    python -m benchmarks.report DIR        # rebuilds it with the rest of the report
    python -m benchmarks.paper DIR         # a suite's page, spanning its parts

The page reads only the files of a results folder (summary.csv, significance.csv,
plan.json, manifest.json, figures/, the archive's list of shards), so it can be rebuilt in
a fresh clone. It opens offline: its style is inline, its tables and forest plots are HTML
and inline SVG, and its figures are the folder's own files, linked relatively.

A suite's folder (``results/paper``) gets one page spanning its parts: the paper's tables
and figures, then every part's sections.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd

from benchmarks.store import archive
from benchmarks.files import write_atomically
from signed_saliency.errors import UserError

PAGE = "report.html"
ALPHA = 0.05  # the Holm-corrected level at which a difference from saliency is marked
FIGURE_SUFFIXES = (".png", ".jpg")
# Families whose maps are not explanations: they are never marked "best".
CONTROL_FAMILIES = ("control",)
FAMILY_COLOURS = {"paper": "#1f77b4", "baseline": "#ff7f0e", "sign-split": "#2ca02c", "extension": "#9467bd",
                  "control": "#7f7f7f", "user": "#d62728"}

# What each kind of figure shows, by the start of its file name (figures.py names them).
FIGURE_KINDS = (
    ("maps-", "Example maps: each row a method, each column an image (label and prediction above). Signed maps on "
              "a diverging scale centred at 0 (red: the map says brightening raises the score), one-sided maps from 0; "
              "each map scaled by its own 99th percentile."),
    ("curves-", "Mean curve over images with its 95% band."),
    ("ground-truth-", "Ground truth on signed-shapes, whose correct sign is known: mean and 95% interval per method."),
    ("paper-maps-", "The paper's figure: the image, then its maps on one colour scale per row."),
    ("classes-", "One correctly classified image per class, the paper's maps on one colour scale per row."),
    ("randomisation", "Model-parameter randomisation: similarity of each map to the trained model's as layers are "
                      "re-initialised from the output; a map that stays similar ignores the model (lower is better)."),
    ("accuracy-by-epoch", "Test accuracy after every epoch of the runs that tracked it, the paper's final accuracy dashed."),
)
# The suite's own tables, in the order a reader wants them (each a markdown file it writes).
SUITE_TABLES = ("tables2_3.md", "comparisons.md", "table1.md", "timings.md")

STYLE = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;margin:0;background:#fafafa}
main{max-width:1280px;margin:0 auto;padding:16px 28px 60px;background:#fff}
h1{font-size:26px;margin:8px 0 4px}h2{font-size:21px;border-bottom:2px solid #ddd;padding-bottom:3px;margin-top:38px}
h3{font-size:17px;margin-top:26px}h4{font-size:15px;margin:18px 0 6px}
.lead{color:#555;margin-top:0}.note{color:#666;font-size:13px}.warn{background:#fff4e5;border-left:4px solid #f0a030;padding:6px 10px}
nav.toc{background:#f3f5f8;padding:8px 16px;border-radius:6px;font-size:14px}nav.toc ul{margin:4px 0;padding-left:20px}
nav.toc ul ul{padding-left:8px;display:inline}nav.toc ul ul li{display:inline}nav.toc ul ul li:before{content:" · "}
nav.toc ul ul ul{display:none}
table{border-collapse:collapse;font-size:12.5px;margin:8px 0}th,td{border:1px solid #ddd;padding:3px 6px;text-align:right}
th{background:#f3f5f8;position:sticky;top:0}td:first-child,th:first-child{text-align:left;white-space:nowrap}
.scroll{overflow-x:auto;max-width:100%}
td .ci{display:block;color:#777;font-size:11px}td .variant{display:block;color:#999;font-size:10px}
td.best{background:#e8f5e9;font-weight:600}.up{color:#1b7a2e}.down{color:#b3261e}
.legend{font-size:13px;color:#444;margin:4px 0 10px}
.forest{display:flex;flex-wrap:wrap;gap:10px 24px}
.forest figure{margin:0}.forest figcaption{font-size:13px;font-weight:600}
figure.plot{margin:14px 0}figure.plot img{max-width:100%;height:auto;border:1px solid #eee}
figure.plot figcaption{font-size:13px;color:#444}
details{margin:8px 0}summary{cursor:pointer;color:#1a5fb4}
dl.manifest{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;font-size:14px}dl.manifest dt{font-weight:600}
dl.manifest dd{margin:0}code{background:#f3f3f3;padding:0 3px;border-radius:3px}
pre{background:#f6f6f6;padding:8px;overflow-x:auto;font-size:12px}
"""


def read_table(path: Path) -> pd.DataFrame:
    # variants are "" for single-valued metrics: keep them as empty strings, not NaN
    return pd.read_csv(path, keep_default_na=False, na_values=[""]).fillna({"variant": ""})


@dataclass
class Folder:
    """What a run's folder holds, read from its files. ``prefix``: its path from the page."""

    path: Path
    prefix: str
    plan: dict[str, Any]
    summary: pd.DataFrame
    significance: pd.DataFrame
    manifest: dict[str, Any]
    figures: list[Path] = field(default_factory=list)

    @property
    def reference(self) -> Optional[str]:
        """The method every other is tested against (significance.csv's ``reference``)."""
        references = self.significance.get("reference", pd.Series(dtype=str)).dropna()
        return str(references.iloc[0]) if len(references) else None

    @property
    def models(self) -> list[tuple[str, str]]:
        return list(dict.fromkeys(zip(self.summary["dataset"], self.summary["model"])))


def read_folder(path: Path, prefix: str = "") -> Folder:
    for name in ("plan.json", "summary.csv"):
        if not (path / name).is_file():
            raise UserError(f"{path} holds no {name}: is it the --out folder of a finished benchmarks.run?")
    significance = path / "significance.csv"
    manifest = path / "manifest.json"
    return Folder(
        path=path,
        prefix=prefix,
        plan=json.loads((path / "plan.json").read_text()),
        summary=read_table(path / "summary.csv"),
        significance=read_table(significance) if significance.is_file() else pd.DataFrame(columns=["method"]),
        manifest=json.loads(manifest.read_text()) if manifest.is_file() else {},
        figures=figure_files(path / "figures"),
    )


def figure_files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.glob("*") if path.suffix in FIGURE_SUFFIXES) if folder.is_dir() else []


def _escape(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _anchor(*parts: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")


# --- the headline: methods x metrics ----------------------------------------------------

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


def _arrow(plan: dict[str, Any], metric: str) -> str:
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
    return f'<td title="{_escape(title)}"><span style="color:{colour}">■</span> {_escape(method)}</td>'


def _header(plan: dict[str, Any], metrics: list[str]) -> str:
    columns = "".join(
        f'<th title="{_escape(plan["metrics"][m].get("family", ""))}; '
        f'{"higher" if plan["metrics"][m].get("higher_is_better") else "lower"} is better">'
        f'{_escape(m)} {_arrow(plan, m)}</th>' for m in metrics)
    return f"<thead><tr><th>method</th>{columns}</tr></thead>"


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
                     f"n = {cell.n}" + (f", {cell.n_nonfinite} non-finite" if cell.n_nonfinite else "")
                     + (f"; vs saliency: Holm p = {cell.p_holm:.2g}, effect {cell.effect_size:+.2f}"
                        if np.isfinite(cell.p_holm) else ""))
            variant = f'<span class="variant">{_escape(cell.variant)}</span>' if metric in mixed else ""
            star = " ★" if cell.best else ""
            tds.append(f'<td class="{"best" if cell.best else ""}" title="{_escape(title)}">{_number(cell.mean)}'
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
                tds.append(f'<td style="background:{background};color:{text}" title="{_escape(metric)} '
                           f'{_escape(cell.variant)}: Holm p = {cell.p_holm:.2g}">{cell.advantage:+.2f}{mark}</td>')
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
            f'<text x="{label_width - 6}" y="{y + 4:.1f}" text-anchor="end"{weight}>{_escape(label)}{mark}</text>'
            f'<line x1="{x(cell.ci_low):.1f}" x2="{x(cell.ci_high):.1f}" y1="{y:.1f}" y2="{y:.1f}" stroke="{colour}" '
            f'stroke-width="2"/><circle cx="{x(cell.mean):.1f}" cy="{y:.1f}" r="3.2" fill="{colour}">'
            f"<title>{_escape(label)}: {cell.mean:.4g} [{cell.ci_low:.4g}, {cell.ci_high:.4g}]</title></circle>")
    direction = "higher" if higher else "lower"
    parts.append(f'<text x="{label_width + plot_width / 2}" y="{height - 1}" text-anchor="middle" fill="#333">'
                 f"{_escape(metric)} ({direction} is better)</text></svg>")
    return "".join(parts)


def _ticks(low: float, high: float) -> list[float]:
    from matplotlib.ticker import MaxNLocator

    return [tick for tick in MaxNLocator(4).tick_values(low, high) if low <= tick <= high]


# --- figures, manifest, sections ---------------------------------------------------------

def _figure_html(path: Path, prefix: str, caption: str) -> str:
    """The figure, linked to its file; the long ones behind a click (small multiples of the
    other families, one image per class), so the page stays one that reads at a glance."""
    source = _escape(f"{prefix}figures/{path.name}")
    figure = (f'<figure class="plot"><a href="{source}"><img src="{source}" alt="{_escape(path.stem)}" loading="lazy">'
              f"</a><figcaption><code>{_escape(path.name)}</code>: {_escape(caption)}</figcaption></figure>")
    if path.stem.endswith("-families") or path.stem.startswith("classes-"):
        return f"<details><summary>{_escape(caption.split('.')[0])}: {_escape(path.name)}</summary>{figure}</details>"
    return figure


def _curve_metric(stem: str, metrics: Sequence[str]) -> str:
    """The metric a ``curves-{metric}-{dataset}-{model}`` figure draws ("" for another
    figure); the longest name first, as one metric's name may start another's."""
    return next((m for m in sorted(metrics, key=len, reverse=True) if stem.startswith(f"curves-{m}-")), "")


def _caption(path: Path, plan: dict[str, Any]) -> str:
    from benchmarks.figures import curve_caption

    stem = path.stem
    for start, text in FIGURE_KINDS:
        if stem.startswith(start):
            if start == "curves-":
                return f"{curve_caption(_curve_metric(stem, plan['metrics']), stem.endswith('-families'))} {text}"
            return text
    return ""


def _figures_of(run: Folder, dataset: str, model: str) -> list[Path]:
    """The figures of one (dataset, model), maps first, then the curves in the plan's metric
    order (main figure before its small multiples), then ground truth."""
    tag = f"-{dataset}-{model}"
    mine = [p for p in run.figures if p.stem.endswith(tag) or p.stem.endswith(f"{tag}-families")]
    order = {m: i for i, m in enumerate(run.plan["metrics"])}

    def key(path: Path) -> tuple[int, int, str]:
        stem = path.stem
        if stem.startswith("maps-"):
            return 0, 0, stem
        if stem.startswith("curves-"):
            return 1, order.get(_curve_metric(stem, order), len(order)), stem
        return 2, 0, stem

    return sorted(mine, key=key)


def _kind(path: Path, plan: dict[str, Any]) -> str:
    """Which subsection a figure belongs in, by the family of the metric it draws."""
    stem = path.stem
    if stem.startswith("maps-"):
        return "maps"
    if stem.startswith("ground-truth-"):
        return "ground-truth"
    family = plan["metrics"].get(_curve_metric(stem, plan["metrics"]), {}).get("family")
    return family if family in ("sanity", "ground-truth") else "curves"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def manifest_html(run: Folder) -> str:
    """The run in words: what ran on which data, models and machine, how long, and which
    shards were computed by the recorded runs, carried in from elsewhere, or are missing."""
    plan, manifest = run.plan, run.manifest
    config = plan["config"]
    items: list[tuple[str, str]] = []
    data = "; ".join(
        f"<b>{_escape(d['name'])}</b> ({_escape(d['split'])} split, {d['n_images']} images"
        + (f", {d['image_size']} px" if d.get("image_size") else "")
        + (f", {_escape(d['precision'])}" if d.get("precision", "float32") != "float32" else "")
        + f"): models {_escape(', '.join(d['models']))}" for d in config["datasets"])
    items.append(("data and models", data))
    families: dict[str, list[str]] = {}
    for name, meta in plan["methods"].items():
        families.setdefault(meta.get("family", "?"), []).append(name)
    items.append(("methods", f"{len(plan['methods'])}: " + "; ".join(
        f"{_escape(family)}: {_escape(', '.join(names))}" for family, names in families.items())))
    items.append(("metrics", f"{len(plan['metrics'])}: " + ", ".join(
        f"{_escape(name)} {_arrow(plan, name)}" for name in plan["metrics"])))
    settings = config.get("settings") or {}
    if settings:
        items.append(("settings", "; ".join(f"{_escape(k)}: {_escape(json.dumps(v))}" for k, v in settings.items())))
    items.append(("seed", f"{config.get('seed')} (bootstrap and tie-breaking)"))
    if manifest:
        versions = manifest.get("versions", {})
        items.append(("machine", f"{_escape(manifest.get('device'))} on {_escape(manifest.get('machine'))}, "
                                 f"{manifest.get('torch_threads')} torch threads"))
        items.append(("software", ", ".join(f"{_escape(k)} {_escape(v)}" for k, v in versions.items())
                      + (f"; git commit <code>{_escape(str(manifest.get('git_commit'))[:12])}</code>"
                         if manifest.get("git_commit") else "")))
        runs = manifest.get("runs", [])
        total = sum(r["wall_seconds"] for r in runs)
        computed = sum(r["shards_computed"] for r in runs)
        items.append(("time", f"{_duration(total)} over {len(runs)} invocation(s) that computed shards"
                              + (f" ({', '.join(_duration(r['wall_seconds']) for r in runs)})" if len(runs) > 1 else "")
                              + f"; the last report's invocation took {_duration(manifest.get('wall_seconds', 0))}"))
    else:
        computed = None
        items.append(("manifest", '<span class="warn">no manifest.json: this folder was merged from slices '
                                  "(<code>benchmarks.report A B --out C</code>), whose manifests stay in their own "
                                  "folders; machine, versions and times are there.</span>"))
    planned = set(plan["shards"])
    held = planned & archive.shards_held(run.path) if (run.path / archive.FOLDER).is_dir() else set()
    shard_words = f"{len(planned)} planned"
    if held:
        shard_words += f"; {len(held)} finished (in <code>archive/</code>)"
    if computed is not None:
        shard_words += f"; {computed} computed by the invocations above"
        if held and computed < len(held):
            shard_words += f", {len(held) - computed} reused (computed elsewhere or before, read from the archive)"
    missing = len(planned - held) if held else None
    if missing:
        shard_words += f'; <span class="warn">{missing} not finished: the tables cover the rest</span>'
    items.append(("shards", shard_words))
    if not any(p.stem.startswith("maps-") for p in run.figures):
        items.append(("example maps", '<span class="warn">none: the maps are drawn from <code>examples/*.pt</code>, '
                                      "which the runs that computed them keep; copy them into this folder's "
                                      "<code>examples/</code> and rerun <code>python -m benchmarks.report</code></span>"))
    body = "".join(f"<dt>{_escape(term)}</dt><dd>{text}</dd>" for term, text in items)
    return f'<dl class="manifest">{body}</dl>'


def model_section(run: Folder, dataset: str, model: str, anchor: str) -> tuple[str, list[tuple[str, str]]]:
    """One (dataset, model): headline, heatmap, forest plots and figures; with its contents."""
    cells = headline_cells(run, dataset, model)
    plan = run.plan
    n = cells["n"]
    images = f"{int(n.max())}" if n.min() == n.max() else f"{int(n.min())}-{int(n.max())}"
    contents = [(f"{anchor}-headline", "headline table"), (f"{anchor}-effects", "effects against saliency"),
                (f"{anchor}-forest", "forest plots")]
    parts = [
        f'<h3 id="{anchor}-headline">{_escape(dataset)} / {_escape(model)}: every method under every metric</h3>',
        f'<p class="legend">Mean over {images} images with its 95% bootstrap CI, for each method\'s headline variant '
        f"(its first in the metric's order; all variants in <code>summary.md</code>). ↑/↓: higher/lower is better. "
        f"★ best in its column among the maps scored on the same variant (controls aside). "
        f"▲/▼ significantly better/worse than saliency (paired Wilcoxon, Holm-corrected p &lt; {ALPHA}). "
        f"Hover a cell for its variant, n and test. Square: the method's family "
        + ", ".join(f'<span style="color:{c}">■</span> {f}' for f, c in FAMILY_COLOURS.items()) + ".</p>",
        headline_table(cells, plan),
        f'<h4 id="{anchor}-effects">Effects against saliency at a glance</h4>',
        '<p class="legend">Matched-pairs rank-biserial effect of each method against saliency on the same images, '
        "signed so that + means better in the metric's direction (+1: better on every image); blue better, red worse; "
        "▲/▼ as above.</p>",
        effect_heatmap(cells, plan, run.reference),
        f'<h4 id="{anchor}-forest">Forest plots</h4>',
        '<p class="legend">Per metric, methods best first: mean (dot) and 95% CI (line), coloured by family; dashed: '
        "saliency's mean; bold: ★ above.</p>",
        '<div class="forest">' + "".join(
            f"<figure><figcaption>{_escape(metric)} {_arrow(plan, metric)}</figcaption>{forest_plot(cells, metric, plan, run.reference)}"
            f"</figure>" for metric in plan["metrics"] if metric in set(cells["metric"])) + "</div>",
    ]
    titles = {"maps": "Example maps", "curves": "Curves", "sanity": "Sanity checks", "ground-truth": "Ground truth"}
    by_kind: dict[str, list[Path]] = {}
    for path in _figures_of(run, dataset, model):
        by_kind.setdefault(_kind(path, plan), []).append(path)
    for kind, title in titles.items():
        if kind not in by_kind:
            continue
        contents.append((f"{anchor}-{kind}", title.lower()))
        parts.append(f'<h4 id="{anchor}-{kind}">{title}</h4>')
        parts += [_figure_html(path, run.prefix, _caption(path, plan)) for path in by_kind[kind]]
    return "\n".join(parts), contents


def run_sections(run: Folder, anchor: str, level: int = 2) -> tuple[str, list[tuple[str, str, list]]]:
    """The run's description and a section per (dataset, model)."""
    parts = [f'<h{level} id="{anchor}-run">What ran</h{level}>', manifest_html(run)]
    contents: list[tuple[str, str, list]] = [(f"{anchor}-run", "What ran", [])]
    for dataset, model in run.models:
        section = _anchor(anchor, dataset, model)
        html_text, entries = model_section(run, dataset, model, section)
        parts.append(f'<h{level} id="{section}">{_escape(dataset)} / {_escape(model)}</h{level}>')
        parts.append(html_text)
        contents.append((section, f"{dataset} / {model}", entries))
    shown = {p for d, m in run.models for p in _figures_of(run, d, m)}
    others = [p for p in run.figures if p not in shown]
    if others:
        parts.append(f'<h{level} id="{anchor}-other-figures">Other figures</h{level}>')
        parts += [_figure_html(p, run.prefix, _caption(p, run.plan)) for p in others]
        contents.append((f"{anchor}-other-figures", "Other figures", []))
    return "\n".join(parts), contents


def _contents_html(contents: list[tuple[str, str, list]]) -> str:
    def items(entries: list) -> str:
        return "".join(
            f'<li><a href="#{anchor}">{_escape(title)}</a>' + (f"<ul>{items(children)}</ul>" if children else "") + "</li>"
            for anchor, title, *rest in entries for children in [rest[0] if rest else []])

    return f'<nav class="toc" id="contents"><b>Contents</b><ul>{items(contents)}</ul></nav>'


def markdown_html(text: str) -> str:
    """The suite's markdown files (headings, paragraphs, pipe tables, code blocks: what
    paper.py writes) as HTML. Written here rather than adding a markdown package for four
    files whose syntax this project writes itself."""
    out, paragraph, table, code = [], [], [], None

    def inline(line: str) -> str:
        line = _escape(line)
        line = re.sub(r"`([^`]+)`", r"<code>\1</code>", line)
        return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", line)

    def flush() -> None:
        if paragraph:
            out.append("<p>" + " ".join(inline(line) for line in paragraph) + "</p>")
            paragraph.clear()
        if table:
            rows = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in table
                    if not re.fullmatch(r"\|?[\s:|-]+\|?", line.strip())]
            head, body = rows[0], rows[1:]
            out.append('<div class="scroll"><table><thead><tr>' + "".join(f"<th>{inline(c)}</th>" for c in head)
                       + "</tr></thead><tbody>" + "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in row)
                                                         + "</tr>" for row in body) + "</tbody></table></div>")
            table.clear()

    for line in text.splitlines():
        if code is not None:
            if line.startswith("```"):
                out.append("<pre>" + _escape("\n".join(code)) + "</pre>")
                code = None
            else:
                code.append(line)
        elif line.startswith("```"):
            flush()
            code = [line[3:]] if line[3:].strip() else []
        elif line.startswith("#"):
            flush()
            level = min(len(line) - len(line.lstrip("#")) + 2, 6)
            out.append(f"<h{level}>{inline(line.lstrip('#').strip())}</h{level}>")
        elif line.lstrip().startswith("|"):
            if paragraph:
                flush()
            table.append(line)
        elif not line.strip():
            flush()
        else:
            if table:
                flush()
            paragraph.append(line)
    flush()
    return "\n".join(out)


def _document(title: str, lead: str, contents: list, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{_escape(title)}</title>'
            f"<style>{STYLE}</style></head><body><main><h1>{_escape(title)}</h1><p class=\"lead\">{lead}</p>"
            f"{_contents_html(contents)}\n{body}\n</main></body></html>\n")


def _write(path: Path, text: str) -> Path:
    """Written only when its bytes change, so a rebuilt page leaves git with nothing to commit."""
    if not (path.is_file() and path.read_text() == text):
        write_atomically(path, lambda temporary: temporary.write_text(text))
    return path


def write_page(folder: Path, parts: Sequence[Path] = ()) -> Path:
    """Write ``folder/report.html`` from the folder's files; with ``parts``, the suite's page:
    its own tables and figures, then each finished part's sections."""
    if parts:
        return _write(folder / PAGE, suite_page(folder, parts))
    run = read_folder(folder)
    name = run.plan["config"].get("name", folder.name)
    body, contents = run_sections(run, "run")
    lead = (f"Run <code>{_escape(name)}</code> of signed-saliency: how faithful each map is, and whether its sign says "
            "which way to move a pixel. Rebuild with <code>python -m benchmarks.report "
            f"{_escape(folder)}</code>. Tidy rows: <code>scores.csv</code>; every variant: <code>summary.md</code>.")
    return _write(folder / PAGE, _document(f"signed-saliency: {name}", lead, contents, body))


def suite_page(folder: Path, parts: Sequence[Path]) -> str:
    contents: list[tuple[str, str, list]] = []
    body = []
    tables = [folder / name for name in SUITE_TABLES if (folder / name).is_file()]
    if tables:
        body.append('<h2 id="paper-tables">The paper\'s tables</h2>')
        contents.append(("paper-tables", "The paper's tables", []))
        for path in tables:
            body.append(f'<section id="{_anchor(path.stem)}">{markdown_html(path.read_text())}</section>')
            contents[-1][2].append((_anchor(path.stem), path.name, []))
    figures = figure_files(folder / "figures")
    if figures:
        body.append('<h2 id="paper-figures">The paper\'s figures</h2>')
        contents.append(("paper-figures", "The paper's figures", []))
        body += [_figure_html(path, "", _caption(path, {"metrics": {}})) for path in figures]
    for part in parts:
        if not (part / "summary.csv").is_file():
            continue
        run = read_folder(part, prefix=f"{part.relative_to(folder).as_posix()}/")
        anchor = _anchor(part.name)
        sections, entries = run_sections(run, anchor, level=3)
        body.append(f'<h2 id="{anchor}">Part {_escape(part.name)}</h2><p class="note">Its own page: '
                    f'<a href="{_escape(run.prefix)}{PAGE}">{_escape(run.prefix)}{PAGE}</a>.</p>')
        body.append(sections)
        contents.append((anchor, f"Part {part.name}", entries))
    lead = (f"The suite <code>{_escape(folder.name)}</code>: the paper's tables and figures, then every part's results. "
            f"Rebuild with <code>python -m benchmarks.paper {_escape(folder)}</code>.")
    return _document(f"signed-saliency: {folder.name}", lead, contents, "\n".join(body))
