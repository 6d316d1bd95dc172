"""Can a metric's ranking be trusted: split-half agreement over random halves of the images,
and how many images its ranking needs before it is stable."""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.meta.rankings import PANEL, _orientation, method_matrix

SPLITS = 100  # random halves per metric
DRAWS = 100  # random subsets per size when looking for the stable size
STABLE_TAU = 0.9  # a subset's ranking is "stable" at this Kendall's tau with the full ranking,
STABLE_SHARE = 0.95  # in this share of the draws

# ---------------------------------------------------------------- reliability


def batched_kendall_tau(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Kendall's tau-b between the columns of two items x columns arrays, all at once, over
    the items finite in both (NaN under 2 such items, or where either ranking is all ties).
    Written here because scipy's kendalltau takes one pair per call (about 0.5 ms), and a
    metric's reliability needs about a thousand; tests check it against scipy."""
    rows, columns = np.triu_indices(first.shape[0], k=1)
    sign_first = np.sign(first[rows] - first[columns])  # item pairs x columns; NaN where an item is missing
    sign_second = np.sign(second[rows] - second[columns])
    valid = np.isfinite(sign_first) & np.isfinite(sign_second)
    pairs = valid.sum(axis=0)
    untied_first = (valid & (sign_first != 0)).sum(axis=0)
    untied_second = (valid & (sign_second != 0)).sum(axis=0)
    concordance = np.where(valid, sign_first * sign_second, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = concordance / np.sqrt(untied_first.astype(float) * untied_second)
    return np.where((pairs > 0) & (untied_first > 0) & (untied_second > 0), tau, np.nan)


def subset_means(values: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """Each method's mean of its finite values over each subset of images: ``values`` is
    methods x images, ``chosen`` images x subsets (bool); methods x subsets (one matrix
    product, no loop over images)."""
    finite = np.isfinite(values)
    sums = np.where(finite, values, 0.0) @ chosen
    counts = finite.astype(float) @ chosen
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def random_positions(n_images: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` random permutations, as each image's position (count x images): the images
    at positions below n are a uniform random subset of n, and two position ranges are disjoint."""
    return rng.permuted(np.tile(np.arange(n_images), (count, 1)), axis=1)


def split_half_taus(values: np.ndarray, rng: np.random.Generator, splits: int = SPLITS) -> np.ndarray:
    """Kendall's tau between the method rankings of two disjoint random halves of the images,
    for each of ``splits`` splits (NaN for all under 2 images)."""
    half = values.shape[1] // 2
    if half == 0:
        return np.full(splits, np.nan)
    positions = random_positions(values.shape[1], splits, rng)
    first = subset_means(values, (positions < half).T)
    second = subset_means(values, ((positions >= half) & (positions < 2 * half)).T)
    return batched_kendall_tau(first, second)


def subset_sizes(n_images: int) -> list[int]:
    """Subset sizes tried for stability, a 1-2-5 series from 5 up to below ``n_images``."""
    series = [base * 10**power for power in range(7) for base in (1, 2, 5)]
    return [size for size in series if 5 <= size < n_images]


def stable_size(values: np.ndarray, rng: np.random.Generator, draws: int = DRAWS) -> float:
    """The smallest subset size whose ranking has tau >= STABLE_TAU with the full ranking in
    at least STABLE_SHARE of ``draws`` random subsets (an undefined tau counts as unstable);
    NaN when no size below the full count is."""
    full = subset_means(values, np.ones((values.shape[1], 1), dtype=bool))
    for size in subset_sizes(values.shape[1]):
        subsets = subset_means(values, (random_positions(values.shape[1], draws, rng) < size).T)
        taus = batched_kendall_tau(subsets, np.repeat(full, draws, axis=1))
        if np.mean(np.nan_to_num(taus, nan=-1.0) >= STABLE_TAU) >= STABLE_SHARE:
            return float(size)
    return float("nan")


def reliability(rows: pd.DataFrame, plan: dict[str, Any], seed: int) -> pd.DataFrame:
    """Per (dataset, model, metric) of the :func:`headline` ``rows``: split-half tau (mean and
    95% interval over SPLITS random halves) and the images needed for a stable ranking
    (:func:`stable_size`). Each metric draws from its own generator, seeded by ``seed`` and
    its place, so adding a metric leaves the others' numbers unchanged. Halves hold half the
    images, so split-half tau understates the agreement that the full count would reach."""
    results = []
    blocks = rows.groupby(PANEL + ["metric"], sort=False)
    for (dataset, model, metric), block in blocks:
        methods, values = method_matrix(block, _orientation(metric, plan))
        rng = np.random.default_rng([seed, *(_stable_hash(text) for text in (dataset, model, metric))])
        taus = split_half_taus(values, rng)
        defined = taus[np.isfinite(taus)]
        results.append({
            "dataset": dataset, "model": model, "metric": metric, "metric_family": plan["metrics"][metric]["family"],
            "n_images": values.shape[1], "n_methods": len(methods),
            "split_half_tau": float(defined.mean()) if len(defined) else np.nan,
            "split_half_low": float(np.percentile(defined, 2.5)) if len(defined) else np.nan,
            "split_half_high": float(np.percentile(defined, 97.5)) if len(defined) else np.nan,
            "splits_undefined": int(len(taus) - len(defined)),
            "images_to_stable": stable_size(values, rng),
        })
    return pd.DataFrame(results)


def _stable_hash(text: str) -> int:
    """A seed word from a name that is the same in every process (Python's hash is salted)."""
    return zlib.crc32(text.encode())
