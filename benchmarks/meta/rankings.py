"""Each metric's headline rows, its ranking of the methods, the agreement between metrics'
rankings, and the sanity and sign-preference checks of those rankings."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from signed_saliency.errors import UserError

PANEL = ["dataset", "model"]
CELL = PANEL + ["method", "metric"]
# The maps every faithful metric should put above an edge detector: the raw gradient, signed
# and unsigned. The paper's one-sided maps are what the suite tests, so not the reference.
GRADIENT_MAPS = ("saliency", "gradient")
RANDOM, EDGE = "random", "edge"


# ---------------------------------------------------------------- the headline rows


def headline(scores: pd.DataFrame) -> pd.DataFrame:
    """Each (dataset, model, method, metric)'s rows of its headline variant (see the module
    docstring), with non-finite values as NaN (undefined on that image: a constant map has
    no Spearman)."""
    variant = scores["variant"].fillna("").astype(str)
    order = pd.Series(pd.factorize(variant)[0], index=scores.index)  # codes in order of first appearance
    first = order.groupby([scores[key] for key in CELL], sort=False).transform("min")
    chosen = scores.assign(variant=variant)[order == first]
    value = chosen["value"].astype(float)
    return chosen.assign(value=value.where(np.isfinite(value))).reset_index(drop=True)


def _orientation(metric: str, plan: dict[str, Any]) -> float:
    if metric not in plan["metrics"]:
        raise UserError(f"metric {metric!r} has rows but is not in the plan: is the plan.json of another run?")
    return 1.0 if plan["metrics"][metric]["higher_is_better"] else -1.0


def method_matrix(block: pd.DataFrame, sign: float) -> tuple[list[str], np.ndarray]:
    """One (dataset, model, metric)'s headline rows as methods x images, oriented so that
    higher is better (NaN where a method has no finite value on an image)."""
    table = block.pivot(index="method", columns="image", values="value")
    return list(table.index), sign * table.to_numpy(dtype=float)


# ---------------------------------------------------------------- rankings and agreement


def rankings(rows: pd.DataFrame, plan: dict[str, Any]) -> pd.DataFrame:
    """Per (dataset, model, metric) and method of the :func:`headline` ``rows``: the variant,
    its mean over the finite values (summary.csv's mean), n, and its rank (1 = best; ties
    share the best rank)."""
    table = rows.groupby(CELL + ["variant"], sort=False)["value"].agg(mean="mean", n="count").reset_index()
    table = table[table["n"] > 0]
    sign = table["metric"].map(lambda metric: _orientation(metric, plan))
    table["rank"] = (sign * table["mean"]).groupby([table[key] for key in PANEL + ["metric"]]).rank(
        ascending=False, method="min"
    ).astype(int)
    table["n_methods"] = table.groupby(PANEL + ["metric"])["method"].transform("size")
    table["metric_family"] = table["metric"].map(lambda metric: plan["metrics"][metric]["family"])
    table["higher_is_better"] = sign > 0
    table["method_family"] = table["method"].map(lambda method: plan["methods"].get(method, {}).get("family", ""))
    table["direction"] = table["method"].map(lambda method: plan["methods"].get(method, {}).get("direction", ""))
    table = _in_plan_order(table, plan).sort_values(PANEL + ["metric", "rank", "method"], kind="stable")
    columns = PANEL + ["metric", "metric_family", "higher_is_better", "method", "method_family", "direction",
                       "variant", "mean", "n", "rank", "n_methods"]
    return table[columns].astype({key: str for key in CELL}).reset_index(drop=True)


def _in_plan_order(frame: pd.DataFrame, plan: dict[str, Any]) -> pd.DataFrame:
    """Metrics and methods as categories in the plan's order, any others after them (rows keep
    their dataset order)."""
    return frame.assign(
        metric=pd.Categorical(frame["metric"], categories=list(dict.fromkeys([*plan["metrics"], *frame["metric"]])),
                              ordered=True),
        method=pd.Categorical(frame["method"], categories=list(dict.fromkeys([*plan["methods"], *frame["method"]])),
                              ordered=True),
        dataset=pd.Categorical(frame["dataset"], categories=list(dict.fromkeys(frame["dataset"])), ordered=True),
        model=pd.Categorical(frame["model"], categories=list(dict.fromkeys(frame["model"])), ordered=True),
    )


def _oriented_means(ranked: pd.DataFrame) -> pd.DataFrame:
    """One panel's metrics x methods, oriented so that higher is better."""
    sign = np.where(ranked["higher_is_better"], 1.0, -1.0)
    table = ranked.assign(oriented=sign * ranked["mean"]).pivot(index="metric", columns="method", values="oriented")
    return table.reindex(index=list(dict.fromkeys(ranked["metric"])))


