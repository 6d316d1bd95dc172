"""End to end: the runner on a tiny config (2 methods, 2 metrics, 8 images)."""

from __future__ import annotations

import dataclasses
import json
import sys
import time

import pandas as pd
import pytest
import torch

from benchmarks import plan as plan_module
from benchmarks import report, run, store
from benchmarks.paths import REPO_ROOT
from benchmarks.plan import execution_order
from benchmarks.prepare import choose_images
from signed_saliency import engine, methods, metrics

REAL_PERF_COUNTER = time.perf_counter

def run_ok(*argv: str) -> None:
    assert run.main([*argv, "--quiet"]) == 0


def test_tiny_run_writes_tidy_results(workspace):
    tmp, config = workspace
    run_ok("--config", config(), "--out", str(tmp / "a"))
    scores = pd.read_csv(tmp / "a" / "scores.csv")
    assert {"dataset", "model", "method", "metric", "variant", "image", "value", "target", "predicted", "label"} <= set(scores)
    assert set(scores["method"]) == {"saliency", "positive"}
    assert set(scores["metric"]) == {"deletion", "sparseness"}
    assert scores.groupby(["method", "metric", "variant"])["image"].nunique().eq(8).all()
    summary = pd.read_csv(tmp / "a" / "summary.csv")
    assert (summary["n"] + summary["n_nonfinite"]).eq(8).all()
    assert (summary["ci_low"] <= summary["mean"] + 1e-12).all() and (summary["mean"] <= summary["ci_high"] + 1e-12).all()
    significance = pd.read_csv(tmp / "a" / "significance.csv")
    assert set(significance["method"]) == {"positive"} and significance["p_holm"].between(0, 1).all()
    for name in ["curves.csv", "summary.md", "summary.tex", "manifest.json", "plan.json"]:
        assert (tmp / "a" / name).is_file(), name
    assert list((tmp / "a" / "figures").glob("maps-*.jpg")) and list((tmp / "a" / "figures").glob("curves-*.pdf"))


def test_killed_run_resumes_to_the_same_scores(workspace, monkeypatch):
    tmp, config = workspace
    run_ok("--config", config(), "--out", str(tmp / "whole"))

    saved = []
    real_save = store.save_shard

    def save_then_die(*args, **kwargs):
        if len(saved) == 3:
            raise KeyboardInterrupt
        real_save(*args, **kwargs)
        saved.append(args[1])

    monkeypatch.setattr(store, "save_shard", save_then_die)
    assert run.main(["--config", config(), "--out", str(tmp / "killed"), "--quiet"]) == 130  # Ctrl-C's exit code
    assert len(list((tmp / "killed" / "shards").rglob("*.pkl"))) == 3
    monkeypatch.setattr(store, "save_shard", real_save)

    computed = []
    real_score = engine.score_batch

    def counting_score(*args, **kwargs):
        computed.extend(method.name for method in kwargs["methods"])
        return real_score(*args, **kwargs)

    monkeypatch.setattr(engine, "score_batch", counting_score)
    run_ok("--config", config(), "--out", str(tmp / "killed"))
    assert len(computed) == 8 - 3  # 2 batches x 2 methods x 2 metrics, 3 already done
    assert (tmp / "killed" / "scores.csv").read_bytes() == (tmp / "whole" / "scores.csv").read_bytes()
    # the killed run's time is not lost: its record, kept as it went, joins the next manifest
    runs = json.loads((tmp / "killed" / "manifest.json").read_text())["runs"]
    assert [(r["shards_computed"], r.get("reported", True)) for r in runs] == [(3, False), (5, True)]
    assert runs[0]["wall_seconds"] >= 0 and "metric deletion" in runs[0]["stage_seconds"]
    assert not list((tmp / "killed").glob("run-unreported-*"))


