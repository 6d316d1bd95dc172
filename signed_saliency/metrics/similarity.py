"""How alike two batches of maps are, image by image: the measures of Adebayo et al. (2018).

:func:`similarities` compares two (N,H,W) batches and returns ``{measure: (N,)}``, float32
on the first batch's device, 1 for identical maps; a :class:`Reference` does the same
against one batch many times (a randomisation run compares with the original maps once per
layer) and computes the reference side's ranks and features only once. The measures:

- ``spearman``: Spearman rank correlation of the raw maps (ties get their average rank,
  as in ``scipy.stats.spearmanr``);
- ``spearman-abs``: the same on the maps' absolute values;
- ``ssim``: structural similarity of the 2-D maps (that of ``skimage.metrics.structural_similarity``,
  computed on the whole batch);
- ``hog``: Pearson correlation of the maps' HOG features (those of ``skimage.feature.hog``,
  computed on the whole batch).

SSIM and HOG see each map divided by its largest absolute value first. A map's units are
arbitrary and a randomised model's gradients can be orders of magnitude smaller than the
trained one's; without this SSIM's luminance and contrast terms would measure that scale
rather than the map's structure (Quantus' MPRT normalises by the maximum too). The two
rank correlations need no normalisation. A similarity that is undefined (a constant map
has no ranks to correlate, a constant HOG no variance, two zero maps no structure) is NaN
rather than a made-up value; of finite maps, nothing else is NaN, which lets the metrics
mark these values undefined by design.
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import Tensor

from signed_saliency.errors import UserError

MEASURES = ("spearman", "spearman-abs", "ssim", "hog")


def average_ranks(values: Tensor) -> Tensor:
    """Ranks 1..L along the last dimension of (N,L) ``values``, ties sharing their mean
    rank; float64."""
    length = values.shape[1]
    sorted_values, order = values.sort(dim=1)
    position = torch.arange(length, device=values.device).expand_as(sorted_values)
    differs = sorted_values[:, 1:] != sorted_values[:, :-1]
    edge = torch.ones_like(sorted_values[:, :1], dtype=torch.bool)
    starts = torch.cat([edge, differs], dim=1)
    ends = torch.cat([differs, edge], dim=1)
    # Each element's tie group runs from the last start at or before it to the first end
    # at or after it; its members share the mean of those positions.
    first = torch.where(starts, position, 0).cummax(dim=1).values
    last = torch.where(ends, position, length).flip(1).cummin(dim=1).values.flip(1)
    ranks_sorted = (first + last).double() / 2 + 1
    return torch.empty_like(ranks_sorted).scatter_(1, order, ranks_sorted)


def _standardised(values: Tensor) -> Tensor:
    """Rows of (N,L) centred and scaled to unit norm, float64; NaN rows where constant."""
    values = values.double()
    centred = values - values.mean(dim=1, keepdim=True)
    norm = centred.square().sum(dim=1, keepdim=True).sqrt()
    return torch.where(norm > 0, centred / norm.clamp(min=torch.finfo(torch.float64).tiny), float("nan"))


def _correlate(a: Tensor, b: Tensor) -> Tensor:
    """Row-wise Pearson correlation of rows already :func:`_standardised` (a
    :class:`Reference` standardises its own side once); NaN where either row was constant."""
    return (a * b).sum(dim=1).clamp(-1, 1).float()


def _scaled(maps: Tensor) -> Tensor:
    """Maps in float64, each divided by its largest absolute value (zero maps kept)."""
    maps = maps.detach().double()
    peak = maps.flatten(1).abs().amax(dim=1).clamp(min=torch.finfo(torch.float64).tiny)
    return maps / peak.view(-1, 1, 1)


def _ssim_pairs(first: Tensor, second: Tensor) -> Tensor:
    """SSIM of each pair of scaled maps, as ``skimage.metrics.structural_similarity``
    computes it (uniform 7x7 windows, or the largest odd side that fits; sample covariance;
    K1 0.01, K2 0.03; the mean over the windows that lie wholly inside the map), for the
    whole batch at once on its device, over the range scaled maps can span: [0, 1], or
    [-1, 1] when either map has negative values. Quantus takes the range the pair spans
    instead; for a nearly constant pair (Grad-CAM upsampled from a 1x1 or 2x2 feature map)
    that range is tiny, SSIM's stabilising constants vanish with it, and rounding drives
    the value far outside [-1, 1]. Two zero maps have no structure to compare: NaN."""
    side = min(first.shape[1:])
    window = min(7, side if side % 2 else side - 1)
    cov_norm = window**2 / (window**2 - 1)  # skimage's sample covariance

    signed = torch.minimum(first.flatten(1).amin(dim=1), second.flatten(1).amin(dim=1)) < 0
    data_range = torch.where(signed, 2.0, 1.0).to(first.dtype).view(-1, 1, 1)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    # skimage filters with reflection at the edges, then crops every window that reached
    # past them: what is left are the windows wholly inside. The five window means at once,
    # each window summed along its rows, then its columns: on float64 on a CPU, 3x faster
    # than avg_pool2d and 4x than a 7x7 pooling, within 1e-15 of both
    products = torch.stack([first, second, first * first, second * second, first * second], dim=1)
    means = products.unfold(2, window, 1).sum(dim=-1).unfold(3, window, 1).sum(dim=-1) / window**2
    mean_first, mean_second, mean_squares_first, mean_squares_second, mean_products = means.unbind(dim=1)
    var_first = cov_norm * (mean_squares_first - mean_first**2)
    var_second = cov_norm * (mean_squares_second - mean_second**2)
    covariance = cov_norm * (mean_products - mean_first * mean_second)
    ssim = ((2 * mean_first * mean_second + c1) * (2 * covariance + c2)) / (
        (mean_first**2 + mean_second**2 + c1) * (var_first + var_second + c2)
    )
    both_zero = ~(first.flatten(1).any(dim=1) | second.flatten(1).any(dim=1))
    return torch.where(both_zero, float("nan"), ssim.mean(dim=(1, 2))).float()


# HOG is written here on whole batches rather than called from skimage, which takes one
# image at a time: the randomisation check compares every method's maps once per
# randomised model (12-45 of them), and skimage's HOG was a fifth of its time at 224 px.
# Batched, it is 3.3-5.3x faster (python -m benchmarks.speed hog) with the same values
# (tests/test_similarity_torch.py checks them against skimage). SSIM is written the same
# way, so that no measure leaves the maps' device.
HOG_ORIENTATIONS, HOG_BLOCK, HOG_EPS = 9, 3, 1e-5  # skimage.feature.hog's defaults, 3x3-cell blocks


def hog_cell(height: int, width: int, pixels_per_cell: int) -> int:
    """The cell side used: ``pixels_per_cell``, smaller where the map would not hold one
    block of 3x3 cells."""
    return max(1, min(pixels_per_cell, min(height, width) // HOG_BLOCK))


def _hog_features(maps: Tensor, pixels_per_cell: int) -> Tensor:
    """HOG features of each scaled map, (N,F) float64, as ``skimage.feature.hog`` computes
    them with 9 orientations, 3x3-cell blocks and L2-Hys normalisation: central-difference
    gradients (zero on the border), each pixel's magnitude voted into its cell's bin of
    unsigned orientation, and every block of cells normalised, in skimage's feature order."""
    count, height, width = maps.shape
    cell = hog_cell(height, width, pixels_per_cell)
    rows, columns = height // cell, width // cell
    gradient_rows, gradient_columns = torch.zeros_like(maps), torch.zeros_like(maps)
    gradient_rows[:, 1:-1] = maps[:, 2:] - maps[:, :-2]
    gradient_columns[:, :, 1:-1] = maps[:, :, 2:] - maps[:, :, :-2]
    magnitude = torch.hypot(gradient_rows, gradient_columns)
    orientation = torch.rad2deg(torch.atan2(gradient_rows, gradient_columns)).remainder(180)
    # bin k holds [20k, 20(k+1)) degrees; a search, not a division, so the bin edges are exact
    edges = torch.arange(1, HOG_ORIENTATIONS, dtype=maps.dtype, device=maps.device) * (180 / HOG_ORIENTATIONS)
    orientation_bin = torch.bucketize(orientation, edges, right=True)
    # pixels past the last whole cell are left out, as skimage does
    magnitude = magnitude[:, : rows * cell, : columns * cell]
    orientation_bin = orientation_bin[:, : rows * cell, : columns * cell]
    index = torch.arange(max(rows, columns) * cell, device=maps.device) // cell
    cell_of = index[: rows * cell, None] * columns + index[: columns * cell]
    slot = (cell_of * HOG_ORIENTATIONS + orientation_bin).flatten(1)
    histogram = maps.new_zeros(count, rows * columns * HOG_ORIENTATIONS)
    histogram.scatter_add_(1, slot, magnitude.flatten(1)).div_(cell * cell)
    histogram = histogram.view(count, rows, columns, HOG_ORIENTATIONS)
    # (N, block rows, block columns, 3, 3, 9): skimage's ravel order
    blocks = histogram.unfold(1, HOG_BLOCK, 1).unfold(2, HOG_BLOCK, 1).permute(0, 1, 2, 4, 5, 3)
    blocks = blocks.flatten(3)

    def l2_normalised(values: Tensor) -> Tensor:
        return values / (values.square().sum(dim=-1, keepdim=True) + HOG_EPS**2).sqrt()

    return l2_normalised(l2_normalised(blocks).clamp(max=0.2)).flatten(1)


