"""Attribution baselines computed by captum, reduced over channels as the paper's maps are.

captum returns per-channel attributions (N,C,H,W). A ``signed`` map keeps, per pixel, the
channel value of largest magnitude with its sign (:func:`largest_magnitude`, as the
``gradient`` map); a ``magnitude`` map takes the max over channels of absolute values
(:func:`max_magnitude`, as ``saliency``). Every ``signed`` baseline also gets its
sign-split pair (``<name>-positive``/``<name>-negative``) from the registry.

Settings are module-level defaults and keyword options of each function; bind them with
``methods.get(name).configure(n_steps=64)``. A target is always given (the predicted
class when the caller gave none), and nothing here trains or changes the model. Each
function receives its own leaf copy of the batch from :func:`explain`, so it may set
``requires_grad`` on it.
"""

from __future__ import annotations

import warnings
from collections import Counter
from typing import Optional

import torch
from torch import Tensor, nn

from signed_saliency.lazy import lazy_import
from signed_saliency.methods.core import largest_magnitude, max_magnitude, register

GuidedBackprop = lazy_import("captum.attr", "GuidedBackprop")
InputXGradient = lazy_import("captum.attr", "InputXGradient")
IntegratedGradients = lazy_import("captum.attr", "IntegratedGradients")
LayerAttribution = lazy_import("captum.attr", "LayerAttribution")
LayerGradCam = lazy_import("captum.attr", "LayerGradCam")
NoiseTunnel = lazy_import("captum.attr", "NoiseTunnel")
Saliency = lazy_import("captum.attr", "Saliency")

IG_STEPS = 32
# Images x steps evaluated at once: bounds memory without changing the result.
IG_INTERNAL_BATCH_SIZE = 512
SMOOTHGRAD_SAMPLES = 25
# SmoothGrad's noise std as a fraction of the input range (Smilkov et al.), which is [0, 1]
# here, so it is also the std itself
SMOOTHGRAD_NOISE = 0.15
SMOOTHGRAD_SAMPLES_BATCH_SIZE = 5
SMOOTHGRAD_SEED = 0


@register("integrated-gradients", direction="signed", score="logit", family="baseline", needs="model", library="captum")
def integrated_gradients(
    model: nn.Module,
    x: Tensor,
    target: Tensor,
    *,
    n_steps: int = IG_STEPS,
    internal_batch_size: Optional[int] = IG_INTERNAL_BATCH_SIZE,
) -> Tensor:
    """Integrated Gradients (Sundararajan et al. 2017) from a black image; signed, largest-magnitude channel."""
    attributions = IntegratedGradients(model).attribute(
        x, baselines=0.0, target=target, n_steps=n_steps, internal_batch_size=internal_batch_size
    )
    return largest_magnitude(attributions)


@register("smoothgrad", direction="signed", score="logit", family="baseline", needs="model", library="captum")
def smoothgrad(
    model: nn.Module,
    x: Tensor,
    target: Tensor,
    *,
    samples: int = SMOOTHGRAD_SAMPLES,
    noise: float = SMOOTHGRAD_NOISE,
    samples_batch_size: Optional[int] = SMOOTHGRAD_SAMPLES_BATCH_SIZE,
    seed: int = SMOOTHGRAD_SEED,
) -> Tensor:
    """SmoothGrad (Smilkov et al. 2017): mean raw dS_c/dI under Gaussian noise; signed, largest-magnitude channel.

    torch is seeded with ``seed`` inside ``torch.random.fork_rng`` before the noise is
    drawn, so a call is reproducible and leaves the global random state as it found it.
    (The paper code's SmoothGrad averages |gradient|, a magnitude map; this one keeps the
    sign so that it can be split and compared with the signed maps.)
    """
    devices = [x.device] if x.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        attributions = NoiseTunnel(Saliency(model)).attribute(
            x,
            nt_type="smoothgrad",
            nt_samples=samples,
            nt_samples_batch_size=samples_batch_size,
            stdevs=noise,
            target=target,
            abs=False,
        )
    return largest_magnitude(attributions)


