"""captum's other attributions against direct calls of captum, reduced over channels as documented."""

import numpy as np
import pytest
import torch
from captum.attr import (
    LRP,
    Deconvolution,
    DeepLift,
    DeepLiftShap,
    FeatureAblation,
    GradientShap,
    GuidedGradCam,
    KernelShap,
    Lime,
    NoiseTunnel,
    Occlusion,
    Saliency,
)
from captum.attr._utils.lrp_rules import EpsilonRule
from skimage.segmentation import slic
from torch.nn import functional as F

from signed_saliency import methods, models
from signed_saliency.methods.captum_more import superpixels
from signed_saliency.methods.core import UnsupportedModelError, largest_magnitude, max_magnitude

pytestmark = pytest.mark.filterwarnings("ignore:Setting forward, backward hooks", "ignore:Setting backward hooks")


@pytest.fixture
def batch():
    """Four 16 px images of 4x4 px blocks: regions SLIC can find, unlike pixel noise."""
    torch.manual_seed(4)
    return F.interpolate(torch.rand(4, 3, 4, 4), size=16, mode="nearest")


def grey_levels(levels=5):
    return torch.linspace(0, 1, levels).view(-1, 1, 1, 1).expand(levels, 3, 16, 16)


def slic_masks(batch):
    images = batch.permute(0, 2, 3, 1).double().numpy()
    labels = [slic(image, n_segments=50, compactness=10.0, start_label=0, channel_axis=-1) for image in images]
    return torch.from_numpy(np.stack(labels))[:, None]


def test_deeplift_is_captums_from_a_black_image(tiny_cnn, batch, target):
    ours = methods.get("deeplift")(tiny_cnn, batch, target)
    theirs = DeepLift(tiny_cnn).attribute(batch.clone().requires_grad_(), baselines=torch.zeros_like(batch), target=target)
    torch.testing.assert_close(ours, largest_magnitude(theirs))
    # the rescale rule's completeness: the map's channels sum to S_c(x) - S_c(black)
    logits = tiny_cnn(torch.cat([batch, torch.zeros_like(batch[:1])]))
    torch.testing.assert_close(theirs.sum(dim=(1, 2, 3)), logits[:4].gather(1, target[:, None])[:, 0] - logits[4, target])


def test_deeplift_shap_is_captums_over_flat_grey_references(tiny_cnn, batch, target):
    ours = methods.get("deeplift-shap")(tiny_cnn, batch, target)
    theirs = DeepLiftShap(tiny_cnn).attribute(batch.clone().requires_grad_(), baselines=grey_levels(), target=target)
    torch.testing.assert_close(ours, largest_magnitude(theirs))


def test_deeplift_refuses_a_resnet_in_one_line():
    model = models.get("resnet18").build(10).eval()
    with pytest.raises(UnsupportedModelError, match="activation module more than once"):
        methods.get("deeplift")(model, torch.rand(1, 3, 32, 32))


def test_gradient_shap_is_captums_with_the_same_seed(tiny_cnn, batch, target):
    ours = methods.get("gradient-shap").configure(samples=6, seed=3)(tiny_cnn, batch, target)
    torch.manual_seed(3)
    np.random.seed(3)  # captum draws the references and path points from numpy
    theirs = GradientShap(tiny_cnn).attribute(batch, baselines=grey_levels(), n_samples=6, target=target)
    torch.testing.assert_close(ours, largest_magnitude(theirs))


def test_occlusion_is_captums_with_an_eighth_of_the_side(tiny_cnn, batch, target):
    ours = methods.get("occlusion")(tiny_cnn, batch, target)
    theirs = Occlusion(tiny_cnn).attribute(
        batch, sliding_window_shapes=(3, 2, 2), strides=(3, 1, 1), baselines=0.0, target=target
    )
    torch.testing.assert_close(ours, theirs[:, 0])  # the patch spans every channel


