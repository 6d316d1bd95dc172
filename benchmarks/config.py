"""Run configs: TOML files under ``benchmarks/configs/``, validated, with CLI overrides.

A config names what to run and how much of it::

    seed = 0
    batch_size = 32
    methods = ["*"]          # "*" = every registered method (plugins included)
    metrics = ["*"]

    [[datasets]]
    name = "cifar10"
    split = "sample"         # the 256 test images shipped inside the package
    n_images = 32
    models = ["cnn"]

    [settings.deletion]      # keyword settings of one metric
    steps = 16

A suite config runs several configs, each into a subfolder of one output folder, then
calls one module's ``write(out, part_folders)`` for what spans them (the paper's tables)::

    parts = ["paper-deletion", "paper-suite"]
    after = "benchmarks.paper"

Every key is checked: an unknown one is an error that names the valid keys.
"""

from __future__ import annotations

import copy
import fnmatch
import importlib.util
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from signed_saliency import datasets, methods, metrics, models
from signed_saliency.engine import BATCH_SIZE
from signed_saliency.errors import UserError
from signed_saliency.methods.core import Method
from signed_saliency.metrics.core import Metric
from signed_saliency.runtime import PRECISIONS

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
ALL = "*"
MISSING_MODEL_CHOICES = ("error", "skip")


@dataclass
class DatasetRun:
    """One dataset of a run and the models to explain on it."""

    name: str
    models: list[str]
    split: Optional[str] = None  # None: the dataset's evaluation split
    n_images: Optional[int] = None  # None: the whole split
    image_size: Optional[int] = None  # None: the dataset's default
    options: dict[str, Any] = field(default_factory=dict)  # extra loader keywords
    # The perturbation metrics' forward passes: "float32", or "bfloat16" (autocast,
    # channels-last), measured faster at 224 px and slower at 32 px on this project's CPUs
    precision: str = "float32"
    # How to train a missing checkpoint on first use: TrainConfig fields such as epochs and
    # batch_size (None: a missing checkpoint is an error that says how to train one).
    train: Optional[dict[str, Any]] = None


@dataclass
class RunConfig:
    name: str
    datasets: list[DatasetRun]
    methods: list[str] = field(default_factory=lambda: [ALL])
    metrics: list[str] = field(default_factory=lambda: [ALL])
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    seed: int = 0
    batch_size: int = BATCH_SIZE  # images per batch and per shard
    device: str = "cpu"
    threads: int = 2
    examples: int = 6  # images per (dataset, model) in the qualitative figure
    data_root: Optional[str] = None
    download: bool = False
    # "skip": run without a model nobody has trained yet (a warning names it) rather than stop
    missing_models: str = "error"

    def chosen_methods(self) -> list[Method]:
        """The methods the config names, patterns expanded, in registration order per pattern."""
        # "*" leaves out the methods declared slow (one model fit or hundreds of passes per
        # image); a name or a pattern still takes them
        return [methods.get(name) for name in _expand(self.methods, methods.names(), "method", methods.quick_names())]

    def chosen_metrics(self) -> list[Metric]:
        return [metrics.get(name) for name in _expand(self.metrics, metrics.names(), "metric")]

    def method_names(self) -> list[str]:
        return [method.name for method in self.chosen_methods()]

    def metric_names(self) -> list[str]:
        return [metric.name for metric in self.chosen_metrics()]

    def metric_settings(self, name: str) -> dict[str, Any]:
        """A metric's settings: its defaults, with what the config sets."""
        return {**metrics.get(name).defaults(), **self.settings.get(name, {})}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def validate(self) -> None:
        """Check every name against its registry and every metric setting against the metric."""
        names = [run.name for run in self.datasets]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            # rows, shards and tables are keyed by the dataset's name, not by its entry
            raise UserError(f"dataset {', '.join(map(repr, repeated))} appears twice; give each dataset one entry")
        for run in self.datasets:
            spec = datasets.get(run.name)
            if run.split is not None and run.split not in spec.splits:
                raise UserError(f"dataset {run.name!r} has no split {run.split!r}; valid: {', '.join(spec.splits)}")
            for model in run.models:
                models.get(model)
            if run.precision not in PRECISIONS:
                raise UserError(f"dataset {run.name!r}: precision must be one of {', '.join(PRECISIONS)}, got {run.precision!r}")
            if run.n_images is not None and run.n_images < 1:
                raise UserError(f"n_images must be at least 1, got {run.n_images}")
        self.chosen_methods()
        self.chosen_metrics()
        for name, values in self.settings.items():
            metrics.get(name).check_settings(values)
        if self.batch_size < 1:
            raise UserError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.threads < 1:
            raise UserError(f"threads must be at least 1, got {self.threads}")
        if self.missing_models not in MISSING_MODEL_CHOICES:
            raise UserError(f"missing_models must be one of {', '.join(MISSING_MODEL_CHOICES)}, got {self.missing_models!r}")


@dataclass
class SuiteConfig:
    """Configs run one after another, each into ``<out>/<part>/``; then ``after``, a module
    with ``write(out, part_folders) -> str``, builds what spans them."""

    name: str
    parts: list[str]  # paths of the parts' config files
    after: Optional[str] = None