def test_changed_settings_make_shards_stale(workspace):
    tmp, config = workspace
    run_ok("--config", config(), "--out", str(tmp / "a"))
    assert len(list((tmp / "a" / "shards").rglob("*.pkl"))) == 8
    run_ok("--config", config(steps=5), "--out", str(tmp / "a"))
    assert len(list((tmp / "a" / "shards").rglob("*.pkl"))) == 8 + 4  # only deletion's shards are new
    scores = pd.read_csv(tmp / "a" / "scores.csv")
    curves = pd.read_csv(tmp / "a" / "curves.csv")
    deletion_steps = curves[curves["metric"] == "deletion"].groupby(["method", "variant", "image"])["x"].nunique()
    assert deletion_steps.eq(6).all()  # 5 steps + the unperturbed start; no stale 4-step rows mixed in
    assert len(scores) == len(scores.drop_duplicates(["method", "metric", "variant", "image"]))


def test_a_fixed_metric_is_recomputed_and_the_rest_reused(workspace, monkeypatch):
    tmp, config = workspace
    run_ok("--config", config(), "--out", str(tmp / "a"))
    fixed = dataclasses.replace(metrics.get("sparseness"), revision=2)
    computed = []
    real_score = engine.score_batch
    monkeypatch.setattr(engine, "score_batch",
                        lambda *a, **k: computed.extend([k["metric"].name] * len(k["methods"])) or real_score(*a, **k))
    with metrics.registry.override(fixed):
        run_ok("--config", config(), "--out", str(tmp / "a"))
    assert computed == ["sparseness"] * 4  # 2 batches x 2 methods; deletion's shards reused


def test_a_fixed_method_redraws_the_example_maps(workspace, monkeypatch):
    tmp, config = workspace
    run_ok("--config", config(), "--out", str(tmp / "a"))
    examples = tmp / "a" / "examples" / "signed-shapes-cnn.pt"
    old = torch.load(examples, weights_only=False)
    run_ok("--config", config(), "--out", str(tmp / "a"))
    assert torch.load(examples, weights_only=False)["key"] == old["key"]  # unchanged: the cache holds

    def fixed_positive(model, x, target):
        return torch.ones(x.shape[0], *x.shape[2:])

    fixed = dataclasses.replace(methods.get("positive"), revision=2, fn=fixed_positive, needs="model")
    with methods.registry.override(fixed):
        run_ok("--config", config(), "--out", str(tmp / "a"))
    new = torch.load(examples, weights_only=False)
    assert new["key"] != old["key"]
    assert torch.equal(new["maps"]["positive"], torch.ones_like(old["maps"]["positive"]))
    assert torch.equal(new["maps"]["saliency"], old["maps"]["saliency"])


def test_bf16_forwards_recompute_only_the_perturbation_metrics(workspace):
    tmp, config = workspace
    run_ok("--config", config(), "--out", str(tmp / "a"))
    full = pd.read_csv(tmp / "a" / "scores.csv")
    run_ok("--config", config(precision="bfloat16"), "--out", str(tmp / "a"))
    low = pd.read_csv(tmp / "a" / "scores.csv")
    assert len(list((tmp / "a" / "shards").rglob("*.pkl"))) == 8 + 4  # sparseness runs no forward pass: reused
    keys = ["method", "metric", "variant", "image"]
    both = full.merge(low, on=keys, suffixes=("_full", "_low"))
    assert len(both) == len(full) == len(low)
    sparseness = both[both["metric"] == "sparseness"]
    assert (sparseness["value_full"] == sparseness["value_low"]).all()
    logit = both[both["variant"] == "black/logit"]
    scale = logit["value_full"].abs().max()
    assert ((logit["value_low"] - logit["value_full"]).abs() <= 0.02 * scale).all()


