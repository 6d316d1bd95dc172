"""What a metric is here: a registered function from one batch's maps to per-image numbers.

Every metric function takes one :class:`MetricCall` and its settings::

    @register("my-metric", family="perturbation", checks={"steps": at_least(1)})
    def my_metric(call: MetricCall, *, steps: int = 16) -> MetricOutput: ...

and callers call the :class:`Metric` (which builds the call)::

    output = metric(model, x, target, maps, method, seed=0, ground_truth=None, **settings)

- ``call.x``: (N,C,H,W) float in [0,1]; ``call.target``: (N,) long, the class the maps
  explain; ``call.maps``: (N,H,W) float, the method's maps for that target (raw units: a
  metric that wants them normalised says so and does it itself); ``call.method``: the
  :class:`Method` object, whose ``direction`` and ``score`` the metric reads (never its name).
- ``call.seed``: every random choice a metric makes draws from ``call.generator()``.
- ``call.ground_truth``: a :class:`GroundTruth` for datasets that have one, else None;
  metrics registered with ``needs_ground_truth=True`` only run where it exists.
- settings: the function's keyword-only parameters (their defaults are the metric's
  defaults; configs may override them by name, and an unknown name is an error).

It returns a :class:`MetricOutput` (build it with :meth:`MetricOutput.of`): per-image
``values`` and optional per-image ``curves``, each keyed by a variant string (e.g.
``"black/probability"``; ``""`` when the metric has one variant). A metric that does not
apply to a method (say, one for signed maps given a magnitude map) returns an empty output.
A value the metric's definition leaves undefined on an image (a constant map has no rank
correlation, a wrong-polarity claim is not scored on the right-polarity images) is marked in
``undefined``: its value is NaN, and reports count it apart from a failure (any other NaN).

A metric whose cost is recomputing maps (the sanity checks run the methods again on
changed models) registers with ``jointly=True`` and takes a :class:`JointCall` of every
method at once (``call.methods``, ``call.maps[name]``), so the methods share their
gradient passes as :func:`signed_saliency.methods.explain` shares them, returning
``{method name: MetricOutput}``. Called on one method, such a metric behaves as any other;
:meth:`Metric.score_methods` scores several with one call or a loop, as fits.

A metric whose one call can run for many minutes (the randomisation check at 224 px, say)
registers with ``reports_progress=True`` and calls ``call.report(done, total)`` as it goes,
from (0, total) on, so that a caller's :data:`Progress` callback can show how far it is.
The library never prints.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping, Optional, Sequence, get_args

import torch
from torch import Tensor, nn

from signed_saliency.checks import user_code
from signed_saliency.datasets.core import GroundTruth
from signed_saliency.errors import UserError
from signed_saliency.methods.core import Method
from signed_saliency.metrics.setting_checks import SettingCheck, _same_kind
from signed_saliency.registry import Registry, check_choice, describe
from signed_saliency.runtime import generator, model_device


@dataclass
class Curve:
    """Per-image curves sharing one x grid: ``x`` (T,), ``y`` (N,T)."""

    x: Tensor
    y: Tensor


def to_cpu(values: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Float32 copies on the CPU. Made outside inference mode, the copies are ordinary
    tensors, which callers may modify in place (inference tensors refuse that)."""
    return {key: value.to(device="cpu", dtype=torch.float32, copy=True) for key, value in values.items()}


@dataclass
class MetricOutput:
    values: dict[str, Tensor] = field(default_factory=dict)  # variant -> (N,)
    curves: dict[str, Curve] = field(default_factory=dict)  # variant -> Curve
    # variant -> (N,) bool: the images whose value is undefined by design (NaN there); a
    # variant not in it is defined on every image
    undefined: dict[str, Tensor] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.values or self.curves)

    @classmethod
    def of(
        cls,
        values: Mapping[str, Tensor] = {},  # noqa: B006 - read only
        curves: Mapping[str, Tensor] = {},  # noqa: B006 - read only
        *,
        xs: Optional[Tensor] = None,
        area: Optional[Callable[[Tensor, Tensor], Tensor]] = None,
        undefined: Mapping[str, Tensor] = {},  # noqa: B006 - read only
    ) -> "MetricOutput":
        """A metric's output, every tensor a float32 CPU copy (see :func:`to_cpu`): per-image
        ``values`` (N,) and ``curves`` (N,T) over the shared grid ``xs`` (T,); with ``area``,
        each curve's ``area(xs, curve)`` is also its value under the same variant name.
        ``undefined`` (variant -> (N,) bool) marks the images on which a variant's value is
        undefined by design; their values become NaN."""
        output = cls(values=to_cpu(values))
        for key, curve in to_cpu(curves).items():
            output.curves[key] = Curve(xs, curve)
            if area is not None:
                output.values[key] = area(xs, curve)
        unknown = sorted(set(undefined) - set(output.values))
        if unknown:
            raise ValueError(f"undefined names variants without values: {', '.join(map(repr, unknown))}")
        for key, marks in undefined.items():
            values = output.values[key]
            marks = marks.to(values.device, torch.bool).reshape(values.shape)
            output.undefined[key] = marks
            output.values[key] = values.masked_fill(marks, float("nan"))
        return output


