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

from benchmarks.meta.rankings import agreement, headline, rankings, sanity, sign_preference
from benchmarks.meta.reliability import batched_kendall_tau, reliability, subset_means
from benchmarks.meta.write import main, write_meta

__all__ = ["agreement", "batched_kendall_tau", "headline", "main", "rankings", "reliability", "sanity",
           "sign_preference", "subset_means", "write_meta"]
