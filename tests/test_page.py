"""report.html: built from a tiny run's folder, read as HTML and rendered in a real browser."""

from __future__ import annotations

import html.parser
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks import report, run
from conftest import make_workspace

CHROMIUM = next((shutil.which(name) for name in ("chromium", "chromium-browser") if shutil.which(name)), None)
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


class Links(html.parser.HTMLParser):
    """Every element id and every src/href of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.sources: list[str] = []
        self.references: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(values["id"])
        if tag == "img":
            self.sources.append(values["src"])
        if values.get("href"):
            self.references.append(values["href"])


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A tiny run's folder (the workspace fixture's, built once for this module's tests)."""
    monkeypatch = pytest.MonkeyPatch()
    tmp = tmp_path_factory.mktemp("page")
    workspace_dir, config = make_workspace(tmp, monkeypatch)
    out = workspace_dir / "run"
    assert run.main(["--config", config(), "--out", str(out), "--quiet"]) == 0
    yield out
    monkeypatch.undo()


def parsed(path: Path) -> Links:
    links = Links()
    links.feed(path.read_text())
    return links


def test_the_page_has_every_section_and_only_local_links(tiny_run):
    path = tiny_run / "report.html"
    links = parsed(path)
    sections = {"", "-headline", "-effects", "-forest", "-maps", "-curves"}  # the tiny run has no sanity checks
    assert {"contents", "run-run", *(f"run-signed-shapes-cnn{section}" for section in sections)} <= links.ids
    assert all(reference.lstrip("#") in links.ids for reference in links.references if reference.startswith("#"))
    assert links.sources and all((tiny_run / source).is_file() for source in links.sources)
    assert not [link for link in links.sources + links.references if "://" in link]  # opens offline
    text = path.read_text()
    assert "positive" in text and "deletion ↓" in text and "sparseness ↑" in text
    assert "<svg" in text  # the forest plots
    manifest = json.loads((tiny_run / "manifest.json").read_text())
    assert f"{manifest['runs'][0]['shards_computed']} computed" in text


def test_a_rebuilt_page_is_byte_identical_and_left_alone(tiny_run):
    path = tiny_run / "report.html"
    before, modified = path.read_bytes(), path.stat().st_mtime_ns
    assert report.main([str(tiny_run), "--no-figures"]) == 0
    assert path.read_bytes() == before and path.stat().st_mtime_ns == modified


def test_a_merged_folder_says_what_it_lacks(tiny_run, tmp_path):
    merged = tmp_path / "merged"
    assert report.main([str(tiny_run), "--out", str(merged), "--no-figures"]) == 0
    text = (merged / "report.html").read_text()
    assert "no manifest.json" in text and "example maps" in text and "examples/" in text


def test_no_figure_is_over_a_megabyte(tiny_run):
    sizes = {path.name: path.stat().st_size for path in (tiny_run / "figures").iterdir()}
    assert any(name.startswith("maps-") and name.endswith(".jpg") for name in sizes)
    assert max(sizes.values()) < 1_000_000, sizes


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")
def test_the_page_renders_in_chromium_with_every_image(tiny_run, tmp_path):
    # Images load lazily below the fold; the checked copy loads them all and lists those
    # the browser could not decode, which --dump-dom then prints.
    checked = tiny_run / "report-checked.html"
    probe = ("<script>addEventListener('load',()=>{document.body.dataset.broken=JSON.stringify("
             "[...document.images].filter(i=>!(i.complete&&i.naturalWidth>0)).map(i=>i.getAttribute('src')));"
             "document.body.dataset.images=document.images.length;});</script>")
    checked.write_text((tiny_run / "report.html").read_text().replace(' loading="lazy"', "").replace("</body>", probe + "</body>"))
    try:
        common = [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000"]
        dom = subprocess.run([*common, "--dump-dom", checked.as_uri()], capture_output=True, text=True, timeout=120,
                             env={**os.environ, "HOME": str(tmp_path)}).stdout
        screenshot = tmp_path / "page.png"
        subprocess.run([*common, "--window-size=1280,1600", f"--screenshot={screenshot}", (tiny_run / "report.html").as_uri()],
                       capture_output=True, timeout=120, env={**os.environ, "HOME": str(tmp_path)}, check=True)
    finally:
        checked.unlink()
    assert 'data-broken="[]"' in dom, dom[-2000:]
    assert f'data-images="{len(parsed(tiny_run / "report.html").sources)}"' in dom
    pixels = np.asarray(Image.open(screenshot).convert("L"), dtype=float)
    assert pixels.shape == (1600, 1280) and pixels.std() > 20  # text, tables and colour: not a blank page
