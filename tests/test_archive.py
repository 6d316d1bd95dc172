"""The archive: finished shards' rows outlive their pickles, and the runner skips them."""

from __future__ import annotations

import shutil
import time

import numpy as np
import pandas as pd
import pytest
from test_run import REAL_PERF_COUNTER, run_ok

from benchmarks import store
from benchmarks.store import archive
from signed_saliency import engine


def test_curve_means_pooled_over_shards_equal_those_over_all_images():
    rng = np.random.default_rng(0)
    curves = pd.DataFrame({
        "dataset": "d", "model": "m", "metric": "deletion",
        "method": np.repeat(["a", "b"], 60), "variant": "black",
        "image": np.tile(np.repeat(np.arange(12), 5), 2), "x": np.tile(np.linspace(0, 1, 5), 24),
        "y": rng.normal(size=120),
    })
    curves.loc[3, "y"] = np.nan  # a point some map made no claim at
    shards = [curves[curves["image"] < 5], curves[curves["image"].between(5, 10)], curves[curves["image"] == 11]]
    pooled = archive.pooled_curves(pd.concat([archive.curve_statistics(shard) for shard in shards]))
    direct = curves.groupby(archive.CURVE_KEYS, sort=False)["y"].agg(["count", "mean", "sem"]).reset_index()
    np.testing.assert_array_equal(pooled["n"], direct["count"])
    np.testing.assert_allclose(pooled["mean"], direct["mean"], rtol=1e-12)
    np.testing.assert_allclose(pooled["sem"], direct["sem"], rtol=1e-10)


def test_lost_shards_are_read_from_the_archive_and_not_recomputed(workspace, monkeypatch):
    tmp, config = workspace
    run_ok("--config", config(), "--out", str(tmp / "a"))
    before = {name: (tmp / "a" / name).read_bytes() for name in ["scores.csv", "summary.csv", "significance.csv"]}
    assert len(archive.shards_held(tmp / "a")) == 8
    shutil.rmtree(tmp / "a" / "shards")  # a new machine: the pickles are gone, the committed archive is not

    computed = []
    real_score = engine.score_batch
    monkeypatch.setattr(engine, "score_batch", lambda *args, **kwargs: computed.append(1) or real_score(*args, **kwargs))
    run_ok("--config", config(), "--out", str(tmp / "a"))
    assert computed == []
    assert not (tmp / "a" / "shards").exists()
    for name, content in before.items():
        assert (tmp / "a" / name).read_bytes() == content, name
    assert list((tmp / "a" / "figures").glob("curves-deletion-*.png"))


def test_a_run_spread_over_two_machines_reports_like_one_run(workspace, monkeypatch, capsys):
    tmp, config = workspace
    run_ok("--config", config(), "--out", str(tmp / "whole"))

    clock = {"now": 0.0}  # a minute per shard saved: --stop-after 1 finishes batch 0's first metric only
    real_save = store.save_shard
    monkeypatch.setattr(store, "save_shard", lambda *a, **k: (real_save(*a, **k), clock.update(now=clock["now"] + 60)))
    monkeypatch.setattr(time, "perf_counter", lambda: clock["now"])
    run_ok("--config", config(), "--out", str(tmp / "spread"), "--stop-after", "1")
    monkeypatch.setattr(store, "save_shard", real_save)
    monkeypatch.setattr(time, "perf_counter", REAL_PERF_COUNTER)
    shutil.rmtree(tmp / "spread" / "shards")
    (tmp / "spread" / "curves.csv").unlink()

    run_ok("--config", config(), "--out", str(tmp / "spread"))
    assert len(list((tmp / "spread" / "shards").rglob("*.pkl"))) == 6  # all but the archived two
    for name in ["scores.csv", "summary.csv", "significance.csv"]:
        assert (tmp / "spread" / name).read_bytes() == (tmp / "whole" / name).read_bytes(), name
    whole = archive.read(tmp / "whole")
    spread = archive.read(tmp / "spread")
    assert whole.keys() == spread.keys()
    for shard, tables in whole.items():
        for table, frame in tables.items():
            pd.testing.assert_frame_equal(spread[shard][table], frame, check_exact=False, rtol=1e-12)


