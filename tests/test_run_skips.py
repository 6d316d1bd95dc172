"""The runner around methods and devices that cannot do the work: a method that cannot
explain an architecture is skipped and recorded, and out of memory is one line."""

from __future__ import annotations

import json

import pandas as pd
import torch

from benchmarks import run, store
from signed_saliency.methods import register
from signed_saliency.methods.core import UnsupportedModelError


def test_a_method_that_cannot_explain_the_model_is_skipped_recorded_and_the_run_goes_on(workspace, capsys, user_methods):
    tmp, config = workspace
    calls = []

    @register("unsupported-test", direction="signed", needs="model")
    def unsupported(model, x, target):
        calls.append(len(x))
        raise UnsupportedModelError(f"this method cannot explain {type(model).__name__}")

    user_methods.append("unsupported-test")
    names = ["unsupported-test", "unsupported-test-negative", "unsupported-test-positive"]
    argv = ["--config", config(), "--methods", "saliency,unsupported-test*", "--batch-size", "4",
            "--out", str(tmp / "u"), "--quiet"]
    assert run.main(argv) == 0
    err = capsys.readouterr().err
    for name in names:
        assert f"warning: skipping {name} on signed-shapes/cnn: this method cannot explain" in err
    assert err.count("warning: skipping") == 3  # once per pair, not per batch
    assert len(calls) == 2  # the first of two batches, then the example figures' images: no retry per batch
    assert "shards are not finished" not in err
    scores = pd.read_csv(tmp / "u" / "scores.csv")
    assert set(scores["method"]) == {"saliency"}
    recorded = store.skipped([tmp / "u"])
    assert sorted(record["method"] for record in recorded) == names
    assert {record["model"] for record in recorded} == {"cnn"}
    manifest = json.loads((tmp / "u" / "manifest.json").read_text())
    assert sorted(record["method"] for record in manifest["skipped"]) == names


def test_out_of_memory_is_one_line_naming_half_the_batch_size_and_keeps_finished_shards(workspace, capsys, user_methods):
    tmp, config = workspace
    calls = []

    @register("memory-hungry-test", direction="magnitude", needs="model")
    def memory_hungry(model, x, target):
        calls.append(len(x))
        if len(calls) == 2:  # the second batch does not fit
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return x.mean(dim=1)

    user_methods.append("memory-hungry-test")
    out = tmp / "m"
    argv = ["--config", config(), "--methods", "saliency,memory-hungry-test", "--batch-size", "4",
            "--out", str(out), "--quiet"]
    assert run.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: out of memory on cpu in signed-shapes/cnn batch ")
    assert "rerun with --batch-size 2" in err
    plan = json.loads((out / "plan.json").read_text())
    finished = store.finished(out, plan["shards"])
    assert len(finished) == len(plan["shards"]) // 2  # the first batch's shards, every one
    assert {name.split("/")[2] for name in finished} == {"saliency", "memory-hungry-test"}
