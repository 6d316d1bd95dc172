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


def floor_seconds(
    calls: Counter[int], one_pass: Callable[[int], Callable[[], object]], repeats: int, device: torch.device, clock: str
) -> float:
    """The time of the passes ``calls`` counts, at the same batch sizes (a pass of 128 images
    costs per image what one of 64 does not), each size timed by :func:`best_seconds` of
    ``one_pass(size)``: a metric's floor, whatever it does besides."""
    return sum(count * best_seconds(one_pass(size), repeats, device, clock) for size, count in calls.items())


def main(argv: list[str] | None = None) -> None:
    # no -h here: `speed precision --help` must reach the suite's own parser
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speed", description=__doc__.splitlines()[0], add_help=False)
    parser.add_argument("suite", choices=sorted(SUITES))
    args, rest = parser.parse_known_args(argv)
    importlib.import_module(SUITES[args.suite]).main(rest)
