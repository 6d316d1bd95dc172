"""The registry of model architectures. Every model takes images in [0,1] and returns logits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

from torch import nn

from signed_saliency.registry import Registry, describe


@dataclass(frozen=True)
class ModelSpec:
    """A registered architecture: ``build(num_classes, pretrained=False) -> nn.Module``.

    A model takes images in [0, 1] and returns logits; any input normalisation is its own
    first module (see :mod:`signed_saliency.models.external` for why). To benchmark your
    own ``nn.Module``, register a function that builds it, in a plugin module::

        from signed_saliency import models
        from signed_saliency.models.external import with_normalization

        @models.register("my-net")
        def my_net(num_classes: int = 10, pretrained: bool = False) -> nn.Module:
            "My network (one line for --list)."
            return with_normalization(MyNet(num_classes), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))

    and load its trained weights with ``external.load_weights(path, "my-net", num_classes=...)``
    (the runner: ``--models my-net --checkpoint PATH``). ``torchvision:NAME`` and
    ``timm:NAME`` resolve to specs of those libraries' classifiers without registering.
    ``num_classes=None`` leaves the function's default (or the pretrained weights' classes).
    """

    name: str
    fn: Callable[..., nn.Module] = field(repr=False)
    description: str = ""

    def build(self, num_classes: Optional[int] = None, pretrained: bool = False) -> nn.Module:
        chosen = {} if num_classes is None else {"num_classes": num_classes}
        return self.fn(pretrained=pretrained, **chosen)


def _build_model(*, name: str, fn: Callable, description: Optional[str] = None) -> ModelSpec:
    return ModelSpec(name=name, fn=fn, description=describe(fn, description))


registry: Registry[ModelSpec] = Registry("model", _build_model)
register = registry.register
get = registry.get
names = registry.names
