"""benchmarks.statistics: Holm, the paired Wilcoxon test and its effect size, the bootstrap
summary, and the tables written from it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from benchmarks import report, statistics


def test_holm_against_hand_computed_values():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> 0.06 (monotone)
    assert statistics.holm(np.array([0.01, 0.04, 0.03, 0.005])) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert statistics.holm(np.array([0.5, 0.6])).tolist() == [1.0, 1.0]  # capped at 1
    assert statistics.holm(np.array([0.02])).tolist() == [0.02]  # one test: nothing to correct
    assert statistics.holm(np.array([])).tolist() == []


def test_holm_gives_tied_p_values_the_same_adjusted_value():
    assert statistics.holm(np.array([0.01, 0.2, 0.01])) == pytest.approx([0.03, 0.2, 0.03])
    assert statistics.holm(np.array([0.04, 0.04, 0.04])) == pytest.approx([0.12, 0.12, 0.12])


def test_holm_is_monotone_and_never_below_the_raw_p_value():
    p = np.random.default_rng(0).uniform(0, 0.2, size=30)
    adjusted = statistics.holm(p)
    order = np.argsort(p)
    assert np.all(np.diff(adjusted[order]) >= 0)
    assert np.all(adjusted >= p) and np.all(adjusted <= 1)
    permutation = np.random.default_rng(1).permutation(len(p))
    assert statistics.holm(p[permutation]) == pytest.approx(adjusted[permutation])  # input order does not matter


def test_rank_biserial_effect_has_the_sign_of_the_method_minus_the_reference():
    reference = np.zeros(3)
    # differences 3, -1, 2: ranks 3, 1, 2; (5 - 1) / 6
    test = statistics.paired_test(np.array([3.0, -1.0, 2.0]), reference)
    assert test["effect_size"] == pytest.approx(2 / 3)
    assert test["statistic"] == 1.0 and test["median_difference"] == 2.0
    assert test["p_value"] == pytest.approx(0.5)  # exact: 2 * P(W+ >= 5) = 2 * 2/8 for 3 pairs
    assert statistics.paired_test(reference, np.array([3.0, -1.0, 2.0]))["effect_size"] == pytest.approx(-2 / 3)


def test_rank_biserial_effect_reaches_plus_and_minus_one():
    base = np.arange(10, dtype=float)
    higher = statistics.paired_test(base + np.linspace(0.1, 1.0, 10), base)
    assert higher["effect_size"] == 1.0 and higher["statistic"] == 0.0
    assert higher["p_value"] == pytest.approx(2 / 2**10)  # exact: only one of 2**10 sign patterns is as extreme, each side
    lower = statistics.paired_test(base, base + np.linspace(0.1, 1.0, 10))
    assert lower["effect_size"] == -1.0 and lower["p_value"] == higher["p_value"]


def test_all_zero_differences_are_no_evidence_either_way():
    values = np.array([0.2, 0.5, 0.5, 0.9])
    assert statistics.paired_test(values, values.copy()) == {
        "statistic": 0.0, "p_value": 1.0, "effect_size": 0.0, "median_difference": 0.0}


def test_zero_differences_are_left_out_of_the_effect_but_not_the_median():
    test = statistics.paired_test(np.array([0.0, 0.0, 1.0, 2.0]), np.zeros(4))
    assert test["effect_size"] == 1.0 and test["median_difference"] == 0.5


def test_wilcoxon_method_is_chosen_by_the_rule_not_by_scipy():
    rng = np.random.default_rng(0)
    untied = rng.normal(size=50)
    assert statistics.wilcoxon_method(untied) == "exact"
    assert statistics.wilcoxon_method(rng.normal(size=51)) == "asymptotic"
    tied = np.array([1.0, 1.0, -2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0])
    assert isinstance(statistics.wilcoxon_method(tied), stats.PermutationMethod)
    assert isinstance(statistics.wilcoxon_method(np.append(untied[:12], 0.0)), stats.PermutationMethod)  # a zero
    assert statistics.wilcoxon_method(np.append(tied, 13.0)) == "asymptotic"  # 14 pairs with a tie


def test_small_tied_sample_takes_the_exhaustive_permutation_p_value():
    # all five differences positive, two ties: 1 of the 2**5 sign patterns is as extreme on each side
    test = statistics.paired_test(np.array([2.0, 2.0, 1.0, 1.0, 3.0]), np.zeros(5))
    assert test["p_value"] == pytest.approx(2 / 2**5) and test["effect_size"] == 1.0


def test_large_sample_p_value_is_the_tie_corrected_normal_approximation():
    """The p-value of our tables (hundreds of images, ties, zeros), from the textbook formula:
    zeros dropped, no continuity correction, the variance reduced by sum(t^3 - t) / 48."""
    rng = np.random.default_rng(0)
    method = np.round(rng.normal(0.1, 1.0, size=400), 1)
    reference = np.round(rng.normal(0.0, 1.0, size=400), 1)
    difference = (method - reference)[method != reference]
    ranks = stats.rankdata(np.abs(difference))
    n = len(difference)
    _, tie_sizes = np.unique(np.abs(difference), return_counts=True)
    variance = n * (n + 1) * (2 * n + 1) / 24 - np.sum(tie_sizes**3 - tie_sizes) / 48
    z = (ranks[difference > 0].sum() - n * (n + 1) / 4) / np.sqrt(variance)
    test = statistics.paired_test(method, reference)
    assert test["p_value"] == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-9)
    assert test["statistic"] == min(ranks[difference > 0].sum(), ranks[difference < 0].sum())


def _scores(values: dict[str, list[float]], metric: str = "deletion", variant: str = "black") -> pd.DataFrame:
    return pd.DataFrame([
        {"dataset": "d", "model": "m", "method": method, "metric": metric, "variant": variant, "image": image, "value": value,
         "undefined": False}
        for method, column in values.items() for image, value in enumerate(column)
    ])


def test_pairs_with_a_nan_or_infinite_value_are_dropped():
    method = [0.5, np.nan, 0.7, 0.9, 0.2, 0.6]
    reference = [0.1, 0.2, np.inf, 0.3, 0.4, -np.inf]
    result = statistics.paired_comparisons(_scores({"positive": method, "saliency": reference}), [("positive", "saliency")])
    assert len(result) == 1 and result["n"].iloc[0] == 3  # images 0, 3 and 4
    kept = [0, 3, 4]
    expected = statistics.paired_test(np.array(method)[kept], np.array(reference)[kept])
    assert result.iloc[0][list(expected)].to_dict() == pytest.approx(expected)


def test_significance_tests_every_method_against_the_reference_holm_corrected_per_family():
    rng = np.random.default_rng(0)
    reference = rng.normal(size=60)
    scores = pd.concat([
        _scores({"saliency": list(reference), "positive": list(reference + 0.1 + np.abs(rng.normal(size=60))),
                 "active": list(reference + rng.normal(size=60))}, variant=variant)
        for variant in ["black", "white"]
    ], ignore_index=True)
    result = statistics.significance(scores, reference="saliency")
    assert list(zip(result["variant"], result["method"])) == [
        ("black", "positive"), ("black", "active"), ("white", "positive"), ("white", "active")]
    assert (result["reference"] == "saliency").all() and (result["n"] == 60).all()
    for _, family in result.groupby("variant"):
        assert family["p_holm"].to_numpy() == pytest.approx(statistics.holm(family["p_value"].to_numpy()))
    assert (result.loc[result["method"] == "positive", "effect_size"] == 1.0).all()


def test_significance_without_the_reference_or_rows_is_empty():
    without = statistics.significance(_scores({"positive": [0.1, 0.2], "active": [0.3, 0.1]}), reference="saliency")
    assert without.empty and "p_holm" in without.columns
    assert statistics.significance(pd.DataFrame()).empty


def test_bootstrap_interval_covers_the_mean_narrows_with_n_and_repeats_for_a_seed():
    rng = np.random.default_rng(0)
    small, large = rng.normal(0.5, 1.0, size=200), rng.normal(0.5, 1.0, size=5000)
    low, high = statistics.bootstrap_interval(small, seed=0)
    assert low < small.mean() < high
    assert high - low == pytest.approx(2 * 1.96 * small.std() / np.sqrt(len(small)), rel=0.2)  # the normal width
    large_low, large_high = statistics.bootstrap_interval(large, seed=0)
    assert large_low < large.mean() < large_high and (large_high - large_low) < (high - low) / 3
    assert statistics.bootstrap_interval(small, seed=0) == (low, high)
    assert statistics.bootstrap_interval(small, seed=1) != (low, high)


def test_bootstrap_interval_of_too_few_or_constant_values_is_a_point():
    assert statistics.bootstrap_interval(np.array([0.3]), seed=0) == (0.3, 0.3)
    assert statistics.bootstrap_interval(np.full(10, 0.7), seed=0) == pytest.approx((0.7, 0.7))
    low, high = statistics.bootstrap_interval(np.array([]), seed=0)
    assert np.isnan(low) and np.isnan(high)


def test_summarise_counts_non_finite_values_and_keeps_the_groups_order():
    scores = pd.concat([
        _scores({"saliency": [0.2, np.nan, 0.4, np.inf]}),
        _scores({"positive": [np.nan, -np.inf]}),
        _scores({"active": [0.5]}),
    ], ignore_index=True)
    summary = statistics.summarise(scores).set_index("method")
    assert list(summary.index) == ["saliency", "positive", "active"]
    assert summary.loc["saliency", "mean"] == pytest.approx(0.3)
    assert summary.loc["saliency", ["n", "n_nonfinite"]].tolist() == [2, 2]
    assert np.isnan(summary.loc["positive", ["mean", "ci_low", "ci_high"]].astype(float)).all()
    assert summary.loc["positive", ["n", "n_nonfinite"]].tolist() == [0, 2]
    assert summary.loc["active", ["mean", "ci_low", "ci_high", "n"]].tolist() == [0.5, 0.5, 0.5, 1]


def test_latex_and_markdown_tables_write_cells_alike():
    scores = pd.concat([_scores({"saliency": [0.2, 0.4, 0.6]}), _scores({"positive": [np.nan, np.nan]})], ignore_index=True)
    summary = statistics.summarise(scores)
    latex, markdown = statistics.latex_table(summary), report.markdown_table(summary)
    assert "nan" not in latex and "n/a" in latex and "n/a" in markdown
    cell = statistics.mean_and_interval(summary.iloc[0])
    assert cell.startswith("0.400 [") and cell in latex and cell in markdown
    assert "n\\_nonfinite" in latex
    assert "n = 0-3 images; excluded: 0 values undefined by design (see the metric's doc), 2 failed (non-finite)" in markdown  # the fewest and the most, not the most


def test_report_warns_when_the_reference_method_did_not_run(workspace, capsys):
    from benchmarks import run

    tmp, config = workspace
    path = tmp / "no-saliency.toml"
    path.write_text(open(config()).read().replace('methods = ["saliency", "positive"]', 'methods = ["positive"]'))
    assert run.main(["--config", str(path), "--out", str(tmp / "out"), "--quiet"]) == 0
    assert "'saliency' is not among the methods reported on, so significance.csv" in capsys.readouterr().err
    assert pd.read_csv(tmp / "out" / "significance.csv").empty


def test_summary_counts_undefined_by_design_apart_from_failures():
    scores = pd.DataFrame({"dataset": "d", "model": "m", "method": "a", "metric": "x", "variant": "",
                           "value": [1.0, 2.0, np.nan, np.nan, np.inf, 3.0],
                           "undefined": [False, False, True, False, False, False]})
    [row] = statistics.summarise(scores).to_dict("records")
    assert (row["n"], row["n_undefined"], row["n_nonfinite"], row["mean"]) == (3, 1, 2, 2.0)
    table = report.markdown_table(statistics.summarise(scores))
    assert "1 values undefined by design" in table and "2 failed (non-finite)" in table
