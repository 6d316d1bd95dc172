"""The method object, the shared gradient pass and the registry of methods."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Literal, Optional

import torch
from torch import Tensor, nn

from signed_saliency.registry import Registry

DIRECTIONS = ("increase", "decrease", "magnitude", "signed")
SCORES = ("logit", "margin")
NEEDS = ("gradients", "all-gradients", "model")

Direction = Literal["increase", "decrease", "magnitude", "signed"]
Score = Literal["logit", "margin"]
Needs = Literal["gradients", "all-gradients", "model"]


@dataclass(frozen=True)
class ClassGradients:
    """The gradients of one batch that gradient methods share.

    ``target`` is dS_c/dI for each image's target class c, shape (N,C,H,W).
    ``other_max``/``other_min`` are the elementwise max/min of dS_q/dI over every class
    q != c (None unless some method asked for all classes).
    """

    inputs: Tensor
    logits: Tensor
    target_class: Tensor
    target: Tensor
    other_max: Optional[Tensor] = None
    other_min: Optional[Tensor] = None

    def require_all_classes(self) -> tuple[Tensor, Tensor]:
        if self.other_max is None or self.other_min is None:
            raise ValueError("this method needs the gradients of all classes (needs='all-gradients')")
        return self.other_max, self.other_min


@dataclass(frozen=True)
class Method:
    """A registered explanation method; call it as ``method(model, x, target=None)``."""

    name: str
    fn: Callable = field(repr=False)
    direction: Direction
    score: Score = "logit"
    family: str = "other"
    needs: Needs = "model"
    description: str = ""

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"method {self.name!r}: direction must be one of {DIRECTIONS}, got {self.direction!r}")
        if self.score not in SCORES:
            raise ValueError(f"method {self.name!r}: score must be one of {SCORES}, got {self.score!r}")
        if self.needs not in NEEDS:
            raise ValueError(f"method {self.name!r}: needs must be one of {NEEDS}, got {self.needs!r}")

    def __call__(self, model: nn.Module, x: Tensor, target: Optional[Tensor] = None) -> Tensor:
        return explain(model, x, target, [self])[self.name]


def _build_method(*, name: str, fn: Callable, description: Optional[str] = None, **metadata) -> Method:
    doc = (fn.__doc__ or "").strip().splitlines()
    return Method(name=name, fn=fn, description=description or (doc[0] if doc else ""), **metadata)


registry: Registry[Method] = Registry("method", _build_method)
register = registry.register
get = registry.get
names = registry.names


@contextlib.contextmanager
def evaluation_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every submodule in eval mode for the duration, then restore each one's flag."""
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in flags:
            module.training = training


def _check_batch(x: Tensor, target: Optional[Tensor]) -> None:
    if not isinstance(x, Tensor) or x.dim() != 4 or not x.is_floating_point():
        raise ValueError(f"x must be a float tensor of shape (N,C,H,W), got {getattr(x, 'shape', type(x))}")
    if target is not None and (target.dim() != 1 or target.shape[0] != x.shape[0]):
        raise ValueError(f"target must have shape ({x.shape[0]},), got {tuple(target.shape)}")


def class_gradients(
    model: nn.Module,
    x: Tensor,
    target: Optional[Tensor] = None,
    all_classes: bool = False,
) -> ClassGradients:
    """dS_c/dI for each image's target class (predicted class when ``target`` is None).

    One forward pass. With ``all_classes``, the other classes' gradients come from
    backward calls on the same retained graph and are folded into a running max and min,
    so memory does not grow with the number of classes. Only the input receives
    gradients: the model's parameters' ``.grad`` stay untouched.
    """
    _check_batch(x, target)
    with evaluation_mode(model), torch.enable_grad():
        inputs = x.detach().clone().requires_grad_(True)
        logits = model(inputs)
        if target is None:
            target = logits.argmax(dim=1)
        target = target.to(device=logits.device, dtype=torch.long)
        target_logit = logits.gather(1, target[:, None]).sum()
        (target_grad,) = torch.autograd.grad(target_logit, inputs, retain_graph=all_classes)
        other_max = other_min = None
        if all_classes:
            num_classes = logits.shape[1]
            is_target = target[:, None, None, None]
            for q in range(num_classes):
                (grad_q,) = torch.autograd.grad(logits[:, q].sum(), inputs, retain_graph=q < num_classes - 1)
                own = is_target == q
                high = grad_q.masked_fill(own, float("-inf"))
                low = grad_q.masked_fill(own, float("inf"))
                other_max = high if other_max is None else torch.maximum(other_max, high)
                other_min = low if other_min is None else torch.minimum(other_min, low)
    return ClassGradients(
        inputs=x,
        logits=logits.detach(),
        target_class=target,
        target=target_grad.detach(),
        other_max=other_max,
        other_min=other_min,
    )


def explain(
    model: nn.Module,
    x: Tensor,
    target: Optional[Tensor],
    methods: Iterable[Method | str],
) -> dict[str, Tensor]:
    """Maps of several methods for one batch, sharing one gradient pass among them.

    Returns ``{name: (N,H,W) float32 tensor on x's device}``.
    """
    chosen = [get(m) if isinstance(m, str) else m for m in methods]
    _check_batch(x, target)
    gradient_methods = [m for m in chosen if m.needs != "model"]
    grads: Optional[ClassGradients] = None
    if gradient_methods:
        grads = class_gradients(
            model, x, target, all_classes=any(m.needs == "all-gradients" for m in gradient_methods)
        )
        target = grads.target_class
    elif target is None:
        with evaluation_mode(model), torch.no_grad():
            target = model(x).argmax(dim=1)
    maps: dict[str, Tensor] = {}
    for method in chosen:
        if method.needs == "model":
            with evaluation_mode(model):
                result = method.fn(model, x.detach(), target)
        else:
            result = method.fn(grads)
        maps[method.name] = result.detach().float().to(x.device)
    return maps
