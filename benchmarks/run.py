"""``python -m benchmarks.run``: every registered method under every registered metric.

With no arguments it runs the quick suite offline (the shipped CIFAR-10 sample and CNN,
plus signed-shapes and its shipped CNN) and writes ``results/quick/``.

    python -m benchmarks.run --list                      # what is registered
    python -m benchmarks.run --config paper              # the paper suite
    python -m benchmarks.run --plugin my_methods         # compare your own method
    python -m benchmarks.run --shard 0/4                 # one slice; rerun unsliced to report

A run is split into shards written atomically as they finish: a rerun with the same config
skips finished shards, so a kill loses at most the metric call in flight. The report archives
every finished shard's rows in <out>/archive/ (see benchmarks.archive): commit it, and a
rerun on another machine skips those shards too.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
import uuid
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator, Optional

import torch
from torch import nn
from tqdm.auto import tqdm

from benchmarks import archive, page, report
from benchmarks.config import DatasetRun, RunConfig, SuiteConfig, apply_overrides, load_config
from benchmarks.files import write_atomically
from benchmarks.paths import RESULTS_DIR, SHIPPED_CHECKPOINTS, cache_dir, default_data_root, portable
from benchmarks.plan import Group, Shard, find_shard, make_group, parse_shard_spec, save_shard, select_groups, stable_hash
from signed_saliency import datasets, methods, metrics, models
from signed_saliency.datasets.core import GroundTruth, ImageSet
from signed_saliency.engine import score_batch
from signed_saliency.errors import UserError
from signed_saliency.methods.core import predict
from signed_saliency.metrics.core import Metric, Progress
from signed_saliency.metrics.perturbation import forward_model
from signed_saliency.training import TrainConfig


class MissingCheckpointError(UserError):
    """No trained weights for a (dataset, model), and the config does not train on first use."""


class StageTimer:
    """Wall time per stage, for the manifest."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - start


@contextmanager
def step_bar(metric: Metric, quiet: bool) -> Iterator[Optional[Progress]]:
    """A second, transient bar for the steps inside one metric call, for metrics that
    report them: at 224 px one randomisation call runs for about 20 minutes."""
    if quiet or not metric.reports_progress:
        yield None
        return
    bar: Optional[tqdm] = None  # opened at the metric's first report, which knows the total

    def update(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc=f"  {metric.name}", unit="step", leave=False, position=1, dynamic_ncols=True)
        bar.update(done - bar.n)

    try:
        yield update
    finally:
        if bar is not None:
            bar.close()


@dataclass
class LoadedModel:
    name: str
    module: nn.Module
    checkpoint: Path
    sha256: str
    forward_module: nn.Module  # what the perturbation metrics call: ``module`` or a bf16 copy


@dataclass
class PreparedDataset:
    run: DatasetRun
    images: ImageSet  # the chosen images only
    models: dict[str, LoadedModel]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description="Benchmark the faithfulness of (signed) saliency maps.",
        epilog="Bad input exits with code 2 and a one-line error.",
    )
    parser.add_argument("--config", default="quick", help="config name in benchmarks/configs or a .toml path (default: quick)")
    parser.add_argument("--list", action="store_true", help="list registered datasets, models, methods and metrics, then exit")
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                        help="import MODULE first (its decorated functions register methods or metrics); repeatable")
    parser.add_argument("--datasets", type=_names, help="comma-separated dataset names")
    parser.add_argument("--models", type=_names, help="comma-separated model names")
    parser.add_argument("--methods", type=_names, help="comma-separated method names ('*' for all)")
    parser.add_argument("--metrics", type=_names, help="comma-separated metric names ('*' for all)")
    parser.add_argument("--n-images", type=int, help="images per dataset")
    parser.add_argument("--batch-size", type=int, help="images per batch (and per shard)")
    parser.add_argument("--device", help="cpu, cuda, cuda:1, ...")
    parser.add_argument("--data-root", help="folder holding cifar10-jpg/ and imagenette2-224/ (default: $SIGNED_SALIENCY_DATA, "
                        "else ../shared/data beside the repository, else ~/.cache/signed-saliency/data)")
    parser.add_argument("--download", action="store_true", help="let torchvision download missing datasets (needs internet)")
    parser.add_argument("--out", help="output folder (default: results/<config name>)")
    parser.add_argument("--seed", type=int, help="seed for image choice and every metric's randomness")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: the config's, 2)")
    parser.add_argument("--stop-after", type=float, metavar="MINUTES",
                        help="start no new metric after this many minutes, then report what is finished; "
                        "a rerun resumes the rest")
    parser.add_argument("--parts", type=_names,
                        help="a suite's parts to run now (comma-separated; default: all); the others keep their results, "
                        "and the suite's tables still cover every part")
    parser.add_argument("--shard", help="run only slice i/n of the plan (0 <= i < n); merge with python -m benchmarks.report")
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no summary table")
    return parser


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def import_plugins(modules: list[str]) -> None:
    for module in modules:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as error:
            if error.name and module.startswith(error.name):
                raise UserError(f"plugin module {module!r} not found (is it on PYTHONPATH?)") from None
            raise


