"""The method object, the shared gradient pass and the registry of methods."""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import inspect
from dataclasses import dataclass, field, replace
from typing import Callable, Iterable, Literal, Optional, get_args

import torch
from torch import Tensor, nn

from signed_saliency.checks import check_maps, user_code
from signed_saliency.errors import UserError
from signed_saliency.registry import Registry, check_choice, describe
from signed_saliency.runtime import evaluation_mode

Direction = Literal["increase", "decrease", "magnitude", "signed"]
Score = Literal["logit", "margin"]
Needs = Literal["gradients", "all-gradients", "model"]
# how reports group methods: the paper's maps, this project's extensions of them, published
# baselines (and, from the field's libraries, by the kind of algorithm), their sign splits,
# controls, and a plugin's own
Family = Literal[
    "paper", "extension", "baseline", "gradient", "propagation", "perturbation", "surrogate", "cam",
    "sign-split", "control", "user", "other",
]
# "slow" methods (sampling or one model fit per image) stay out of the quick default's "*"
Cost = Literal["quick", "slow"]

DIRECTIONS: tuple[str, ...] = get_args(Direction)
SCORES: tuple[str, ...] = get_args(Score)
NEEDS: tuple[str, ...] = get_args(Needs)
FAMILIES: tuple[str, ...] = get_args(Family)
COSTS: tuple[str, ...] = get_args(Cost)

# The module each method library installs, by its name on PyPI (what ``pip install`` takes
# and what a method's ``library`` names); a library missing here imports as its own name.
LIBRARY_MODULES = {"grad-cam": "pytorch_grad_cam"}


@dataclass(frozen=True)
class ClassGradients:
    """The gradients of one batch that gradient methods share.

    ``target_class`` is each image's target class c, (N,) long (the predicted class when no
    target was given); ``target`` is dS_c/dI, shape (N,C,H,W).
    ``other_max``/``other_min`` are the elementwise max/min of dS_q/dI over every class
    q != c (None unless some method asked for all classes).
    """

    target_class: Tensor
    target: Tensor
    other_max: Optional[Tensor] = None
    other_min: Optional[Tensor] = None

    def require_all_classes(self) -> tuple[Tensor, Tensor]:
        if self.other_max is None or self.other_min is None:
            raise ValueError("this method needs the gradients of all classes (needs='all-gradients')")
        return self.other_max, self.other_min


def largest_magnitude(values: Tensor, dim: int = 1) -> Tensor:
    """Reduce ``dim`` (channels) to the value of largest magnitude, keeping its sign: how
    every signed map here, paper or baseline, goes from (N,C,H,W) to (N,H,W)."""
    index = values.abs().argmax(dim=dim, keepdim=True)
    return values.gather(dim, index).squeeze(dim)


def max_magnitude(values: Tensor, dim: int = 1) -> Tensor:
    """Reduce ``dim`` (channels) to the max of absolute values: the reduction of every
    magnitude map here (Simonyan et al.'s saliency and the magnitude baselines)."""
    return values.abs().amax(dim=dim)


@dataclass(frozen=True)
class Method:
    """A registered explanation method; call it as ``method(model, x, target=None)``.

    ``fn`` receives what ``needs`` names (see the package docstring), except for a method
    derived from a ``parent`` (a sign-split variant): its ``fn`` maps the parent's (N,H,W)
    map to its own, so computing both through :func:`explain` runs the parent once.
    ``split_signs`` (signed methods only) asks the registry for the two sign-split
    variants ``<name>-positive`` and ``<name>-negative``.
    ``library`` is the PyPI name of the package that computes the map (None: this
    project), imported by ``fn`` only when called; ``cost="slow"`` keeps a method out of
    :func:`quick_names`, the quick default.
    """

    name: str
    fn: Callable = field(repr=False)
    direction: Direction
    score: Score = "logit"
    family: Family = "other"
    needs: Needs = "model"
    description: str = ""
    split_signs: bool = False
    parent: Optional[Method] = field(default=None, repr=False)
    library: Optional[str] = None
    cost: Cost = "quick"
    # raised by a fix that changes the method's maps: the runner's shard keys include it,
    # so rows computed from the old maps are recomputed rather than reused
    revision: int = 1

    def __post_init__(self) -> None:
        for key, valid in (("direction", DIRECTIONS), ("score", SCORES), ("needs", NEEDS), ("family", FAMILIES),
                           ("cost", COSTS)):
            check_choice(f"method {self.name!r}", key, getattr(self, key), valid)
        if self.split_signs and self.direction != "signed":
            raise UserError(f"method {self.name!r}: only a signed map can be split into signs, not {self.direction!r}")
        if self.parent is not None and self.parent.needs != self.needs:
            raise UserError(f"method {self.name!r}: a derived method needs what its parent needs")

    def require_library(self) -> None:
        """A one-line error naming the package to install when ``library`` is missing,
        found without importing it (importing captum or zennit takes seconds)."""
        if self.library is not None and importlib.util.find_spec(_library_module(self.library)) is None:
            raise UserError(f"method {self.name!r} needs the {self.library} package: pip install {self.library}")

    def __call__(self, model: nn.Module, x: Tensor, target: Optional[Tensor] = None) -> Tensor:
        return explain(model, x, target, [self])[self.name]

    def configure(self, **options) -> Method:
        """The same method (name and claims) with keyword options bound, e.g.
        ``methods.get("integrated-gradients").configure(n_steps=64)``; a sign-split
        variant passes them to its parent."""
        if self.parent is not None:
            return replace(self, parent=self.parent.configure(**options))
        inspect.signature(self.fn).bind_partial(**options)
        return replace(self, fn=functools.partial(self.fn, **options))


