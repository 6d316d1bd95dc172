"""torchvision's ImageNet architectures as the paper's public code builds them: the
1000-way network followed by a Linear(1000 -> num_classes) head.

Every such model carries its input normalisation as a module (identity unless pretrained),
so it takes [0,1] images, its checkpoint brings the scaling it was trained with, and one
architecture loads both kinds of weights. Pretrained weights are read from torch's hub
cache and never downloaded: these machines have no internet, and a benchmark that fetches
weights silently is not reproducible.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable

import torch
from torch import Tensor, nn

from signed_saliency.errors import UserError
from signed_saliency.lazy import lazy_import
from signed_saliency.models.core import register

if TYPE_CHECKING:
    from torchvision.models._api import WeightsEnum

convnext_tiny = lazy_import("torchvision.models", "convnext_tiny")
torchvision_resnet18 = lazy_import("torchvision.models", "resnet18")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Normalize(nn.Module):
    """(x - mean) / std per channel, kept in the state dict."""

    def __init__(self, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


class BackboneClassifier(nn.Module):
    """normalize -> backbone (1000 ImageNet logits) -> head. Fine-tuning a pretrained model
    trains ``head`` alone, as the paper's code does."""

    def __init__(self, backbone: nn.Module, num_classes: int):
        super().__init__()
        self.normalize = Normalize()
        self.backbone = backbone
        self.head = nn.Linear(1000, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.backbone(self.normalize(x)))


def cached_weights_path(weights: WeightsEnum) -> Path:
    """Where torchvision's hub cache keeps ``weights`` (``$TORCH_HOME``/hub/checkpoints)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name


def _build(architecture: Callable[..., nn.Module], weights: WeightsEnum, label: str, num_classes: int,
           pretrained: bool) -> BackboneClassifier:
    model = BackboneClassifier(architecture(weights=None), num_classes)
    if pretrained:
        path = cached_weights_path(weights)
        if not path.is_file():
            raise UserError(
                f"pretrained {label} weights not found at {path}: this suite never downloads them; "
                f"copy {weights.url} there (or set $TORCH_HOME) to use pretrained weights"
            )
        model.backbone.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        model.normalize = Normalize(IMAGENET_MEAN, IMAGENET_STD)
    return model


# The ImageNet weights the paper's code asks for (torchvision's DEFAULT for each).
PRETRAINED_WEIGHTS = {
    "resnet18": lazy_import("torchvision.models", "ResNet18_Weights.IMAGENET1K_V1"),
    "convnext-tiny": lazy_import("torchvision.models", "ConvNeXt_Tiny_Weights.IMAGENET1K_V1"),
}


@register("resnet18")
def resnet18(num_classes: int = 10, pretrained: bool = False) -> nn.Module:
    """torchvision ResNet18 + Linear(1000, num_classes); ImageNet weights and normalisation if pretrained."""
    return _build(torchvision_resnet18, PRETRAINED_WEIGHTS["resnet18"], "ResNet18", num_classes, pretrained)


@register("convnext-tiny")
def convnext_tiny_classifier(num_classes: int = 10, pretrained: bool = False) -> nn.Module:
    """torchvision ConvNeXt-tiny + Linear(1000, num_classes); ImageNet weights and normalisation if pretrained."""
    return _build(convnext_tiny, PRETRAINED_WEIGHTS["convnext-tiny"], "ConvNeXt-tiny", num_classes, pretrained)