def list_registered() -> str:
    lines = ["datasets:"]
    for spec in datasets.registry:
        lines.append(
            f"  {spec.name:<16} {spec.num_classes} classes, {spec.default_image_size}px, "
            f"splits {'/'.join(spec.splits)}{', ground truth' if spec.has_ground_truth else ''}  {spec.description}"
        )
    lines.append("models:")
    lines += [f"  {spec.name:<16} {spec.description}" for spec in models.registry]
    width = max(map(len, methods.names()), default=0)
    lines.append(f"methods:{'':<{width - 5}}direction  score   family")
    lines += [
        f"  {m.name:<{width}} {m.direction:<10} {m.score:<7} {m.family:<11} {m.description}" for m in methods.registry
    ]
    lines.append("metrics:")
    for metric in metrics.registry:
        settings = ", ".join(f"{k}={v!r}" for k, v in metric.defaults().items())
        lines.append(f"  {metric.name:<22} {metric.family:<13} {metric.description}")
        if settings:
            lines.append(f"  {'':<22} settings: {settings}")
    return "\n".join(lines)


def resolve_device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r}; use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda asked for, but torch sees no CUDA GPU here")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise UserError(f"--device {name}: torch sees {torch.cuda.device_count()} CUDA GPU(s) here, numbered from 0")
    return device


