"""Your own model: torchvision and timm classifiers, your checkpoints, your nn.Module."""

import importlib.util
import json

import pytest
import torch

from signed_saliency import evaluate, models
from signed_saliency.errors import CheckpointError, UserError
from signed_saliency.models import external
from signed_saliency.models.checkpoints import sha256_file
from signed_saliency.models.imagenet import IMAGENET_MEAN, IMAGENET_STD

IMAGES = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def seeded(spec_name, num_classes):
    torch.manual_seed(0)
    return models.get(spec_name).build(num_classes=num_classes).eval()


def test_an_untrained_torchvision_classifier_runs_end_to_end_behind_imagenet_normalisation():
    model = seeded("torchvision:resnet18", 5)
    assert isinstance(model, external.NormalizedClassifier) and model.net.fc.out_features == 5
    assert torch.allclose(model.normalize.mean.flatten(), torch.tensor(IMAGENET_MEAN))
    assert torch.allclose(model.normalize.std.flatten(), torch.tensor(IMAGENET_STD))
    scores = evaluate(model, IMAGES, methods=["saliency", "positive"], metrics=["deletion"],
                      settings={"deletion": {"steps": 4}})
    assert scores.groupby("method")["image"].nunique().eq(3).all() and scores["value"].notna().all()


def test_unknown_names_are_refused_when_looked_up_with_suggestions():
    with pytest.raises(UserError, match=r"torchvision has no classifier 'resnet5': did you mean resnet50"):
        models.get("torchvision:resnet5")
    with pytest.raises(UserError, match="torchvision has no classifier 'fasterrcnn_resnet50_fpn'"):
        models.get("torchvision:fasterrcnn_resnet50_fpn")  # a detector, not a classifier
    with pytest.raises(UserError, match=r"valid: .*torchvision:NAME, timm:NAME"):
        models.get("torchvison:resnet18")
    with pytest.raises(UserError, match=r"model 'torchvision:' is incomplete: write it as torchvision:NAME"):
        models.get("torchvision:")


@pytest.mark.skipif(importlib.util.find_spec("timm") is not None, reason="timm is installed here")
def test_timm_without_timm_installed_names_the_package():
    with pytest.raises(UserError, match=r"^timm:resnet50 needs the timm package, which is not installed: pip install timm$"):
        models.get("timm:resnet50")


