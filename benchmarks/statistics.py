"""Summary statistics and significance tests over tidy score rows (scipy)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

GROUP = ["dataset", "model", "method", "metric", "variant"]


def bootstrap_interval(values: np.ndarray, seed: int, resamples: int = 2000) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the mean (scipy); a point for fewer than 2 values
    or no spread, where resampling has nothing to say."""
    if len(values) < 2 or np.ptp(values) == 0:
        mean = float(values.mean()) if len(values) else float("nan")
        return mean, mean
    result = stats.bootstrap(
        (values,), np.mean, n_resamples=resamples, confidence_level=0.95, method="percentile",
        random_state=np.random.default_rng(seed), vectorized=True,
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def summarise(scores: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Per (dataset, model, method, metric, variant): mean of the finite values, its 95%
    bootstrap CI, n, and the values left out, counted, never dropped silently: ``n_undefined``
    those whose row is marked ``undefined`` (by design), ``n_nonfinite`` the other NaN or
    infinite ones, which failed."""
    rows = []
    for key, block in scores.groupby(GROUP, sort=False):
        values = block["value"].to_numpy(dtype=float)
        finite = values[np.isfinite(values)]
        n_undefined = int((block["undefined"].to_numpy() & ~np.isfinite(values)).sum())
        low, high = bootstrap_interval(finite, seed)
        rows.append(
            dict(zip(GROUP, key))
            | {
                "mean": float(finite.mean()) if len(finite) else float("nan"),
                "ci_low": low,
                "ci_high": high,
                "n": len(finite),
                "n_nonfinite": int(len(values) - len(finite)) - n_undefined,
                "n_undefined": n_undefined,
            }
        )
    return pd.DataFrame(rows)


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1)."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p)
    adjusted = np.empty_like(p)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, (len(p) - rank) * p[index])
        adjusted[index] = min(1.0, running)
    return adjusted


def wilcoxon_method(difference: np.ndarray) -> str | stats.PermutationMethod:
    """How the Wilcoxon test of ``difference`` computes its p-value. Written out, not left to
    scipy's ``method="auto"``, whose choice has changed between releases (1.15 made it run
    permutation tests): the exact null distribution for up to 50 pairs with no zeros and no
    ties (where it is exact); an exhaustive permutation test for up to 13 pairs with either
    (at most 2**13 sign flips; exact given the ties); else the normal approximation with
    the variance corrected for ties. This is what scipy 1.17's "auto" does, so its p-values
    are unchanged; our tables (hundreds to thousands of images, with ties) all take the
    normal approximation."""
    nonzero = difference[difference != 0]
    has_zeros = len(nonzero) < len(difference)
    has_ties = len(np.unique(np.abs(nonzero))) < len(nonzero)
    if len(difference) <= 50 and not (has_zeros or has_ties):
        return "exact"
    if len(difference) <= 13:
        return stats.PermutationMethod(n_resamples=np.inf)
    return "asymptotic"


def paired_test(method_values: np.ndarray, reference_values: np.ndarray) -> dict[str, float]:
    """Wilcoxon signed-rank test of paired differences (zero differences discarded, no
    continuity correction; p-value as :func:`wilcoxon_method` says), with the matched-pairs
    rank-biserial correlation as effect size (+1: the method is higher on every image)."""
    difference = method_values - reference_values
    nonzero = difference[difference != 0]
    if len(nonzero) == 0:
        return {"statistic": 0.0, "p_value": 1.0, "effect_size": 0.0, "median_difference": 0.0}
    ranks = stats.rankdata(np.abs(nonzero))
    positive, negative = ranks[nonzero > 0].sum(), ranks[nonzero < 0].sum()
    # the differences themselves, not the two samples, so that the zeros and ties scipy
    # sees are the ones wilcoxon_method counted
    result = stats.wilcoxon(difference, zero_method="wilcox", correction=False, alternative="two-sided",
                            method=wilcoxon_method(difference))
    return {
        "statistic": float(result.statistic),
        "p_value": float(result.pvalue),
        "effect_size": float((positive - negative) / (positive + negative)),
        "median_difference": float(np.median(difference)),
    }


def significance(scores: pd.DataFrame, reference: str = "saliency") -> pd.DataFrame:
    """Every method against ``reference`` on the same images, per (dataset, model, metric,
    variant); Holm-corrected across the methods of each such family."""
    methods = [m for m in dict.fromkeys(scores["method"]) if m != reference] if len(scores) else []
    return paired_comparisons(scores, [(method, reference) for method in methods])


def paired_comparisons(scores: pd.DataFrame, pairs: list[tuple[str, str]]) -> pd.DataFrame:
    """Each (method, reference) pair on the images both scored, per (dataset, model, metric,
    variant); Holm-corrected across the pairs of each such family."""
    columns = GROUP + ["reference", "n", "statistic", "p_value", "p_holm", "effect_size", "median_difference"]
    if scores.empty:  # no rows, and so perhaps no columns to group by either
        return pd.DataFrame(columns=columns)
    wanted = {name for pair in pairs for name in pair}
    rows = []
    for key, block in scores[scores["method"].isin(wanted)].groupby(["dataset", "model", "metric", "variant"], sort=False):
        wide = block.pivot(index="image", columns="method", values="value")
        family = []
        for method, reference in pairs:
            if method not in wide or reference not in wide:
                continue
            pair = wide[[method, reference]].replace([np.inf, -np.inf], np.nan).dropna()
            if len(pair) == 0:
                continue
            test = paired_test(pair[method].to_numpy(), pair[reference].to_numpy())
            family.append(dict(zip(["dataset", "model", "metric", "variant"], key)) | {"method": method, "reference": reference, "n": len(pair)} | test)
        if family:
            adjusted = holm(np.array([row["p_value"] for row in family]))
            for row, p in zip(family, adjusted):
                row["p_holm"] = float(p)
            rows += family
    return pd.DataFrame(rows, columns=columns)


def mean_and_interval(row: pd.Series) -> str:
    """A summary row as a table cell: "mean [95% CI]", or "n/a" where no value was finite."""
    return f"{row['mean']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]" if np.isfinite(row["mean"]) else "n/a"


def latex_table(summary: pd.DataFrame) -> str:
    """summary as a LaTeX longtable: mean with its CI (as summary.md writes it), n and the
    count of non-finite values left out, one row per method and variant."""
    table = summary.assign(value=summary.apply(mean_and_interval, axis=1))[GROUP + ["value", "n", "n_undefined", "n_nonfinite"]]
    return table.to_latex(index=False, longtable=True, escape=True)


def image_count(n: pd.Series) -> str:
    """The cells' numbers of images, "1000" or a range "143-1000": n differs by cell where a
    value is undefined on some images (a constant map has no Spearman), and after a run
    stopped part-way, which has some metrics on more batches than others."""
    fewest, most = int(n.min()), int(n.max())
    return f"{most}" if fewest == most else f"{fewest}-{most}"
