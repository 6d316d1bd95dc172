"""Meta-evaluation: do the metrics agree, and can they be trusted? (``<out>/meta/``)

Pure functions of the tidy score rows and the plan, per (dataset, model):

- ``rankings.csv``: every metric's ranking of the methods (1 = best, oriented by the
  metric's ``higher_is_better``);
- ``agreement.csv`` and ``agreement-<dataset>-<model>.png``: Kendall's tau between the
  rankings of every pair of metrics, and its clustered heatmap;
- ``reliability.csv``: split-half agreement of each metric's ranking over random halves of
  the images, and how many images its ranking needs before it is stable;
- ``sanity.csv``: does each metric rank ``random`` last and ``edge`` below the gradient maps?
- ``sign-preference.csv``: how each metric ranks the paper's one-sided maps against its
  magnitude map (which metrics favour signed maps);
- ``README.md``: the above in words.

The unit is a metric, scored for each method by its headline variant: the first variant
the method has in the metric's own order, as the report's terminal summary shows it
(deletion's black curve for an increase map, white for a decrease map; insertion's
most-positive-first for a signed map). (metric, variant) pairs are not a usable unit: a
metric's variants are direction-specific (no decrease map has a black deletion curve, no
signed map a highest-first insertion), so most pairs rank only some of the methods, and
the variants that do cover all methods compare unlike things (a decrease map's black
curve). The headline is the like-for-like comparison each metric intends, over every
method it scores. Variants are ordered by their first appearance in the rows, which are in
plan order in ``build_report`` (scores.csv is sorted alphabetically and loses that order).

``python -m benchmarks.meta DIR [--out OUT]`` writes only this section from a results
folder's shards or archive.
"""

from __future__ import annotations

import argparse
import sys
import zlib
from pathlib import Path
from typing import Any, Optional

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers or CI

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from scipy import stats  # noqa: E402
from scipy.cluster import hierarchy  # noqa: E402
from scipy.spatial.distance import squareform  # noqa: E402

from benchmarks.files import write_atomically  # noqa: E402
from signed_saliency.errors import UserError  # noqa: E402

PANEL = ["dataset", "model"]
CELL = PANEL + ["method", "metric"]
# The maps every faithful metric should put above an edge detector: the raw gradient, signed
# and unsigned. The paper's one-sided maps are what the suite tests, so not the reference.
GRADIENT_MAPS = ("saliency", "gradient")
RANDOM, EDGE = "random", "edge"
SPLITS = 100  # random halves per metric
DRAWS = 100  # random subsets per size when looking for the stable size
STABLE_TAU = 0.9  # a subset's ranking is "stable" at this Kendall's tau with the full ranking,
STABLE_SHARE = 0.95  # in this share of the draws
DPI = 100


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


def agreement_figure(pairs: pd.DataFrame, families: dict[str, str], title: str) -> Optional[plt.Figure]:
    """Clustered heatmap (seaborn) of a panel's tau matrix, metrics coloured by family;
    None under two metrics. Clustered by average linkage on 1 - tau, so metrics that rank
    alike sit together; an undefined tau counts as no agreement (0) there, and is left blank."""
    matrix = tau_matrix(pairs)
    if len(matrix) < 2:
        return None
    distance = squareform(1.0 - matrix.fillna(0.0).to_numpy(), checks=False)
    linkage = hierarchy.linkage(distance, method="average")
    # colours from every family in the plan, so a family has one colour in every panel
    palette = dict(zip(sorted(set(families.values())), sns.color_palette("Set2", len(set(families.values())))))
    colours = pd.Series({metric: palette[families[metric]] for metric in matrix.index}, name="family")
    size = 2.5 + 0.45 * len(matrix)
    grid = sns.clustermap(
        matrix, row_linkage=linkage, col_linkage=linkage, mask=matrix.isna(), cmap="vlag", vmin=-1, vmax=1,
        center=0, annot=True, fmt=".2f", annot_kws={"size": 7}, row_colors=colours, figsize=(size, size),
        dendrogram_ratio=0.12, cbar_pos=(0.02, 0.93, 0.12, 0.02), cbar_kws={"orientation": "horizontal"},
    )
    for family in dict.fromkeys(families[metric] for metric in matrix.index):
        grid.ax_col_dendrogram.bar(0, 0, color=palette[family], label=family, linewidth=0)
    grid.ax_col_dendrogram.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=7)
    grid.figure.suptitle(title, y=1.02)
    return grid.figure


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


