"""report.html: built from a tiny run's folder, read as HTML and rendered in a real browser."""

from __future__ import annotations

import html.parser
import json
import os
import shutil
import subprocess
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from benchmarks import figures, report, run
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


def test_a_merged_folder_carries_the_maps_and_the_manifest(tiny_run, tmp_path):
    merged = tmp_path / "merged"
    assert report.main([str(tiny_run), "--out", str(merged)]) == 0
    text = (merged / "report.html").read_text()
    assert "merged</dt>" in text and "torch threads" in text and "no manifest.json" not in text
    assert any(path.name.startswith("maps-") for path in (merged / "figures").iterdir())


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


# --- the figures the page shows, on synthetic rows ---------------------------------------

METHODS = {
    "gradient": ("paper", "signed"), "saliency": ("paper", "magnitude"), "positive": ("paper", "increase"),
    "negative": ("paper", "decrease"), "active": ("paper", "increase"), "inactive": ("paper", "decrease"),
    "integrated-gradients": ("baseline", "signed"), "smoothgrad": ("baseline", "signed"),
    "guided-backprop": ("baseline", "magnitude"), "input-x-gradient": ("baseline", "signed"),
    "grad-cam": ("baseline", "magnitude"), "random": ("control", "magnitude"), "edge": ("control", "magnitude"),
    **{f"{base}-{sign}": ("sign-split", direction) for base in ("gradient", "integrated-gradients", "smoothgrad")
       for sign, direction in (("positive", "increase"), ("negative", "decrease"))},
    "my-method": ("user", "increase"),
}
METHODS_META = {name: {"family": family, "direction": direction, "score": "logit"}
                for name, (family, direction) in METHODS.items()}


def curve_means(variants_of) -> pd.DataFrame:
    """Per method, a straight mean curve over 3 points for each variant ``variants_of(direction)`` names."""
    rows = [{"dataset": "d", "model": "m", "method": method, "metric": "metric", "variant": variant, "x": x,
             "n": 4, "mean": index - x, "sem": 0.1}
            for index, (method, (_, direction)) in enumerate(METHODS.items())
            for variant in variants_of(direction) for x in (0.0, 0.5, 1.0)]
    return pd.DataFrame(rows)


def lines_of(figure) -> list[list]:
    return [[line for line in axis.get_lines() if line.get_label() and not line.get_label().startswith("_")]
            for axis in figure.axes if axis.get_visible() and axis.get_lines()]


def labels_of(figure) -> set[str]:
    return {line.get_label().split(" (")[0] for panel in lines_of(figure) for line in panel}


def test_curve_panels_hold_at_most_seven_lines_in_distinct_colours_and_every_method_appears():
    block = curve_means(lambda direction: ["black/probability", "white/probability"])
    main = figures.curve_figure(block, METHODS_META, "deletion", "fraction deleted", False)
    others = figures.families_figure(block, METHODS_META, "deletion", "fraction deleted", False)
    for figure in (main, others):
        for panel in lines_of(figure):
            colours = [matplotlib.colors.to_hex(line.get_color()) for line in panel]
            assert len(panel) <= 7 and len(set(colours)) == len(colours)
        assert all(axis.get_ylabel().endswith("(lower is better)") for axis in figure.axes if axis.get_ylabel())
    assert labels_of(main) == {"gradient", "saliency", "positive", "negative", "active", "inactive", "random"}
    assert labels_of(others) == set(METHODS) - {"gradient", "positive", "negative", "active", "inactive"}
    assert main.axes[0].get_title().startswith("black/probability\npixels set to black; target's softmax")
    plt.close("all")


def test_sign_flip_sets_each_map_against_its_claim_beside_magnitude_maps_moved_the_same_way():
    def variants(direction: str) -> list[str]:
        moves = ("darker", "brighter") if direction == "magnitude" else ("against", "along")
        return [f"saturate/logit/{move}" for move in moves]

    figure = figures.curve_figure(curve_means(variants), METHODS_META, "sign-flip", "fraction moved")
    darken, brighten = (lines_of(figure)[index] for index in (0, 1))
    assert {line.get_label() for line in darken} == {
        "saliency (magnitude)", "random (magnitude)", "gradient (signed)", "positive (increase)", "active (increase)"}
    assert {line.get_label() for line in brighten} == {
        "saliency (magnitude)", "random (magnitude)", "gradient (signed)", "negative (decrease)", "inactive (decrease)"}
    assert figure.axes[0].get_ylabel() == "change in target logit\n(lower is better)"
    plt.close("all")


def test_the_map_grid_has_a_row_for_every_method_and_a_colourbar_per_kind_of_map():
    names = list(METHODS)
    examples = {
        "images": torch.zeros(3, 3, 8, 8, dtype=torch.uint8), "labels": torch.tensor([0, 1, 1]),
        "predicted": torch.tensor([0, 1, 0]), "class_names": ["zero", "one"],
        "maps": {name: torch.randn(3, 8, 8) for name in names},
        "directions": {name: METHODS[name][1] for name in names},
    }
    figure = figures.qualitative_grid(examples, METHODS_META, "d-m")
    rows = [axis.get_ylabel().split("\n")[0] for axis in figure.axes if axis.get_ylabel()]
    assert rows == ["image", *names]
    colourbars = [axis for axis in figure.axes if axis.get_label() == "<colorbar>"]
    assert len(colourbars) == 2 and colourbars[0].get_xlim() == (-1.0, 1.0)
    assert figure.axes[2].get_title(loc="center").endswith("pred: zero")  # wrong predictions are named
    plt.close("all")


def test_a_folder_datasets_figures_are_filed_under_its_own_section():
    from types import SimpleNamespace

    from benchmarks.page.words import figures_of
    from benchmarks.store import pair_stem

    dataset = "folder:/data/pets"  # its figures' names hold it path-safe, as the shards do
    figure = Path(f"figures/curves-deletion-{pair_stem(dataset, 'cnn')}.png")
    run = SimpleNamespace(figures=[figure, Path("figures/curves-deletion-cifar10-cnn.png")],
                          plan={"metrics": ["deletion"]})
    assert figures_of(run, dataset, "cnn") == [figure]