def agreement(ranked: pd.DataFrame) -> pd.DataFrame:
    """Kendall's tau-b (scipy) between the method rankings of every pair of metrics of a
    panel, over the methods both score (NaN under 3 such methods, or where one metric ties
    them all); each unordered pair once, in the plan's order."""
    rows = []
    for (dataset, model), panel in ranked.groupby(PANEL, sort=False):
        table = _oriented_means(panel)
        families = panel.drop_duplicates("metric").set_index("metric")["metric_family"]
        metrics = list(table.index)
        for position, first in enumerate(metrics):
            for second in metrics[position + 1:]:
                both = table.loc[[first, second]].dropna(axis=1)
                tau, p_value = (stats.kendalltau(both.iloc[0], both.iloc[1]) if both.shape[1] >= 3
                                else (np.nan, np.nan))
                rows.append({"dataset": dataset, "model": model, "metric_a": first, "metric_b": second,
                             "family_a": families[first], "family_b": families[second],
                             "tau": float(tau), "p_value": float(p_value), "n_methods": both.shape[1]})
    return pd.DataFrame(rows, columns=["dataset", "model", "metric_a", "metric_b", "family_a", "family_b",
                                       "tau", "p_value", "n_methods"])


def tau_matrix(pairs: pd.DataFrame) -> pd.DataFrame:
    """One panel's agreement rows as a symmetric metrics x metrics matrix (1 on the diagonal)."""
    metrics = list(dict.fromkeys([*pairs["metric_a"], *pairs["metric_b"]]))
    position = {metric: index for index, metric in enumerate(metrics)}
    first, second = pairs["metric_a"].map(position).to_numpy(), pairs["metric_b"].map(position).to_numpy()
    matrix = np.eye(len(metrics))
    matrix[first, second] = matrix[second, first] = pairs["tau"].to_numpy(dtype=float)
    return pd.DataFrame(matrix, index=metrics, columns=metrics)


# ---------------------------------------------------------------- sanity and sign preference


def sanity(ranked: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, model, metric): is ``random`` ranked last (ties allowed: a randomisation
    check gives every model-independent map, random and edge alike, the same worst score),
    and ``edge`` strictly below every gradient map (GRADIENT_MAPS) the metric scores? NaN
    with the reason where a control or every gradient map is not scored."""
    rows = []
    for (dataset, model, metric), block in ranked.groupby(PANEL + ["metric"], sort=False):
        rank = block.set_index("method")["rank"]
        oriented = block.set_index("method")["mean"] * (1.0 if block["higher_is_better"].iloc[0] else -1.0)
        gradient_maps = [method for method in GRADIENT_MAPS if method in rank.index]
        reasons = [f"{name} not scored" for name in (RANDOM, EDGE) if name not in rank.index]
        if not gradient_maps:
            reasons.append(f"no gradient map ({', '.join(GRADIENT_MAPS)}) scored")
        n_methods = len(block)
        random_last = pd.NA if RANDOM not in rank.index else bool(oriented[RANDOM] <= oriented.min())
        edge_below = (pd.NA if EDGE not in rank.index or not gradient_maps
                      else bool(oriented[EDGE] < oriented[gradient_maps].min()))
        passes = pd.NA if random_last is pd.NA or edge_below is pd.NA else random_last and edge_below
        rows.append({
            "dataset": dataset, "model": model, "metric": metric, "metric_family": block["metric_family"].iloc[0],
            "n_methods": n_methods,
            "random_rank": rank.get(RANDOM, np.nan), "edge_rank": rank.get(EDGE, np.nan),
            "gradient_map_ranks": ", ".join(f"{method} {rank[method]}" for method in gradient_maps),
            "random_last": random_last, "edge_below_gradient_maps": edge_below, "passes": passes,
            "reason": "; ".join(reasons),
        })
    frame = pd.DataFrame(rows)
    return frame.astype({column: "boolean" for column in ("random_last", "edge_below_gradient_maps", "passes")})


def sign_preference(ranked: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, model, metric): how the paper's one-sided maps (family ``paper``,
    direction increase or decrease) rank against its magnitude map (family ``paper``,
    direction magnitude): how many are ranked above it, and their mean rank against its."""
    rows = []
    paper = ranked[ranked["method_family"] == "paper"]
    for (dataset, model, metric), block in paper.groupby(PANEL + ["metric"], sort=False):
        one_sided = block[block["direction"].isin(["increase", "decrease"])]
        magnitude = block[block["direction"] == "magnitude"]
        if one_sided.empty or magnitude.empty:
            continue
        reference_rank = float(magnitude["rank"].min())
        rows.append({
            "dataset": dataset, "model": model, "metric": metric, "metric_family": block["metric_family"].iloc[0],
            "reference": ", ".join(magnitude["method"]), "reference_rank": reference_rank,
            "one_sided": ", ".join(one_sided["method"]), "one_sided_mean_rank": float(one_sided["rank"].mean()),
            "one_sided_above": int((one_sided["rank"] < reference_rank).sum()), "n_one_sided": len(one_sided),
            "n_methods": int(block["n_methods"].iloc[0]),
        })
    return pd.DataFrame(rows)
