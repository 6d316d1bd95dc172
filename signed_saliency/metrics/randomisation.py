"""Sanity checks (Adebayo et al., 2018): does a map change when what it should explain does?

``randomisation`` re-initialises the model's layers, from the output down, and compares
the maps of the damaged model with the original ones; ``random-logit`` compares the map of
the target class with the map of another class. A map that stays the same (an edge
detector, say) explains the image, not the model: for both, lower similarity is better.

Layers are the modules that own parameters directly (Conv, Linear, BatchNorm...), taken in
``model.modules()`` order reversed so that index 0 is the output layer. Layer ``k`` is
always re-initialised from the same seed, ``layer_seed(seed, k)``, drawn from a local
generator, so the cascading and the independent runs give a layer the same new weights,
the layers get different draws (Quantus 0.6 re-seeds the global RNG with one value before
every layer), and the caller's global RNG is left as it was. Re-initialisation is the
layer's default PyTorch initialisation (what ``reset_parameters`` does); a parameter with
no such method is rebuilt as its architecture builds it (see ``CONSTANT_PARAMETERS``).
"""

from __future__ import annotations

import copy
import math
from typing import Iterator, Mapping, Optional, Sequence

import torch
from torch import Tensor, nn

from signed_saliency.checks import nonfinite_images
from signed_saliency.lazy import lazy_import
from signed_saliency.methods.core import Method, explain
from signed_saliency.metrics.core import JointCall, MetricOutput, register
from signed_saliency.metrics.setting_checks import at_least, each, one_of, optional
from signed_saliency.metrics.similarity import MEASURES, Reference
from signed_saliency.runtime import generator, output_count

MODES = ("cascading", "independent")

CNBlock = lazy_import("torchvision.models.convnext", "CNBlock")

# Parameters that a module owns itself but has no reset_parameters() for, and the value its
# architecture fills them with. torchvision's ConvNeXt block scales its residual branch by
# ``layer_scale``, which ConvNeXt builds as a constant (its ``layer_scale`` argument, 1e-6
# in every torchvision ConvNeXt) and never draws at random: re-initialising it is filling
# it with that constant again, which makes the block start near the identity as a freshly
# built ConvNeXt does (a test reads the value from ConvNeXt's signature: written out here,
# it costs no torchvision import). Any other such parameter is an error rather than a guess.
CONSTANT_PARAMETERS: dict[tuple[type, str], float] = {(CNBlock, "layer_scale"): 1e-6}


# reset_parameters() of the normalisation layers: they fill constants (ones, zeros, running
# statistics) and draw nothing, so they need no seeded RNG (a subclass's own reset might)
CONSTANT_RESETS = {nn.modules.batchnorm._NormBase.reset_parameters, nn.LayerNorm.reset_parameters,
                   nn.GroupNorm.reset_parameters}