def _expand(chosen: list[str], registered: list[str], kind: str, everything: Optional[list[str]] = None) -> list[str]:
    """Names and timm-style patterns (``"smoothgrad*"``, fnmatch) to registered names, in
    the order chosen, each once; a name that is not registered is left for the registry to
    report, and a pattern that matches nothing is an error. ``"*"`` is ``everything``
    (default: every registered name), alone or beside other names."""
    names = []
    for entry in chosen:
        if entry == ALL:  # beside other names (quantus: ones, say), it adds to them
            names += registered if everything is None else everything
        elif any(character in entry for character in "*?["):
            matched = fnmatch.filter(registered, entry)
            if not matched:
                raise UserError(f"no {kind} matches {entry!r}; valid: {', '.join(registered)}")
            names += matched
        else:
            names.append(entry)
    return list(dict.fromkeys(names))


def _check_keys(table: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise UserError(f"unknown config key {', '.join(map(repr, unknown))} in {where}; valid: {', '.join(sorted(allowed))}")


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a missing parent package
        return False


def resolve_config_path(name_or_path: str) -> Path:
    """A config by name (``quick`` -> benchmarks/configs/quick.toml) or by path."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise UserError(f"config file {path} does not exist")
        return path
    named = CONFIG_DIR / f"{name_or_path}.toml"
    if not named.is_file():
        available = sorted(p.stem for p in CONFIG_DIR.glob("*.toml"))
        raise UserError(f"unknown config {name_or_path!r}; valid: {', '.join(available)} (or a path to a .toml file)")
    return named


def load_config(name_or_path: str) -> Union[RunConfig, SuiteConfig]:
    path = resolve_config_path(name_or_path)
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise UserError(f"config {path} is not valid TOML: {error}") from None
    if "parts" in raw:
        _check_keys(raw, {"parts", "after"}, str(path))
        # a part is a config beside the suite's file, else one found by name or path
        parts = [path.parent / f"{part}.toml" for part in raw["parts"]]
        parts = [str(beside if beside.is_file() else resolve_config_path(part)) for beside, part in zip(parts, raw["parts"])]
        after = raw.get("after")
        if after is not None and not _importable(after):  # now, not when the parts have finished hours later
            raise UserError(f"config {path}: after = {after!r} is not an importable module")
        return SuiteConfig(name=path.stem, parts=parts, after=after)
    return parse_config(raw, name=path.stem, where=str(path))


def parse_config(raw: dict[str, Any], name: str, where: str = "config") -> RunConfig:
    raw = copy.deepcopy(raw)
    top_keys = {f for f in RunConfig.__dataclass_fields__ if f != "name"}
    _check_keys(raw, top_keys, where)
    runs = []
    dataset_keys = set(DatasetRun.__dataclass_fields__)
    for index, table in enumerate(raw.pop("datasets", [])):
        _check_keys(table, dataset_keys, f"{where} [[datasets]] #{index + 1}")
        if "name" not in table or "models" not in table:
            raise UserError(f"{where} [[datasets]] #{index + 1} needs 'name' and 'models'")
        runs.append(DatasetRun(**table))
    if not runs:
        raise UserError(f"{where} names no [[datasets]]")
    return RunConfig(name=name, datasets=runs, **raw)


def apply_overrides(
    config: RunConfig,
    *,
    datasets_: Optional[list[str]] = None,
    models_: Optional[list[str]] = None,
    methods_: Optional[list[str]] = None,
    metrics_: Optional[list[str]] = None,
    n_images: Optional[int] = None,
    device: Optional[str] = None,
    data_root: Optional[str] = None,
    seed: Optional[int] = None,
    batch_size: Optional[int] = None,
    download: bool = False,
    threads: Optional[int] = None,
    image_size: Optional[int] = None,
) -> RunConfig:
    """Command-line flags win over the config. ``--datasets`` keeps the config's entries
    of those names and adds a plain entry (its models from ``--models`` or the first
    entry's) for a dataset the config does not have."""
    config = copy.deepcopy(config)
    if datasets_:
        by_name = {run.name: run for run in config.datasets}
        default_models = models_ or config.datasets[0].models
        config.datasets = [by_name.get(name) or DatasetRun(name=name, models=list(default_models))
                           for name in dict.fromkeys(datasets_)]
    if models_:
        for run in config.datasets:
            run.models = list(models_)
    if n_images is not None:
        for run in config.datasets:
            run.n_images = n_images
    if image_size is not None:
        if image_size < 8:
            raise UserError(f"--image-size must be at least 8 pixels, got {image_size}")
        for run in config.datasets:
            run.image_size = image_size
    if methods_:
        config.methods = methods_
    if metrics_:
        config.metrics = metrics_
    if device:
        config.device = device
    if data_root:
        config.data_root = data_root
    if seed is not None:
        config.seed = seed
    if batch_size is not None:
        config.batch_size = batch_size
    if download:
        config.download = True
    if threads is not None:
        config.threads = threads
    return config
