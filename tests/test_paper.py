"""The paper suite: parts run into subfolders, then the paper's tables and figures."""

from __future__ import annotations

import json
import shutil
import textwrap

import pandas as pd
import pytest
import torch

from benchmarks import figures, paper, run, table1
from benchmarks.execute import example_positions
from signed_saliency import engine

DELETION_PART = """
seed = 1
batch_size = 4
methods = ["saliency", "positive", "negative", "active", "inactive"]
metrics = ["deletion-paper", "deletion"]
examples = 0
missing_models = "skip"

[[datasets]]
name = "signed-shapes"
split = "test"
n_images = 8
models = ["cnn", "resnet18"]
options = { n = 40 }

[settings.deletion]
steps = 4
"""

SUITE_PART = """
seed = 1
batch_size = 4
methods = ["saliency", "positive", "negative", "active", "inactive", "edge"]
metrics = ["randomisation", "sparseness", "sign-localisation"]
examples = 10
missing_models = "skip"

[[datasets]]
name = "signed-shapes"
split = "test"
n_images = 12
models = ["cnn"]
options = { n = 40 }

[settings.randomisation]
modes = ["cascading"]
measures = ["spearman", "ssim"]
layer_stride = 4
"""


@pytest.fixture
def suite(workspace):
    tmp, _ = workspace
    (tmp / "part-deletion.toml").write_text(textwrap.dedent(DELETION_PART))
    (tmp / "part-suite.toml").write_text(textwrap.dedent(SUITE_PART))
    path = tmp / "tiny-paper.toml"
    path.write_text('parts = ["part-deletion", "part-suite"]\nafter = "benchmarks.paper"\n')
    return tmp, str(path)


def test_paper_suite_runs_parts_then_writes_tables_and_figures(suite, capsys):
    tmp, config = suite
    out = tmp / "paper"
    assert run.main(["--config", config, "--out", str(out), "--quiet"]) == 0
    assert "skipped: no trained 'resnet18' for 'signed-shapes'" in capsys.readouterr().err
    for part in ["part-deletion", "part-suite"]:
        assert (out / part / "summary.csv").is_file()
    for name in ["table1.md", "tables2_3.csv", "tables2_3.md", "headline.md", "comparisons.md", "timings.csv", "timings.md"]:
        assert (out / name).is_file(), name
    figures = out / "figures"
    for stem in ["paper-maps-signed-shapes-cnn", "classes-signed-shapes-cnn"]:  # image grids: JPEG
        assert (figures / f"{stem}.jpg").is_file() and not (figures / f"{stem}.png").exists(), stem
    assert (figures / "randomisation.png").is_file() and (figures / "randomisation.pdf").is_file()
    assert (out / "report.html").is_file() and "part-suite/report.html" in (out / "report.html").read_text()
    examples = torch.load(out / "part-suite" / "examples" / "signed-shapes-cnn.pt", weights_only=False)
    labels = examples["labels"].tolist()
    classes = sorted(set(labels))
    assert labels[: len(classes)] == classes  # one image per class, in class order, before any second
    timings = pd.read_csv(out / "timings.csv")
    assert set(timings["part"]) == {"part-deletion", "part-suite"} and timings["seconds"].ge(0).all()
    assert "randomisation" in (out / "headline.md").read_text()
    tests = pd.read_csv(out / "comparisons.csv")
    assert {("active", "positive"), ("positive", "saliency")} <= set(zip(tests["method"], tests["reference"]))
    assert tests["p_holm"].between(0, 1).all() and tests["headline"].any()
    # rebuilt by hand, for this suite (not the paper's) named with --config
    tables = {name: (out / name).read_bytes() for name in ["table1.md", "tables2_3.csv", "comparisons.csv"]}
    capsys.readouterr()
    assert paper.main([str(out), "--config", config]) == 0
    assert "# Tables 2-3" in capsys.readouterr().out
    assert all((out / name).read_bytes() == content for name, content in tables.items())
    assert paper.main([str(out)]) == 2  # the paper's parts are not in this folder
    assert f"no finished part in {out}: run python -m benchmarks.run --config paper" in capsys.readouterr().err
    assert paper.main([str(out), "--config", str(tmp / "part-suite.toml")]) == 2
    assert "is not a suite" in capsys.readouterr().err