def parameterised_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) of every module owning parameters itself, from the output down."""
    layers = [(name, m) for name, m in model.named_modules() if next(m.parameters(recurse=False), None) is not None]
    return layers[::-1]


def layer_seed(seed: int, index: int) -> int:
    """The seed layer ``index`` (0 = output layer) is re-initialised from."""
    return seed + index


def reinitialise_(module: nn.Module, seed: int) -> None:
    """Give ``module`` fresh default-initialised parameters drawn from ``seed``, in place.

    Conv and Linear layers are drawn exactly as their ``reset_parameters`` draws them, but
    from a CPU generator (so the weights do not depend on the device either); a normalisation
    layer runs its own reset, which draws nothing (seeding the global RNG for it cost 3 ms a
    layer, half of ResNet18's re-initialisation). Any other layer runs its own
    ``reset_parameters`` under a forked, seeded global RNG, the only way to seed code that
    reads the global RNG. A module without one whose parameters are all in
    :data:`CONSTANT_PARAMETERS` gets those constants.
    """
    with torch.no_grad():
        if isinstance(module, (nn.modules.conv._ConvNd, nn.Linear)):
            draws = generator(seed)
            weight = torch.empty(module.weight.shape)
            nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=draws)
            module.weight.copy_(weight)
            if module.bias is not None:
                fan_in, _ = nn.init._calculate_fan_in_and_fan_out(module.weight)
                bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
                module.bias.copy_(torch.empty(module.bias.shape).uniform_(-bound, bound, generator=draws))
        elif getattr(type(module), "reset_parameters", None) in CONSTANT_RESETS:
            module.reset_parameters()
        elif hasattr(module, "reset_parameters"):
            device = next(module.parameters(recurse=False)).device
            devices = [device.index or 0] if device.type != "cpu" else []
            kwargs = {"device_type": device.type} if device.type != "cpu" else {}
            with torch.random.fork_rng(devices=devices, **kwargs):
                torch.manual_seed(seed)
                module.reset_parameters()
        else:
            parameters = dict(module.named_parameters(recurse=False))
            fills = {name: _constant_fill(module, name) for name in parameters}
            unknown = [name for name, fill in fills.items() if fill is None]
            if unknown:
                raise ValueError(
                    f"cannot re-initialise {type(module).__name__}: it has no reset_parameters() and no known "
                    f"initial value for {', '.join(unknown)}"
                )
            for name, parameter in parameters.items():
                parameter.fill_(fills[name])


def _constant_fill(module: nn.Module, name: str) -> Optional[float]:
    for (kind, parameter_name), value in CONSTANT_PARAMETERS.items():
        if isinstance(module, kind) and name == parameter_name:
            return value
    return None


def measured_layers(count: int, max_layers: Optional[int], layer_stride: int) -> list[int]:
    """Which layer indices (0 = output layer) a run measures after: every ``layer_stride``-th
    of the top ``max_layers``, and always the deepest of them."""
    if layer_stride < 1:
        raise ValueError(f"layer_stride must be at least 1, got {layer_stride}")
    if max_layers is not None and max_layers < 1:
        # no randomised layer would leave only the unchanged model, whose similarity is ~1
        raise ValueError(f"max_layers must be at least 1 (or None for every layer), got {max_layers}")
    depth = count if max_layers is None else min(count, max_layers)
    chosen = list(range(0, depth, layer_stride))
    if depth and chosen[-1] != depth - 1:
        chosen.append(depth - 1)
    return chosen


def randomised_models(
    model: nn.Module, mode: str, seed: int, indices: Sequence[int]
) -> Iterator[tuple[int, nn.Module]]:
    """Yield (layer index, model) for each measured index, on one deep copy of ``model``.

    ``cascading``: every layer from the output down to that index is re-initialised;
    ``independent``: only that layer, the others keep their trained values. The copy is
    changed in place between yields; ``model`` itself is never touched.
    """
    damaged = copy.deepcopy(model)
    layers = parameterised_layers(damaged)
    if mode == "cascading":
        done = 0
        for index in indices:
            while done <= index:
                reinitialise_(layers[done][1], layer_seed(seed, done))
                done += 1
            yield index, damaged
    elif mode == "independent":
        for index in indices:
            module = layers[index][1]
            saved = copy.deepcopy(module.state_dict())
            reinitialise_(module, layer_seed(seed, index))
            yield index, damaged
            module.load_state_dict(saved)
    else:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")


def _compare(
    methods: Sequence[Method],
    model: nn.Module,
    x: Tensor,
    target: Tensor,
    references: Mapping[str, Reference],
    chunk_size: int,
) -> dict[str, tuple[dict[str, Tensor], Tensor]]:
    """``{method: ({measure: similarity}, failed)}`` of each method's maps on ``model`` with
    its reference maps, chunk by chunk; the methods share their gradient passes. ``failed``
    (N,) marks the images whose recomputed map is not finite: their similarities are NaN."""
    parts: dict[str, dict[str, list[Tensor]]] = {
        m.name: {measure: [] for measure in references[m.name].measures} for m in methods
    }
    failures: dict[str, list[Tensor]] = {m.name: [] for m in methods}
    for start in range(0, len(x), chunk_size):
        chunk = slice(start, start + chunk_size)
        recomputed = explain(model, x[chunk], target[chunk], methods)
        for method in methods:
            failed = nonfinite_images(recomputed[method.name])
            failures[method.name].append(failed)
            for measure, value in references[method.name].compare(recomputed[method.name], chunk).items():
                parts[method.name][measure].append(value.masked_fill(failed, float("nan")))
    return {name: ({m: torch.cat(p) for m, p in by_measure.items()}, torch.cat(failures[name]))
            for name, by_measure in parts.items()}


def _undefined(values: Tensor, failed: Tensor) -> Tensor:
    # a similarity of finite maps is NaN only where a map is constant (see similarity.py),
    # which leaves it undefined by design
    return values.isnan() & ~failed


def _references(maps: Mapping[str, Tensor], methods: Sequence[Method], x: Tensor, measures, hog_cell: int):
    return {m.name: Reference(maps[m.name].to(x.device), measures, hog_cell=hog_cell) for m in methods}


@register(
    "randomisation", cost_ms=239, family="sanity", higher_is_better=False, curve_x="layers randomised, from the output", jointly=True,
    reports_progress=True,
    checks={"modes": each(one_of(MODES)), "measures": each(one_of(MEASURES)), "max_layers": optional(at_least(1)),
            "layer_stride": at_least(1), "chunk_size": at_least(1), "hog_cell": at_least(1)},
)
def randomisation(
    call: JointCall,
    *,
    modes: Sequence[str] = MODES,
    measures: Sequence[str] = MEASURES,
    max_layers: Optional[int] = None,
    layer_stride: int = 1,
    chunk_size: int = 32,
    hog_cell: int = 8,
) -> dict[str, MetricOutput]:
    """Model-parameter randomisation: similarity of the maps as layers are re-initialised.

    Curves ``<mode>/<measure>`` (e.g. ``cascading/spearman``) run over ``x``: 0 is the
    unmodified model (its map recomputed, 1 for a deterministic method and the method's
    own noise floor otherwise), and ``x = k >= 1`` is the k-th parameterised layer
    counted from the output (1 = the output layer): in ``cascading`` mode layers 1..k are
    re-initialised, in ``independent`` mode only layer k. ``max_layers`` stops after the top
    ``max_layers`` layers and ``layer_stride`` measures every so many of them (the deepest
    is always measured), which bounds the cost on deep models; cascading still
    re-initialises every layer on the way. Values under the same variant names are each
    image's mean similarity over the measured randomised layers (x >= 1; the unmodified
    model is not averaged in), leaving out layers where the similarity is undefined.
    Images are processed ``chunk_size`` at a time and one copy of the model is held.
    Every method is recomputed on each randomised model in one :func:`explain` call, so
    methods that share a gradient pass (a map and its sign-split parts, the paper's five
    maps) pay for it once. It reports each model whose maps are compared.
    """
    model, methods = call.model, call.methods
    indices = measured_layers(len(parameterised_layers(model)), max_layers, layer_stride)
    if not indices:
        raise ValueError(f"{type(model).__name__} has no layer with parameters of its own to re-initialise")
    x, target = call.x.to(call.device), call.target.to(call.device)
    references = _references(call.maps, methods, x, measures, hog_cell)
    steps = 1 + len(modes) * len(indices)
    call.report(0, steps)
    unchanged = _compare(methods, model, x, target, references, chunk_size)
    call.report(1, steps)
    grid = torch.tensor([0] + [i + 1 for i in indices], dtype=torch.float32)

    curves: dict[str, dict[str, Tensor]] = {method.name: {} for method in methods}
    failed: dict[str, dict[str, Tensor]] = {method.name: {} for method in methods}  # method -> variant -> (N,)
    for mode_number, mode in enumerate(modes):
        per_layer = {name: {m: [value] for m, value in by_measure.items()} for name, (by_measure, _) in unchanged.items()}
        failed_in_mode = {method.name: torch.zeros(len(x), dtype=torch.bool, device=x.device) for method in methods}
        for step, (_, damaged) in enumerate(randomised_models(model, mode, call.seed, indices), start=1):
            for name, (by_measure, failures) in _compare(methods, damaged, x, target, references, chunk_size).items():
                failed_in_mode[name] |= failures
                for measure, value in by_measure.items():
                    per_layer[name][measure].append(value)
            call.report(1 + mode_number * len(indices) + step, steps)
        for name, by_measure in per_layer.items():
            curves[name].update({f"{mode}/{measure}": torch.stack(values, dim=1) for measure, values in by_measure.items()})
            failed[name].update({f"{mode}/{measure}": failed_in_mode[name] for measure in by_measure})
    return {name: _layer_means(by_variant, failed[name], grid) for name, by_variant in curves.items()}


def _layer_means(curves: Mapping[str, Tensor], failed: Mapping[str, Tensor], grid: Tensor) -> MetricOutput:
    """Each image's mean similarity over the randomised layers (x >= 1), leaving out the
    layers where it is undefined; undefined where it is at every layer, and NaN where one of
    the variant's randomised models gave the image a map that is not finite."""
    values, undefined = {}, {}
    for variant, curve in curves.items():
        randomised = curve[:, 1:]
        values[variant] = randomised.nanmean(dim=1).masked_fill(failed[variant], float("nan"))
        undefined[variant] = _undefined(randomised, failed[variant].view(-1, 1)).all(dim=1)
    return MetricOutput.of(values, curves, xs=grid, undefined=undefined)