def test_pretrained_torchvision_weights_come_from_the_hub_cache_hash_checked(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(UserError, match=r"resnet18-f37072fd.pth: this suite never downloads them"):
        models.get("torchvision:resnet18").build(pretrained=True)
    weights = seeded("torchvision:resnet18", 1000).net.state_dict()
    cached = tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    cached.parent.mkdir(parents=True)
    torch.save(weights, cached)
    with pytest.raises(CheckpointError, match=r"but its file name says f37072fd"):
        models.get("torchvision:resnet18").build(pretrained=True)

    renamed = cached.with_name(f"resnet18-{sha256_file(cached)[:8]}.pth")
    cached.rename(renamed)
    monkeypatch.setattr(external, "cached_weights_path", lambda weights: renamed)
    resolved = external.resolve_model("torchvision:resnet18")
    assert resolved.sha256 == sha256_file(renamed) and resolved.weights == renamed
    assert not resolved.module.training
    assert torch.equal(resolved.module.net.conv1.weight, weights["conv1.weight"])
    assert torch.allclose(resolved.module.normalize.mean.flatten(), torch.tensor(IMAGENET_MEAN))
    with pytest.raises(UserError, match="pretrained weights have 1000 classes, not 10"):
        external.resolve_model("torchvision:resnet18", num_classes=10)


def test_a_checkpoint_of_a_torchvision_architecture_loads_bare_or_wrapped_and_is_hash_checked(tmp_path):
    trained = seeded("torchvision:resnet18", 3)
    bare, wrapped = tmp_path / "bare.pth", tmp_path / "wrapped.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in trained.net.state_dict().items()}}, bare)
    torch.save(trained.state_dict(), wrapped)
    for path in (bare, wrapped):
        resolved = external.resolve_model("torchvision:resnet18", checkpoint=path, num_classes=3)
        assert resolved.sha256 == sha256_file(path)
        torch.testing.assert_close(resolved.module(IMAGES), trained(IMAGES))
    external.load_weights(bare, "torchvision:resnet18", num_classes=3, sha256=sha256_file(bare)[:12])
    with pytest.raises(CheckpointError, match="but the sha256 given says 0000"):
        external.load_weights(bare, "torchvision:resnet18", num_classes=3, sha256="0000abcd")
    with pytest.raises(CheckpointError, match="does not fit 'torchvision:resnet18' with 4 classes"):
        external.load_weights(bare, "torchvision:resnet18", num_classes=4)


def test_a_checkpoint_named_with_a_hash_suffix_is_checked_against_it(tmp_path):
    path = tmp_path / "mine-0123abcd.pth"
    torch.save(seeded("cnn", 10).state_dict(), path)
    with pytest.raises(CheckpointError, match="but its file name says 0123abcd"):
        external.load_weights(path, "cnn", num_classes=10)


def test_bad_checkpoint_files_are_one_line_errors(tmp_path):
    pickled, missing = tmp_path / "model.pt", tmp_path / "nowhere.pt"
    torch.save(seeded("cnn", 10), pickled)  # the whole module, not its state dict
    with pytest.raises(CheckpointError, match=r"is not a state dict torch can load safely .*save model.state_dict\(\)"):
        external.load_weights(pickled, "cnn", num_classes=10)
    with pytest.raises(CheckpointError, match="nowhere.pt not found"):
        external.resolve_model("cnn", checkpoint=missing)
    with pytest.raises(CheckpointError, match="model 'cnn' needs trained weights"):
        external.resolve_model("cnn")


def test_a_checkpoint_with_a_manifest_is_checked_against_it(tmp_path):
    from benchmarks.train import write_checkpoint

    model = seeded("cnn", 10)
    write_checkpoint(model.state_dict(), {"dataset": "mine", "model": "cnn", "num_classes": 10, "image_size": 32},
                     tmp_path / "mine-cnn")
    loaded, digest = external.load_weights(tmp_path / "mine-cnn.pt", "cnn")
    assert digest == json.loads((tmp_path / "mine-cnn.json").read_text())["sha256"]
    torch.testing.assert_close(loaded(IMAGES), model(IMAGES))
    with pytest.raises(CheckpointError, match="model is 'cnn', expected 'resnet18'"):
        external.load_weights(tmp_path / "mine-cnn.pt", "resnet18")


def test_your_own_module_registered_as_a_model_spec_loads_its_checkpoint(tmp_path):
    class TwoLayer(torch.nn.Module):
        def __init__(self, num_classes):
            super().__init__()
            self.features = torch.nn.Conv2d(3, 4, 3)
            self.head = torch.nn.Linear(4, num_classes)

        def forward(self, x):
            return self.head(self.features(x).mean(dim=(2, 3)))

    @models.register("test-two-layer")
    def two_layer(num_classes: int = 10, pretrained: bool = False):
        """A two-layer net trained on inputs scaled to [-1, 1]."""
        return external.with_normalization(TwoLayer(num_classes), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))

    try:
        trained = seeded("test-two-layer", 4)
        torch.save(trained.net.state_dict(), tmp_path / "two.pt")
        resolved = external.resolve_model("test-two-layer", checkpoint=tmp_path / "two.pt", num_classes=4)
        torch.testing.assert_close(resolved.module(IMAGES), trained.net(IMAGES * 2 - 1))
    finally:
        del models.registry._entries["test-two-layer"]


def fake_hugging_face_cache(cache, repo, state):
    """``state`` saved where huggingface_hub's cache keeps ``repo``'s model.safetensors:
    snapshots/<revision>/ links to blobs/<sha256>, refs/main names the revision."""
    from safetensors.torch import save_file

    folder = cache / f"models--{repo.replace('/', '--')}"
    (folder / "blobs").mkdir(parents=True)
    staged = folder / "staged.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(staged))
    blob = folder / "blobs" / sha256_file(staged)
    staged.rename(blob)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text("0" * 40)
    (folder / "snapshots" / ("0" * 40)).mkdir(parents=True)
    (folder / "snapshots" / ("0" * 40) / "model.safetensors").symlink_to(blob)
    return blob


def test_timm_models_untrained_and_pretrained_from_the_hugging_face_cache(tmp_path, monkeypatch):
    timm = pytest.importorskip("timm")
    pytest.importorskip("huggingface_hub")
    untrained = models.get("timm:resnet18").build(num_classes=3)
    assert untrained.net.get_classifier().out_features == 3
    assert torch.allclose(untrained.normalize.mean.flatten(), torch.tensor(untrained.net.pretrained_cfg["mean"]))

    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(UserError, match=r"pretrained timm:resnet18 weights \(timm/resnet18\.\w+\) are not in the Hugging Face cache"):
        external.resolve_model("timm:resnet18")
    torch.manual_seed(0)
    state = timm.create_model("resnet18", pretrained=False).state_dict()
    blob = fake_hugging_face_cache(tmp_path / "hub", untrained.net.pretrained_cfg["hf_hub_id"], state)
    resolved = external.resolve_model("timm:resnet18")
    assert resolved.sha256 == blob.name and not resolved.module.training
    assert torch.equal(resolved.module.net.conv1.weight, state["conv1.weight"])
    with pytest.raises(UserError, match="pretrained weights have 1000 classes, not 3"):
        external.resolve_model("timm:resnet18", num_classes=3)
    with open(blob, "r+b") as f:  # a changed file no longer matches the hash it is stored under
        f.seek(-4, 2)
        f.write(b"\0\0\0\1")
    with pytest.raises(CheckpointError, match="but the Hugging Face cache says"):
        external.resolve_model("timm:resnet18")
