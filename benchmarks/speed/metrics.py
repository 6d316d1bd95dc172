"""Speed of the perturbation metrics against their forward-pass floor and quantus.

    python -m benchmarks.speed metrics [--batch 64] [--size 32] [--repeats 3] [--threads 2] [--device cpu]

A perturbation metric is a loop of model calls; everything else (ranking, masking,
imputing, scoring) is overhead. Each metric's floor is the time of the same model calls,
counted by a run (how many of each batch size), made on the unchanged images: a call's
cost per image depends on its size, so the floor is timed at the sizes the metric uses;
the ratio says how much the overhead costs. Beside it, the same passes as calls of the
whole batch. quantus's PixelFlipping runs at the same number of steps as ``deletion``.
Random weights: the cost of a pass does not depend on them.
Times are the best of ``--repeats`` rounds after a warm-up run, each round timing the
metric and its floors in turn, so a change in the machine's load does not skew a ratio.
"""

from __future__ import annotations

import warnings
from collections import Counter
from typing import Callable
from unittest import mock

import torch
from torch import Tensor, nn

from benchmarks.speed import model_calls, suite_parser, tiled, timed_with_floor
from signed_saliency import methods, metrics, models


def quantus_pixel_flipping(
    model: nn.Module, x: Tensor, target: Tensor, maps: Tensor, steps: int
) -> Callable[[], object]:
    """quantus's PixelFlipping at ``steps`` steps of H*W/steps whole pixels, as ``deletion``
    takes them, on the same inputs.

    It ranks the map's C*H*W channel values (a map constant across channels sorts each
    pixel's C copies together), so a step of k pixels is C*k values; but it checks that the
    step divides H*W, not C*H*W, which no step of whole RGB pixels on a 32x32 image passes.
    The check is skipped during the call. Its "black" is each image's minimum: 0.0 is
    passed. Its per-sample AUCs call np.trapz, which NumPy 2 removed: the curves are used.
    """
    import quantus
    from quantus.helpers import asserts

    height, width = maps.shape[-2:]
    metric = quantus.PixelFlipping(
        features_in_step=x.shape[1] * height * width // steps,
        abs=False,
        normalise=False,
        perturb_baseline=0.0,
        disable_warnings=True,
    )
    arrays = dict(x_batch=x.cpu().numpy(), y_batch=target.cpu().numpy(), a_batch=maps[:, None].cpu().numpy())
    device = "cuda" if x.is_cuda else "cpu"

    def run():
        with warnings.catch_warnings(), mock.patch.object(asserts, "assert_features_in_step", lambda **_: None):
            warnings.simplefilter("ignore")
            return metric(model=model, channel_first=True, device=device, batch_size=x.shape[0], **arrays)

    return run


def main(argv: list[str] | None = None) -> None:
    parser = suite_parser("python -m benchmarks.speed metrics", __doc__.splitlines()[0], repeats=3)
    parser.add_argument("--method", default="positive", help="the maps every metric is given")
    parser.add_argument(
        "--quantus-steps",
        type=int,
        default=32,
        help="deletion's steps in the comparison with quantus (H*W/steps whole pixels per step)",
    )
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = models.get("resnet18").build(10).to(device).eval()
    x = torch.rand(args.batch, 3, args.size, args.size, device=device)
    with torch.no_grad():
        target = model(x).argmax(dim=1)
    method = methods.get(args.method)
    maps = method(model, x, target)

    def forward(size: int):
        images = tiled(x, size)

        def run() -> None:
            with torch.inference_mode():
                model(images)

        return run

    print(
        f"{args.batch} images 3x{args.size}x{args.size}, {type(model).__name__}, {device}, "
        f"{torch.get_num_threads()} threads, maps of {method.name!r} ({method.direction}), {args.clock} clock\n"
    )
    print(f"{'metric':<30}{'ms/image':>10}{'passes':>8}{'calls':>7}{'floor ms/image':>16}{'ratio':>8}{'whole-batch ratio':>19}")

    def row(label: str, run: Callable[[], object], calls: Counter) -> None:
        # ``calls`` were counted by a run of ``run``: that was its warm-up
        seconds, floor, whole = timed_with_floor(run, calls, forward, args.batch, args.repeats, device, args.clock)
        passes = sum(size * count for size, count in calls.items()) / args.batch
        print(
            f"{label:<30}{seconds / args.batch * 1e3:>10.2f}{passes:>8.0f}{sum(calls.values()):>7}"
            f"{floor / args.batch * 1e3:>16.2f}{seconds / floor:>8.2f}{seconds / whole:>19.2f}"
        )

    runs = [(name, {}) for name in ("deletion-paper", "deletion", "sign-flip", "insertion", "road")]
    runs.append((f"deletion (steps={args.quantus_steps})", {"steps": args.quantus_steps}))
    for label, settings in runs:
        metric = metrics.get(label.split(" ")[0])
        run = lambda: metric(model, x, target, maps, method, **settings)  # noqa: E731
        row(label, run, model_calls(model, run))

    try:
        run = quantus_pixel_flipping(model, x, target, maps, args.quantus_steps)
    except ImportError:
        print("\nquantus not installed: no comparison")
        return
    row(f"quantus PixelFlipping ({args.quantus_steps})", run, model_calls(model, run))


if __name__ == "__main__":
    main()
