"""The default run's proof of work: its freshly computed shards against the committed rows.

``python -m benchmarks.run`` recomputes the quick config's shards in a scratch folder
(git-ignored) rather than reading them from the committed archive, then compares every
score with the archived one. A value reproduces when ``|a - b| <= 1e-6 * max(1, |b|)``
(NaN matches NaN), and both or neither are marked undefined by design. When all do, the
committed report stands as it is, so another machine's float noise never churns
``results/quick``; when some do not, the run lists them and reports its own numbers
beside the committed ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks import store
from benchmarks.store import archive

TOLERANCE = 1e-6
ROW_KEYS = ["dataset", "model", "method", "metric", "variant", "image"]


@dataclass
class Reproduction:
    compared: int = 0  # values found in both
    differing: pd.DataFrame = field(default_factory=pd.DataFrame)  # ROW_KEYS, value, committed, difference
    unmatched: list[str] = field(default_factory=list)  # computed shards the committed archive lacks, or row sets that differ

    @property
    def reproduced(self) -> bool:
        return self.compared > 0 and self.differing.empty and not self.unmatched

    def message(self, shown: int = 5) -> str:
        if self.reproduced:
            return f"reproduced: {self.compared} values within 1e-6"
        lines = [f"NOT REPRODUCED: {len(self.differing)} of {self.compared} values differ from the committed results "
                 f"by more than 1e-6 (relative above 1)"]
        if not self.differing.empty:
            lines.append(f"  largest difference {self.differing['difference'].max():.3g}; the first {min(shown, len(self.differing))}:")
            for row in self.differing.head(shown).itertuples(index=False):
                lines.append(f"  {row.dataset}/{row.model} {row.method} {row.metric} {row.variant} image {row.image}: "
                             f"{row.value:.9g} here, {row.committed:.9g} committed")
        if self.unmatched:
            lines.append(f"  {len(self.unmatched)} shards have no matching committed rows, e.g. {self.unmatched[0]}")
        return "\n".join(lines)


def compare(computed: Path, committed: Path, names: list[str]) -> Reproduction:
    """The pickled shards among ``names`` in ``computed`` against ``committed``'s archive."""
    archived = archive.read(committed)
    mine, theirs, unmatched = [], [], []
    for name in names:
        path = store.find_shard([computed], name)
        if path is None:
            continue
        scores = store.load_shard(path)["scores"]
        reference = archived.get(name, {}).get("scores")
        if reference is None or len(reference) != len(scores):
            unmatched.append(name)
            continue
        if len(scores):
            mine.append(scores[ROW_KEYS + ["value", "undefined"]])
            theirs.append(reference[ROW_KEYS + ["value", "undefined"]])
    if not mine:
        return Reproduction(unmatched=unmatched)
    both = pd.concat(mine, ignore_index=True).merge(
        pd.concat(theirs, ignore_index=True).rename(columns={"value": "committed", "undefined": "committed_undefined"}),
        on=ROW_KEYS, how="outer", indicator=True,
    )
    value, reference = both["value"].to_numpy(float), both["committed"].to_numpy(float)
    difference = np.abs(value - reference)
    same = (difference <= TOLERANCE * np.maximum(1.0, np.abs(reference))) | (np.isnan(value) & np.isnan(reference))
    same &= (both["_merge"] == "both").to_numpy() & (both["undefined"] == both["committed_undefined"]).to_numpy()
    differing = both.assign(difference=np.nan_to_num(difference, nan=np.inf))[~same].drop(
        columns=["_merge", "committed_undefined"])
    return Reproduction(compared=int((both["_merge"] == "both").sum()), differing=differing.reset_index(drop=True),
                        unmatched=unmatched)