# ---------------------------------------------------------------- words and files


def summary_text(ranked: pd.DataFrame, pairs: pd.DataFrame, reliable: pd.DataFrame, sane: pd.DataFrame,
                 preference: pd.DataFrame) -> str:
    """meta/README.md: per (dataset, model), the findings in a few sentences."""
    lines = [
        "# Meta-evaluation: do the metrics agree, and can they be trusted?",
        "",
        "Each metric is scored by its headline variant per method (the first in the metric's own "
        "order; see benchmarks/meta.py). Files: rankings.csv (rank 1 = best), agreement.csv and "
        "agreement-*.png (Kendall's tau between metrics' method rankings), reliability.csv "
        f"(split-half tau over {SPLITS} random halves of the images; images_to_stable: the fewest "
        f"images whose ranking has tau >= {STABLE_TAU} with the full ranking in {STABLE_SHARE:.0%} of "
        f"{DRAWS} draws, blank if no size below the full count is), sanity.csv (random last, edge below "
        f"{' and '.join(GRADIENT_MAPS)}) and sign-preference.csv (the paper's one-sided maps against its "
        "magnitude map).",
    ]
    for (dataset, model), panel in ranked.groupby(PANEL, sort=False):
        # a frame with no rows has no columns either (no paper maps to compare, say)
        select = lambda frame: frame if frame.empty else frame[(frame["dataset"] == dataset) & (frame["model"] == model)]  # noqa: E731
        lines += ["", f"## {dataset} / {model}", ""]
        lines.append(f"{panel['metric'].nunique()} metrics over {panel['method'].nunique()} methods "
                     f"({panel['n'].max()} images).")
        lines += [_agreement_words(select(pairs)), _reliability_words(select(reliable)),
                  _sanity_words(select(sane)), _preference_words(select(preference))]
    return "\n".join(line for line in lines if line is not None) + "\n"


def _agreement_words(pairs: pd.DataFrame) -> Optional[str]:
    defined = pairs.dropna(subset=["tau"])
    if defined.empty:
        return None
    within = defined[defined["family_a"] == defined["family_b"]]["tau"]
    between = defined[defined["family_a"] != defined["family_b"]]["tau"]
    most, least = defined.loc[defined["tau"].idxmax()], defined.loc[defined["tau"].idxmin()]
    within_text = f"{within.mean():.2f} within a metric family, " if len(within) else ""
    return (f"- Agreement: mean tau {within_text}{between.mean():.2f} between families; most alike "
            f"{most['metric_a']} and {most['metric_b']} ({most['tau']:.2f}), most opposed "
            f"{least['metric_a']} and {least['metric_b']} ({least['tau']:.2f}).")


def _reliability_words(reliable: pd.DataFrame) -> str:
    def listed(frame: pd.DataFrame) -> str:
        return ", ".join(f"{row.metric} ({row.split_half_tau:.2f})" for row in frame.itertuples()) or "none"

    ordered = reliable.sort_values("split_half_tau", ascending=False)
    stable = reliable.dropna(subset=["images_to_stable"])
    stable_text = ", ".join(f"{row.metric} {int(row.images_to_stable)}" for row in stable.itertuples()) or "none"
    return (f"- Reliability (split-half tau): >= 0.9 for {listed(ordered[ordered['split_half_tau'] >= 0.9])}; "
            f"below 0.5 for {listed(ordered[ordered['split_half_tau'] < 0.5])}. Images to a stable "
            f"ranking: {stable_text}; every other metric needs more than the images tried.")


