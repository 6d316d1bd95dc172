"""What a results folder holds, read from its files, and the page's shared words."""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import pandas as pd

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

def read_table(path: Path) -> pd.DataFrame:
    # variants are "" for single-valued metrics: keep them as empty strings, not NaN
    return pd.read_csv(path, keep_default_na=False, na_values=[""], dtype={"variant": object}).fillna({"variant": ""})


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


def escape(text: Any) -> str:
    return html.escape(str(text), quote=True)


def anchor_id(*parts: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")