@register("random-logit", cost_ms=17, family="sanity", higher_is_better=False, jointly=True,
          checks={"measures": each(one_of(MEASURES)), "chunk_size": at_least(1), "hog_cell": at_least(1)})
def random_logit(
    call: JointCall,
    *,
    measures: Sequence[str] = MEASURES,
    chunk_size: int = 32,
    hog_cell: int = 8,
) -> dict[str, MetricOutput]:
    """Similarity of the target class's map with the map of a random other class.

    The other class is drawn per image, uniformly among the classes other than the target,
    from a generator seeded with ``seed``. One value per measure (variants ``spearman``,
    ``spearman-abs``, ``ssim``, ``hog``).
    """
    model, methods = call.model, call.methods
    x, target = call.x.to(call.device), call.target.to(call.device)
    num_classes = output_count(model, x)
    if num_classes < 2:
        return {method.name: MetricOutput() for method in methods}
    # drawn by a CPU generator, so the classes do not depend on the device
    draw = torch.randint(num_classes - 1, (len(x),), generator=call.generator()).to(x.device)
    other = draw + (draw >= target).long()
    references = _references(call.maps, methods, x, measures, hog_cell)
    compared = _compare(methods, model, x, other, references, chunk_size)
    return {name: MetricOutput.of(values, undefined={m: _undefined(v, failed) for m, v in values.items()})
            for name, (values, failed) in compared.items()}