def test_second_paper_run_reuses_every_shard_and_gives_identical_tables(suite, monkeypatch):
    tmp, config = suite
    out = tmp / "paper"
    assert run.main(["--config", config, "--out", str(out), "--quiet"]) == 0
    first = {name: (out / name).read_bytes() for name in ["tables2_3.csv", "headline.md"]}
    first |= {f"{part}/{name}": (out / part / name).read_bytes()
              for part in ["part-deletion", "part-suite"] for name in ["scores.csv", "summary.csv", "significance.csv"]}
    computed = []
    real_score = engine.score_batch
    monkeypatch.setattr(engine, "score_batch", lambda *a, **k: (computed.append(1), real_score(*a, **k))[1])
    assert run.main(["--config", config, "--out", str(out), "--quiet"]) == 0
    assert computed == []
    for name, content in first.items():
        assert (out / name).read_bytes() == content, name
    manifest = json.loads((out / "part-suite" / "manifest.json").read_text())
    assert len(manifest["runs"]) == 1  # the rerun computed nothing, so it adds no cost


def test_parts_runs_some_parts_and_leaves_the_others_results_alone(suite, monkeypatch, capsys):
    """A new machine has no shards, and a part without a committed archive there would
    report on the models computed now alone: --parts leaves that part as it is."""
    tmp, config = suite
    out = tmp / "paper"
    assert run.main(["--config", config, "--out", str(out), "--quiet"]) == 0
    kept = {name: (out / "part-deletion" / name).read_bytes() for name in ["summary.csv", "manifest.json"]}
    tables = (out / "tables2_3.csv").read_bytes()
    for folder in ["shards", "archive"]:
        shutil.rmtree(out / "part-deletion" / folder)
    computed = []
    real_score = engine.score_batch
    monkeypatch.setattr(engine, "score_batch", lambda *a, **k: (computed.append(k["metric"].name), real_score(*a, **k))[1])
    shutil.rmtree(out / "part-suite" / "shards")
    shutil.rmtree(out / "part-suite" / "archive")
    assert run.main(["--config", config, "--out", str(out), "--parts", "part-suite", "--quiet"]) == 0
    assert computed and not set(computed) & {"deletion", "deletion-paper"}
    for name, content in kept.items():
        assert (out / "part-deletion" / name).read_bytes() == content, name
    assert (out / "tables2_3.csv").read_bytes() == tables
    capsys.readouterr()
    assert run.main(["--config", config, "--out", str(out), "--parts", "part-suit", "--quiet"]) == 2
    assert "has no part part-suit; its parts: part-deletion, part-suite" in capsys.readouterr().err
    assert run.main(["--config", str(tmp / "part-suite.toml"), "--out", str(out), "--parts", "part-suite", "--quiet"]) == 2
    assert "--parts is for suite configs" in capsys.readouterr().err


def test_recomputing_lost_shards_is_not_counted_twice(suite):
    """A new machine starts with no shards, and with no archive where it was not committed:
    the manifest's earlier runs describe work these results no longer hold, so the wall
    time must not add them to the rerun's. With the archive, nothing is recomputed and the
    first run still counts."""
    tmp, config = suite
    out = tmp / "paper"
    assert run.main(["--config", config, "--out", str(out), "--quiet"]) == 0
    first = json.loads((out / "part-suite" / "manifest.json").read_text())["runs"]
    shutil.rmtree(out / "part-suite" / "shards")
    assert run.main(["--config", config, "--out", str(out), "--quiet"]) == 0
    assert json.loads((out / "part-suite" / "manifest.json").read_text())["runs"] == first
    shutil.rmtree(out / "part-suite" / "shards", ignore_errors=True)
    shutil.rmtree(out / "part-suite" / "archive")
    assert run.main(["--config", config, "--out", str(out), "--quiet"]) == 0
    manifest = json.loads((out / "part-suite" / "manifest.json").read_text())
    assert len(manifest["runs"]) == 1 and manifest["runs"][0]["wall_seconds"] == manifest["wall_seconds"]
    timings = pd.read_csv(out / "timings.csv")
    assert timings.loc[timings["part"] == "part-suite", "seconds"].sum() == pytest.approx(manifest["wall_seconds"], abs=0.1)


