"""The CAM family of the ``grad-cam`` package (pytorch_grad_cam), on grad-cam's layer.

Each method weighs the feature maps of :func:`last_feature_map` (the layer today's
``grad-cam`` uses) and is one call of the package. What the package does and we keep:
each map is ReLU'd, min-max scaled to [0, 1] per image and resized to the input with
OpenCV (bilinear), so these maps carry no units, unlike the rest of the registry; the
metrics here rank pixels within an image or normalise maps themselves, so only absolute
comparisons across images would notice. What we undo: the package calls
``loss.backward()``, which fills the model's parameter gradients; they are restored.

pytorch_grad_cam is imported inside each call: importing this package must not load it.
"""

from __future__ import annotations

import contextlib
import functools
from types import SimpleNamespace
from typing import Iterator, Optional
from unittest import mock

import torch
from torch import Tensor, nn

from signed_saliency.methods.captum_baselines import last_feature_map
from signed_saliency.methods.core import register

# Score-CAM scores one masked copy of the image per feature channel; this many go
# through the model at once (the package's default is 16).
SCORE_CAM_BATCH_SIZE = 64


@contextlib.contextmanager
def _parameter_gradients_kept(model: nn.Module) -> Iterator[None]:
    saved = [(parameter, parameter.grad) for parameter in model.parameters()]
    try:
        yield
    finally:
        for parameter, grad in saved:
            parameter.grad = grad


def _cam(cam_class: str, model: nn.Module, x: Tensor, target: Tensor, *, batch_size: Optional[int] = None) -> Tensor:
    """One pytorch_grad_cam CAM of each image's target logit, (N,H,W) on x's device;
    ``batch_size`` is Score-CAM's masked copies per forward pass."""
    import pytorch_grad_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    layer = last_feature_map(model, x)
    # an input that requires grad makes the feature maps require it, even when the
    # model's parameters are frozen
    x = x.requires_grad_()
    with _parameter_gradients_kept(model):
        cam = getattr(pytorch_grad_cam, cam_class)(model=model, target_layers=[layer])
        if batch_size is not None:
            cam.batch_size = batch_size
        try:
            maps = cam(input_tensor=x, targets=[ClassifierOutputTarget(int(c)) for c in target])
        finally:
            # not ``with cam``: its __exit__ prints and swallows an IndexError
            cam.activations_and_grads.release()
    return torch.from_numpy(maps).to(x.device)


register(
    "grad-cam-plus-plus", direction="magnitude", family="cam", library="grad-cam",
    description="Grad-CAM++ (Chattopadhay et al. 2018): feature maps weighed by higher-order gradient terms; magnitude.",
)(functools.partial(_cam, "GradCAMPlusPlus"))
register(
    "xgrad-cam", direction="magnitude", family="cam", library="grad-cam",
    description="XGrad-CAM (Fu et al. 2020): feature maps weighed by activation-normalised gradients; magnitude.",
)(functools.partial(_cam, "XGradCAM"))
register(
    "layer-cam", direction="magnitude", family="cam", library="grad-cam",
    description="LayerCAM (Jiang et al. 2021): feature maps times their positive gradients, cell by cell; magnitude.",
)(functools.partial(_cam, "LayerCAM"))
# The same map for every target class; the component's sign is the SVD's choice and the
# package keeps its positive part, so a map can come out nearly empty.
register(
    "eigen-cam", direction="magnitude", family="cam", library="grad-cam",
    description="Eigen-CAM (Muhammad & Yeasin 2020): first principal component of the feature maps; magnitude, blind to the class.",
)(functools.partial(_cam, "EigenCAM"))


@register("score-cam", direction="magnitude", family="cam", library="grad-cam", cost="slow")
def score_cam(model: nn.Module, x: Tensor, target: Tensor, *, batch_size: int = SCORE_CAM_BATCH_SIZE) -> Tensor:
    """Score-CAM (Wang et al. 2020): feature maps weighed by the softmax of S_c on the image masked by each; magnitude."""
    import tqdm
    from pytorch_grad_cam import score_cam as package

    # the package draws a progress bar per image; the library prints nothing
    quiet = SimpleNamespace(tqdm=functools.partial(tqdm.tqdm, disable=True))
    with mock.patch.object(package, "tqdm", quiet):
        return _cam("ScoreCAM", model, x, target, batch_size=batch_size)