Progress = Callable[[int, int], None]  # (steps done, steps in all)

# this project's own families, then Quantus's categories for the metrics it adapts
Family = Literal[
    "perturbation", "sanity", "complexity", "ground-truth",
    "faithfulness", "robustness", "localisation", "axiomatic", "randomisation", "other",
]
FAMILIES: tuple[str, ...] = get_args(Family)


def ignore_progress(done: int, total: int) -> None:
    """The default :data:`Progress`: nobody is listening."""


@dataclass(frozen=True, kw_only=True)
class _Call:
    """What every metric call gets besides the maps: one batch and how to draw, report and place."""

    model: nn.Module
    x: Tensor  # (N,C,H,W) in [0,1]
    target: Tensor  # (N,) long
    seed: int = 0
    ground_truth: Optional[GroundTruth] = None
    progress: Progress = field(default=ignore_progress, repr=False)

    def generator(self) -> torch.Generator:
        """A fresh CPU generator seeded with the call's seed (the same draws on any device)."""
        return generator(self.seed)

    def report(self, done: int, total: int) -> None:
        """Tell the caller ``done`` of ``total`` steps are finished."""
        self.progress(done, total)

    @property
    def device(self) -> torch.device:
        """Where the model is (the images' device for a model without parameters)."""
        return model_device(self.model, self.x.device)


@dataclass(frozen=True, kw_only=True)
class MetricCall(_Call):
    """One call of a metric on one method's maps (N,H,W) of one batch."""

    maps: Tensor
    method: Method


@dataclass(frozen=True, kw_only=True)
class JointCall(_Call):
    """One call of a ``jointly`` metric on several methods' maps of one batch."""

    maps: Mapping[str, Tensor]  # method name -> (N,H,W)
    methods: tuple[Method, ...]