def test_rebuild_in_a_fresh_clone_takes_the_per_image_rows_from_the_archive(suite, capsys):
    """A fresh clone has each part's summary and archive, but no shards and no scores.csv:
    rebuilding there gives the same paired comparisons. Without the archive too, it must
    not replace the committed comparisons with an empty table."""
    tmp, config = suite
    out = tmp / "paper"
    assert run.main(["--config", config, "--out", str(out), "--quiet"]) == 0
    committed = {name: (out / name).read_bytes() for name in ["comparisons.csv", "comparisons.md", "tables2_3.csv"]}
    for part in ["part-deletion", "part-suite"]:
        shutil.rmtree(out / part / "shards")
        (out / part / "scores.csv").unlink()
    paper.write(out, [out / "part-deletion", out / "part-suite"])
    assert all((out / name).read_bytes() == content for name, content in committed.items())
    shutil.rmtree(out / "part-suite" / "archive")
    capsys.readouterr()
    paper.write(out, [out / "part-deletion", out / "part-suite"])
    assert "part-suite has a summary but no per-image rows" in capsys.readouterr().err
    assert all((out / name).read_bytes() == content for name, content in committed.items())


def test_suite_brought_up_to_date_one_model_at_a_time(suite, capsys):
    tmp, config = suite
    out = tmp / "paper"
    # resnet18 is planned but untrained: nothing to compute, no report, no error
    assert run.main(["--config", config, "--out", str(out), "--models", "resnet18", "--quiet"]) == 0
    assert "nothing computed yet" in capsys.readouterr().err
    assert not (out / "part-suite" / "summary.csv").exists()
    assert run.main(["--config", config, "--out", str(out), "--models", "cnn", "--quiet"]) == 0
    summary = pd.read_csv(out / "part-suite" / "summary.csv")
    assert set(summary["model"]) == {"cnn"} and (out / "tables2_3.md").is_file()
    assert run.main(["--config", config, "--out", str(out), "--datasets", "cifar10", "--quiet"]) == 2
    assert "has no dataset cifar10" in capsys.readouterr().err


def test_bad_part_is_caught_before_any_part_runs(suite, capsys):
    tmp, config = suite
    (tmp / "part-suite.toml").write_text(textwrap.dedent(SUITE_PART).replace('"edge"', '"edgy"'))
    assert run.main(["--config", config, "--out", str(tmp / "paper"), "--quiet"]) == 2
    assert "unknown method 'edgy'" in capsys.readouterr().err
    assert not (tmp / "paper" / "part-deletion").exists()


def test_randomisation_figure_gathers_every_part_that_ran_the_check(tmp_path, monkeypatch):
    """One figure, a column per model, from every part with the check; a model checked in
    two parts is drawn from the first."""
    from types import SimpleNamespace

    from benchmarks import store

    def curve_means(dataset: str, model: str, start: float) -> pd.DataFrame:
        return pd.DataFrame({"dataset": dataset, "model": model, "method": "saliency", "metric": "randomisation",
                             "variant": "cascading/spearman", "x": [0.0, 1.0], "n": 4, "mean": [start, 0.5], "sem": 0.1})

    held = {
        "first": curve_means("cifar10", "cnn", 1.0),
        "deletion-only": None,
        "second": pd.concat([curve_means("cifar10", "cnn", 0.9), curve_means("imagenette", "cnn", 0.8)]),
    }
    plans = {name: {"methods": {"saliency": {"family": "paper"}},
                    "metrics": {"deletion": {}} if rows is None else {"randomisation": {"curve_x": "layers"}}}
             for name, rows in held.items()}
    monkeypatch.setattr(store, "read_plan", lambda part: plans[part.name])
    monkeypatch.setattr(store, "collect", lambda parts, only_metrics=None: SimpleNamespace(curve_means=held[parts[0].name]))
    drawn = []
    monkeypatch.setattr(figures.paper, "randomisation_figure", lambda curves, meta, measures, x_label: (curves, x_label))
    monkeypatch.setattr(figures.paper, "save", lambda figure, path: drawn.append((figure, path.name)))
    figures.draw_paper_figures(tmp_path / "figures", [tmp_path / name for name in held], (), 1, ("cascading/spearman",))
    [((curves, x_label), name)] = drawn
    assert name == "randomisation" and x_label == "layers"
    assert list(dict.fromkeys(zip(curves["dataset"], curves["model"]))) == [("cifar10", "cnn"), ("imagenette", "cnn")]
    assert curves.loc[curves["dataset"] == "cifar10", "mean"].tolist() == [1.0, 0.5]  # the first part's


