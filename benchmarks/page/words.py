"""The page's figures with their captions, the manifest in words, and the suite's markdown."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Sequence

from benchmarks.page.folder import FIGURE_KINDS, Folder, escape
from benchmarks.page.tables import arrow
from benchmarks.store import archive, pair_stem


def figure_html(path: Path, prefix: str, caption: str) -> str:
    """The figure, linked to its file; the long ones behind a click (small multiples of the
    other families, one image per class), so the page stays one that reads at a glance."""
    source = escape(f"{prefix}figures/{path.name}")
    figure = (f'<figure class="plot"><a href="{source}"><img src="{source}" alt="{escape(path.stem)}" loading="lazy">'
              f"</a><figcaption><code>{escape(path.name)}</code>: {escape(caption)}</figcaption></figure>")
    if path.stem.endswith("-families") or path.stem.startswith("classes-"):
        return f"<details><summary>{escape(caption.split('.')[0])}: {escape(path.name)}</summary>{figure}</details>"
    return figure


def _curve_metric(stem: str, metrics: Sequence[str]) -> str:
    """The metric a ``curves-{metric}-{dataset}-{model}`` figure draws ("" for another
    figure); the longest name first, as one metric's name may start another's."""
    return next((m for m in sorted(metrics, key=len, reverse=True) if stem.startswith(f"curves-{m}-")), "")


def figure_caption(path: Path, plan: dict[str, Any]) -> str:
    from benchmarks.figures import curve_caption

    stem = path.stem
    for start, text in FIGURE_KINDS:
        if stem.startswith(start):
            if start == "curves-":
                return f"{curve_caption(_curve_metric(stem, plan['metrics']), stem.endswith('-families'))} {text}"
            return text
    return ""


def figures_of(run: Folder, dataset: str, model: str) -> list[Path]:
    """The figures of one (dataset, model), maps first, then the curves in the plan's metric
    order (main figure before its small multiples), then ground truth."""
    tag = f"-{pair_stem(dataset, model)}"
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


def figure_kind(path: Path, plan: dict[str, Any]) -> str:
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
        f"<b>{escape(d['name'])}</b> ({escape(d['split'])} split, {d['n_images']} images"
        + (f", {d['image_size']} px" if d.get("image_size") else "")
        + (f", {escape(d['precision'])}" if d.get("precision", "float32") != "float32" else "")
        + f"): models {escape(', '.join(d['models']))}" for d in config["datasets"])
    items.append(("data and models", data))
    families: dict[str, list[str]] = {}
    for name, meta in plan["methods"].items():
        families.setdefault(meta.get("family", "?"), []).append(name)
    items.append(("methods", f"{len(plan['methods'])}: " + "; ".join(
        f"{escape(family)}: {escape(', '.join(names))}" for family, names in families.items())))
    items.append(("metrics", f"{len(plan['metrics'])}: " + ", ".join(
        f"{escape(name)} {arrow(plan, name)}" for name in plan["metrics"])))
    settings = config.get("settings") or {}
    if settings:
        items.append(("settings", "; ".join(f"{escape(k)}: {escape(json.dumps(v))}" for k, v in settings.items())))
    items.append(("seed", f"{config.get('seed')} (bootstrap and tie-breaking)"))
    if manifest:
        merged = manifest.get("merged_from", [])
        if merged:
            items.append(("merged", f"by <code>benchmarks.report</code> from {len(merged)} folders: "
                                    + ", ".join(f"<code>{escape(folder)}</code>" for folder in merged)))
        if "device" in manifest:
            versions = manifest.get("versions", {})
            items.append(("machine", f"{escape(manifest.get('device'))} on {escape(manifest.get('machine'))}, "
                                     f"{manifest.get('torch_threads')} torch threads"))
            items.append(("software", ", ".join(f"{escape(k)} {escape(v)}" for k, v in versions.items())
                          + (f"; git commit <code>{escape(str(manifest.get('git_commit'))[:12])}</code>"
                             if manifest.get("git_commit") else "")))
        else:
            items.append(("machine", '<span class="warn">unknown: none of the merged folders holds a manifest.json '
                                     "(slices write none); run <code>benchmarks.run</code> with the same config and "
                                     "<code>--out</code> this folder, which reuses every shard, to record it</span>"))
        runs = manifest.get("runs", [])
        total = sum(r["wall_seconds"] for r in runs)
        computed = sum(r["shards_computed"] for r in runs)
        last = (f"; the last report's invocation took {_duration(manifest['wall_seconds'])}"
                if "wall_seconds" in manifest else "")
        items.append(("time", f"{_duration(total)} over {len(runs)} invocation(s) that computed shards"
                              + (f" ({', '.join(_duration(r['wall_seconds']) for r in runs)})" if len(runs) > 1 else "")
                              + last))
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
    body = "".join(f"<dt>{escape(term)}</dt><dd>{text}</dd>" for term, text in items)
    return f'<dl class="manifest">{body}</dl>'


def markdown_html(text: str) -> str:
    """The suite's markdown files (headings, paragraphs, pipe tables, code blocks: what
    paper.py writes) as HTML. Written here rather than adding a markdown package for four
    files whose syntax this project writes itself."""
    out, paragraph, table, code = [], [], [], None

    def inline(line: str) -> str:
        line = escape(line)
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
                out.append("<pre>" + escape("\n".join(code)) + "</pre>")
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
