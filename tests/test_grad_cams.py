"""The grad-cam package's CAMs against direct calls of the package, on grad-cam's layer."""

import pytest
import torch
from pytorch_grad_cam import EigenCAM, GradCAMPlusPlus, LayerCAM, ScoreCAM, XGradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from signed_saliency import methods, models

CAMS = {
    "grad-cam-plus-plus": GradCAMPlusPlus,
    "xgrad-cam": XGradCAM,
    "layer-cam": LayerCAM,
    "eigen-cam": EigenCAM,
    "score-cam": ScoreCAM,
}


@pytest.mark.parametrize("name", CAMS)
def test_cams_are_the_packages_on_the_pooled_feature_map(tiny_cnn, batch, target, name, capsys):
    ours = methods.get(name)(tiny_cnn, batch, target)
    assert capsys.readouterr() == ("", ""), "the library printed"  # Score-CAM's progress bars
    assert all(p.grad is None for p in tiny_cnn.parameters()), "the package's backward left parameter gradients"
    assert not any(m._forward_hooks for m in tiny_cnn.modules()), "the package's hooks were left behind"
    cam = CAMS[name](model=tiny_cnn, target_layers=[tiny_cnn[3]])
    theirs = cam(input_tensor=batch.clone(), targets=[ClassifierOutputTarget(int(c)) for c in target])
    cam.activations_and_grads.release()
    torch.testing.assert_close(ours, torch.from_numpy(theirs))
    assert ours.shape == (4, 16, 16) and (ours >= 0).all() and (ours <= 1).all()


def test_eigen_cam_is_blind_to_the_class_and_the_others_are_not(tiny_cnn, batch, target):
    other = (target + 1) % 5
    assert torch.equal(methods.get("eigen-cam")(tiny_cnn, batch, target), methods.get("eigen-cam")(tiny_cnn, batch, other))
    assert not torch.allclose(methods.get("layer-cam")(tiny_cnn, batch, target), methods.get("layer-cam")(tiny_cnn, batch, other))


def test_cams_keep_the_parameters_gradients_and_run_on_resnet18():
    torch.manual_seed(0)
    model = models.get("resnet18").build(10).eval()
    kept = torch.ones_like(model.head.weight)
    model.head.weight.grad = kept
    maps = methods.explain(model, torch.rand(1, 3, 32, 32), None, ["layer-cam"])
    assert model.head.weight.grad is kept and model.head.bias.grad is None
    for value in maps.values():
        assert value.shape == (1, 32, 32) and torch.isfinite(value).all()
