"""Speed benchmarks that print ratios (never run as tests).

    python -m benchmarks.speed methods     # the gradient methods against the paper code's way
    python -m benchmarks.speed metrics     # each metric against its forward-pass floor and quantus
    python -m benchmarks.speed precision   # bf16 against float32: speed and the AUCs' change
    python -m benchmarks.speed road        # ROAD's imputation solves against the size of their systems
    python -m benchmarks.speed hog         # the randomisation checks' HOG features, batched, against skimage
    python -m benchmarks.speed quantus     # our metrics and Quantus's on identical inputs: time, floors, agreement
    python -m benchmarks.speed import      # `import signed_saliency` against `import torch`, fresh processes
"""

from __future__ import annotations

import argparse
import importlib
import math
import time
from collections import Counter
from typing import Callable

import torch
from torch import Tensor, nn

CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
SUITES = {
    "methods": "benchmarks.speed.methods",
    "metrics": "benchmarks.speed.metrics",
    "precision": "benchmarks.speed.precision",
    "road": "benchmarks.speed.road",
    "hog": "benchmarks.speed.hog",
    "quantus": "benchmarks.speed.quantus",
    "import": "benchmarks.speed.imports",
}


def suite_parser(prog: str, description: str, repeats: int) -> argparse.ArgumentParser:
    """The options every speed suite shares."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=repeats)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="wall",
        help="cpu: this process's CPU time, steadier than wall time on a machine others load (use --threads 1)",
    )
    return parser


def seconds_of(fn: Callable[[], object], device: torch.device, clock: str) -> float:
    """One timed call, waiting for the GPU's queue where there is one."""
    now = CLOCKS[clock]
    start = now()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return now() - start


def fastest_seconds(fn: Callable[[], object], repeats: int, device: torch.device, clock: str = "wall") -> float:
    """The fastest of ``repeats`` timed calls: on a shared machine the minimum is the least
    disturbed estimate of the cost itself. The caller warms up first."""
    return min(seconds_of(fn, device, clock) for _ in range(repeats))


def best_seconds(fn: Callable[[], object], repeats: int, device: torch.device, clock: str = "wall") -> float:
    """:func:`fastest_seconds` after one warm-up call."""
    seconds_of(fn, device, clock)
    return fastest_seconds(fn, repeats, device, clock)


def model_calls(model: nn.Module, run: Callable[[], object]) -> Counter[int]:
    """How many calls of each batch size ``run`` makes of ``model``, copies of it included:
    a deep copy (the randomisation checks') keeps the hook, and with it this counter."""
    calls: Counter[int] = Counter()
    handle = model.register_forward_pre_hook(lambda _, inputs: calls.update([len(inputs[0])]))
    try:
        run()
    finally:
        handle.remove()
    return calls


def tiled(x: Tensor, size: int) -> Tensor:
    """``size`` images: ``x``'s, repeated as often as needed."""
    return x.repeat(math.ceil(size / len(x)), *[1] * (x.dim() - 1))[:size]


def warmed_passes(calls: Counter[int], one_pass: Callable[[int], Callable[[], object]]) -> dict[int, Callable[[], object]]:
    """One pass per batch size in ``calls``, each run once (a warm-up)."""
    passes = {size: one_pass(size) for size in calls}
    for run in passes.values():
        run()
    return passes


def floor_seconds(calls: Counter[int], passes: dict[int, Callable[[], object]], device: torch.device, clock: str) -> float:
    """The time of the passes ``calls`` counts, at the same batch sizes (a pass of 128 images
    costs per image what one of 64 does not), made in one block like the metric makes them
    (``passes`` from :func:`warmed_passes`): a metric's floor, whatever it does besides."""
    if not calls:
        return 0.0
    return seconds_of(lambda: [passes[size]() for size, count in calls.items() for _ in range(count)], device, clock)


def timed_with_floor(
    run: Callable[[], object],
    calls: Counter[int],
    one_pass: Callable[[int], Callable[[], object]],
    batch: int,
    repeats: int,
    device: torch.device,
    clock: str,
) -> tuple[float, float, float]:
    """Seconds of ``run`` (warmed up by the caller), of its floor (:func:`floor_seconds` of
    ``calls``) and of the same passes as calls of ``batch`` images: the fastest of
    ``repeats`` rounds that time the three in turn, so a change in the machine's load
    between them reaches all three alike; more rounds for a run under 0.2 s, up to 2 s of
    it, since one short run is at the mercy of other jobs. Floors are 0 without calls
    (map-only measures)."""
    passes = sum(size * count for size, count in calls.items()) / batch
    whole_calls = Counter({batch: round(passes)}) if passes else Counter()

    own, whole_batch = warmed_passes(calls, one_pass), warmed_passes(whole_calls, one_pass)

    def one_round() -> tuple[float, float, float]:
        return (
            seconds_of(run, device, clock),
            floor_seconds(calls, own, device, clock),
            floor_seconds(whole_calls, whole_batch, device, clock) * passes / max(1, round(passes)),
        )

    rounds = [one_round()]
    if rounds[0][0] < 0.2:
        repeats = max(repeats, min(20, math.ceil(2.0 / max(rounds[0][0], 1e-3))))
    rounds += [one_round() for _ in range(repeats - 1)]
    ours, floor, whole = (min(times) for times in zip(*rounds))
    return ours, floor, whole


def main(argv: list[str] | None = None) -> None:
    # no -h here: `speed precision --help` must reach the suite's own parser
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speed", description=__doc__.splitlines()[0], add_help=False)
    parser.add_argument("suite", choices=sorted(SUITES))
    args, rest = parser.parse_known_args(argv)
    importlib.import_module(SUITES[args.suite]).main(rest)