def test_superpixels_are_slics_and_split_even_noise():
    torch.manual_seed(0)
    smooth = F.interpolate(torch.rand(2, 3, 4, 4), size=16, mode="nearest")
    assert torch.equal(superpixels(smooth), slic_masks(smooth))
    noise = superpixels(torch.rand(3, 3, 32, 32))  # SLIC's connectivity pass would merge it whole
    for labels in noise:
        assert labels.max() > 0 and torch.equal(labels.unique(), torch.arange(labels.max() + 1))


def test_feature_ablation_is_captums_on_slic_superpixels(tiny_cnn, batch, target):
    ours = methods.get("feature-ablation")(tiny_cnn, batch, target)
    theirs = FeatureAblation(tiny_cnn).attribute(batch, baselines=0.0, target=target, feature_mask=slic_masks(batch))
    torch.testing.assert_close(ours, theirs[:, 0])


@pytest.mark.parametrize("name, surrogate", [("lime", Lime), ("kernel-shap", KernelShap)])
def test_surrogates_are_captums_image_by_image_on_slic_superpixels(tiny_cnn, batch, target, name, surrogate):
    ours = methods.get(name).configure(samples=30, seed=2)(tiny_cnn, batch, target)
    theirs = []
    for image, image_target, mask in zip(batch, target, slic_masks(batch)):
        torch.manual_seed(2)
        theirs.append(surrogate(tiny_cnn).attribute(
            image[None], baselines=0.0, target=image_target[None], feature_mask=mask[None], n_samples=30
        ))
    torch.testing.assert_close(ours, torch.cat(theirs)[:, 0])
    # one image, one map, whatever its batch
    torch.testing.assert_close(methods.get(name).configure(samples=30, seed=2)(tiny_cnn, batch[1:2], target[1:2]), ours[1:2])


def test_deconvolution_is_captums_max_of_absolute_values(tiny_cnn, batch, target):
    ours = methods.get("deconvolution")(tiny_cnn, batch, target)
    theirs = Deconvolution(tiny_cnn).attribute(batch.clone().requires_grad_(), target=target)
    torch.testing.assert_close(ours, max_magnitude(theirs))


def test_guided_grad_cam_is_captums_on_grad_cams_layer(tiny_cnn, batch, target):
    ours = methods.get("guided-grad-cam")(tiny_cnn, batch, target)
    theirs = GuidedGradCam(tiny_cnn, tiny_cnn[3]).attribute(
        batch.clone().requires_grad_(), target=target, interpolate_mode="bilinear"
    )
    torch.testing.assert_close(ours, max_magnitude(theirs))


def test_lrp_is_captums_with_flatten_passing_relevance_through(tiny_cnn, batch, target):
    ours = methods.get("lrp-epsilon")(tiny_cnn, batch, target)
    assert not any(hasattr(m, "rule") for m in tiny_cnn.modules()), "a rule was left on the model"
    tiny_cnn[5].rule = EpsilonRule()  # what captum asks for a layer it has no rule for
    theirs = LRP(tiny_cnn).attribute(batch.clone().requires_grad_(), target=target)
    torch.testing.assert_close(ours, largest_magnitude(theirs))


def test_lrp_refuses_a_model_with_skip_connections_in_one_line():
    model = models.get("resnet18").build(10).eval()
    with pytest.raises(UnsupportedModelError, match="nn.Sequential models only.*lrp-epsilon-plus"):
        methods.get("lrp-epsilon")(model, torch.rand(1, 3, 32, 32))


@pytest.mark.parametrize("name, kind", [("smoothgrad-squared", "smoothgrad_sq"), ("vargrad", "vargrad")])
def test_noise_tunnel_variants_are_captums(tiny_cnn, batch, target, name, kind):
    ours = methods.get(name).configure(samples=6, noise=0.2, seed=7)(tiny_cnn, batch, target)
    torch.manual_seed(7)
    theirs = NoiseTunnel(Saliency(tiny_cnn)).attribute(
        batch, nt_type=kind, nt_samples=6, nt_samples_batch_size=5, stdevs=0.2, target=target, abs=False
    )
    torch.testing.assert_close(ours, max_magnitude(theirs))
    assert (ours >= 0).all()