def test_tables2_3_set_ours_beside_the_published_value():
    summary = pd.DataFrame([
        {"dataset": "cifar10", "model": "cnn", "method": "positive", "metric": "deletion-paper", "variant": "black",
         "mean": 0.10, "ci_low": 0.09, "ci_high": 0.11, "n": 50, "n_nonfinite": 0},
        {"dataset": "cifar10", "model": "cnn", "method": "positive", "metric": "deletion", "variant": "black/allegiance",
         "mean": 0.2, "ci_low": 0.18, "ci_high": 0.22, "n": 50, "n_nonfinite": 0},
    ])
    significance = pd.DataFrame([{"dataset": "cifar10", "model": "cnn", "method": "positive", "metric": "deletion",
                                  "variant": "black/allegiance", "p_holm": 1e-5, "effect_size": -0.5}])
    table = paper.tables2_3([{"summary": summary, "significance": significance}])
    row = table[(table["map"] == "positive") & (table["dataset"] == "cifar10") & (table["model"] == "cnn")].iloc[0]
    assert row["published"] == 0.14 and row["paper_protocol"] == 0.10
    assert row["difference"] == pytest.approx(-0.04)
    assert row["fair"] == 0.2 and row["fair_p_holm_vs_saliency"] == 1e-5 and row["n_images"] == 50
    assert table["paper_protocol"].isna().sum() == len(table) - 1  # nothing else ran
    assert "not run yet" in paper.tables2_3_markdown(table) and "1.0e-05, -0.50" in paper.tables2_3_markdown(table)
    underflowed = table.assign(fair_p_holm_vs_saliency=table["fair_p_holm_vs_saliency"].where(table["fair"].isna(), 0.0))
    assert "< 1e-300, -0.50" in paper.tables2_3_markdown(underflowed)  # scipy's p of 0.0 is not "p = 0"


def test_example_positions_prefer_correct_images_one_class_at_a_time():
    labels = torch.tensor([0, 0, 1, 1, 2, 0])
    correct = torch.tensor([False, True, True, False, False, True])
    assert example_positions(labels, 3, correct) == [1, 2, 4]  # class 2 has no correct image: its first
    assert example_positions(labels, 5, correct) == [1, 2, 4, 5, 3]
    assert example_positions(labels, 4) == [0, 2, 4, 1]


def test_accuracy_by_epoch_reads_every_tracked_run_and_draws_it(tmp_path):
    def manifest(name: str, **fields) -> None:
        base = {"dataset": "imagenette", "model": "cnn", "seed": 42, "bf16_autocast": True}
        (tmp_path / f"{name}.json").write_text(json.dumps({**base, **fields}))

    manifest("imagenette-cnn", test_accuracy_by_epoch={"1": 0.1, "2": 0.3})
    manifest("imagenette-cnn-fp32", bf16_autocast=False, test_accuracy_by_epoch={"1": 0.2})
    manifest("cifar10-cnn", dataset="cifar10")  # nothing tracked: no rows
    frame = table1.accuracy_by_epoch((tmp_path,))
    assert frame.groupby("run")["epoch"].apply(list).to_dict() == {
        "seed 42, bf16 (imagenette-cnn)": [1, 2], "seed 42, float32 (imagenette-cnn-fp32)": [1]}
    assert frame["paper_accuracy"].eq(0.6205).all()
    figures.draw_accuracy_by_epoch(tmp_path / "figures", frame)
    assert (tmp_path / "figures" / "accuracy-by-epoch.png").stat().st_size > 0