@pytest.mark.parametrize("stale", ["scores", "curve-statistics"])
def test_a_shard_counts_as_archived_only_when_both_files_hold_it(tmp_path, stale):
    def rows(shard_value: float) -> dict[str, pd.DataFrame]:
        scores = pd.DataFrame({"dataset": ["d"], "model": ["m"], "image": [0], "value": [shard_value]})
        return {"scores": scores, "curve-statistics": pd.DataFrame()}

    archive.write(tmp_path, {"d/m/a/deletion/batch00000-k.pkl": rows(1.0)})
    path = tmp_path / "archive" / "d" / "m" / "deletion" / f"{stale}.parquet"
    older = path.read_bytes()
    archive.write(tmp_path, {"d/m/a/deletion/batch00001-k.pkl": rows(2.0)})
    assert len(archive.shards_held(tmp_path)) == 2
    path.write_bytes(older)  # killed between the two files' writes
    assert archive.shards_held(tmp_path) == {"d/m/a/deletion/batch00000-k.pkl"}
    assert set(archive.read(tmp_path)) == {"d/m/a/deletion/batch00000-k.pkl"}


def test_a_folder_whose_shards_are_all_archived_is_not_rewritten(tmp_path, monkeypatch):
    def rows(value: float) -> dict[str, pd.DataFrame]:
        return {"scores": pd.DataFrame({"image": [0], "value": [value]}), "curve-statistics": pd.DataFrame()}

    archive.write(tmp_path, {"d/m/a/deletion/batch00000-k.pkl": rows(1.0), "d/m/a/sparseness/batch00000-k.pkl": rows(1.0)})
    written = []
    real_write = archive.write_atomically
    monkeypatch.setattr(archive, "write_atomically", lambda path, fn: (written.append(path.parent.name), real_write(path, fn)))
    # another session reports the same shards (from their pickles) and one new shard
    archive.write(tmp_path, {"d/m/a/deletion/batch00000-k.pkl": rows(1.0), "d/m/a/sparseness/batch00001-k.pkl": rows(2.0)})
    assert written == ["sparseness", "sparseness"]
    assert len(archive.shards_held(tmp_path)) == 3


def _old_rows(values: list[float]) -> dict[str, pd.DataFrame]:
    """A shard's rows as archives held them before the ``undefined`` column."""
    scores = pd.DataFrame({"dataset": "d", "model": "m", "image": range(len(values)), "label": 0, "target": 0,
                           "predicted": 0, "method": "a", "metric": "sparseness", "variant": "", "value": values})
    return {"scores": scores, "curve-statistics": pd.DataFrame()}


def test_shards_archived_before_the_undefined_column_are_recomputed_only_where_they_hold_a_nan(tmp_path):
    clean, undecided = "d/m/a/sparseness/batch00000-k.pkl", "d/m/a/sparseness/batch00001-k.pkl"
    empty = "d/m/a/mask-auc/batch00000-k.pkl"  # a metric with nothing to say: a folder without values
    archive.write(tmp_path, {clean: _old_rows([0.5, 0.25]), undecided: _old_rows([0.5, np.nan]),
                             empty: {"scores": pd.DataFrame(), "curve-statistics": pd.DataFrame()}})
    # its NaN may be a zero map (undefined) or a failure: nobody can tell now, so it is not held
    assert archive.shards_held(tmp_path) == {clean, empty}
    read = archive.read(tmp_path)
    assert set(read) == {clean, empty} and read[clean]["scores"]["undefined"].tolist() == [False, False]
    recomputed = _old_rows([0.5, np.nan])
    recomputed["scores"]["undefined"] = [False, True]
    archive.write(tmp_path, {undecided: recomputed})
    assert archive.shards_held(tmp_path) == {clean, undecided, empty}
    assert archive.read(tmp_path)[undecided]["scores"]["undefined"].tolist() == [False, True]
