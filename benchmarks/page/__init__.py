"""``report.html``: a results folder's answer on one static page.

    python -m benchmarks.report DIR        # rebuilds it with the rest of the report
    python -m benchmarks.paper DIR         # a suite's page, spanning its parts

The page reads only the files of a results folder (summary.csv, significance.csv,
plan.json, manifest.json, figures/, the archive's list of shards), so it can be rebuilt in
a fresh clone. It opens offline: its style is inline, its tables and forest plots are HTML
and inline SVG, and its figures are the folder's own files, linked relatively.

A suite's folder (``results/paper``) gets one page spanning its parts: the paper's tables
and figures, then every part's sections.

Rooms: ``folder`` (reading a results folder), ``tables`` (headline, heatmap, forest
plots), ``words`` (figures, manifest, markdown); this module assembles the page.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from benchmarks.files import write_atomically
from benchmarks.paths import portable
from benchmarks.statistics import image_count
from benchmarks.page.folder import ALPHA, FAMILY_COLOURS, PAGE, SUITE_TABLES, Folder, anchor_id, escape, figure_files, read_folder
from benchmarks.page.tables import arrow, effect_heatmap, forest_plot, headline_cells, headline_table
from benchmarks.page.words import figure_caption, figure_html, figure_kind, figures_of, manifest_html, markdown_html

__all__ = ["PAGE", "read_folder", "suite_page", "write_page"]

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




def model_section(run: Folder, dataset: str, model: str, anchor: str) -> tuple[str, list[tuple[str, str]]]:
    """One (dataset, model): headline, heatmap, forest plots and figures; with its contents."""
    cells = headline_cells(run, dataset, model)
    plan = run.plan
    images = image_count(cells["n"])
    contents = [(f"{anchor}-headline", "headline table"), (f"{anchor}-effects", "effects against saliency"),
                (f"{anchor}-forest", "forest plots")]
    parts = [
        f'<h3 id="{anchor}-headline">{escape(dataset)} / {escape(model)}: every method under every metric</h3>',
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
            f"<figure><figcaption>{escape(metric)} {arrow(plan, metric)}</figcaption>{forest_plot(cells, metric, plan, run.reference)}"
            f"</figure>" for metric in plan["metrics"] if metric in set(cells["metric"])) + "</div>",
    ]
    titles = {"maps": "Example maps", "curves": "Curves", "sanity": "Sanity checks", "ground-truth": "Ground truth"}
    by_kind: dict[str, list[Path]] = {}
    for path in figures_of(run, dataset, model):
        by_kind.setdefault(figure_kind(path, plan), []).append(path)
    for kind, title in titles.items():
        if kind not in by_kind:
            continue
        contents.append((f"{anchor}-{kind}", title.lower()))
        parts.append(f'<h4 id="{anchor}-{kind}">{title}</h4>')
        parts += [figure_html(path, run.prefix, figure_caption(path, plan)) for path in by_kind[kind]]
    return "\n".join(parts), contents


def run_sections(run: Folder, anchor: str, level: int = 2) -> tuple[str, list[tuple[str, str, list]]]:
    """The run's description and a section per (dataset, model)."""
    parts = [f'<h{level} id="{anchor}-run">What ran</h{level}>', manifest_html(run)]
    contents: list[tuple[str, str, list]] = [(f"{anchor}-run", "What ran", [])]
    for dataset, model in run.models:
        section = anchor_id(anchor, dataset, model)
        html_text, entries = model_section(run, dataset, model, section)
        parts.append(f'<h{level} id="{section}">{escape(dataset)} / {escape(model)}</h{level}>')
        parts.append(html_text)
        contents.append((section, f"{dataset} / {model}", entries))
    shown = {p for d, m in run.models for p in figures_of(run, d, m)}
    others = [p for p in run.figures if p not in shown]
    if others:
        parts.append(f'<h{level} id="{anchor}-other-figures">Other figures</h{level}>')
        parts += [figure_html(p, run.prefix, figure_caption(p, run.plan)) for p in others]
        contents.append((f"{anchor}-other-figures", "Other figures", []))
    return "\n".join(parts), contents


def _contents_html(contents: list[tuple[str, str, list]]) -> str:
    def items(entries: list) -> str:
        return "".join(
            f'<li><a href="#{anchor}">{escape(title)}</a>' + (f"<ul>{items(children)}</ul>" if children else "") + "</li>"
            for anchor, title, *rest in entries for children in [rest[0] if rest else []])

    return f'<nav class="toc" id="contents"><b>Contents</b><ul>{items(contents)}</ul></nav>'


def _document(title: str, lead: str, contents: list, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{escape(title)}</title>'
            f"<style>{STYLE}</style></head><body><main><h1>{escape(title)}</h1><p class=\"lead\">{lead}</p>"
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
    lead = (f"Run <code>{escape(name)}</code> of signed-saliency: how faithful each map is, and whether its sign says "
            "which way to move a pixel. Rebuild with <code>python -m benchmarks.report "
            f"{escape(portable(folder))}</code>. Tidy rows: <code>scores.csv</code>; every variant: <code>summary.md</code>.")
    return _write(folder / PAGE, _document(f"signed-saliency: {name}", lead, contents, body))


def suite_page(folder: Path, parts: Sequence[Path]) -> str:
    contents: list[tuple[str, str, list]] = []
    body = []
    tables = [folder / name for name in SUITE_TABLES if (folder / name).is_file()]
    if tables:
        body.append('<h2 id="paper-tables">The paper\'s tables</h2>')
        contents.append(("paper-tables", "The paper's tables", []))
        for path in tables:
            body.append(f'<section id="{anchor_id(path.stem)}">{markdown_html(path.read_text())}</section>')
            contents[-1][2].append((anchor_id(path.stem), path.name, []))
    figures = figure_files(folder / "figures")
    if figures:
        body.append('<h2 id="paper-figures">The paper\'s figures</h2>')
        contents.append(("paper-figures", "The paper's figures", []))
        body += [figure_html(path, "", figure_caption(path, {"metrics": {}})) for path in figures]
    for part in parts:
        if not (part / "summary.csv").is_file():
            continue
        run = read_folder(part, prefix=f"{part.relative_to(folder).as_posix()}/")
        anchor = anchor_id(part.name)
        sections, entries = run_sections(run, anchor, level=3)
        body.append(f'<h2 id="{anchor}">Part {escape(part.name)}</h2><p class="note">Its own page: '
                    f'<a href="{escape(run.prefix)}{PAGE}">{escape(run.prefix)}{PAGE}</a>.</p>')
        body.append(sections)
        contents.append((anchor, f"Part {part.name}", entries))
    lead = (f"The suite <code>{escape(folder.name)}</code>: the paper's tables and figures, then every part's results. "
            f"Rebuild with <code>python -m benchmarks.paper {escape(portable(folder))}</code>.")
    return _document(f"signed-saliency: {folder.name}", lead, contents, "\n".join(body))
