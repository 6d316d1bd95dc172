import json

import pytest
import torch

from benchmarks.train import write_checkpoint
from signed_saliency import models
from signed_saliency.errors import CheckpointError, UserError
from signed_saliency.models import imagenet
from signed_saliency.models.checkpoints import half_state_dict, load_checkpoint


def test_cnn_shapes_and_layers():
    model = models.get("cnn").build(num_classes=7)
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 7)
    assert model(torch.rand(1, 3, 64, 64)).shape == (1, 7)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32] + [32] * 3 + [64] * 3 + [128] * 3
    assert convs[0].kernel_size == (7, 7) and convs[0].stride == (2, 2)
    assert not any(isinstance(m, (torch.nn.BatchNorm2d, torch.nn.Dropout)) for m in model.modules())


@pytest.mark.parametrize("name", ["resnet18", "convnext-tiny"])
def test_imagenet_architectures_have_the_papers_head_and_identity_input_scaling(name):
    model = models.get(name).build(num_classes=10).eval()
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    assert model.head.in_features == 1000
    x = torch.rand(1, 3, 8, 8)
    assert torch.equal(model.normalize(x), x)


def test_pretrained_without_cached_weights_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(UserError, match="pretrained ResNet18 weights not found"):
        models.get("resnet18").build(num_classes=10, pretrained=True)
    with pytest.raises(UserError, match="pretrained ConvNeXt-tiny weights not found"):
        models.get("convnext-tiny").build(num_classes=10, pretrained=True)
    with pytest.raises(UserError):
        models.get("cnn").build(num_classes=10, pretrained=True)


@pytest.mark.parametrize("name", ["resnet18", "convnext-tiny"])
def test_pretrained_loads_the_cached_weights_and_normalises_inside(name, imagenet_weights):
    weights = imagenet_weights(name)
    model = models.get(name).build(num_classes=10, pretrained=True)
    assert torch.allclose(model.normalize.mean.flatten(), torch.tensor(imagenet.IMAGENET_MEAN))
    assert all(torch.equal(value, weights[key]) for key, value in model.backbone.state_dict().items())


@pytest.fixture
def checkpoint(tmp_path):
    torch.manual_seed(0)
    model = models.get("cnn").build(num_classes=10)
    manifest = {"dataset": "cifar10", "model": "cnn", "num_classes": 10, "image_size": 32, "epochs": 1}
    write_checkpoint(half_state_dict(model), manifest, tmp_path / "cifar10-cnn.pt")
    return tmp_path / "cifar10-cnn.pt", model


def test_checkpoint_round_trip(checkpoint):
    path, original = checkpoint
    model, manifest = load_checkpoint(path, expect={"dataset": "cifar10", "model": "cnn"})
    assert not model.training and manifest["epochs"] == 1
    assert all(p.dtype == torch.float32 for p in model.parameters())
    x = torch.rand(2, 3, 32, 32)
    assert torch.allclose(model(x), original(x), atol=1e-2)
    assert load_checkpoint(path.with_suffix(""))[1] == manifest  # a stem works too


def test_tampered_checkpoint_is_refused(checkpoint):
    path, _ = checkpoint
    data = bytearray(path.read_bytes())
    data[-100] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256"):
        load_checkpoint(path)


def test_mismatching_manifest_is_refused(checkpoint):
    path, _ = checkpoint
    with pytest.raises(CheckpointError, match="dataset is 'cifar10', expected 'imagenette'"):
        load_checkpoint(path, expect={"dataset": "imagenette"})
    # weights trained at 32 px are not the model of a 64-px run
    with pytest.raises(CheckpointError, match="image_size is 32, expected 64"):
        load_checkpoint(path, expect={"image_size": 64})


def test_missing_or_broken_manifest(checkpoint):
    path, _ = checkpoint
    manifest_path = path.with_suffix(".json")
    manifest = json.loads(manifest_path.read_text())
    del manifest["sha256"]
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="lacks sha256"):
        load_checkpoint(path)
    manifest_path.unlink()
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(path)