def check_measures(measures: Iterable[str]) -> tuple[str, ...]:
    measures = tuple(measures)
    unknown = [m for m in measures if m not in MEASURES]
    if unknown:
        raise UserError(f"unknown similarity measure {', '.join(map(repr, unknown))}; valid: {', '.join(MEASURES)}")
    return measures


class Reference:
    """Maps that other maps will be compared with, possibly many times (once per
    randomised layer): what each measure needs of them is computed once, here."""

    def __init__(self, maps: Tensor, measures: Iterable[str] = MEASURES, *, hog_cell: int = 8):
        self.measures = check_measures(measures)
        self.hog_cell = hog_cell
        self.device = maps.device
        self._prepared = {m: self._prepare(m, maps.detach()) for m in self.measures}

    def _prepare(self, measure: str, maps: Tensor):
        if measure == "spearman":
            return _standardised(average_ranks(maps.flatten(1)))
        if measure == "spearman-abs":
            return _standardised(average_ranks(maps.abs().flatten(1)))
        if measure == "ssim":
            return _scaled(maps)
        return _standardised(_hog_features(_scaled(maps), self.hog_cell))

    def compare(self, maps: Tensor, index: slice = slice(None)) -> dict[str, Tensor]:
        """``{measure: (n,)}``: similarity of ``maps`` (n,H,W) with reference maps ``index``."""
        maps = maps.detach().to(self.device)
        result = {}
        for measure in self.measures:
            mine, theirs = self._prepared[measure][index], self._prepare(measure, maps)
            if measure == "ssim":
                result[measure] = _ssim_pairs(mine, theirs)
            else:
                result[measure] = _correlate(mine, theirs)
        return result


def similarities(a: Tensor, b: Tensor, measures: Iterable[str] = MEASURES, *, hog_cell: int = 8) -> dict[str, Tensor]:
    """``{measure: (N,)}`` for two (N,H,W) batches of maps."""
    return Reference(a, measures, hog_cell=hog_cell).compare(b)