def _positive_part(signed_map: Tensor) -> Tensor:
    return signed_map.clamp(min=0)


def _negative_part(signed_map: Tensor) -> Tensor:
    return (-signed_map).clamp(min=0)


def sign_split(parent: Method) -> tuple[Method, Method]:
    """The rule behind every ``sign-split`` method: ReLU of a signed map claims
    ``increase``, ReLU of its negation claims ``decrease``, on the parent's score."""
    variants = (
        ("positive", "increase", _positive_part, "ReLU of"),
        ("negative", "decrease", _negative_part, "ReLU of minus"),
    )
    return tuple(
        Method(
            name=f"{parent.name}-{suffix}",
            fn=part,
            direction=direction,
            score=parent.score,
            family="sign-split",
            needs=parent.needs,
            description=f"{relu} the {parent.name} map: {parent.description}",
            parent=parent,
            revision=parent.revision,
            library=parent.library,
            cost=parent.cost,
        )
        for suffix, direction, part, relu in variants
    )


def _build_method(
    *, name: str, fn: Callable, description: Optional[str] = None, split_signs: Optional[bool] = None, **metadata
) -> Method:
    if split_signs is None:
        split_signs = metadata.get("direction") == "signed"
    return Method(name=name, fn=fn, description=describe(fn, description), split_signs=split_signs, **metadata)


class MethodRegistry(Registry[Method]):
    """The registry of methods. Adding a method whose ``split_signs`` is set (what the
    decorator sets for a ``signed`` one unless told otherwise) adds its sign-split
    variants right after it, so the rule holds for a user's method in any module,
    whatever the import order."""

    def add(self, name: str, entry: Method) -> Method:
        variants = sign_split(entry) if entry.split_signs else ()
        for taken in [v.name for v in variants if v.name in self]:
            raise UserError(f"method {taken!r} is registered twice")
        super().add(name, entry)
        for variant in variants:
            super().add(variant.name, variant)
        return entry

    def unregister(self, name: str) -> None:
        """Remove a method and the variants derived from it (for tests and notebooks)."""
        entry = self.get(name)
        for derived in [m for m in self if m.parent is entry]:
            del self._entries[derived.name]
        del self._entries[name]


registry = MethodRegistry("method", _build_method)
register = registry.register
get = registry.get
names = registry.names


def quick_names() -> list[str]:
    """Every registered method but those declared ``cost="slow"``: the quick default."""
    return [method.name for method in registry if method.cost != "slow"]


def _library_module(library: str) -> str:
    return LIBRARY_MODULES.get(library, library.replace("-", "_"))


def library_versions(chosen: Optional[Iterable[Method | str]] = None) -> dict[str, Optional[str]]:
    """``{PyPI name: installed version, or None}`` of the libraries that compute the
    ``chosen`` methods (every registered one by default), for a run's manifest; read from
    the installed packages' metadata, so nothing is imported."""
    chosen = registry if chosen is None else [get(m) if isinstance(m, str) else m for m in chosen]
    versions: dict[str, Optional[str]] = {}
    for library in sorted({m.library for m in chosen if m.library is not None}):
        try:
            versions[library] = importlib.metadata.version(library)
        except importlib.metadata.PackageNotFoundError:
            versions[library] = None
    return versions


