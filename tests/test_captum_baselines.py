"""The captum-backed baselines against captum's own outputs, reduced over channels as documented."""

import pytest
import torch
from captum.attr import GuidedBackprop, InputXGradient, IntegratedGradients, LayerAttribution, LayerGradCam
from captum.attr import NoiseTunnel, Saliency
from torch import nn

from signed_saliency import methods, models
from signed_saliency.methods.captum_baselines import last_feature_map
from signed_saliency.methods.core import largest_magnitude, max_magnitude

BASELINES = ("integrated-gradients", "smoothgrad", "guided-backprop", "input-x-gradient", "grad-cam")


def test_integrated_gradients_is_captums_from_a_black_image(tiny_cnn, batch, target):
    ours = methods.get("integrated-gradients").configure(n_steps=8, internal_batch_size=12)(tiny_cnn, batch, target)
    theirs = IntegratedGradients(tiny_cnn).attribute(batch, baselines=torch.zeros_like(batch), target=target, n_steps=8)
    torch.testing.assert_close(ours, largest_magnitude(theirs), rtol=1e-4, atol=1e-7)


def test_smoothgrad_is_captums_noise_tunnel_over_raw_gradients(tiny_cnn, batch, target):
    ours = methods.get("smoothgrad").configure(samples=6, noise=0.2, seed=7)(tiny_cnn, batch, target)
    torch.manual_seed(7)
    theirs = NoiseTunnel(Saliency(tiny_cnn)).attribute(
        batch, nt_type="smoothgrad", nt_samples=6, nt_samples_batch_size=5, stdevs=0.2, target=target, abs=False
    )
    torch.testing.assert_close(ours, largest_magnitude(theirs))
    assert (ours < 0).any() and (ours > 0).any()


def test_smoothgrad_is_reproducible_and_leaves_the_global_random_state_alone(tiny_cnn, batch):
    state = torch.get_rng_state()
    first = methods.get("smoothgrad")(tiny_cnn, batch)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(methods.get("smoothgrad")(tiny_cnn, batch), first)
    assert not torch.equal(methods.get("smoothgrad").configure(seed=1)(tiny_cnn, batch), first)


@pytest.mark.filterwarnings("ignore:Setting backward hooks")
def test_guided_backprop_is_captums_max_of_absolute_values(tiny_cnn, batch, target):
    ours = methods.get("guided-backprop")(tiny_cnn, batch, target)
    theirs = GuidedBackprop(tiny_cnn).attribute(batch.clone().requires_grad_(), target=target)
    torch.testing.assert_close(ours, max_magnitude(theirs))
    assert not any(m._backward_hooks for m in tiny_cnn.modules()), "captum's ReLU hooks were left behind"


def test_input_x_gradient_is_captums(tiny_cnn, batch, target):
    ours = methods.get("input-x-gradient")(tiny_cnn, batch, target)
    theirs = InputXGradient(tiny_cnn).attribute(batch.clone().requires_grad_(), target=target)
    torch.testing.assert_close(ours, largest_magnitude(theirs))


def test_grad_cam_is_captums_on_the_pooled_feature_map_and_there_is_cam(tiny_cnn, batch, target):
    assert last_feature_map(tiny_cnn, batch) is tiny_cnn[3]  # the last ReLU, not the conv before it
    ours = methods.get("grad-cam")(tiny_cnn, batch, target)
    cam = LayerGradCam(tiny_cnn, tiny_cnn[3]).attribute(batch, target=target, relu_attributions=True)
    theirs = LayerAttribution.interpolate(cam, (16, 16), interpolate_mode="bilinear")[:, 0]
    torch.testing.assert_close(ours, theirs)
    assert (ours >= 0).all() and ours.shape == (4, 16, 16)
    # before global average pooling and a linear head, Grad-CAM is CAM (Zhou et al. 2016):
    # the head's weights on the feature maps, over the cells they are averaged over
    with torch.no_grad():
        features = tiny_cnn[:4](batch)
        weights = tiny_cnn[6].weight[target][:, :, None, None]
        class_activation = (weights * features).sum(dim=1, keepdim=True).relu() / features[0, 0].numel()
    expected = LayerAttribution.interpolate(class_activation, (16, 16), interpolate_mode="bilinear")[:, 0]
    torch.testing.assert_close(ours, expected)


def test_grad_cam_on_resnet18_weighs_the_blocks_output_with_more_than_one_cell():
    torch.manual_seed(0)
    model = models.get("resnet18").build(num_classes=10).eval()
    assert last_feature_map(model, torch.rand(1, 3, 64, 64)) is model.backbone.layer4  # 2x2, after the residual sum
    assert last_feature_map(model, torch.rand(1, 3, 32, 32)) is model.backbone.layer3  # layer4 is one cell at 32 px
    maps = methods.get("grad-cam")(model, torch.rand(2, 3, 32, 32), torch.tensor([0, 1]))
    assert maps.shape == (2, 32, 32) and (maps.flatten(1).std(dim=1) > 0).any()  # not a constant map


def test_grad_cam_needs_a_feature_map():
    with pytest.raises(ValueError, match="feature map of more than one cell"):
        last_feature_map(nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 2)), torch.rand(1, 3, 4, 4))


def test_baselines_declare_honest_directions():
    directions = {name: methods.get(name).direction for name in BASELINES}
    assert directions == {
        "integrated-gradients": "signed",
        "smoothgrad": "signed",
        "guided-backprop": "magnitude",
        "input-x-gradient": "signed",
        "grad-cam": "magnitude",
    }
    assert all(methods.get(name).family == "baseline" and methods.get(name).needs == "model" for name in BASELINES)


def test_baselines_default_to_the_predicted_class(tiny_cnn, batch):
    predicted = tiny_cnn(batch).argmax(dim=1)
    for name in ("integrated-gradients", "input-x-gradient", "grad-cam"):
        torch.testing.assert_close(methods.get(name)(tiny_cnn, batch), methods.get(name)(tiny_cnn, batch, predicted))


def test_baselines_run_on_resnet18_in_train_mode_without_touching_it():
    """torchvision's ResNet reuses in-place ReLU modules, which captum's hooks must survive."""
    torch.manual_seed(5)
    model = models.get("resnet18").build(10).train()
    x = torch.rand(2, 3, 32, 32)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    chosen = [methods.get("integrated-gradients").configure(n_steps=4), *BASELINES[1:]]
    maps = methods.explain(model, x, None, chosen)
    for name, value in maps.items():
        assert value.shape == (2, 32, 32) and torch.isfinite(value).all(), name
    assert model.training and all(p.grad is None for p in model.parameters())
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
