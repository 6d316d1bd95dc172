"""The runner with your own model and images (issue 26): a folder dataset, a torchvision
model, your checkpoint; outputs that never clobber committed results; the default run's
check that it reproduces the committed numbers."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from benchmarks import cli, run, store
from benchmarks.paths import REPO_ROOT
from signed_saliency import engine, methods
from signed_saliency.models import external

CIFAR_JPG = Path("/work/shared/data/cifar10-jpg")


@pytest.fixture
def image_folder(tmp_path):
    """folder:PATH's layout, two classes of two images each, at an awkward path (a comma, a space)."""
    from torchvision.io import write_png

    root = tmp_path / "my images, v1"
    generator = torch.Generator().manual_seed(0)
    for label in ("cat", "dog"):
        (root / label).mkdir(parents=True)
        for index in range(2):
            write_png(torch.randint(0, 256, (3, 20, 24), dtype=torch.uint8, generator=generator),
                      str(root / label / f"{index}.png"))
    return root


def torchvision_checkpoint(path: Path, num_classes: int) -> Path:
    """A seeded, untrained torchvision ResNet18's state dict: your checkpoint, no download."""
    import torchvision

    torch.manual_seed(0)
    torch.save(torchvision.models.get_model("resnet18", weights=None, num_classes=num_classes).state_dict(), path)
    return path


def test_a_folder_of_images_with_your_torchvision_checkpoint_runs_end_to_end(workspace, image_folder):
    tmp, config = workspace
    weights = torchvision_checkpoint(tmp / "resnet18-mine.pt", num_classes=2)
    assert run.main(["--config", config(), "--dataset", f"folder:{image_folder}", "--image-size", "32",
                     "--models", "torchvision:resnet18", "--checkpoint", str(weights), "--methods", "saliency,positive",
                     "--metrics", "deletion,sparseness", "--out", str(tmp / "o"), "--quiet"]) == 0
    scores = pd.read_csv(tmp / "o" / "scores.csv")
    assert set(scores["dataset"]) == {f"folder:{image_folder}"} and set(scores["model"]) == {"torchvision:resnet18"}
    assert scores.groupby(["method", "metric", "variant"])["image"].nunique().eq(4).all()
    assert sorted(scores.drop_duplicates("image")["label"]) == [0, 0, 1, 1]  # labels from the class folders
    # the shards lie one level per name however the path is spelt; shipped datasets keep their names
    shard = next((tmp / "o" / "shards").iterdir())
    assert shard.name.startswith("folder-") and "," not in shard.name and " " not in shard.name
    assert store.path_component("cifar10") == "cifar10" and store.path_component("signed-shapes") == "signed-shapes"
    assert store.path_component("folder:/a/b") != store.path_component("folder:/a-b")
    recorded = store.read_plan(tmp / "o")["checkpoints"]
    assert [entry["sha256"] for entry in recorded.values()] == [external.sha256_file(weights)]


def test_a_pretrained_torchvision_model_predicts_its_own_classes_on_your_images(workspace, image_folder, monkeypatch):
    tmp, config = workspace
    # stand-in ImageNet weights in a private hub cache, named with their own hash as torch.hub names them
    weights = torchvision_checkpoint(tmp / "stand-in.pth", num_classes=1000)
    cached = tmp / "hub" / f"resnet18-{external.sha256_file(weights)[:8]}.pth"
    cached.parent.mkdir()
    shutil.move(weights, cached)
    monkeypatch.setattr(external, "cached_weights_path", lambda _: cached)
    assert run.main(["--config", config(), "--dataset", f"folder:{image_folder}", "--image-size", "32",
                     "--models", "torchvision:resnet18", "--methods", "saliency", "--metrics", "random-logit",
                     "--out", str(tmp / "o"), "--quiet"]) == 0
    scores = pd.read_csv(tmp / "o" / "scores.csv")
    assert scores["predicted"].between(0, 999).all() and scores["image"].nunique() == 4
    examples = torch.load(store.examples_path(tmp / "o", f"folder:{image_folder}", "torchvision:resnet18"),
                          weights_only=False)
    assert len(examples["images"]) == 2  # chosen by class alone: ImageNet predictions are never "correct" here


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--models", "torchvision:resnet18"], "never downloads them; copy https://download.pytorch.org/models/resnet18-"),
        (["--models", "cnn,resnet18", "--checkpoint", "x.pt"], "--checkpoint needs exactly one architecture"),
        (["--checkpoint-sha256", "ab"], "give that too"),
        (["--dataset", "folder:{folder}"], "has no shipped model: choose one with --models"),
        (["--models", "torchvision:resnet81"], "torchvision has no classifier 'resnet81': did you mean resnet18"),
        (["--image-size", "2"], "--image-size must be at least 8"),
    ],
)
def test_model_and_folder_mistakes_are_one_line(workspace, image_folder, monkeypatch, capsys, argv, message):
    tmp, config = workspace
    monkeypatch.setenv("TORCH_HOME", str(tmp / "empty-torch-home"))  # an offline machine without cached weights
    argv = [part.format(folder=image_folder) for part in argv]
    assert run.main(["--config", config(), *argv, "--out", str(tmp / "x"), "--quiet"]) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and error.startswith("error: ") and "\n" not in error


