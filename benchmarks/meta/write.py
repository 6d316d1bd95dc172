"""``<out>/meta/``: the CSVs, the agreement heatmaps, README.md in words, and the command."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Optional

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers or CI

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from scipy.cluster import hierarchy  # noqa: E402
from scipy.spatial.distance import squareform  # noqa: E402

from benchmarks.files import write_atomically  # noqa: E402
from benchmarks.meta.rankings import GRADIENT_MAPS, PANEL, agreement, headline, rankings, sanity, sign_preference, tau_matrix  # noqa: E402
from benchmarks.meta.reliability import DRAWS, SPLITS, STABLE_SHARE, STABLE_TAU, reliability  # noqa: E402
from signed_saliency.errors import UserError  # noqa: E402

DPI = 100
_DESCRIPTION = "Meta-evaluation: do the metrics agree, and can they be trusted? (``<out>/meta/``)"


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


# ---------------------------------------------------------------- words and files


def summary_text(ranked: pd.DataFrame, pairs: pd.DataFrame, reliable: pd.DataFrame, sane: pd.DataFrame,
                 preference: pd.DataFrame) -> str:
    """meta/README.md: per (dataset, model), the findings in a few sentences."""
    lines = [
        "# Meta-evaluation: do the metrics agree, and can they be trusted?",
        "",
        "Each metric is scored by its headline variant per method (the first in the metric's own "
        "order; see benchmarks/meta/). Files: rankings.csv (rank 1 = best), agreement.csv and "
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

    parser = argparse.ArgumentParser(prog="python -m benchmarks.meta", description=_DESCRIPTION)
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
