"""What a metric is here: a registered function from one batch's maps to per-image numbers.

Every metric is called the same way::

    output = metric(model, x, target, maps, method, seed=0, ground_truth=None, **settings)

- ``x``: (N,C,H,W) float in [0,1]; ``target``: (N,) long, the class the maps explain;
  ``maps``: (N,H,W) float, the method's maps for that target (raw units: a metric that
  wants them normalised says so and does it itself); ``method``: the :class:`Method`
  object, whose ``direction`` and ``score`` the metric reads (never its name).
- ``seed``: every random choice a metric makes draws from a generator seeded with it.
- ``ground_truth``: a :class:`GroundTruth` for datasets that have one, else None;
  metrics registered with ``needs_ground_truth=True`` only run where it exists.
- ``settings``: the function's keyword-only parameters (their defaults are the metric's
  defaults; configs may override them by name, and an unknown name is an error).

It returns a :class:`MetricOutput`: per-image ``values`` and optional per-image
``curves``, each keyed by a variant string (e.g. ``"black/probability"``; ``""`` when the
metric has one variant). A metric that does not apply to a method (say, one for signed
maps given a magnitude map) returns an empty output.

A metric whose cost is recomputing maps (the sanity checks run the methods again on
changed models) registers with ``jointly=True`` and takes every method at once, so the
methods share their gradient passes as :func:`signed_saliency.methods.explain` shares
them::

    outputs = fn(model, x, target, {name: maps}, [method, ...], seed=0, ground_truth=None, **settings)

returning ``{method name: MetricOutput}``. Called on one method, such a metric behaves as
any other; :meth:`Metric.score_methods` scores several with one call or a loop, as fits.

A metric whose one call can run for many minutes (the randomisation check at 224 px, say)
may also take a keyword ``progress``: a :data:`Progress` callback it calls with (steps
done, steps in all) as it goes, from (0, total) on, so that a caller can show how far it is. The library never
prints; ``progress`` is only passed to metrics whose function declares it.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping, Optional, Sequence, get_args

from torch import Tensor, nn

from signed_saliency.checks import user_code
from signed_saliency.datasets.core import GroundTruth
from signed_saliency.errors import UserError
from signed_saliency.methods.core import Method
from signed_saliency.registry import Registry, check_choice, describe


@dataclass
class Curve:
    """Per-image curves sharing one x grid: ``x`` (T,), ``y`` (N,T)."""

    x: Tensor
    y: Tensor


@dataclass
class MetricOutput:
    values: dict[str, Tensor] = field(default_factory=dict)  # variant -> (N,)
    curves: dict[str, Curve] = field(default_factory=dict)  # variant -> Curve

    def __bool__(self) -> bool:
        return bool(self.values or self.curves)


Progress = Callable[[int, int], None]  # (steps done, steps in all)

# this project's own families, then Quantus's categories for the metrics it adapts
Family = Literal[
    "perturbation", "sanity", "complexity", "ground-truth",
    "faithfulness", "robustness", "localisation", "axiomatic", "randomisation", "other",
]
FAMILIES: tuple[str, ...] = get_args(Family)


def ignore_progress(done: int, total: int) -> None:
    """The default :data:`Progress` of a metric that reports it: nobody is listening."""


_CALL_PARAMETERS = ("model", "x", "target", "maps", "method", "seed", "ground_truth", "progress")

# A setting's check: None when a value is fine, else what the value must be ("at least 1").
SettingCheck = Callable[[Any], Optional[str]]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def at_least(low: float) -> SettingCheck:
    return lambda value: None if _is_number(value) and value >= low else f"a number at least {low}"


def above(low: float) -> SettingCheck:
    return lambda value: None if _is_number(value) and value > low else f"a number above {low}"


def fraction(*, below_one: bool = False) -> SettingCheck:
    """A fraction of the pixels: in [0, 1], or [0, 1) where all of them cannot be taken."""
    interval = "[0, 1)" if below_one else "[0, 1]"
    return lambda value: (None if _is_number(value) and 0 <= value and (value < 1 if below_one else value <= 1)
                          else f"a fraction in {interval}")


def odd_size(value: Any) -> Optional[str]:
    return None if isinstance(value, int) and not isinstance(value, bool) and value > 0 and value % 2 else "an odd positive integer"


def one_of(valid: Sequence[str]) -> SettingCheck:
    return lambda value: None if value in valid else f"one of {', '.join(valid)}"


def each(check: SettingCheck) -> SettingCheck:
    """A non-empty list whose every item passes ``check``."""

    def check_all(values: Any) -> Optional[str]:
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
            return "a non-empty list"
        problems = [check(value) for value in values]
        problem = next((problem for problem in problems if problem is not None), None)
        return None if problem is None else f"a non-empty list of items each {problem}"

    return check_all


def optional(check: SettingCheck) -> SettingCheck:
    return lambda value: None if value is None else (None if check(value) is None else f"{check(value)} or None")


def _same_kind(default: Any, value: Any) -> Optional[str]:
    """The check every setting gets from its default's type (a None default accepts anything)."""
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "true or false"
    if isinstance(default, int):
        return None if isinstance(value, int) and not isinstance(value, bool) else "an integer"
    if isinstance(default, float):
        return None if _is_number(value) else "a number"
    if isinstance(default, str):
        return None if isinstance(value, str) else "a string"
    if isinstance(default, (tuple, list)):
        return None if isinstance(value, (tuple, list)) else "a list"
    return None


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
    jointly: bool = False  # fn takes {name: maps} and [methods] and scores them together
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
        unknown = sorted(set(self.checks) - set(self.defaults()))
        if unknown:
            raise UserError(f"metric {self.name!r} checks {', '.join(unknown)}, which it has no setting of")

    def revision_for(self, method: Method) -> int:
        """The revision of this metric's numbers for ``method``'s maps."""
        return self.direction_revisions.get(method.direction, self.revision)


    @property
    def reports_progress(self) -> bool:
        """Whether the metric's function takes a ``progress`` callback."""
        return "progress" in inspect.signature(self.fn).parameters

    def defaults(self) -> dict[str, Any]:
        """The metric's settings and their default values."""
        return {
            p.name: p.default
            for p in inspect.signature(self.fn).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in _CALL_PARAMETERS
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
            problem = _same_kind(defaults[name], value)
            if problem is None and name in self.checks:
                problem = self.checks[name](value)
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
        ``progress`` reaches the metric only if it reports progress, and is otherwise unused."""
        self.check_settings(settings)
        if self.needs_ground_truth and ground_truth is None:
            return {method.name: MetricOutput() for method in methods}
        if progress is not None and self.reports_progress:
            settings = {**settings, "progress": progress}
        with user_code("metric", self.name, self.fn):
            if self.jointly:
                return self.fn(model, x, target, maps, methods, seed=seed, ground_truth=ground_truth, **settings)
            return {
                method.name: self.fn(model, x, target, maps[method.name], method, seed=seed, ground_truth=ground_truth, **settings)
                for method in methods
            }


def _build_metric(*, name: str, fn: Callable, description: Optional[str] = None, **metadata) -> Metric:
    return Metric(name=name, fn=fn, description=describe(fn, description), **metadata)


registry: Registry[Metric] = Registry("metric", _build_metric)
register = registry.register
get = registry.get
names = registry.names
