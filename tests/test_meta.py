import numpy as np
import pandas as pd
import pytest
from scipy import stats

from benchmarks import meta

METHODS = {
    "saliency": {"direction": "magnitude", "score": "logit", "family": "paper"},
    "positive": {"direction": "increase", "score": "logit", "family": "paper"},
    "negative": {"direction": "decrease", "score": "logit", "family": "paper"},
    "gradient": {"direction": "signed", "score": "logit", "family": "paper"},
    "edge": {"direction": "magnitude", "score": "logit", "family": "control"},
    "random": {"direction": "magnitude", "score": "logit", "family": "control"},
}
METRICS = {
    "rises": {"family": "perturbation", "higher_is_better": True},
    "falls": {"family": "perturbation", "higher_is_better": False},
    "noise": {"family": "complexity", "higher_is_better": True},
}
PLAN = {"config": {"seed": 0}, "methods": METHODS, "metrics": METRICS}


def rows(metric: str, method: str, values, variant=None, dataset="toy", model="cnn") -> pd.DataFrame:
    values = np.asarray(values, dtype=float)
    return pd.DataFrame({
        "dataset": dataset, "model": model, "image": np.arange(len(values)), "method": method, "metric": metric,
        "variant": variant, "value": values,
    })


def scores_from(means: dict[str, dict[str, float]], n_images=60, spread=0.01, seed=0) -> pd.DataFrame:
    """``means[metric][method]``: each method's values scatter around its mean by ``spread``."""
    rng = np.random.default_rng(seed)
    return pd.concat([rows(metric, method, mean + spread * rng.standard_normal(n_images))
                      for metric, by_method in means.items() for method, mean in by_method.items()],
                     ignore_index=True)


def test_headline_is_each_methods_first_variant_in_the_rows_order():
    scores = pd.concat([
        rows("rises", "positive", [1.0, 2.0], variant="black"),
        rows("rises", "positive", [5.0, 6.0], variant="white"),
        rows("rises", "negative", [7.0, 8.0], variant="white"),
        rows("falls", "positive", [3.0, np.inf]),  # single-variant metric; infinite = undefined
    ], ignore_index=True)

    chosen = meta.headline(scores).groupby(["method", "metric"])[["variant", "value"]].agg(
        {"variant": "first", "value": "sum"})

    assert chosen.loc[("positive", "rises"), "variant"] == "black"
    assert chosen.loc[("positive", "rises"), "value"] == 3.0
    assert chosen.loc[("negative", "rises"), "variant"] == "white"
    assert chosen.loc[("positive", "falls"), "value"] == 3.0


def test_rankings_follow_each_metrics_higher_is_better():
    scores = scores_from({"rises": {"saliency": 1, "positive": 3, "random": 2},
                          "falls": {"saliency": 1, "positive": 3, "random": 2}})

    ranked = meta.rankings(meta.headline(scores), PLAN).set_index(["metric", "method"])["rank"]

    assert ranked["rises"].to_dict() == {"positive": 1, "random": 2, "saliency": 3}
    assert ranked["falls"].to_dict() == {"saliency": 1, "random": 2, "positive": 3}


def test_rankings_keep_a_method_the_plan_does_not_list():
    scores = scores_from({"rises": {"saliency": 1, "plugin-map": 2}})

    ranked = meta.rankings(meta.headline(scores), PLAN)

    assert ranked["method"].tolist() == ["plugin-map", "saliency"] and ranked["method_family"].tolist() == ["", "paper"]


def test_agreement_is_kendalls_tau_of_the_oriented_rankings():
    methods = ["saliency", "positive", "negative", "gradient"]
    scores = scores_from({
        "rises": dict(zip(methods, [1, 2, 3, 4])),
        "falls": dict(zip(methods, [4, 3, 2, 1])),  # lower is better: the same ranking as rises
        "noise": dict(zip(methods, [2, 1, 4, 3])),
    })

    pairs = meta.agreement(meta.rankings(meta.headline(scores), PLAN)).set_index(["metric_a", "metric_b"])

    assert pairs.loc[("rises", "falls"), "tau"] == pytest.approx(1.0)
    expected = stats.kendalltau([1, 2, 3, 4], [2, 1, 4, 3]).statistic
    assert pairs.loc[("rises", "noise"), "tau"] == pytest.approx(expected)
    assert pairs.loc[("rises", "noise"), "n_methods"] == 4


def test_agreement_is_undefined_over_fewer_than_three_common_methods():
    scores = scores_from({"rises": {"saliency": 1, "positive": 2, "random": 0}, "falls": {"saliency": 1, "positive": 2}})

    pair = meta.agreement(meta.rankings(meta.headline(scores), PLAN)).iloc[0]

    assert pair["n_methods"] == 2 and np.isnan(pair["tau"])


def test_batched_kendall_tau_matches_scipy_with_ties_and_missing_items():
    rng = np.random.default_rng(1)
    first = rng.integers(0, 4, size=(9, 30)).astype(float)
    second = rng.integers(0, 4, size=(9, 30)).astype(float)
    first[rng.random(first.shape) < 0.1] = np.nan

    batched = meta.batched_kendall_tau(first, second)

    for column in range(first.shape[1]):
        both = np.isfinite(first[:, column])
        expected = stats.kendalltau(first[both, column], second[both, column]).statistic
        assert batched[column] == pytest.approx(expected, nan_ok=True)