def test_two_shards_merged_equal_one_run(workspace, capsys):
    tmp, config = workspace
    run_ok("--config", config(), "--out", str(tmp / "whole"))
    run_ok("--config", config(), "--out", str(tmp / "s0"), "--shard", "0/2")
    run_ok("--config", config(), "--out", str(tmp / "s1"), "--shard", "1/2")
    assert report.main([str(tmp / "s0"), str(tmp / "s1"), "--out", str(tmp / "merged"), "--no-figures"]) == 0
    for name in ["scores.csv", "summary.csv", "significance.csv", "plan.json"]:
        assert (tmp / "merged" / name).read_bytes() == (tmp / "whole" / name).read_bytes(), name
    # slices save no example maps and no manifest: the merged one keeps their run records and says what is missing
    note = capsys.readouterr().err
    assert "no example maps of" in note and "and no manifest" in note and "--out " + str(tmp / "merged") in note
    manifest = json.loads((tmp / "merged" / "manifest.json").read_text())
    assert manifest["merged_from"] == [str(tmp / "s0"), str(tmp / "s1")]
    assert [(run["folder"], run["reported"]) for run in manifest["runs"]] == [(str(tmp / "s0"), False), (str(tmp / "s1"), False)]
    assert sum(run["shards_computed"] for run in manifest["runs"]) == len(json.loads((tmp / "whole" / "plan.json").read_text())["shards"])
    assert "none of the merged folders holds a manifest.json" in (tmp / "merged" / "report.html").read_text()
    # merged with a whole run's folder: its maps and manifest come along, and nothing is missing
    assert report.main([str(tmp / "s0"), str(tmp / "whole"), "--out", str(tmp / "with-whole"), "--no-figures"]) == 0
    assert "note:" not in capsys.readouterr().err
    examples = sorted((tmp / "whole" / "examples").glob("*.pt"))
    assert examples and [p.read_bytes() for p in sorted((tmp / "with-whole" / "examples").glob("*.pt"))] == [
        p.read_bytes() for p in examples]
    manifest = json.loads((tmp / "with-whole" / "manifest.json").read_text())
    assert manifest["device"] == json.loads((tmp / "whole" / "manifest.json").read_text())["device"]
    assert [run["folder"] for run in manifest["runs"]] == [str(tmp / "s0"), str(tmp / "whole")]


def test_slices_sharing_a_folder_then_one_run_report_the_whole(workspace, monkeypatch):
    tmp, config = workspace
    run_ok("--config", config(), "--out", str(tmp / "whole"))
    run_ok("--config", config(), "--out", str(tmp / "shared"), "--shard", "0/2")
    run_ok("--config", config(), "--out", str(tmp / "shared"), "--shard", "1/2")
    monkeypatch.setattr(engine, "score_batch", lambda *args, **kwargs: pytest.fail("every shard was computed by a slice"))
    run_ok("--config", config(), "--out", str(tmp / "shared"))
    for name in ["scores.csv", "summary.csv", "significance.csv"]:
        assert (tmp / "shared" / name).read_bytes() == (tmp / "whole" / name).read_bytes(), name


PLUGIN = '''
import torch
from signed_saliency.methods import register

@register("brightness-test", direction="increase", score="logit", family="user", needs="model")
def brightness(model, x, target):
    """The image's grey level (a model-independent toy method)."""
    return x.mean(dim=1)

@register("broken-test", direction="magnitude", score="logit", family="user", needs="model")
def broken(model, x, target):
    """A map of NaN, to check that non-finite values are counted, not crashed on."""
    return torch.full(x.shape[:1] + x.shape[2:], float("nan"))
'''


