import json

import pytest
import torch

from benchmarks import table1, train
from signed_saliency import datasets
from signed_saliency.models.checkpoints import load_checkpoint
from signed_saliency.training import TrainConfig, Trainer, accuracy, build_model, permuted_labels

CONFIG = TrainConfig(epochs=2, batch_size=16, seed=3)


@pytest.fixture(scope="module")
def subset():
    return datasets.get("cifar10").load("sample").subset(torch.arange(64))


def weights_of(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_resumed_run_matches_an_unbroken_one(subset, tmp_path):
    unbroken = Trainer(build_model("cnn", 10, CONFIG.seed), subset, CONFIG)
    while not unbroken.finished:
        unbroken.train_epoch()

    first = Trainer(build_model("cnn", 10, CONFIG.seed), subset, CONFIG)
    first.train_epoch()
    torch.save(first.state_dict(), tmp_path / "resume.pt")
    del first  # the process dies here
    resumed = Trainer(build_model("cnn", 10, seed=999), subset, CONFIG)
    resumed.load_state_dict(torch.load(tmp_path / "resume.pt", weights_only=True))
    assert resumed.epoch == 1
    resumed.train_epoch()

    assert resumed.finished
    a, b = weights_of(unbroken.model), weights_of(resumed.model)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["0.weight"], build_model("cnn", 10, CONFIG.seed).state_dict()["0.weight"])


def test_a_different_protocol_is_not_resumed(subset):
    trainer = Trainer(build_model("cnn", 10, 0), subset, CONFIG)
    other = Trainer(build_model("cnn", 10, 0), subset, TrainConfig(epochs=2, batch_size=16, seed=4))
    with pytest.raises(ValueError, match="config"):
        other.load_state_dict(trainer.state_dict())


def test_training_lowers_the_loss_and_accuracy_counts_and_keeps_the_mode(subset):
    trainer = Trainer(build_model("cnn", 10, 0), subset, TrainConfig(epochs=8, batch_size=16))
    losses = [trainer.train_epoch() for _ in range(8)]
    assert losses[-1] < losses[0]
    assert trainer.model.training
    score = accuracy(trainer.model, subset, batch_size=32)
    assert 0.0 <= score <= 1.0 and score * len(subset) == int(score * len(subset))
    assert trainer.model.training  # scored in eval mode, then put back as it was


def test_permuted_labels_keep_the_label_counts():
    labels = torch.arange(10).repeat(5)
    permuted = permuted_labels(labels, seed=0)
    assert torch.equal(permuted.bincount(), labels.bincount()) and not torch.equal(permuted, labels)
    assert torch.equal(permuted, permuted_labels(labels, seed=0))


def test_the_papers_protocol_trains_in_float32_and_bf16_runs_do_not_replace_the_shipped_weights():
    assert not TrainConfig().bf16 and train.is_paper_protocol(TrainConfig(channels_last=True))
    assert not train.is_paper_protocol(TrainConfig(bf16=True, channels_last=True))
    assert not train.is_paper_protocol(TrainConfig(seed=43))
    assert not train.is_paper_protocol(TrainConfig(epochs=1))