def _sanity_words(sane: pd.DataFrame) -> str:
    checked = sane.dropna(subset=["passes"])
    if checked.empty:
        return f"- Sanity: not checkable ({'; '.join(dict.fromkeys(sane['reason']))})."
    failed = checked[~checked["passes"].astype(bool)]
    reasons = [f"{row.metric} ({'random not last' if not row.random_last else ''}"
               f"{', ' if not row.random_last and not row.edge_below_gradient_maps else ''}"
               f"{'edge not below the gradient maps' if not row.edge_below_gradient_maps else ''})"
               for row in failed.itertuples()]
    return (f"- Sanity: {len(checked) - len(failed)} of {len(checked)} checkable metrics rank random last and "
            f"edge below the gradient maps; failing: {', '.join(reasons) or 'none'}.")


def _preference_words(preference: pd.DataFrame) -> Optional[str]:
    if preference.empty:
        return None
    by_family = preference.groupby("metric_family", sort=False)[["one_sided_above", "n_one_sided"]].sum()
    parts = [f"{family} {row.one_sided_above} of {row.n_one_sided}" for family, row in by_family.iterrows()]
    reference = preference["reference"].iloc[0]
    return f"- One-sided paper maps ranked above {reference}, by metric family: {'; '.join(parts)}."


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    write_atomically(path, lambda temporary: frame.to_csv(temporary, index=False, float_format="%.10g"))


def _save_png(figure: plt.Figure, path: Path) -> None:
    """No Software entry: a figure redrawn from the same rows is the same file."""
    write_atomically(path, lambda temporary: figure.savefig(temporary, format="png", dpi=DPI,
                                                           bbox_inches="tight", metadata={"Software": None}))
    plt.close(figure)


def write_meta(folder: Path, scores: pd.DataFrame, plan: dict[str, Any]) -> None:
    """Write ``<folder>/meta/``: the CSVs, one heatmap per (dataset, model), and README.md."""
    out = folder / "meta"
    rows = headline(scores)
    ranked = rankings(rows, plan)
    pairs = agreement(ranked)
    reliable = reliability(rows, plan, seed=int(plan["config"]["seed"]))
    sane = sanity(ranked)
    preference = sign_preference(ranked)
    for name, frame in (("rankings", ranked), ("agreement", pairs), ("reliability", reliable), ("sanity", sane),
                        ("sign-preference", preference)):
        _write_csv(frame, out / f"{name}.csv")
    families = {metric: meta["family"] for metric, meta in plan["metrics"].items()}
    with sns.axes_style("white"), sns.plotting_context("paper"):
        for (dataset, model), panel in pairs.groupby(PANEL, sort=False):
            figure = agreement_figure(panel, families, f"Kendall's tau between metrics' rankings: {dataset} / {model}")
            if figure is not None:
                _save_png(figure, out / f"agreement-{dataset}-{model}.png")
    text = summary_text(ranked, pairs, reliable, sane, preference)
    write_atomically(out / "README.md", lambda temporary: temporary.write_text(text))


def main(argv: Optional[list[str]] = None) -> int:
    from benchmarks.store import collect

    parser = argparse.ArgumentParser(prog="python -m benchmarks.meta", description=__doc__.splitlines()[0])
    parser.add_argument("directories", nargs="+", type=Path, help="--out folders of benchmarks.run (shards of one plan)")
    parser.add_argument("--out", type=Path, help="where to write meta/ (default: the first directory)")
    args = parser.parse_args(argv)
    try:
        collected = collect(args.directories, curves=False)
        if collected.scores.empty:
            raise UserError("no finished shards to report on")
        out = args.out or args.directories[0]
        write_meta(out, collected.scores, collected.plan)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print((out / "meta" / "README.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
