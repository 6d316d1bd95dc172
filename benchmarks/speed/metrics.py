"""Speed of the perturbation metrics against their forward-pass floor and quantus.

    python -m benchmarks.speed metrics [--batch 64] [--size 32] [--repeats 3] [--threads 2] [--device cpu]

A perturbation metric is a loop of model calls; everything else (ranking, masking,
imputing, scoring) is overhead. Each metric's floor is its number of forward passes (the
images it sends to the model, counted, divided by the batch size) times the time of one
batched forward of that size; the ratio says how much the overhead costs. quantus's
PixelFlipping runs at the same number of steps as ``deletion`` for comparison. Random
weights: the cost of a pass does not depend on them. Times are the best of ``--repeats``
runs after a warm-up run, and the batched forward is re-timed beside each metric, so a
change in the machine's load between rows does not skew a ratio.
"""

from __future__ import annotations

import warnings
from typing import Callable

import torch
from torch import Tensor, nn

from benchmarks.speed import best_seconds, suite_parser
from signed_saliency import methods, metrics, models


class CountingModel(nn.Module):
    """The model, counting the images it is shown."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.images = 0

    def forward(self, x: Tensor) -> Tensor:
        self.images += x.shape[0]
        return self.model(x)


def quantus_pixel_flipping(
    model: nn.Module, x: Tensor, target: Tensor, maps: Tensor, steps: int
) -> Callable[[], object]:
    import quantus

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
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return metric(model=model, channel_first=True, device=device, batch_size=x.shape[0], **arrays)

    return run


def main(argv: list[str] | None = None) -> None:
    parser = suite_parser("python -m benchmarks.speed metrics", __doc__.splitlines()[0], repeats=3)
    parser.add_argument("--method", default="positive", help="the maps every metric is given")
    parser.add_argument(
        "--quantus-steps",
        type=int,
        default=48,
        help="deletion's steps in the comparison with quantus, whose features_in_step (C*H*W/steps) must divide H*W",
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

    def forward() -> None:
        with torch.inference_mode():
            model(x)

    print(
        f"{args.batch} images 3x{args.size}x{args.size}, {type(model).__name__}, {device}, "
        f"{torch.get_num_threads()} threads, maps of {method.name!r} ({method.direction}), {args.clock} clock\n"
    )
    print(f"{'metric':<30}{'ms/image':>10}{'passes':>8}{'forward ms':>12}{'floor ms/image':>16}{'ratio':>8}")

    def row(label: str, seconds: float, passes: float, forward_seconds: float) -> None:
        floor = passes * forward_seconds
        print(
            f"{label:<30}{seconds / args.batch * 1e3:>10.2f}{passes:>8.0f}{forward_seconds * 1e3:>12.1f}"
            f"{floor / args.batch * 1e3:>16.2f}{seconds / floor:>8.2f}"
        )

    counting = CountingModel(model)
    runs = [(name, {}) for name in ("deletion-paper", "deletion", "sign-flip", "insertion", "road")]
    runs.append((f"deletion (steps={args.quantus_steps})", {"steps": args.quantus_steps}))
    for label, settings in runs:
        metric = metrics.get(label.split(" ")[0])
        counting.images = 0
        metric(counting, x, target, maps, method, **settings)
        seconds = best_seconds(
            lambda: metric(model, x, target, maps, method, **settings), args.repeats, device, args.clock
        )
        row(label, seconds, counting.images / args.batch, best_seconds(forward, args.repeats, device, args.clock))

    try:
        run = quantus_pixel_flipping(model, x, target, maps, args.quantus_steps)
    except ImportError:
        print("\nquantus not installed: no comparison")
        return
    seconds = best_seconds(run, args.repeats, device, args.clock)
    label = f"quantus PixelFlipping ({args.quantus_steps})"
    row(label, seconds, args.quantus_steps, best_seconds(forward, args.repeats, device, args.clock))


if __name__ == "__main__":
    main()