def test_plugin_method_runs_everywhere(workspace, monkeypatch, capsys):
    tmp, config = workspace
    (tmp / "user_methods_plugin.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp))
    try:
        assert run.main(["--plugin", "user_methods_plugin", "--list"]) == 0
        assert "brightness-test" in capsys.readouterr().out
        capsys.readouterr()
        run_ok("--config", config(), "--plugin", str(tmp / "user_methods_plugin.py"),
               "--methods", "saliency,brightness-test,broken-test", "--out", str(tmp / "p"))
        summary = pd.read_csv(tmp / "p" / "summary.csv")
        assert {"brightness-test", "broken-test"} <= set(summary["method"])
        broken = summary[summary["method"] == "broken-test"]
        assert broken["n"].eq(0).all() and broken["n_nonfinite"].eq(8).all()  # never scored, every image counted
        summary_md = (tmp / "p" / "summary.md").read_text()
        assert "brightness-test" in summary_md
        # from the rows, so a resumed run still says it
        assert "non-finite maps, not scored (their rows are NaN): broken-test (8, signed-shapes/cnn)" in summary_md
        assert "not scored (their rows are NaN): broken-test (8)" in capsys.readouterr().err
    finally:
        for name in ["brightness-test", "broken-test"]:
            methods.registry.unregister(name)
        sys.modules.pop("user_methods_plugin", None)


def test_an_error_in_a_plugins_method_is_one_line_and_debug_adds_its_traceback(workspace, monkeypatch, capsys):
    tmp, config = workspace
    (tmp / "raising_plugin.py").write_text(
        "from signed_saliency.methods import register\n\n"
        "@register('raising-test', direction='magnitude', needs='model')\n"
        "def raising(model, x, target):\n"
        "    return 1 / 0\n"
    )
    try:
        argv = ["--config", config(), "--plugin", str(tmp / "raising_plugin.py"), "--methods", "raising-test",
                "--out", str(tmp / "r"), "--quiet"]
        assert run.main(argv) == 2
        assert capsys.readouterr().err == (
            "error: method 'raising-test' (plugin raising_plugin) raised ZeroDivisionError: division by zero\n"
        )
        assert run.main([*argv, "--debug"]) == 2
        err = capsys.readouterr().err
        assert "Traceback" in err and "return 1 / 0" in err and "raising_plugin.py" in err
    finally:
        methods.registry.unregister("raising-test")
        sys.modules.pop("raising_plugin", None)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--methods", "salience"], "unknown method 'salience'"),
        (["--metrics", "nope"], "unknown metric 'nope'"),
        (["--config", "no-such-config"], "unknown config 'no-such-config'"),
        (["--datasets", "cifar10", "--data-root", "/nonexistent/data"], "/nonexistent/data"),
        (["--shard", "2/2"], "0 <= i < n"),
        (["--plugin", "no_such_plugin_module"], "plugin 'no_such_plugin_module' not found"),
        (["--threads", "0"], "threads must be at least 1"),
        (["--methods", "saliency,nosuch*"], "no method matches 'nosuch*'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(workspace, capsys, argv, message):
    tmp, config = workspace
    args = ["--config", config(), "--out", str(tmp / "x"), *argv] if "--config" not in argv else [*argv, "--out", str(tmp / "x")]
    assert run.main([*args, "--quiet"]) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and error.startswith("error: ") and "\n" not in error and "Traceback" not in error


def test_unknown_config_key_and_unwritable_output(workspace, capsys):
    tmp, config = workspace
    bad = tmp / "bad.toml"
    bad.write_text(open(config()).read().replace("seed = 3", "seeed = 3"))
    assert run.main(["--config", str(bad), "--quiet"]) == 2
    assert "unknown config key 'seeed'" in capsys.readouterr().err
    assert run.main(["--config", config(precision="fp8"), "--quiet"]) == 2
    assert "precision must be one of float32, bfloat16, got 'fp8'" in capsys.readouterr().err
    (tmp / "a-file").write_text("")
    assert run.main(["--config", config(), "--out", str(tmp / "a-file" / "sub"), "--quiet"]) == 2
    assert "cannot write to output folder" in capsys.readouterr().err


def test_a_dataset_named_twice_and_plan_flags_on_a_suite_are_errors(workspace, capsys):
    tmp, config = workspace
    twice = tmp / "twice.toml"
    text = open(config()).read()
    twice.write_text(text + text[text.index("[[datasets]]"):text.index("[settings")])
    assert run.main(["--config", str(twice), "--quiet"]) == 2
    assert "dataset 'signed-shapes' appears twice" in capsys.readouterr().err
    suite = tmp / "suite.toml"
    suite.write_text(f'parts = ["{config()}"]\n')
    assert run.main(["--config", str(suite), "--methods", "saliency", "--seed", "1", "--out", str(tmp / "s"), "--quiet"]) == 2
    error = capsys.readouterr().err
    assert "--methods, --seed would change what suite 'suite' plans" in error and "\n" not in error.strip()
    suite.write_text(f'parts = ["{config()}"]\nafter = "benchmarks.no_such_module"\n')
    assert run.main(["--config", str(suite), "--quiet"]) == 2
    assert "after = 'benchmarks.no_such_module' is not an importable module" in capsys.readouterr().err


def test_batches_run_in_a_seeded_order_every_model_at_each_step():
    groups = [
        plan_module.Group(dataset=dataset, model=model, batch=batch, image_positions=(), shards=())
        for dataset, batches in (("a", 12), ("b", 3)) for model in ("cnn", "resnet18") for batch in range(batches)
    ]
    order = execution_order(groups, seed=0)
    assert order == execution_order(groups, seed=0) and sorted(map(id, order)) == sorted(map(id, groups))
    a_batches = [group.batch for group in order if group.dataset == "a"]
    assert a_batches[0::2] == a_batches[1::2]  # both models of a dataset at each batch before the next batch
    assert a_batches[0::2] != sorted(a_batches[0::2])  # a whole split is stored by class: not 0, 1, 2, ...
    assert [group.dataset for group in order[:4]] == ["a", "a", "b", "b"]  # the datasets advance together
    resumed = execution_order(groups, seed=0, started=frozenset({("a", 7), ("b", 2)}))
    assert sorted((group.dataset, group.batch) for group in resumed[:4]) == [("a", 7), ("a", 7), ("b", 2), ("b", 2)]
    assert resumed[4:] == [group for group in order if (group.dataset, group.batch) not in {("a", 7), ("b", 2)}]


def test_stop_after_reports_what_is_finished_and_the_rest_resumes(workspace, monkeypatch, capsys):
    tmp, config = workspace
    clock = {"now": 0.0}  # a clock that moves a minute with every shard saved
    real_save = store.save_shard

    def save_and_tick(*args, **kwargs):
        real_save(*args, **kwargs)
        clock["now"] += 60.0

    monkeypatch.setattr(store, "save_shard", save_and_tick)
    monkeypatch.setattr(time, "perf_counter", lambda: clock["now"])
    assert run.main(["--config", config(), "--out", str(tmp / "a"), "--stop-after", "1", "--quiet"]) == 0
    # batch 0's first metric done for both methods; no metric starts past the minute
    assert "6 shards left for the next run" in capsys.readouterr().err
    assert len(list((tmp / "a" / "shards").rglob("*.pkl"))) == 2
    summary = pd.read_csv(tmp / "a" / "summary.csv")
    assert set(summary["metric"]) == {"deletion"} and summary["n"].eq(4).all()
    monkeypatch.setattr(store, "save_shard", real_save)
    monkeypatch.setattr(time, "perf_counter", REAL_PERF_COUNTER)
    run_ok("--config", config(), "--out", str(tmp / "a"))
    assert len(list((tmp / "a" / "shards").rglob("*.pkl"))) == 8
    assert run.main(["--config", config(), "--stop-after", "0", "--quiet"]) == 2


def test_chosen_images_are_shuffled_so_a_stopped_run_is_a_fair_sample():
    import torch

    from signed_saliency.datasets.core import ImageSet

    labels = torch.arange(10).repeat_interleave(100)  # stored class by class, like the splits
    split = ImageSet(
        dataset="toy", split="test", images=torch.zeros(1000, 1, 2, 2, dtype=torch.uint8), labels=labels,
        class_names=tuple(map(str, range(10))), indices=torch.arange(1000),
    )
    chosen = choose_images(split, 200, seed=0)
    assert len(set(chosen.indices.tolist())) == 200
    assert torch.equal(chosen.indices, choose_images(split, 200, seed=0).indices)
    first_batch = chosen.labels[:64]
    assert len(first_batch.unique()) >= 8  # sorted back, the first 64 would be one or two classes
    assert torch.equal(labels[chosen.indices], chosen.labels)


def test_recorded_checkpoint_paths_read_the_same_from_every_clone(tmp_path, monkeypatch):
    from benchmarks.paths import SHIPPED_CHECKPOINTS, portable

    assert portable(SHIPPED_CHECKPOINTS / "cifar10-cnn.pt") == "results/paper/checkpoints/cifar10-cnn.pt"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert portable(tmp_path / "home" / ".cache" / "m.pt") == "~/.cache/m.pt"
    assert portable(tmp_path / "elsewhere" / "m.pt") == str((tmp_path / "elsewhere" / "m.pt").resolve())


def test_a_fix_for_signed_maps_renames_only_their_shards():
    # deletion's revision 2 changed signed maps' white baseline only: other maps' archived rows stay valid
    assert plan_module._key_extras("deletion", "gradient", "float32") == {"revision": 2}
    assert plan_module._key_extras("deletion", "saliency", "float32") == {}
    assert plan_module._key_extras("deletion", "positive", "bfloat16") == {"precision": "bfloat16"}
    # grad-cam's revision 2 (another layer) renames its shards under every metric
    assert plan_module._key_extras("sparseness", "grad-cam", "float32") == {"method_revision": 2}


SLOW_PLUGIN = '''
import os, pathlib, time
from signed_saliency.methods import register

@register("slow-test", direction="magnitude", needs="model")
def slow(model, x, target):
    """The grey level; the second batch waits for a Ctrl-C when asked to."""
    flag = pathlib.Path(os.environ["SLOW_TEST_FLAG"])
    if os.environ.get("SLOW_TEST_WAIT") and flag.exists():
        pathlib.Path(str(flag) + ".waiting").touch()
        time.sleep(120)
    flag.touch()
    return x.mean(dim=1)
'''


def test_ctrl_c_saves_finished_shards_says_so_in_one_line_and_a_rerun_resumes(workspace):
    import os
    import signal
    import subprocess

    tmp, config = workspace
    (tmp / "slow_plugin.py").write_text(SLOW_PLUGIN)
    flag = tmp / "flag"
    env = {**os.environ, "SLOW_TEST_FLAG": str(flag), "SLOW_TEST_WAIT": "1", "PYTHONPATH": str(REPO_ROOT)}
    argv = [sys.executable, "-m", "benchmarks.run", "--config", config(), "--plugin", str(tmp / "slow_plugin.py"),
            "--methods", "slow-test", "--metrics", "sparseness", "--out", str(tmp / "c"), "--quiet"]
    process = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True, cwd=tmp)
    deadline = time.monotonic() + 300
    while not (tmp / "flag.waiting").exists():
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130
    assert err.strip() == "interrupted: 1 of 2 shards saved; rerun the same command to resume"
    done = subprocess.run(argv, env={**env, "SLOW_TEST_WAIT": ""}, capture_output=True, text=True, cwd=tmp)
    assert done.returncode == 0, done.stderr
    assert len(pd.read_csv(tmp / "c" / "scores.csv")) == 8


def test_methods_and_metrics_may_be_named_by_pattern():
    from benchmarks.config import DatasetRun, RunConfig

    config = RunConfig(name="x", datasets=[DatasetRun(name="cifar10", models=["cnn"])],
                       methods=["integrated-gradients*", "saliency", "integrated-gradients"], metrics=["deletion*"])
    assert config.method_names() == [
        "integrated-gradients", "integrated-gradients-positive", "integrated-gradients-negative", "saliency"]
    assert config.metric_names() == ["deletion-paper", "deletion"]
    beside = RunConfig(name="y", datasets=[DatasetRun(name="cifar10", models=["cnn"])],
                       metrics=["*", "quantus:Sparseness"])
    assert beside.metric_names()[-1] == "quantus:Sparseness" and "deletion" in beside.metric_names()