class UnsupportedModelError(UserError):
    """A method that cannot explain this architecture (e.g. captum's LRP and a ResNet's
    skip connections); a runner may skip the (method, model) pair and say why."""


def predict(model: nn.Module, x: Tensor) -> Tensor:
    """Argmax class of each image, in eval mode, without building a graph (no_grad, not
    inference_mode: the classes index tensors that later take part in autograd)."""
    with evaluation_mode(model), torch.no_grad():
        return model(x).argmax(dim=1)


def _check_batch(x: Tensor, target: Optional[Tensor]) -> None:
    if not isinstance(x, Tensor) or x.dim() != 4 or not x.is_floating_point():
        raise ValueError(f"x must be a float tensor of shape (N,C,H,W), got {getattr(x, 'shape', type(x))}")
    if target is not None and (target.dim() != 1 or target.shape[0] != x.shape[0]):
        raise ValueError(f"target must have shape ({x.shape[0]},), got {tuple(target.shape)}")


def _fresh_input(x: Tensor) -> Tensor:
    """A leaf copy of ``x`` that autograd may use, even when ``x`` was made under
    ``torch.inference_mode`` or belongs to someone else's graph."""
    with torch.inference_mode(False):
        return x.detach().clone()


def class_gradients(
    model: nn.Module,
    x: Tensor,
    target: Optional[Tensor] = None,
    all_classes: bool = False,
) -> ClassGradients:
    """dS_c/dI for each image's target class (predicted class when ``target`` is None).

    One forward pass, in eval mode. With ``all_classes``, one backward per class on the
    retained graph, each folded into a running max and min (and the target's own slot),
    so memory does not grow with the number of classes; on the CIFAR-10 ResNet18 this
    loop was as fast as batched alternatives (``is_grads_batched``, ``torch.func.vmap``;
    see ``python -m benchmarks.speed methods``) and needs no batching rule per operator.
    Images must not interact in eval mode, since each class's logits are summed over the
    batch. Only the input receives gradients: the parameters' ``.grad`` stay untouched.
    """
    _check_batch(x, target)
    with evaluation_mode(model), torch.inference_mode(False), torch.enable_grad():
        inputs = _fresh_input(x).requires_grad_(True)
        logits = model(inputs)
        if target is None:
            target = logits.argmax(dim=1)
        target = target.to(device=logits.device, dtype=torch.long)
        other_max = other_min = None
        if not all_classes:
            (target_grad,) = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), inputs)
        else:
            num_classes = logits.shape[1]
            is_target = target[:, None, None, None]
            target_grad = torch.zeros_like(inputs)
            for q in range(num_classes):
                (grad_q,) = torch.autograd.grad(logits[:, q].sum(), inputs, retain_graph=q < num_classes - 1)
                own = is_target == q
                target_grad = torch.where(own, grad_q, target_grad)
                high = grad_q.masked_fill(own, float("-inf"))
                low = grad_q.masked_fill(own, float("inf"))
                other_max = high if other_max is None else torch.maximum(other_max, high)
                other_min = low if other_min is None else torch.minimum(other_min, low)
    return ClassGradients(
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

    Returns ``{name: (N,H,W) float32 tensor on x's device}``. A sign-split variant and
    its parent asked for together cost the parent's computation once. A map of the wrong
    shape, or an exception in a user's method, is a one-line :class:`MethodError`; maps
    holding NaN are returned as they are (scoring blanks them, see :mod:`signed_saliency.checks`).
    """
    chosen = [get(m) if isinstance(m, str) else m for m in methods]
    _check_batch(x, target)
    for method in chosen:
        method.require_library()
    needs = {m.needs for m in chosen}
    grads: Optional[ClassGradients] = None
    if needs & {"gradients", "all-gradients"}:
        grads = class_gradients(model, x, target, all_classes="all-gradients" in needs)
        target = grads.target_class
    elif target is None:
        target = predict(model, x)
    target = target.to(device=x.device, dtype=torch.long)

    computed: dict[Method, Tensor] = {}

    def compute(method: Method) -> Tensor:
        if method not in computed:
            with user_code("method", method.name, method.fn):
                if method.parent is not None:
                    maps = method.fn(compute(method.parent))
                elif method.needs == "model":
                    with evaluation_mode(model), torch.inference_mode(False), torch.enable_grad():
                        maps = method.fn(model, _fresh_input(x), target)
                else:
                    maps = method.fn(grads)
            check_maps(maps, x, method.name)
            computed[method] = maps
        return computed[method]

    return {method.name: compute(method).detach().float().to(x.device) for method in chosen}
