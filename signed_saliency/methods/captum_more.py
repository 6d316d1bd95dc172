"""The rest of captum's image attributions, each one call of captum reduced over channels.

Reductions and settings follow :mod:`captum_baselines`: a ``signed`` map keeps each pixel's
channel value of largest magnitude (its sign-split pair comes from the registry), a
``magnitude`` map the max over channels of absolute values; settings are module-level
defaults and keyword options (``methods.get("lime").configure(samples=500)``).

What the signs mean: every signed map here attributes S_c relative to a reference input
(black unless said otherwise), so a positive pixel is one whose value, against the
reference, raised S_c, as for ``input-x-gradient`` and ``integrated-gradients``.

captum is imported inside each function: importing this package must not load it.
Sampling methods take a ``seed`` (:func:`seeded_random`): a batch's maps are reproducible
and the caller's random state is left alone. LIME and Kernel SHAP draw image by image, so
an image's map does not depend on its batch; GradientSHAP and the noise tunnels draw for
the whole batch at once, as ``smoothgrad`` does.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from typing import Iterator

import numpy as np
import torch
from torch import Tensor, nn

from signed_saliency.methods.captum_baselines import (
    SMOOTHGRAD_NOISE,
    SMOOTHGRAD_SAMPLES,
    SMOOTHGRAD_SAMPLES_BATCH_SIZE,
    SMOOTHGRAD_SEED,
    last_feature_map,
)
from signed_saliency.methods.core import (
    UnsupportedModelError,
    largest_magnitude,
    max_magnitude,
    register,
)
from signed_saliency.runtime import seeded_random

# The SHAP methods' reference distribution: flat grey images from black to white, so no
# image's map depends on a data set or on its batch neighbours.
SHAP_REFERENCE_LEVELS = 5
GRADIENT_SHAP_SAMPLES = 32
# Occlusion's square patch as a fraction of the image side (4 px at 32 px, 28 at 224),
# slid by half its side; black, the reference of every signed map here (Zeiler & Fergus
# 2014 slid a grey square)
OCCLUSION_PATCH_FRACTION = 1 / 8
# How many perturbed copies of the batch go through the model at once: bounds memory
# without changing the result.
PERTURBATIONS_PER_EVAL = 16
# SLIC superpixels (Achanta et al. 2012) for feature ablation, LIME and Kernel SHAP, as
# LIME's image explanations group pixels: 50 asked, 25-35 found on CIFAR-10 images.
SUPERPIXELS = 50
SUPERPIXEL_COMPACTNESS = 10.0
SURROGATE_SAMPLES = 200
SURROGATE_SEED = 0


def flat_references(x: Tensor, levels: int = SHAP_REFERENCE_LEVELS) -> Tensor:
    """(levels, C, H, W) flat images evenly spaced from black (0) to white (1)."""
    grey_levels = torch.linspace(0.0, 1.0, levels, device=x.device, dtype=x.dtype)
    return grey_levels.view(-1, 1, 1, 1) * x.new_ones(x.shape[1:])


def superpixels(x: Tensor, segments: int = SUPERPIXELS, compactness: float = SUPERPIXEL_COMPACTNESS) -> Tensor:
    """(N,1,H,W) long SLIC labels 0..K-1 of each image (scikit-image, image by image: SLIC
    clusters one image's pixels, so there is no batched form).

    Superpixels are connected, except in an image SLIC would leave in one piece (pure
    noise: its connectivity pass merges every fragment), which keeps SLIC's clusters
    unconnected, so that a surrogate always has more than one feature to weigh."""
    from skimage.segmentation import slic

    def segment(image: np.ndarray) -> np.ndarray:
        options = dict(n_segments=segments, compactness=compactness, start_label=0, channel_axis=-1)
        labels = slic(image, **options)
        if labels.max() == 0:
            clusters = slic(image, enforce_connectivity=False, **options)
            # numbered 0..K-1 again: without the connectivity pass some cluster ids go unused
            labels = np.unique(clusters, return_inverse=True)[1].reshape(clusters.shape)
        return labels

    images = x.detach().permute(0, 2, 3, 1).double().cpu().numpy()
    return torch.from_numpy(np.stack([segment(image) for image in images])).long()[:, None].to(x.device)


@contextlib.contextmanager
def _quiet_hooks() -> Iterator[None]:
    with warnings.catch_warnings():
        # captum announces its (always removed) hooks on ReLUs and other activations on every call.
        warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU")
        warnings.filterwarnings("ignore", message="Setting forward, backward hooks and attributes on non-linear")
        yield


@contextlib.contextmanager
def _deeplift_rules(model: nn.Module) -> Iterator[None]:
    """captum's hooks quiet, and its error for a reused activation module made a one-line
    :class:`UnsupportedModelError`: DeepLIFT keeps each activation's input and output on
    its module, so a module called twice (torchvision's ResNet blocks' ReLU) breaks it."""
    try:
        with _quiet_hooks():
            yield
    except RuntimeError as error:
        if "DeepLift" not in str(error):
            raise
        raise UnsupportedModelError(
            f"captum's DeepLift cannot explain {type(model).__name__}: it calls an activation module more than once"
        ) from None


@register("deeplift", direction="signed", family="propagation", library="captum")
def deeplift(model: nn.Module, x: Tensor, target: Tensor) -> Tensor:
    """DeepLIFT's rescale rule (Shrikumar et al. 2017) from a black image; signed; activations must be modules called once."""
    from captum.attr import DeepLift

    with _deeplift_rules(model):
        return largest_magnitude(DeepLift(model).attribute(x.requires_grad_(), baselines=0.0, target=target))


@register("deeplift-shap", direction="signed", family="propagation", library="captum")
def deeplift_shap(model: nn.Module, x: Tensor, target: Tensor, *, levels: int = SHAP_REFERENCE_LEVELS) -> Tensor:
    """DeepLIFT averaged over flat grey references (captum's DeepLiftShap, Lundberg & Lee 2017); signed; as deeplift."""
    from captum.attr import DeepLiftShap

    references = flat_references(x, levels)
    with _deeplift_rules(model):
        return largest_magnitude(DeepLiftShap(model).attribute(x.requires_grad_(), baselines=references, target=target))


@register("gradient-shap", direction="signed", family="gradient", library="captum")
def gradient_shap(
    model: nn.Module,
    x: Tensor,
    target: Tensor,
    *,
    samples: int = GRADIENT_SHAP_SAMPLES,
    levels: int = SHAP_REFERENCE_LEVELS,
    seed: int = SURROGATE_SEED,
) -> Tensor:
    """GradientSHAP (Lundberg & Lee 2017): expected gradients from flat grey references, x minus reference times gradient; signed."""
    from captum.attr import GradientShap

    with seeded_random(x.device, seed):
        attributions = GradientShap(model).attribute(
            x, baselines=flat_references(x, levels), n_samples=samples, target=target
        )
    return largest_magnitude(attributions)


@register("occlusion", direction="signed", family="perturbation", library="captum")
def occlusion(
    model: nn.Module,
    x: Tensor,
    target: Tensor,
    *,
    patch_fraction: float = OCCLUSION_PATCH_FRACTION,
    perturbations_per_eval: int = PERTURBATIONS_PER_EVAL,
) -> Tensor:
    """Occlusion (Zeiler & Fergus 2014): drop of S_c when a black square covers the pixel, averaged over the squares covering it; signed."""
    from captum.attr import Occlusion

    channels, height, width = x.shape[1:]
    patch = (channels, max(1, round(height * patch_fraction)), max(1, round(width * patch_fraction)))
    stride = (channels, max(1, patch[1] // 2), max(1, patch[2] // 2))
    attributions = Occlusion(model).attribute(
        x,
        sliding_window_shapes=patch,
        strides=stride,
        baselines=0.0,
        target=target,
        perturbations_per_eval=perturbations_per_eval,
    )
    return largest_magnitude(attributions)


@register("feature-ablation", direction="signed", family="perturbation", library="captum")
def feature_ablation(
    model: nn.Module,
    x: Tensor,
    target: Tensor,
    *,
    segments: int = SUPERPIXELS,
    perturbations_per_eval: int = PERTURBATIONS_PER_EVAL,
) -> Tensor:
    """Feature ablation on SLIC superpixels: drop of S_c when the pixel's superpixel is blacked out; signed."""
    from captum.attr import FeatureAblation

    attributions = FeatureAblation(model).attribute(
        x,
        baselines=0.0,
        target=target,
        feature_mask=superpixels(x, segments),
        perturbations_per_eval=perturbations_per_eval,
    )
    return largest_magnitude(attributions)


def _surrogate(
    explainer: str,
    model: nn.Module,
    x: Tensor,
    target: Tensor,
    *,
    samples: int = SURROGATE_SAMPLES,
    segments: int = SUPERPIXELS,
    seed: int = SURROGATE_SEED,
    perturbations_per_eval: int = PERTURBATIONS_PER_EVAL,
) -> Tensor:
    """captum's surrogate ``explainer`` (Lime or KernelShap) on SLIC superpixels, black
    when off, fitted image by image and each seeded alike.

    captum would loop over the batch as well, but sizes every image's surrogate by the
    batch's largest superpixel count, which would make a map depend on its neighbours."""
    import captum.attr

    surrogate = getattr(captum.attr, explainer)(model)
    maps = []
    for image, image_target, mask in zip(x, target, superpixels(x, segments)):
        with seeded_random(x.device, seed):
            maps.append(
                surrogate.attribute(
                    image[None],
                    baselines=0.0,
                    target=image_target[None],
                    feature_mask=mask[None],
                    n_samples=samples,
                    perturbations_per_eval=perturbations_per_eval,
                )
            )
    return largest_magnitude(torch.cat(maps))


# captum's defaults: samples weighted by an exponential kernel on the cosine distance,
# and a lasso (alpha 0.01) that zeroes weak superpixels
register(
    "lime", direction="signed", family="surrogate", library="captum", cost="slow",
    description="LIME (Ribeiro et al. 2016) on SLIC superpixels: captum's lasso coefficient of the pixel's superpixel; signed.",
)(functools.partial(_surrogate, "Lime"))
register(
    "kernel-shap", direction="signed", family="surrogate", library="captum", cost="slow",
    description="Kernel SHAP (Lundberg & Lee 2017) on SLIC superpixels: the Shapley value estimate of the pixel's superpixel; signed.",
)(functools.partial(_surrogate, "KernelShap"))


@register("deconvolution", direction="magnitude", family="propagation", library="captum")
def deconvolution(model: nn.Module, x: Tensor, target: Tensor) -> Tensor:
    """Deconvolution (Zeiler & Fergus 2014); magnitude: max over channels of |attribution|.

    Not signed, for the reason Guided Backprop is not: ReLUs pass back the positive part
    of the incoming signal, whatever the forward pass did, so the sign is no derivative's."""
    from captum.attr import Deconvolution

    with _quiet_hooks():
        return max_magnitude(Deconvolution(model).attribute(x.requires_grad_(), target=target))


@register("guided-grad-cam", direction="magnitude", family="propagation", library="captum")
def guided_grad_cam(model: nn.Module, x: Tensor, target: Tensor, *, interpolate_mode: str = "bilinear") -> Tensor:
    """Guided Grad-CAM (Selvaraju et al. 2017): Guided Backprop times Grad-CAM on grad-cam's layer, bilinear; magnitude."""
    from captum.attr import GuidedGradCam

    layer = last_feature_map(model, x)
    with _quiet_hooks():
        attributions = GuidedGradCam(model, layer).attribute(
            x.requires_grad_(), target=target, interpolate_mode=interpolate_mode
        )
    return max_magnitude(attributions)


def _chain_of_modules(model: nn.Module) -> bool:
    """Whether the model is nn.Sequential all the way down: the only structure whose
    forward pass is its modules in order, which is all captum's LRP follows."""
    children = list(model.children())
    return not children or (isinstance(model, nn.Sequential) and all(map(_chain_of_modules, children)))


@register("lrp-epsilon", direction="signed", family="propagation", library="captum")
def lrp_epsilon(model: nn.Module, x: Tensor, target: Tensor) -> Tensor:
    """LRP with captum's default rules (epsilon 1e-9 everywhere: LRP-0, Bach et al. 2015); signed; nn.Sequential models only.

    captum propagates relevance module by module, so a residual sum or a functional call
    (ResNet's skip connections) would be dropped silently; such models raise
    :class:`UnsupportedModelError` (zennit's ``lrp-epsilon-plus`` handles ResNets).
    Flatten, which captum has no rule for, passes relevance through unchanged by the
    same epsilon rule (a reshape's relevance in equals its relevance out).
    """
    from captum.attr import LRP
    from captum.attr._utils.lrp_rules import EpsilonRule

    if not _chain_of_modules(model):
        raise UnsupportedModelError(
            f"captum's LRP follows nn.Sequential models only, not {type(model).__name__} "
            "(skip connections would be dropped): use lrp-epsilon-plus"
        )
    reshapes = [m for m in model.modules() if isinstance(m, nn.Flatten) and not hasattr(m, "rule")]
    for module in reshapes:
        module.rule = EpsilonRule()
    try:
        return largest_magnitude(LRP(model).attribute(x.requires_grad_(), target=target))
    except TypeError as error:  # a layer type captum has no rule for
        raise UnsupportedModelError(f"captum's LRP cannot explain {type(model).__name__}: {error}") from None
    finally:
        # captum deletes the rules it used; these stay only if it failed before that
        for module in reshapes:
            if hasattr(module, "rule"):
                del module.rule


def _noise_tunnel(
    kind: str,
    model: nn.Module,
    x: Tensor,
    target: Tensor,
    *,
    samples: int = SMOOTHGRAD_SAMPLES,
    noise: float = SMOOTHGRAD_NOISE,
    seed: int = SMOOTHGRAD_SEED,
) -> Tensor:
    """captum's NoiseTunnel of kind ``kind`` over raw dS_c/dI, with smoothgrad's noise; max over channels."""
    from captum.attr import NoiseTunnel, Saliency

    with seeded_random(x.device, seed):
        attributions = NoiseTunnel(Saliency(model)).attribute(
            x,
            nt_type=kind,
            nt_samples=samples,
            nt_samples_batch_size=SMOOTHGRAD_SAMPLES_BATCH_SIZE,
            stdevs=noise,
            target=target,
            abs=False,
        )
    return max_magnitude(attributions)


register(
    "smoothgrad-squared", direction="magnitude", family="gradient", library="captum",
    description="SmoothGrad-squared (Hooker et al. 2019): mean squared dS_c/dI under smoothgrad's noise; max over channels.",
)(functools.partial(_noise_tunnel, "smoothgrad_sq"))
register(
    "vargrad", direction="magnitude", family="gradient", library="captum",
    description="VarGrad (Adebayo et al. 2018): variance of dS_c/dI under smoothgrad's noise; max over channels.",
)(functools.partial(_noise_tunnel, "vargrad"))