def test_only_a_config_run_as_committed_writes_its_results_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "RUNS_DIR", tmp_path / "runs")
    quick = cli.load_config("quick")

    def folder(*flags: str, own_flags: bool = True) -> Path:
        args = cli.build_parser().parse_args(["--config", "quick", *flags])
        config = cli.with_overrides(quick, args)
        own = cli.is_committed_config("quick") and not args.plugin and cli.same_plan(config, quick)
        return cli.output_folder("quick", own=own, args=args, identity={"config": cli.plan_defining(config)})

    assert folder("--threads", "1", "--device", "cpu", "--data-root", "/elsewhere") == cli.RESULTS_DIR / "quick"
    other = folder("--methods", "saliency")
    assert other.parent == tmp_path / "runs" and other.name.startswith("quick-") and other != folder("--seed", "1")
    with pytest.raises(cli.UserError, match="it is not this config's own"):
        folder("--out", str(cli.RESULTS_DIR / "paper"))
    with pytest.raises(cli.UserError, match="differs from the config as committed"):
        folder("--methods", "saliency", "--out", str(cli.RESULTS_DIR / "quick"))
    (tmp_path / "quick.toml").write_text("")
    assert not cli.is_committed_config(str(tmp_path / "quick.toml"))  # a copy elsewhere has no committed folder


def test_the_readmes_plugin_command_leaves_the_committed_results_alone(workspace, monkeypatch, capsys):
    tmp, _ = workspace
    monkeypatch.setattr(cli, "RUNS_DIR", tmp / "runs")
    before = _git_status_of_results()
    try:
        assert run.main(["--plugin", str(REPO_ROOT / "examples" / "my_methods.py"), "--methods",
                         "saliency,positive,gradient-x-contrast", "--metrics", "sparseness", "--n-images", "4",
                         "--quiet"]) == 0
    finally:
        methods.registry.unregister("gradient-x-contrast")
        sys.modules.pop("my_methods", None)
    written = capsys.readouterr().err
    assert f"writing to {tmp / 'runs'}/quick-" in written
    [out] = (tmp / "runs").iterdir()
    assert set(pd.read_csv(out / "scores.csv")["method"]) == {"saliency", "positive", "gradient-x-contrast"}
    assert _git_status_of_results() == before == ""


def _git_status_of_results() -> str:
    return subprocess.run(["git", "status", "--porcelain", "results/"], cwd=REPO_ROOT, capture_output=True, text=True,
                          check=True).stdout


@pytest.fixture
def committed_config(workspace, monkeypatch):
    """The tiny config as if it were shipped and the default: its own results/ and runs/ in tmp."""
    tmp, config = workspace
    (tmp / "configs").mkdir()
    path = tmp / "configs" / "tiny.toml"
    shutil.copy(config(), path)
    monkeypatch.setattr(cli, "CONFIG_DIR", tmp / "configs")
    monkeypatch.setattr(cli, "RESULTS_DIR", tmp / "results")
    monkeypatch.setattr(cli, "RUNS_DIR", tmp / "runs")
    monkeypatch.setattr(cli, "DEFAULT_CONFIG", "tiny")
    computed = []
    real_score = engine.score_batch
    monkeypatch.setattr(engine, "score_batch",
                        lambda *a, **k: computed.extend(m.name for m in k["methods"]) or real_score(*a, **k))
    return tmp, str(path), computed


def test_the_default_run_recomputes_and_says_it_reproduced(committed_config, capsys):
    tmp, config, computed = committed_config
    assert run.main(["--config", config, "--reuse-archive", "--quiet"]) == 0  # the committed results, first made
    committed = tmp / "results" / "tiny"
    shutil.rmtree(committed / "shards")  # a fresh clone: the archive alone
    files = {path: path.read_bytes() for path in committed.rglob("*") if path.is_file()}
    computed.clear()
    capsys.readouterr()
    assert run.main(["--config", config, "--quiet"]) == 0
    assert len(computed) == 8  # every shard, none taken from the archive
    values = len(pd.read_csv(committed / "scores.csv"))
    assert capsys.readouterr().err.strip() == f"reproduced: {values} values within 1e-6; the committed report {committed} stands"
    assert {path: path.read_bytes() for path in committed.rglob("*") if path.is_file()} == files
    assert not (tmp / "runs" / "tiny-reproduce").exists()  # so the next default run recomputes too
    computed.clear()
    assert run.main(["--config", config, "--reuse-archive", "--quiet"]) == 0
    assert computed == []


def test_a_run_that_does_not_reproduce_says_what_differs_and_keeps_its_numbers_apart(committed_config, capsys):
    import dataclasses

    tmp, config, _ = committed_config
    assert run.main(["--config", config, "--reuse-archive", "--quiet"]) == 0
    summary = (tmp / "results" / "tiny" / "summary.csv").read_bytes()
    capsys.readouterr()

    def other_positive(model, x, target):
        return torch.rand(x.shape[0], *x.shape[2:], generator=torch.Generator().manual_seed(1))

    with methods.registry.override(dataclasses.replace(methods.get("positive"), fn=other_positive, needs="model")):
        assert run.main(["--config", config, "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "NOT REPRODUCED: " in err and "positive" in err and "here, " in err and "largest difference" in err
    assert "saliency deletion" not in err  # saliency reproduced
    assert (tmp / "results" / "tiny" / "summary.csv").read_bytes() == summary
    assert (tmp / "runs" / "tiny-reproduce" / "summary.csv").is_file()
