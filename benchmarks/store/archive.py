"""The archive: finished shards' rows in a committable form, so results outlive their shards.

Shards are pickles on the machine that computed them, git-ignored: thousands of files whose
bytes are mostly per-image curves (about 10 million points for 1,000 CIFAR-10 images).
Every new machine starts without them, so a suite too long for one machine's session could
never be reported whole. The report therefore also writes, per (dataset, model, metric),
every finished shard's score rows, and its curves reduced to what the figures draw from
them: per curve point, the count, mean and sum of squared deviations (the mean curve and
its band pool exactly across shards). About 7 MB of Parquet per 1,000 images and model
of the paper suite, split by metric so that no file passes 2 MB.

A shard missing from ``shards/`` is read from the archive, and the runner does not
recompute it, so a suite can be computed over several sessions and machines.

Each file names the shards it holds in its own metadata, so a run killed between writing
the two files of a folder leaves nothing half-read: a shard counts as archived only when
both files hold it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from benchmarks.files import write_atomically

FOLDER = "archive"
CURVE_KEYS = ["dataset", "model", "method", "metric", "variant", "x"]
_SHARDS_KEY = b"signed_saliency_shards"
_TABLES = ("scores", "curve-statistics")
UNDEFINED = "undefined"  # the score rows' column marking values undefined by design


def curve_statistics(curves: pd.DataFrame) -> pd.DataFrame:
    """Per curve point: ``n``, ``mean`` and ``m2`` (the sum of squared deviations from the mean)
    of ``y`` over images."""
    if curves.empty:
        return pd.DataFrame(columns=[*CURVE_KEYS, "n", "mean", "m2"])
    curves = curves.astype({"x": "float64", "y": "float64"})
    grouped = curves.groupby(CURVE_KEYS, sort=False, observed=True)["y"]
    stats = grouped.agg(n="count", mean="mean", variance="var").reset_index()
    stats["m2"] = stats.pop("variance").fillna(0.0) * (stats["n"] - 1)
    return stats


def pooled_curves(statistics: pd.DataFrame) -> pd.DataFrame:
    """Per curve point of each (dataset, model, method, metric, variant): the mean over every
    image of every shard, and its standard error (0 for a single image), from per-shard
    statistics (Chan et al.'s parallel update)."""
    if statistics.empty:
        return pd.DataFrame(columns=[*CURVE_KEYS, "n", "mean", "sem"])
    frame = statistics.assign(weighted=statistics["n"] * statistics["mean"])
    grouped = frame.groupby(CURVE_KEYS, sort=False, observed=True)
    pooled = grouped[["n", "weighted", "m2"]].sum()
    pooled["mean"] = pooled.pop("weighted") / pooled["n"]
    spread = frame.join(pooled["mean"].rename("pooled"), on=CURVE_KEYS)
    between = (spread["n"] * (spread["mean"] - spread["pooled"]) ** 2).groupby(
        [spread[key] for key in CURVE_KEYS], sort=False, observed=True
    ).sum()
    m2 = pooled.pop("m2") + between
    n = pooled["n"].astype("float64")
    pooled["sem"] = np.where(n > 1, np.sqrt(m2.clip(lower=0) / (n - 1).clip(lower=1) / n), 0.0)
    return pooled.reset_index()


def _folders(directory: Path) -> list[Path]:
    return sorted(path.parent for path in (directory / FOLDER).glob("*/*/*/scores.parquet"))


def _archived_in(folder: Path) -> set[str]:
    """The shards that both of ``folder``'s files hold, less those archived before score rows
    said which NaNs are undefined by design (see :func:`undecided`)."""
    import pyarrow.parquet as pq

    paths = [folder / f"{table}.parquet" for table in _TABLES]
    if not all(path.is_file() for path in paths):
        return set()
    schemas = [pq.read_schema(path) for path in paths]
    held = set.intersection(*(set(json.loads(schema.metadata[_SHARDS_KEY])) for schema in schemas))
    columns = schemas[0].names
    if "value" in columns and UNDEFINED not in columns:  # a folder of empty shards holds no value at all
        held -= undecided(pd.read_parquet(paths[0], columns=["shard", "value"]))
    return held


def undecided(scores: pd.DataFrame) -> set[str]:
    """The shards among ``scores`` (rows with a ``shard`` column, saved without ``undefined``)
    holding a NaN: whether it is undefined by design or a failure was not recorded, so they
    count as not finished and are computed again."""
    if not len(scores):
        return set()
    nonfinite = ~np.isfinite(scores["value"].to_numpy(float))
    return set(scores.loc[nonfinite, "shard"])


def with_undefined(scores: pd.DataFrame) -> pd.DataFrame:
    """Score rows with their ``undefined`` column. Rows saved before it was recorded are
    defined: archived ones are all finite (see :func:`undecided`); a pickle left by a run of
    that time counts its NaNs as failures, as reports did then."""
    if not len(scores.columns) or UNDEFINED in scores:
        return scores
    return scores.assign(**{UNDEFINED: False})


def shards_held(directory: Path) -> set[str]:
    """The relative paths of the shards archived in ``directory``."""
    return set().union(*(_archived_in(folder) for folder in _folders(directory)))


def read(directory: Path, metrics: Optional[set[str]] = None, *, curves: bool = True) -> dict[str, dict[str, pd.DataFrame]]:
    """Every archived shard in ``directory`` (of ``metrics``, if given): its relative path to
    its ``scores`` rows and ``curve-statistics`` rows (either may be empty; the latter is,
    unless ``curves``). The folders are per metric, so the others are not read at all."""
    archived: dict[str, dict[str, pd.DataFrame]] = {}
    for folder in _folders(directory):
        if metrics is not None and folder.name not in metrics:
            continue
        held = _archived_in(folder)
        archived.update({shard: {table: pd.DataFrame() for table in _TABLES} for shard in held})
        for table in _TABLES if curves else ("scores",):
            rows = pd.read_parquet(folder / f"{table}.parquet")
            for shard, frame in rows.groupby("shard", sort=False) if len(rows) else ():
                if shard in held:
                    frame = frame.drop(columns="shard").reset_index(drop=True)
                    archived[shard][table] = with_undefined(frame) if table == "scores" else frame
    return archived


def write(directory: Path, rows: dict[str, dict[str, pd.DataFrame]],
          archived: Optional[dict[str, dict[str, pd.DataFrame]]] = None) -> None:
    """Archive ``rows`` (shard relative path to its ``scores`` and ``curve-statistics``) in
    ``directory``, keeping what is already archived there (``archived``, if the caller has
    just :func:`read` it, as a report has: at the paper suite's size a read takes seconds):
    shards outside the current plan stay, since another config may plan them. A folder whose shards are all archived
    already is left as it is: a shard's key fixes its rows, and a rewrite would change the
    files' bytes with nothing but the pandas and pyarrow versions written into them."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    archived = read(directory) if archived is None else archived
    merged = {**archived, **rows}
    by_folder: dict[Path, list[str]] = {}
    for shard in sorted(merged):
        dataset, model, _, metric = shard.split("/")[:4]
        by_folder.setdefault(directory / FOLDER / dataset / model / metric, []).append(shard)
    for folder, shards in by_folder.items():
        if all(shard in archived for shard in shards):
            continue
        for table in _TABLES:
            frames = [merged[shard][table].assign(shard=shard) for shard in shards if len(merged[shard][table])]
            frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({"shard": pd.Series(dtype=str)})
            arrow = pa.Table.from_pandas(frame, preserve_index=False)
            arrow = arrow.replace_schema_metadata({**(arrow.schema.metadata or {}), _SHARDS_KEY: json.dumps(shards)})
            write_atomically(folder / f"{table}.parquet",
                             lambda temporary: pq.write_table(arrow, temporary, compression="zstd", compression_level=9))