@register("guided-backprop", direction="magnitude", score="logit", family="baseline", needs="model", library="captum")
def guided_backprop(model: nn.Module, x: Tensor, target: Tensor) -> Tensor:
    """Guided Backprop (Springenberg et al. 2015); magnitude: max over channels of |attribution|.

    Not signed: ReLUs pass only positive gradients back, so the sign at the input is not
    the sign of any derivative of S_c, and the map is known to barely depend on the
    class or the weights (Nie et al. 2018; Adebayo et al. 2018). Hooks ``nn.ReLU``
    modules, so a model using functional ReLUs gets plain gradients there, and ConvNeXt,
    whose activations are GELUs, gets the plain gradient's magnitude: ``saliency``.
    """
    with warnings.catch_warnings():
        # captum announces its (always removed) ReLU hooks on every call.
        warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU")
        return max_magnitude(GuidedBackprop(model).attribute(x.requires_grad_(), target=target))


@register("input-x-gradient", direction="signed", score="logit", family="baseline", needs="model", library="captum")
def input_x_gradient(model: nn.Module, x: Tensor, target: Tensor) -> Tensor:
    """Input x Gradient (Shrikumar et al. 2016): x * dS_c/dI; signed, largest-magnitude channel."""
    return largest_magnitude(InputXGradient(model).attribute(x.requires_grad_(), target=target))


def last_feature_map(model: nn.Module, x: Tensor) -> nn.Module:
    """The module whose output Grad-CAM weighs: of the modules run once in a forward pass of
    ``x[:1]``, the last to finish with a feature map of more than one cell (N, C, H, W with
    H*W > 1). That is what the head pools: the CNN's last ReLU (where Grad-CAM is exactly
    CAM), ResNet's ``layer4`` (the blocks' output, after the residual sum) and ConvNeXt's
    ``features``. At 32 px ResNet18's ``layer4`` is a single cell, which would give a
    constant map, so there it is ``layer3`` (2x2).

    Found by running the model rather than by type or name, because a last ``nn.Conv2d``
    misses what follows it (ResNet's batch norm and residual sum, the CNN's ReLU)."""
    finished: list[tuple[nn.Module, object]] = []
    hooks = [
        module.register_forward_hook(lambda module, inputs, output: finished.append((module, output)))
        for module in model.modules()
    ]
    try:
        with torch.no_grad():
            model(x[:1])
    finally:
        for hook in hooks:
            hook.remove()
    calls = Counter(id(module) for module, _ in finished)
    for module, output in reversed(finished):
        # a module run twice (a ResNet block's ReLU) has no single output to weigh
        if calls[id(module)] == 1 and isinstance(output, Tensor) and output.dim() == 4 and output.shape[-2:].numel() > 1:
            return module
    raise ValueError(f"grad-cam needs a feature map of more than one cell; {type(model).__name__} has none at this size")


# Revision 2: the layer was the last nn.Conv2d, before ResNet's batch norm and residual sum
# (and a single cell at 32 px) and before the CNN's ReLU
@register("grad-cam", direction="magnitude", score="logit", family="baseline", needs="model", library="captum", revision=2)
def grad_cam(model: nn.Module, x: Tensor, target: Tensor, *, interpolate_mode: str = "bilinear") -> Tensor:
    """Grad-CAM (Selvaraju et al. 2017) on the last feature map the head pools, ReLU'd,
    upsampled to the input size; magnitude."""
    cam = LayerGradCam(model, last_feature_map(model, x)).attribute(x, target=target, relu_attributions=True)
    cam = LayerAttribution.interpolate(cam, tuple(x.shape[-2:]), interpolate_mode=interpolate_mode)
    return max_magnitude(cam)
