"""The command line of ``python -m benchmarks.run``: flags to a config, ``--list``, exit codes."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Optional

from benchmarks import pipeline, store
from benchmarks.config import CONFIG_DIR, RunConfig, SuiteConfig, apply_overrides, load_config, resolve_config_path
from benchmarks.paths import REPO_ROOT, RESULTS_DIR, portable
from benchmarks.plan import Group, parse_shard_spec, stable_hash
from benchmarks.prepare import CheckpointChoice
from benchmarks.plugins import import_plugins
from signed_saliency import datasets, methods, metrics, models
from signed_saliency.metrics import quantus_adapter
from signed_saliency.errors import UserError


DEFAULT_CONFIG = "quick"
RUNS_DIR = REPO_ROOT / "runs"  # git-ignored
# how and where a run computes, not what: a run differing from its config in these alone is that config's own
PLAN_NEUTRAL = ("device", "threads", "data_root", "download")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description="Benchmark the faithfulness of (signed) saliency maps.",
        epilog="Bad input exits with code 2 and a one-line error.",
    )
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="config name in benchmarks/configs or a .toml path (default: quick)")
    parser.add_argument("--list", action="store_true", help="list registered datasets, models, methods and metrics, then exit")
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE|FILE.py",
                        help="import a module, or a Python file by its relative or absolute path, first (its decorated "
                        "functions register methods, metrics, datasets or models); repeatable")
    parser.add_argument("--datasets", type=_names, help="comma-separated dataset names")
    parser.add_argument("--dataset", action="append", default=[], metavar="NAME",
                        help="one dataset, e.g. folder:PATH (your images, ImageFolder layout; a path may hold commas); "
                        "repeatable, and adds to --datasets")
    parser.add_argument("--image-size", type=int, metavar="N", help="resize every image to N x N (default: the dataset's)")
    parser.add_argument("--models", type=_names,
                        help="comma-separated model names: registered ones, torchvision:NAME or timm:NAME "
                        "(pretrained weights from the local cache, never downloaded)")
    parser.add_argument("--checkpoint", metavar="PATH",
                        help="your weights (a state dict) for the one architecture --models names; hash-checked and "
                        "recorded")
    parser.add_argument("--checkpoint-sha256", metavar="HEX", help="the sha256 (or a prefix) --checkpoint must have")
    parser.add_argument("--methods", type=_names,
                        help="comma-separated method names or patterns ('*' for all, 'smoothgrad*')")
    parser.add_argument("--metrics", type=_names,
                        help="comma-separated metric names or patterns ('*' for all, 'deletion*')")
    parser.add_argument("--n-images", type=int, help="images per dataset")
    parser.add_argument("--batch-size", type=int, help="images per batch (and per shard)")
    parser.add_argument("--device", help="cpu, cuda, cuda:1, ...")
    parser.add_argument("--data-root", help="folder holding cifar10-jpg/ and imagenette2-224/ (default: $SIGNED_SALIENCY_DATA, "
                        "else ../shared/data beside the repository, else ~/.cache/signed-saliency/data)")
    parser.add_argument("--download", action="store_true", help="let torchvision download missing datasets (needs internet)")
    parser.add_argument("--out", help="output folder (default: results/<config> for a config run as committed, "
                        "else runs/<config>-<hash>; never another config's folder under results/)")
    parser.add_argument("--reuse-archive", action="store_true",
                        help="the default run: take the committed shards as finished instead of recomputing them and "
                        "checking that they reproduce")
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
    parser.add_argument("--debug", action="store_true",
                        help="after an error's one line, its full traceback (a plugin's own code included)")
    return parser


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _cost(cost_ms: float | None) -> str:
    return "? ms" if cost_ms is None else f"{cost_ms:,.{1 if cost_ms < 1 else 0}f} ms"


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
    family_width = max((len(m.family) for m in methods.registry), default=0)
    lines.append(f"methods:{'':<{width - 5}}direction  score   {'family':<{family_width}} cost  library")
    lines += [
        f"  {m.name:<{width}} {m.direction:<10} {m.score:<7} {m.family:<{family_width}} {m.cost:<5} "
        f"{m.library or '(own)':<8} {m.description}"
        for m in methods.registry
    ]
    registered = list(metrics.registry)
    width = max((len(metric.name) for metric in registered), default=0)
    family_width = max((len(metric.family) for metric in registered), default=0)
    lines.append("metrics (ms/image: measured, see the README; x the method's cost where it re-explains):")
    for metric in registered:
        settings = ", ".join(f"{k}={v!r}" for k, v in metric.defaults().items())
        lines.append(f"  {metric.name:<{width}} {metric.family:<{family_width}} {'higher' if metric.higher_is_better else 'lower':<6} "
                     f"{_cost(metric.cost_ms):>8}  {metric.description}")
        if settings:
            lines.append(f"  {'':<{width}} settings: {settings}")
    names = quantus_adapter.supported_names()
    width = max(map(len, names), default=0)
    lines.append("Quantus metrics by name (quantus:<Class>, settings are the class's own keyword arguments):")
    for name in names:
        spec = quantus_adapter.SPECS[name[len(quantus_adapter.PREFIX):]]
        lines.append(f"  {name:<{width}} {spec.category:<13} {_cost(spec.cost_ms):>8}"
                     f"{'  re-explains' if spec.explains else ''}")
    return "\n".join(lines)


def with_overrides(config: RunConfig, args: argparse.Namespace, *, select: bool = True) -> RunConfig:
    """The config with the command line's flags, validated; ``select=False`` leaves out the
    flags that choose datasets and models."""
    chosen_datasets = [*(args.datasets or []), *args.dataset] or None
    config = apply_overrides(
        config, datasets_=chosen_datasets if select else None, models_=args.models if select else None,
        methods_=args.methods, metrics_=args.metrics, n_images=args.n_images, device=args.device,
        data_root=args.data_root, seed=args.seed, batch_size=args.batch_size, download=args.download,
        threads=args.threads, image_size=args.image_size,
    )
    config.validate()
    return config


def suite_parts(suite: SuiteConfig, args: argparse.Namespace) -> list[RunConfig]:
    """The suite's parts with the flags that may apply to them, every one validated, and
    ``--parts``, ``--datasets`` and ``--models`` checked against them."""
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
    for kind, asked in (("dataset", [*(args.datasets or []), *args.dataset]), ("model", args.models)):
        unknown = sorted(set(asked or ()) - known[kind])
        if unknown:
            raise UserError(f"suite {suite.name!r} has no {kind} {', '.join(unknown)}")
    return parts


def run(args: argparse.Namespace) -> int:
    import_plugins(args.plugin)
    if args.list:
        print(list_registered())
        return 0
    loaded = load_config(args.config)
    deadline = None
    if args.stop_after is not None:
        if args.stop_after <= 0:
            raise UserError(f"--stop-after must be a positive number of minutes, got {args.stop_after}")
        deadline = time.perf_counter() + 60 * args.stop_after
    checkpoint = CheckpointChoice(args.checkpoint, args.checkpoint_sha256) if args.checkpoint else None
    options = pipeline.RunOptions(quiet=args.quiet, plugins=args.plugin, deadline=deadline, checkpoint=checkpoint,
                                  shard=parse_shard_spec(args.shard) if args.shard else (0, 1))
    if isinstance(loaded, SuiteConfig):
        parts = suite_parts(loaded, args)

        asked_datasets = [*(args.datasets or []), *args.dataset]

        def chosen(group: Group) -> bool:
            return (not asked_datasets or group.dataset in asked_datasets) and (not args.models or group.model in args.models)

        if args.checkpoint or args.image_size:
            raise UserError(f"--checkpoint and --image-size are for single configs, not suite {loaded.name!r}")
        out = output_folder(loaded.name, own=not args.plugin and is_committed_config(args.config), args=args, identity={"suite": loaded.parts})
        pipeline.run_suite(loaded, parts, options, out, only_parts=args.parts, compute=chosen)
        return 0
    if args.parts:
        raise UserError(f"--parts is for suite configs (parts = [...]); {loaded.name!r} is a single config")
    config = with_overrides(loaded, args)
    check_model_choice(config, args)
    own = is_committed_config(args.config) and not args.plugin and not args.checkpoint and same_plan(config, loaded)
    identity = {"config": plan_defining(config), "plugins": args.plugin, "checkpoint": args.checkpoint}
    out = output_folder(loaded.name, own=own, args=args, identity=identity)
    if own and not args.out and not args.reuse_archive and args.shard is None and loaded.name == DEFAULT_CONFIG:
        # the default run proves itself: it recomputes in a scratch folder and compares with the committed rows
        committed, out = out, store.prepare_output(RUNS_DIR / f"{loaded.name}-reproduce")
        options = dataclasses.replace(options, reuse_archive=False, reproduce=committed)
        if not args.quiet:
            print(f"recomputing {loaded.name} in {portable(out)} to check it against {portable(committed)} "
                  "(--reuse-archive skips that)", file=sys.stderr)
    pipeline.run_config(config, options, out, show_summary=not args.quiet)
    return 0


def plan_defining(config: RunConfig) -> dict[str, Any]:
    return {key: value for key, value in config.to_dict().items() if key not in PLAN_NEUTRAL}


def same_plan(config: RunConfig, loaded: RunConfig) -> bool:
    return plan_defining(config) == plan_defining(loaded)


def is_committed_config(name_or_path: str) -> bool:
    """A config shipped in benchmarks/configs, whose results/<name>/ may be committed."""
    return resolve_config_path(name_or_path).resolve().parent == CONFIG_DIR.resolve()


def output_folder(name: str, *, own: bool, args: argparse.Namespace, identity: dict[str, Any]) -> Path:
    """Where a run writes: ``--out``, else results/<name>/ for a config run as committed
    (``own``), else runs/<name>-<hash of what it plans>/, printed, so that no other run
    ever writes over committed results. An ``--out`` under results/ other than the config's
    own folder is refused."""
    committed = RESULTS_DIR / name
    if args.out:
        out = Path(args.out).resolve()
        if out.is_relative_to(RESULTS_DIR.resolve()) and not (own and out == committed.resolve()):
            why = "this run differs from the config as committed" if out == committed.resolve() else "it is not this config's own"
            raise UserError(f"--out {args.out}: results/ holds committed results and {why}; write elsewhere "
                            f"(leave out --out for runs/{name}-<hash>/)")
        return store.prepare_output(out)
    if own:
        return store.prepare_output(committed)
    out = store.prepare_output(RUNS_DIR / f"{name}-{stable_hash(identity, 8)}")
    print(f"writing to {portable(out)} (results/ keeps the committed results of unchanged configs only)", file=sys.stderr)
    return out


def check_model_choice(config: RunConfig, args: argparse.Namespace) -> None:
    """--checkpoint is the weights of one model; a folder of images has no shipped model."""
    if args.checkpoint_sha256 and not args.checkpoint:
        raise UserError("--checkpoint-sha256 checks the file --checkpoint gives; give that too")
    if args.checkpoint and len(args.models or []) != 1:
        raise UserError("--checkpoint needs exactly one architecture: --models NAME (a registered name, torchvision:NAME "
                        "or timm:NAME)")
    folders = [run.name for run in config.datasets if run.name.startswith("folder:")]
    if folders and not args.models:
        raise UserError(f"{folders[0]} has no shipped model: choose one with --models (e.g. torchvision:resnet50, "
                        "or an architecture with --checkpoint PATH)")


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        if args.debug:
            traceback.print_exception(error)
        return 2
    except pipeline.Interrupted as stop:
        print(f"\n{stop}", file=sys.stderr)
        return 130  # what a shell reports for a process ended by SIGINT
    except KeyboardInterrupt:
        print("\ninterrupted; rerun the same command to resume", file=sys.stderr)
        return 130