@pytest.mark.parametrize("image_size, replaces_shipped", [(None, True), (16, False)])
def test_only_the_papers_image_size_replaces_the_shipped_weights(tmp_path, monkeypatch, image_size, replaces_shipped):
    monkeypatch.setenv("SIGNED_SALIENCY_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(train, "SHIPPED_CHECKPOINTS", tmp_path / "shipped")

    def skipped_epoch(self, on_batch=None):  # the protocol's 50 epochs, without their cost
        self.epoch += 1
        return 0.0

    monkeypatch.setattr(Trainer, "train_epoch", skipped_epoch)
    size = [] if image_size is None else ["--image-size", str(image_size)]
    path = train.main(["--dataset", "signed-shapes", "--model", "cnn", *size, "--threads", "1",
                       "--out", str(tmp_path / "run")])
    assert path == (tmp_path / "shipped" if replaces_shipped else tmp_path / "run") / "signed-shapes-cnn.pt"
    assert load_checkpoint(path)[1]["image_size"] == (image_size or 32)


def test_cli_resumes_after_an_interruption(data_root, tmp_path, monkeypatch):
    """A run stopped after its first epoch and restarted ends with the weights of a run
    never stopped, and writes an fp16 checkpoint whose manifest says what it is, with the
    test accuracy of every epoch, the one before the interruption included."""
    monkeypatch.setenv("SIGNED_SALIENCY_CACHE", str(tmp_path / "cache"))
    common = ["--dataset", "cifar10", "--model", "cnn", "--limit", "64", "--batch-size", "16", "--threads", "1",
              "--track-test-accuracy"]
    unbroken = train.main([*common, "--epochs", "2", "--out", str(tmp_path / "a"), "--dest", str(tmp_path / "a.pt")])

    calls = []
    original = Trainer.train_epoch

    def killed_in_second_epoch(self, on_batch=None):
        calls.append(self.epoch)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(self, on_batch)

    monkeypatch.setattr(Trainer, "train_epoch", killed_in_second_epoch)
    args = [*common, "--epochs", "2", "--out", str(tmp_path / "b"), "--dest", str(tmp_path / "b.pt")]
    with pytest.raises(KeyboardInterrupt):
        train.main(args)
    monkeypatch.setattr(Trainer, "train_epoch", original)
    resumed = train.main(args)

    a, b = (torch.load(path, weights_only=True) for path in (unbroken, resumed))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    model, manifest = load_checkpoint(resumed, expect={"dataset": "cifar10", "model": "cnn", "epochs": 2})
    assert manifest["train_images"] == 64 and manifest["weights_dtype"] == "float16"
    assert manifest["test_images"] == 10_000 and 0 <= manifest["test_accuracy"] <= 1
    assert json.loads(resumed.with_suffix(".json").read_text())["sha256"] == manifest["sha256"]
    by_epoch = manifest["test_accuracy_by_epoch"]
    assert list(by_epoch) == ["1", "2"] and all(0 <= value <= 1 for value in by_epoch.values())
    assert by_epoch == load_checkpoint(unbroken)[1]["test_accuracy_by_epoch"]
    assert all(v.dtype == torch.float16 for v in b.values())


def test_pretrained_training_trains_the_head_alone(subset, imagenet_weights):
    """The paper's fine-tuning: ImageNet weights frozen, the head trained, and batch-norm
    statistics following the new data (the paper's code trains in train() mode)."""
    imagenet_weights("resnet18")
    model = build_model("resnet18", 10, seed=0, pretrained=True)
    before = weights_of(model)
    trainer = Trainer(model, subset, TrainConfig(epochs=1, batch_size=32))
    assert [id(p) for p in trainer.optimizer.param_groups[0]["params"]] == [id(p) for p in model.head.parameters()]
    trainer.train_epoch()
    after = weights_of(trainer.model)
    changed = {key for key in before if not torch.equal(before[key], after[key])}
    assert {"head.weight", "head.bias"} <= changed
    assert not any(key.startswith("backbone.") and not key.endswith(("running_mean", "running_var", "num_batches_tracked"))
                   for key in changed)
    assert "backbone.bn1.running_mean" in changed


def test_cli_pretrained_run_names_and_describes_its_checkpoint(tmp_path, monkeypatch, imagenet_weights):
    monkeypatch.setenv("SIGNED_SALIENCY_CACHE", str(tmp_path / "cache"))
    imagenet_weights("resnet18")
    path = train.main(["--dataset", "signed-shapes", "--model", "resnet18", "--pretrained", "--limit", "16",
                       "--epochs", "1", "--batch-size", "8", "--threads", "1", "--out", str(tmp_path / "run")])
    assert path == tmp_path / "run" / "signed-shapes-resnet18-pretrained.pt"
    model, manifest = load_checkpoint(path, expect={"model": "resnet18", "pretrained": True})
    assert torch.allclose(model.normalize.std.flatten(), torch.tensor((0.229, 0.224, 0.225)), atol=1e-3)  # fp16-rounded
    row = table1.table(tmp_path / "run").set_index(["model", "dataset"]).loc[("resnet18-pretrained", "signed-shapes")]
    assert row["status"] == "trained here" and row["accuracy"] == manifest["test_accuracy"]
    assert row["precision"] == "float32" and not manifest["bf16_autocast"]  # the paper's, by default


def test_cli_pretrained_without_cached_weights_fails_before_loading_data(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "empty-hub"))
    monkeypatch.setattr(train, "load_images", lambda *args, **kwargs: pytest.fail("loaded data first"))
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--dataset", "imagenette", "--model", "convnext-tiny", "--pretrained"])
    assert exit_info.value.code == 2 and "ConvNeXt-tiny weights not found" in capsys.readouterr().err


def test_table1_says_how_to_fill_each_missing_row(tmp_path, monkeypatch, imagenet_weights):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "empty-hub"))
    assert "not in the torch cache (convnext_tiny-" in table1.missing_status("convnext-tiny-pretrained", "imagenette")
    assert table1.missing_status("resnet18", "imagenette") == (
        "not trained yet: `python -m benchmarks.train --dataset imagenette --model resnet18`")
    imagenet_weights("resnet18")
    assert table1.missing_status("resnet18-pretrained", "imagenette") == (
        "not trained yet: `python -m benchmarks.train --dataset imagenette --model resnet18 --pretrained`")
