"""The registry of model architectures. Every model takes images in [0,1] and returns logits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

from torch import nn

from signed_saliency.registry import Registry, describe


@dataclass(frozen=True)
class ModelSpec:
    """A registered architecture: ``build(num_classes, pretrained=False) -> nn.Module``."""

    name: str
    fn: Callable[..., nn.Module] = field(repr=False)
    description: str = ""

    def build(self, num_classes: int = 10, pretrained: bool = False) -> nn.Module:
        return self.fn(num_classes=num_classes, pretrained=pretrained)


def _build_model(*, name: str, fn: Callable, description: Optional[str] = None) -> ModelSpec:
    return ModelSpec(name=name, fn=fn, description=describe(fn, description))


registry: Registry[ModelSpec] = Registry("model", _build_model)
register = registry.register
get = registry.get
names = registry.names
