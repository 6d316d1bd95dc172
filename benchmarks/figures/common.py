"""What every figure shares: the variants' words, the axes' labels, the references' styles,
and the writer that keeps each committed file small and unchanged when its bytes are."""

from __future__ import annotations

import io
import textwrap
from pathlib import Path
from typing import Any, Optional

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers or CI

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

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


def y_label(variant: str, higher_is_better: bool, moved: bool) -> str:
    """The quantity and which way is better: a curve that removes what the map ranks first
    is better falling (LeRF's, which removes it last, rising)."""
    parts = variant.split("/")
    quantity = next((QUANTITIES[part] for part in reversed(parts) if part in QUANTITIES), "value")
    if moved:  # sign-flip: the change from the unperturbed score; moving against a claim should lower it
        return f"change in {quantity}\n(lower is better)"
    better = "higher" if ("lerf" in parts or (higher_is_better and "morf" not in parts)) else "lower"
    return f"{quantity}\n({better} is better)"


def save(figure: plt.Figure, path: Path, formats: tuple[str, ...] = ("png", "pdf")) -> None:
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


def mean_band(axis: plt.Axes, curve: pd.DataFrame, label: str, **style: Any) -> None:
    """One method's mean curve with its 95% normal band, from ``mean``/``sem`` indexed by x."""
    axis.xaxis.set_major_locator(MaxNLocator(5))
    x, mean, band = curve.index.get_level_values("x"), curve["mean"].to_numpy(), 1.96 * curve["sem"].to_numpy()
    axis.plot(x, mean, linewidth=1.3, label=label, **style)
    axis.fill_between(x, mean - band, mean + band, color=style["color"], alpha=0.12, linewidth=0)


def method_label(method: str, methods_meta: dict[str, dict[str, str]]) -> str:
    return f"{method} ({methods_meta.get(method, {}).get('direction', '?')})"


TITLE_WIDTH = 46  # characters of a panel title's line at 8 pt in a 3-inch panel


def panel_title(title: str) -> str:
    return f"{title}\n{explain_variant(title.split(':')[0], TITLE_WIDTH)}"


def figure_legend(figure: plt.Figure, axes, order: list[str], labels: dict[str, str]) -> None:
    handles = {}
    for axis in axes:
        for handle, label in zip(*axis.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    ordered = [labels.get(m, m) for m in order if labels.get(m, m) in handles]
    figure.legend([handles[label] for label in ordered], ordered, loc="outside right center", fontsize=8, frameon=False)
