"""ResNet18 as the paper's public code builds it: torchvision's resnet18 (1000 outputs)
followed by a Linear(1000 -> num_classes) head."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn
from torchvision.models import ResNet18_Weights, resnet18 as torchvision_resnet18

from signed_saliency.errors import UserError
from signed_saliency.models.core import register

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Normalize(nn.Module):
    """(x - mean) / std per channel. Every ResNet18 carries one (identity unless pretrained)
    in its state dict, so a checkpoint brings the input scaling it was trained with and the
    same architecture loads both kinds of weights."""

    def __init__(self, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


class ResNet18Classifier(nn.Module):
    def __init__(self, num_classes: int):
        super().__init__()
        self.normalize = Normalize()
        self.backbone = torchvision_resnet18(weights=None)
        self.head = nn.Linear(1000, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.backbone(self.normalize(x)))


def cached_imagenet_weights() -> Path:
    """torchvision's ImageNet ResNet18 file in the local hub cache; it cannot be downloaded here."""
    path = Path(torch.hub.get_dir()) / "checkpoints" / Path(ResNet18_Weights.IMAGENET1K_V1.url).name
    if not path.is_file():
        raise UserError(
            f"pretrained ResNet18 weights not found at {path}: this suite never downloads them; "
            f"copy {ResNet18_Weights.IMAGENET1K_V1.url} there (or set $TORCH_HOME) to use pretrained=True"
        )
    return path


@register("resnet18")
def resnet18(num_classes: int = 10, pretrained: bool = False) -> nn.Module:
    """torchvision ResNet18 + Linear(1000, num_classes); ImageNet weights and normalisation if pretrained."""
    model = ResNet18Classifier(num_classes)
    if pretrained:
        model.backbone.load_state_dict(torch.load(cached_imagenet_weights(), map_location="cpu", weights_only=True))
        model.normalize = Normalize(IMAGENET_MEAN, IMAGENET_STD)
    return model