def test_batched_kendall_tau_is_undefined_for_an_all_tied_ranking():
    assert np.isnan(meta.batched_kendall_tau(np.ones((4, 1)), np.arange(4.0)[:, None])[0])


def test_subset_means_skip_missing_values():
    values = np.array([[1.0, np.nan, 3.0, 5.0], [np.nan, np.nan, 2.0, 4.0]])
    chosen = np.array([[True, False], [True, True], [False, True], [False, True]])

    means = meta.subset_means(values, chosen)

    np.testing.assert_allclose(means, [[1.0, 4.0], [np.nan, 3.0]])


def test_reliability_tells_a_separating_metric_from_noise():
    methods = ["saliency", "positive", "negative", "gradient", "edge", "random"]
    scores = scores_from({"rises": {method: rank for rank, method in enumerate(methods)},
                          "noise": {f"method-{index}": 0.0 for index in range(20)}}, n_images=200, spread=0.5)

    reliable = meta.reliability(meta.headline(scores), PLAN, seed=0).set_index("metric")

    assert reliable.loc["rises", "split_half_tau"] == 1.0
    assert reliable.loc["rises", "images_to_stable"] <= 20
    assert abs(reliable.loc["noise", "split_half_tau"]) < 0.2
    assert reliable.loc["noise", "split_half_low"] < 0 < reliable.loc["noise", "split_half_high"]
    assert np.isnan(reliable.loc["noise", "images_to_stable"])
    pd.testing.assert_frame_equal(meta.reliability(meta.headline(scores), PLAN, seed=0).set_index("metric"), reliable)


def test_sanity_checks_the_controls_and_says_why_it_cannot():
    scores = scores_from({
        "rises": {"saliency": 3, "gradient": 4, "positive": 5, "edge": 2, "random": 1},  # sane
        "falls": {"saliency": 1, "gradient": 3, "edge": 2, "random": 3},  # edge above gradient; random ties last
        "noise": {"saliency": 1, "edge": 0},  # no random
    })

    sane = meta.sanity(meta.rankings(meta.headline(scores), PLAN)).set_index("metric")

    assert sane.loc["rises", "passes"] and sane.loc["rises", "gradient_map_ranks"] == "saliency 3, gradient 2"
    assert sane.loc["falls", "random_last"] and not sane.loc["falls", "edge_below_gradient_maps"]
    assert not sane.loc["falls", "passes"]
    assert pd.isna(sane.loc["noise", "passes"]) and sane.loc["noise", "reason"] == "random not scored"
    assert sane.loc["noise", "edge_below_gradient_maps"]


def test_sign_preference_counts_one_sided_maps_above_the_magnitude_map():
    scores = scores_from({"rises": {"saliency": 2, "positive": 3, "negative": 1, "gradient": 4, "random": 0}})

    preference = meta.sign_preference(meta.rankings(meta.headline(scores), PLAN)).iloc[0]

    assert preference["reference"] == "saliency" and preference["reference_rank"] == 3
    assert preference["one_sided_above"] == 1 and preference["n_one_sided"] == 2
    assert preference["one_sided_mean_rank"] == 3.0


def test_write_meta_writes_every_table_and_the_same_small_figure_twice(tmp_path):
    methods = list(METHODS)
    scores = pd.concat([
        scores_from({metric: {method: (rank * (1 if metric != "noise" else -1)) % 5 for rank, method in
                              enumerate(methods)} for metric in METRICS}, n_images=24, spread=0.5),
        scores_from({"rises": {method: rank for rank, method in enumerate(methods)}}, n_images=24).assign(
            model="resnet18"),
    ], ignore_index=True)

    for folder in ("first", "second"):
        meta.write_meta(tmp_path / folder, scores, PLAN)

    written = sorted(path.name for path in (tmp_path / "first" / "meta").iterdir())
    assert written == ["README.md", "agreement-toy-cnn.png", "agreement.csv", "rankings.csv", "reliability.csv",
                       "sanity.csv", "sign-preference.csv"]  # resnet18 has one metric: nothing to cluster
    figure = (tmp_path / "first" / "meta" / "agreement-toy-cnn.png").read_bytes()
    assert figure == (tmp_path / "second" / "meta" / "agreement-toy-cnn.png").read_bytes()
    assert len(figure) < 1_000_000 and b"Software" not in figure
    readme = (tmp_path / "first" / "meta" / "README.md").read_text()
    assert "## toy / cnn" in readme and "## toy / resnet18" in readme
    assert len(pd.read_csv(tmp_path / "first" / "meta" / "agreement.csv")) == 3


def test_write_meta_copes_with_two_methods_and_no_controls(tmp_path):
    scores = scores_from({"rises": {"saliency": 1, "positive": 2}, "falls": {"saliency": 1, "positive": 2}}, n_images=8)

    meta.write_meta(tmp_path, scores, PLAN)

    assert np.isnan(pd.read_csv(tmp_path / "meta" / "agreement.csv")["tau"]).all()
    sane = pd.read_csv(tmp_path / "meta" / "sanity.csv")
    assert sane["passes"].isna().all() and sane["reason"].eq("random not scored; edge not scored").all()
    assert (tmp_path / "meta" / "agreement-toy-cnn.png").is_file()
    assert "Sanity: not checkable (random not scored; edge not scored)" in (tmp_path / "meta" / "README.md").read_text()
