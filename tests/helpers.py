"""What several test files share: stand-in methods and a model that records its inputs."""

from __future__ import annotations

import torch
from torch import nn

from signed_saliency.methods.core import Method


def given_method(direction: str, score: str = "logit") -> Method:
    """A method that claims ``direction`` and ``score``, for metrics given ready-made maps."""
    return Method(name=f"test-{direction}", fn=lambda *args: None, direction=direction, score=score, needs="model")


class Recorder(nn.Module):
    """A 'classifier' that keeps every image it is shown, in order (``seen``); its logits are
    the first ``classes`` pixels of channel 0, so perturbations do change its argmax."""

    def __init__(self, classes: int = 5):
        super().__init__()
        self.classes = classes
        self.seen: list[torch.Tensor] = []
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.clone())
        return x[:, 0].flatten(1)[:, : self.classes] * self.scale

    def images(self, n: int) -> torch.Tensor:
        """Everything seen, as (calls of n images, n, C, H, W)."""
        seen = torch.cat(self.seen)
        return seen.view(-1, n, *seen.shape[1:])