@dataclass(frozen=True)
class Metric:
    """A registered metric. ``family`` groups them in reports (perturbation, sanity,
    complexity, ground-truth); ``higher_is_better`` orients tables and tests."""

    name: str
    fn: Callable[..., MetricOutput] = field(repr=False)
    family: Family = "other"
    higher_is_better: bool = True
    needs_ground_truth: bool = False
    curve_x: str = "fraction of pixels perturbed"  # what a curve's x is, for plots
    description: str = ""
    # ms per image at the default settings, measured with one-gradient-pass maps (saliency)
    # on the shipped 32-px CNNs (CIFAR-10; signed-shapes where ground truth is needed), one
    # CPU thread: what `--list` shows to plan a run. Metrics that re-explain (the sanity
    # checks) multiply theirs by the method's cost. None: not measured (a plugin's).
    cost_ms: Optional[float] = None
    jointly: bool = False  # fn takes a JointCall of every method and scores them together
    reports_progress: bool = False  # fn calls ``call.report``: a caller may show its progress
    # the metric only runs forward passes on changed images, so the runner may give it a
    # low-precision copy of the model (see ``perturbation.forward_model``)
    forward_only: bool = False
    # raised by a fix that changes the metric's numbers: the runner's shard keys include
    # it, so rows computed before the fix are recomputed rather than reused
    revision: int = 1
    # a fix that changes the numbers of maps of some directions only: {direction: revision},
    # overriding ``revision`` for them, so the other maps' rows stay valid
    direction_revisions: Mapping[str, int] = field(default_factory=dict, hash=False)
    # what each setting's value must be, beyond the type of its default (see SettingCheck)
    checks: Mapping[str, SettingCheck] = field(default_factory=dict, hash=False, repr=False)
    # settings that choose how the numbers are computed, not which (ROAD's solver: its
    # choices agree within 1e-5), so a runner's shard keys leave them out and a changed
    # choice does not make finished shards stale
    unkeyed_settings: tuple[str, ...] = ()
    # (settings, device) -> what actually computes the numbers there, for a run's manifest
    # (ROAD's solver "auto" becomes "exact" on a CPU); None: the unkeyed settings as set
    implementation: Optional[Callable[[Mapping[str, Any], Any], dict[str, Any]]] = field(
        default=None, hash=False, repr=False)

    def implementation_on(self, settings: Mapping[str, Any], device: Any) -> dict[str, Any]:
        """What computes this metric's numbers with ``settings`` on ``device``."""
        if self.implementation is not None:
            return self.implementation(settings, device)
        return {key: settings[key] for key in self.unkeyed_settings if key in settings}

    def __post_init__(self) -> None:
        check_choice(f"metric {self.name!r}", "family", self.family, FAMILIES)
        parameters = inspect.signature(self.fn).parameters.values()
        positional = [p.name for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        if len(positional) != 1:
            raise UserError(
                f"metric {self.name!r} must take one {'JointCall' if self.jointly else 'MetricCall'} and "
                f"keyword-only settings, not ({', '.join(positional)})"
            )
        unknown = sorted(set(self.checks) - set(self.defaults()))
        if unknown:
            raise UserError(f"metric {self.name!r} checks {', '.join(unknown)}, which it has no setting of")

    def revision_for(self, method: Method) -> int:
        """The revision of this metric's numbers for ``method``'s maps."""
        return self.direction_revisions.get(method.direction, self.revision)

    def defaults(self) -> dict[str, Any]:
        """The metric's settings and their default values."""
        return {
            p.name: p.default
            for p in inspect.signature(self.fn).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY
        }

    def check_settings(self, settings: Mapping[str, Any]) -> None:
        """A one-line UserError for a setting the metric does not have or a value it cannot take."""
        defaults = self.defaults()
        unknown = sorted(set(settings) - set(defaults))
        if unknown:
            raise UserError(
                f"metric {self.name!r} has no setting {', '.join(map(repr, unknown))}; "
                f"valid: {', '.join(defaults) or 'none'}"
            )
        for name, value in settings.items():
            check = self.checks.get(name)
            problem = None if getattr(check, "any_type", False) else _same_kind(defaults[name], value)
            if problem is None and check is not None:
                problem = check(value)
            if problem is not None:
                raise UserError(f"metric {self.name!r}: {name} must be {problem}, got {value!r}")

    def __call__(
        self,
        model: nn.Module,
        x: Tensor,
        target: Tensor,
        maps: Tensor,
        method: Method,
        *,
        seed: int = 0,
        ground_truth: Optional[GroundTruth] = None,
        progress: Optional[Progress] = None,
        **settings: Any,
    ) -> MetricOutput:
        return self.score_methods(
            model, x, target, {method.name: maps}, [method], seed=seed, ground_truth=ground_truth,
            progress=progress, **settings,
        )[method.name]

    def score_methods(
        self,
        model: nn.Module,
        x: Tensor,
        target: Tensor,
        maps: Mapping[str, Tensor],
        methods: Sequence[Method],
        *,
        seed: int = 0,
        ground_truth: Optional[GroundTruth] = None,
        progress: Optional[Progress] = None,
        **settings: Any,
    ) -> dict[str, MetricOutput]:
        """``{method name: output}`` for several methods' maps of one batch (``maps`` keyed
        by method name): one call of a ``jointly`` metric, one call per method otherwise.
        ``progress`` hears ``call.report`` (only metrics with ``reports_progress`` call it)."""
        self.check_settings(settings)
        if self.needs_ground_truth and ground_truth is None:
            return {method.name: MetricOutput() for method in methods}
        batch = dict(model=model, x=x, target=target, seed=seed, ground_truth=ground_truth,
                     progress=progress or ignore_progress)
        with user_code("metric", self.name, self.fn):
            if self.jointly:
                return self.fn(JointCall(**batch, maps=maps, methods=tuple(methods)), **settings)
            return {
                method.name: self.fn(MetricCall(**batch, maps=maps[method.name], method=method), **settings)
                for method in methods
            }


def _build_metric(*, name: str, fn: Callable, description: Optional[str] = None, **metadata) -> Metric:
    return Metric(name=name, fn=fn, description=describe(fn, description), **metadata)


registry: Registry[Metric] = Registry("metric", _build_metric)
register = registry.register
get = registry.get
names = registry.names