def prepare_output(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"  # per process: slices of a run may share the folder
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise UserError(f"cannot write to output folder {path}: {error.strerror or error}") from None
    return path


def choose_images(images: ImageSet, n_images: Optional[int], seed: int) -> ImageSet:
    """A seeded choice of ``n_images`` from the split, in the seeded shuffle's order. Not
    sorted back into the split's order: splits are stored class by class, so a run stopped
    early would cover only the first classes. (A whole split keeps its stored order, and
    with it the keys of the shards already archived; :func:`execution_order` runs its
    batches in a seeded order instead.)"""
    if n_images is None or n_images >= len(images):
        return images
    generator = torch.Generator().manual_seed(seed)
    chosen = torch.randperm(len(images), generator=generator)[:n_images]
    return images.subset(chosen)


def load_model(
    dataset_run: DatasetRun, model_name: str, num_classes: int, image_size: int, device: torch.device, quiet: bool
) -> LoadedModel:
    """The shipped checkpoint, else a cached one, else (if the config allows) train one now."""
    from signed_saliency.models.checkpoints import load_checkpoint

    stem = f"{dataset_run.name}-{model_name}"
    candidates = [SHIPPED_CHECKPOINTS / f"{stem}.pt", cache_dir() / "checkpoints" / f"{stem}.pt"]
    path = next((candidate for candidate in candidates if candidate.is_file()), None)
    if path is None:
        if dataset_run.train is None:
            raise MissingCheckpointError(
                f"no trained {model_name!r} for {dataset_run.name!r}: looked for {candidates[0]} and {candidates[1]}; "
                f"train one with: python -m benchmarks.train --dataset {dataset_run.name} --model {model_name}"
            )
        from benchmarks.train import train_model

        try:
            train_config = TrainConfig(**dataset_run.train)
        except TypeError as error:
            raise UserError(f"bad train settings for {dataset_run.name!r}: {error}") from None
        path = candidates[1]
        train_model(
            dataset_run.name, model_name, config=train_config,
            image_size=image_size, device=str(device), dest=path, progress=not quiet,
        )
    model, manifest = load_checkpoint(path, expect={"dataset": dataset_run.name, "model": model_name, "image_size": image_size})
    if manifest.get("num_classes", num_classes) != num_classes:
        raise UserError(f"checkpoint {path} has {manifest['num_classes']} classes, dataset has {num_classes}")
    model = model.to(device).eval()
    return LoadedModel(
        name=model_name, module=model, checkpoint=path, sha256=manifest["sha256"],
        forward_module=forward_model(model, dataset_run.precision),
    )


def prepare(config: RunConfig, device: torch.device, timer: StageTimer, quiet: bool) -> list[PreparedDataset]:
    from benchmarks.data import load_images

    root = Path(config.data_root) if config.data_root else default_data_root()
    prepared = []
    for run in config.datasets:
        spec = datasets.get(run.name)
        with timer("load data"):
            images = load_images(
                run.name, run.split or spec.evaluation_split, root=root, image_size=run.image_size,
                download=config.download, **run.options,
            )
            images = choose_images(images, run.n_images, config.seed)
        loaded = {}
        for name in run.models:
            try:
                with timer("load models"):
                    loaded[name] = load_model(run, name, spec.num_classes, images.image_size, device, quiet)
            except MissingCheckpointError as error:
                if config.missing_models != "skip":
                    raise
                print(f"warning: skipped: {error}", file=sys.stderr)
        if loaded:
            prepared.append(PreparedDataset(run=run, images=images, models=loaded))
    if not prepared:
        raise UserError("no (dataset, model) of this config has trained weights yet; see the warnings above")
    return prepared


def build_plan(config: RunConfig, prepared: list[PreparedDataset]) -> list[Group]:
    method_names = config.method_names()
    metric_settings = {name: dict(config.settings.get(name, {})) for name in config.metric_names()}
    for name, settings in metric_settings.items():  # checked by RunConfig.validate
        # The key holds the resolved settings, so a changed default also makes shards stale.
        metric_settings[name] = {**metrics.get(name).defaults(), **settings}
    groups = []
    for item in prepared:
        entry = {
            "name": item.run.name,
            "split": item.images.split,
            "image_size": item.images.image_size,
            "options": item.run.options,
        }
        indices = item.images.indices.tolist()
        for model in item.models.values():
            for batch, start in enumerate(range(0, len(indices), config.batch_size)):
                positions = tuple(range(start, min(start + config.batch_size, len(indices))))
                groups.append(
                    make_group(
                        dataset=item.run.name, model=model.name, batch=batch, image_positions=positions,
                        image_indices=tuple(indices[p] for p in positions), dataset_entry=entry,
                        checkpoint_sha256=model.sha256, method_names=method_names,
                        metric_settings=metric_settings, seed=config.seed, precision=item.run.precision,
                    )
                )
    return groups


def _ground_truth(images: ImageSet, positions: list[int], device: torch.device) -> Optional[GroundTruth]:
    if images.ground_truth is None:
        return None
    return GroundTruth(
        mask=images.ground_truth.mask[positions].to(device), polarity=images.ground_truth.polarity[positions].to(device)
    )


def execute(
    groups: list[Group],
    prepared: list[PreparedDataset],
    config: RunConfig,
    out: Path,
    device: torch.device,
    timer: StageTimer,
    quiet: bool,
    deadline: Optional[float] = None,
    finished: frozenset[str] = frozenset(),
    after_metric: Callable[[int], None] = lambda computed: None,
) -> int:
    """Compute every shard not in ``finished`` (relative paths), batch by batch; return how many
    were computed, as ``after_metric`` also hears after each metric call. Past ``deadline`` (a ``time.perf_counter()`` value) no new metric starts:
    a metric's methods finish together, so its tables compare them on the same images,
    and at 224 px one batch under every metric is an hour on 2 cores, too coarse a step."""
    by_dataset = {item.run.name: item for item in prepared}
    pending_by_group = [
        (group, [shard for shard in group.shards if shard.relative_path not in finished])
        for group in groups
    ]
    total = sum(len(pending) for _, pending in pending_by_group)
    progress = tqdm(total=total, desc="shards", unit="shard", disable=quiet or total == 0, dynamic_ncols=True)
    computed = 0

    def past_deadline() -> bool:
        if deadline is None or time.perf_counter() <= deadline:
            return False
        progress.write(f"--stop-after reached: {total - computed} shards left for the next run", file=sys.stderr)
        return True

    for group, pending in pending_by_group:
        if not pending:
            continue
        if past_deadline():
            break
        item = by_dataset[group.dataset]
        model = item.models[group.model].module
        positions = list(group.image_positions)
        x = item.images.floats(positions).to(device)
        labels = item.images.labels[positions]
        image_ids = item.images.indices[positions].tolist()
        truth = _ground_truth(item.images, positions, device)
        progress.set_postfix_str(f"{group.dataset}/{group.model} batch {group.batch}: maps")
        with timer("maps"):
            predicted = predict(model, x)
            maps = methods.explain(model, x, predicted, dict.fromkeys(s.method for s in pending))
        label_of = dict(zip(image_ids, labels.tolist()))
        by_metric: dict[str, list] = defaultdict(list)
        for shard in pending:
            by_metric[shard.metric].append(shard)
        stopped = False
        for position, (metric_name, shards) in enumerate(by_metric.items()):
            if position and past_deadline():  # the batch's first metric runs: its maps are paid for
                stopped = True
                break
            metric = metrics.get(metric_name)
            scorer = item.models[group.model].forward_module if metric.forward_only else model
            # a jointly scored metric takes the group's methods in one call; others, one at a time
            for chunk in [shards] if metric.jointly else [[shard] for shard in shards]:
                names = " + ".join(shard.method for shard in chunk) if len(chunk) < 4 else f"{len(chunk)} methods"
                progress.set_postfix_str(f"{group.dataset}/{group.model} {names} x {metric_name}")
                with timer(f"metric {metric_name}"), step_bar(metric, quiet) as steps:
                    rows = score_batch(
                        scorer, x, predicted, predicted, maps, [methods.get(shard.method) for shard in chunk],
                        metric, image_ids=image_ids, seed=config.seed + group.batch,
                        ground_truth=truth, settings=config.settings.get(metric_name), progress=steps,
                    )
                for shard in chunk:
                    scores, curves = rows[shard.method]
                    for frame in (scores, curves):
                        frame.insert(0, "model", group.model)
                        frame.insert(0, "dataset", group.dataset)
                    scores.insert(3, "label", scores["image"].map(label_of).astype("int64"))
                    with timer("write shards"):
                        save_shard(out, shard, scores, curves)
                    computed += 1
                    progress.update()
                after_metric(computed)
        if stopped:
            break
    progress.close()
    return computed


def example_positions(labels: torch.Tensor, count: int, correct: Optional[torch.Tensor] = None) -> list[int]:
    """One image of each class in class order, then a second of each, up to ``count``;
    within a class the correctly classified images (where ``correct`` says) come first."""
    correct = torch.ones_like(labels, dtype=torch.bool) if correct is None else correct
    order = sorted(range(len(labels)), key=lambda position: (not bool(correct[position]), position))
    seen: dict[int, int] = defaultdict(int)
    occurrence = {}
    for position in order:
        label = int(labels[position])
        occurrence[position] = seen[label]
        seen[label] += 1
    return sorted(occurrence, key=lambda position: (occurrence[position], int(labels[position])))[:count]


def predict_all(model: nn.Module, images: ImageSet, batch_size: int, device: torch.device) -> torch.Tensor:
    return torch.cat([
        predict(model, images.floats(list(range(start, min(start + batch_size, len(images))))).to(device)).cpu()
        for start in range(0, len(images), batch_size)
    ])


def save_examples(prepared: list[PreparedDataset], config: RunConfig, out: Path, device: torch.device) -> None:
    """Images and every method's maps for a few images of each (dataset, model), one
    correctly classified image per class while classes last: what the qualitative
    figures draw."""
    method_names = config.method_names()
    if config.examples < 1:
        return
    # revisions too: a fixed method's maps must not be drawn from a cache of the old ones
    revisions = [methods.get(name).revision for name in method_names]
    for item in prepared:
        for model in item.models.values():
            path = out / "examples" / f"{item.run.name}-{model.name}.pt"
            key = stable_hash([item.images.indices.tolist(), model.sha256, method_names, revisions, config.examples])
            if path.is_file() and torch.load(path, weights_only=False).get("key") == key:
                continue
            predicted_all = predict_all(model.module, item.images, config.batch_size, device)
            positions = example_positions(item.images.labels, config.examples, predicted_all == item.images.labels)
            x = item.images.floats(positions).to(device)
            predicted = predicted_all[positions].to(device)
            maps = methods.explain(model.module, x, predicted, method_names)
            payload = {
                "key": key,
                "images": item.images.images[positions],
                "labels": item.images.labels[positions],
                "predicted": predicted.cpu(),
                "class_names": item.images.class_names,
                "maps": {name: value.cpu() for name, value in maps.items()},
                "directions": {name: methods.get(name).direction for name in maps},
            }
            write_atomically(path, lambda temporary: torch.save(payload, temporary))


def write_plan(out: Path, config: RunConfig, groups: list[Group], prepared: list[PreparedDataset]) -> None:
    plan = {
        "config": config.to_dict(),
        "methods": {name: {"direction": methods.get(name).direction, "score": methods.get(name).score,
                           "family": methods.get(name).family} for name in config.method_names()},
        "metrics": {
            name: {"family": m.family, "higher_is_better": m.higher_is_better, "curve_x": m.curve_x}
            for name, m in ((name, metrics.get(name)) for name in config.metric_names())
        },
        "checkpoints": prepared_checkpoints(prepared),
        "shards": [shard.relative_path for group in groups for shard in group.shards],
    }
    write_atomically(out / "plan.json", lambda temporary: temporary.write_text(json.dumps(plan, indent=1)))


def run(args: argparse.Namespace) -> int:
    import_plugins(args.plugin)
    if args.list:
        print(list_registered())
        return 0
    loaded = load_config(args.config)
    shard = parse_shard_spec(args.shard) if args.shard else (0, 1)
    deadline = None
    if args.stop_after is not None:
        if args.stop_after <= 0:
            raise UserError(f"--stop-after must be a positive number of minutes, got {args.stop_after}")
        deadline = time.perf_counter() + 60 * args.stop_after
    out = prepare_output(Path(args.out) if args.out else RESULTS_DIR / loaded.name)
    if isinstance(loaded, SuiteConfig):
        return run_suite(loaded, args, out, shard, deadline)
    if args.parts:
        raise UserError(f"--parts is for suite configs (parts = [...]); {loaded.name!r} is a single config")
    run_config(with_overrides(loaded, args), args, out, shard, show_summary=not args.quiet, deadline=deadline)
    return 0


def with_overrides(config: RunConfig, args: argparse.Namespace, *, select: bool = True) -> RunConfig:
    """The config with the command line's flags; ``select=False`` leaves out the flags that
    choose datasets and models."""
    config = apply_overrides(
        config, datasets_=args.datasets if select else None, models_=args.models if select else None,
        methods_=args.methods, metrics_=args.metrics, n_images=args.n_images, device=args.device,
        data_root=args.data_root, seed=args.seed, batch_size=args.batch_size, download=args.download,
        threads=args.threads,
    )
    config.validate()
    return config


def run_suite(
    suite: SuiteConfig, args: argparse.Namespace, out: Path, shard: tuple[int, int], deadline: Optional[float] = None
) -> int:
    """Every part into its own subfolder (all validated before the first starts), then the
    suite's ``after`` module over the parts' folders.

    Here ``--datasets`` and ``--models`` choose what is computed now, not what the parts
    plan: each part's report covers every finished shard of its whole plan, so the suite
    can be brought up to date one model at a time as models get trained. ``--parts``
    runs only some parts; ``after`` still covers them all, each from what its folder
    holds. (A part run on a machine that lacks its other models' shards and archive would
    report on this model alone: that is what ``--parts`` avoids.)"""
    plan_flags = {"--methods": args.methods, "--metrics": args.metrics, "--n-images": args.n_images,
                  "--seed": args.seed, "--batch-size": args.batch_size}
    changed = [flag for flag, value in plan_flags.items() if value is not None]
    if changed:
        # they would redefine every part's plan, and its report would overwrite the suite's tables
        raise UserError(f"{', '.join(changed)} would change what suite {suite.name!r} plans; run one part's "
                        f"config with them instead (e.g. --config {Path(suite.parts[0]).stem} ... --out DIR)")
    parts = [with_overrides(load_config(part), args, select=False) for part in suite.parts]
    unknown = sorted(set(args.parts or ()) - {config.name for config in parts})
    if unknown:
        raise UserError(f"suite {suite.name!r} has no part {', '.join(unknown)}; its parts: "
                        f"{', '.join(config.name for config in parts)}")
    known = {
        "dataset": {run.name for part in parts for run in part.datasets},
        "model": {model for part in parts for run in part.datasets for model in run.models},
    }
    for kind, asked in (("dataset", args.datasets), ("model", args.models)):
        unknown = sorted(set(asked or ()) - known[kind])
        if unknown:
            raise UserError(f"suite {suite.name!r} has no {kind} {', '.join(unknown)}")

    def chosen(group: Group) -> bool:
        return (not args.datasets or group.dataset in args.datasets) and (not args.models or group.model in args.models)

    for number, config in enumerate(parts, start=1):
        if args.parts and config.name not in args.parts:
            continue
        if not args.quiet:
            print(f"[{suite.name} part {number}/{len(parts)}] {config.name}", file=sys.stderr)
        run_config(config, args, prepare_output(out / config.name), shard, show_summary=False, compute=chosen,
                   deadline=deadline)
    if suite.after and shard[1] == 1:
        text = importlib.import_module(suite.after).write(out, [out / config.name for config in parts])
        if not args.quiet:
            print(text)
            print(f"\nresults in {out}")
    return 0


def run_config(
    config: RunConfig,
    args: argparse.Namespace,
    out: Path,
    shard: tuple[int, int],
    show_summary: bool,
    compute: Callable[[Group], bool] = lambda group: True,
    deadline: Optional[float] = None,
) -> None:
    """Plan ``config``, compute the shards of the groups ``compute`` picks (in this slice
    of the plan), then report on every finished shard."""
    shard_index, shard_count = shard
    device = resolve_device(config.device)
    torch.set_num_threads(config.threads)
    timer = StageTimer()
    started = time.perf_counter()
    prepared = prepare(config, device, timer, args.quiet)
    groups = build_plan(config, prepared)
    write_plan(out, config, groups, prepared)
    archived = frozenset(archive.shards_held(out))
    # looked up once: the execution order, the work and the report's count all start from it
    finished = frozenset(shard.relative_path for group in groups for shard in group.shards if is_held(shard, out, archived))
    begun = frozenset((group.dataset, group.batch) for group in groups
                      if any(shard.relative_path in finished for shard in group.shards))
    picked = execution_order([group for group in select_groups(groups, shard_index, shard_count) if compute(group)],
                             config.seed, begun)
    run_id = f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"  # unique within the second too

    def record_progress(computed: int) -> None:
        record = report.run_record(timer.seconds, time.perf_counter() - started, computed)
        report.record_unreported_run(out, run_id, record)

    computed = execute(picked, prepared, config, out, device, timer, args.quiet, deadline, finished, record_progress)
    if shard_count > 1:
        if not args.quiet:
            print(f"slice {shard_index}/{shard_count} done in {out}; once every slice is done, rerun without --shard "
                  "on the same folder to report, or merge separate folders with: python -m benchmarks.report DIR ...")
        return
    held = len(finished) + computed
    if not held:
        print(f"note: {config.name}: nothing computed yet, so no report", file=sys.stderr)
        return
    with timer("examples"):
        save_examples(prepared, config, out, device)
    with timer("report"):
        summary = report.build_report([out], out)
    report.write_manifest(out, config, prepared_checkpoints(prepared), device, timer.seconds,
                          time.perf_counter() - started, plugins=args.plugin, shards_computed=computed, shards_held=held,
                          run_id=run_id)
    page.write_page(out)  # again: the page the report wrote had the previous run's manifest
    if show_summary:
        print(summary)
        print(f"\nresults in {out}")


def is_held(shard: Shard, out: Path, archived: frozenset[str]) -> bool:
    """Whether the shard is finished: archived, or its pickle is in ``out``."""
    return shard.relative_path in archived or find_shard([out], shard.relative_path) is not None


def execution_order(groups: list[Group], seed: int, started: frozenset[tuple[str, int]] = frozenset()) -> list[Group]:
    """The groups one batch position at a time, every (dataset, model) at each, so a run
    stopped early has covered every model of a dataset on the same images. The batches of
    a dataset run in a seeded order rather than 0, 1, 2, ...: a whole split is stored
    class by class, so in order a stopped run would have covered its first classes alone.
    Batches ``started`` ((dataset, batch) with a finished shard) come first: finishing
    them costs least and keeps the tables over whole batches (new methods, fixed metrics)."""
    rank: dict[tuple[str, int], int] = {}
    for dataset in dict.fromkeys(group.dataset for group in groups):
        batches = sorted({group.batch for group in groups if group.dataset == dataset})
        order = torch.randperm(len(batches), generator=torch.Generator().manual_seed(seed)).tolist()
        rank.update({(dataset, batches[index]): position for position, index in enumerate(order)})
    return sorted(groups, key=lambda group: ((group.dataset, group.batch) not in started, rank[group.dataset, group.batch]))


def prepared_checkpoints(prepared: list[PreparedDataset]) -> dict[str, dict[str, str]]:
    return {
        f"{item.run.name}-{model.name}": {"path": portable(model.checkpoint), "sha256": model.sha256}
        for item in prepared for model in item.models.values()
    }


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
