"""The paper's small CNN, layer for layer as its public code builds it (no normalisation)."""

from __future__ import annotations

from torch import nn

from signed_saliency.errors import UserError
from signed_saliency.models.core import register


def _block(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [
        nn.Conv2d(in_channels, out_channels, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(out_channels, out_channels, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(out_channels, out_channels, 3, padding=1),
        nn.ReLU(),
    ]


@register("cnn")
def cnn(num_classes: int = 10, pretrained: bool = False) -> nn.Module:
    """Small CNN: 7x7/2 stem, max-pool, three 3-conv blocks (32, 64, 128), global average pool."""
    if pretrained:
        raise UserError("the cnn has no pretrained weights: train it with `python -m benchmarks.train --model cnn`")
    return nn.Sequential(
        nn.Conv2d(3, 32, 7, stride=2, padding=3),
        nn.ReLU(),
        nn.MaxPool2d(3, stride=2, padding=1),
        *_block(32, 32),
        *_block(32, 64),
        *_block(64, 128),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(128, num_classes),
    )
