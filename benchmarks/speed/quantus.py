"""Our metrics and Quantus's, side by side on identical inputs: time per image, floor and agreement.

    python -m benchmarks.speed quantus [--batch 64] [--size 32] [--threads 2] [--device cpu] [--clock cpu]

Each pair runs on the same model (the CIFAR-10 ResNet18 checkpoint when it is there,
random weights otherwise), the same images (the shipped CIFAR-10 sample, resized to
``--size``), the same targets (the model's predictions) and the same maps (``--method``),
under the same thread limits (torch's and BLAS's) and the same steps:

- ``deletion`` (steps = --quantus-steps, black) against PixelFlipping;
- ``road`` (both orders, accuracy and probability) against ROAD (MoRF accuracy only);
- ``randomisation`` (cascading, Spearman, every layer) against MPRT (top-down, Spearman);
- ``random-logit`` (SSIM) against RandomLogit (SSIM, num_classes set);
- ``sparseness`` against Sparseness, ``complexity`` against Complexity.

For each: ms per image on both sides and their ratio (> 1: Quantus slower), the floor and
our time over it, and how well the values agree. The floor is the model calls our side
makes, counted by a run (forward passes, or gradient passes of the method, by batch size:
the randomisation checks' chunks, deletion's steps grouped into calls), each timed on the
unchanged images at the same size, so the ratio is what the metric adds to its passes; the
notes give the same passes as calls of the whole batch beside it. None for the two
map-only measures. Quantus is a reference here, not a dependency of the library; its
defects that the comparison meets are worked around as each row's note says. The fastest
of ``--repeats`` timed calls per side (default one: a Quantus call takes minutes at 224
px), ours after a warm-up call and in turns with its floor, so that a change in the
machine's load reaches both; ``--clock cpu`` counts every thread's CPU time, steadier than
wall time on a machine others load.
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from torch import nn

from benchmarks.speed import fastest_seconds, model_calls, suite_parser, tiled, timed_with_floor
from benchmarks.speed.metrics import quantus_pixel_flipping
from signed_saliency import methods, metrics, models
from signed_saliency.datasets.cifar10 import load_sample
from signed_saliency.metrics import randomisation as randomisation_module
from signed_saliency.models.checkpoints import load_checkpoint

CHECKPOINT = Path(__file__).resolve().parents[2] / "results/paper/checkpoints/cifar10-resnet18.pt"
ROAD_PERCENTAGES = [10, 20, 30, 40, 50, 60, 70, 80, 90]


@dataclass
class Pair:
    name: str
    ours: Callable[[], object]
    theirs: Callable[[], object]
    floor_calls: Callable[[], Counter[int]]  # our model calls by batch size, counted by a run; none for map-only measures
    floor_kind: str  # "forward" or "gradient": what each call is
    agreement: Callable[[object, object], str]
    note: str


def _quiet(fn: Callable[[], object]) -> Callable[[], object]:
    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn()

    return run


class Inputs:
    """The model, images, targets and maps every pair shares, with NumPy copies for Quantus."""

    def __init__(self, args, device: torch.device):
        if CHECKPOINT.exists():
            self.model, _ = load_checkpoint(CHECKPOINT)
            self.model_name = "CIFAR-10 ResNet18 (checkpoint)"
        else:
            torch.manual_seed(0)
            self.model = models.get("resnet18").build(10)
            self.model_name = "ResNet18 (random weights)"
        self.model = self.model.to(device).eval()
        self.x = load_sample(args.size).floats(slice(0, args.batch)).to(device)
        with torch.no_grad():
            self.target = self.model(self.x).argmax(dim=1)
        self.method = methods.get(args.method)
        self.maps = self.method(self.model, self.x, self.target)
        self.device = device
        self.arrays = dict(x_batch=self.x.cpu().numpy(), y_batch=self.target.cpu().numpy(), a_batch=self.maps[:, None].cpu().numpy())

    def explain(self, model: nn.Module, inputs, targets, **_) -> np.ndarray:
        """Quantus's explain_func: our method, through NumPy as Quantus calls it."""
        x = torch.as_tensor(inputs, device=self.device)
        return self.method(model, x, torch.as_tensor(targets, device=self.device)).cpu().numpy()[:, None]


def _max_difference(ours: np.ndarray, theirs: np.ndarray) -> str:
    return f"max |diff| {np.nanmax(np.abs(np.asarray(ours, float) - np.asarray(theirs, float))):.1e}"


def pairs(inputs: Inputs, args) -> list[Pair]:
    import quantus

    model, x, target, maps, method = inputs.model, inputs.x, inputs.target, inputs.maps, inputs.method
    device_name = "cuda" if inputs.device.type == "cuda" else "cpu"
    height, width = maps.shape[-2:]
    metric = lambda name, **settings: metrics.get(name)(model, x, target, maps, method, seed=42, **settings)  # noqa: E731

    def counted(name: str, **settings) -> Callable[[], Counter[int]]:
        return lambda: model_calls(model, lambda: metric(name, **settings))

    # deletion / PixelFlipping
    steps = args.quantus_steps
    pixel_flipping = quantus_pixel_flipping(model, x, target, maps, steps)

    def deletion_agreement(ours, theirs) -> str:
        return _max_difference(ours.curves["black/probability"].y[:, 1:].numpy(), np.array(theirs)) + " (probability curves)"

    # road / ROAD: Quantus ranks C*H*W values but imputes H*W pixels (IndexError on RGB).
    # Wrapped: a_size set to C*H*W before the call, so p% of the values are p% of the
    # pixels (each pixel's C copies sort together), and the value indices mapped to pixels.
    def pixel_imputation(arr, indices, **kwargs):
        return quantus.functions.perturb_func.noisy_linear_imputation(arr, np.unique(np.asarray(indices) % (height * width)), **kwargs)

    def quantus_road():
        road = quantus.ROAD(percentages=ROAD_PERCENTAGES, noise=0.01, abs=False, normalise=False, perturb_func=pixel_imputation, disable_warnings=True)
        road.a_size = x.shape[1] * height * width
        return road(model=model, channel_first=True, device=device_name, batch_size=len(x), **inputs.arrays)

    def road_agreement(ours, theirs) -> str:
        mean_curve = ours.curves["morf/accuracy"].y.mean(dim=0).numpy()
        return _max_difference(mean_curve, [theirs[p] for p in ROAD_PERCENTAGES]) + " (mean MoRF accuracy)"

    # randomisation / MPRT. Quantus re-seeds every layer with seed + 1; for the agreement
    # check (untimed) our layer seeds are made that constant, so both draw the same weights.
    def quantus_mprt():
        mprt = quantus.MPRT(layer_order="top_down", seed=42, abs=False, normalise=False, disable_warnings=True)
        return mprt(model=model, explain_func=inputs.explain, channel_first=True, device=device_name, batch_size=len(x), **inputs.arrays)

    def mprt_agreement(ours, theirs) -> str:
        saved = randomisation_module.layer_seed
        randomisation_module.layer_seed = lambda seed, index: seed + 1
        try:
            same_weights = metric("randomisation", modes=("cascading",), measures=("spearman",))
        finally:
            randomisation_module.layer_seed = saved
        per_layer = np.stack([theirs[k] for k in theirs], axis=1)
        curve = same_weights.curves["cascading/spearman"].y.numpy()
        # Quantus's average skips a key "orig", but its key is "original": it averages the
        # unchanged model in; ours averages the randomised layers only
        return (
            _max_difference(curve, per_layer)
            + f" (per layer, same weights); averages {np.nanmean(curve[:, 1:]):.3f} vs Quantus {np.nanmean(per_layer):.3f} with the original model in"
        )

    # random-logit / RandomLogit: num_classes defaults to 1000; set to the model's 10
    def quantus_random_logit():
        random_logit = quantus.RandomLogit(num_classes=int(model(x[:1]).shape[1]), seed=42, abs=False, normalise=False, disable_warnings=True)
        return random_logit(model=model, explain_func=inputs.explain, channel_first=True, device=device_name, batch_size=len(x), **inputs.arrays)

    def random_logit_agreement(ours, theirs) -> str:
        return (
            f"means {np.nanmean(ours.values['ssim'].numpy()):.3f} vs {np.nanmean(theirs):.3f} "
            "(other classes drawn differently; SSIM's range: ours that of scaled maps, Quantus's the pair's)"
        )

    def map_measure(name: str, cls) -> Pair:
        quantus_metric = cls(abs=True, normalise=False, disable_warnings=True)
        return Pair(
            f"{name} / {cls.__name__}",
            lambda: metric(name),
            lambda: quantus_metric(model=model, channel_first=True, device=device_name, batch_size=len(x), **inputs.arrays),
            Counter,
            "forward",
            lambda ours, theirs: _max_difference(ours.values[""].numpy(), theirs) + " (Quantus adds 1e-7 to every value)",
            "no model: map only",
        )

    return [
        Pair(
            f"deletion ({steps} steps) / PixelFlipping",
            lambda: metric("deletion", steps=steps, baselines=("black",)),
            pixel_flipping,
            counted("deletion", steps=steps, baselines=("black",)),
            "forward",
            deletion_agreement,
            "Quantus's 'black' is each image's minimum: baseline 0.0 passed; its features_in_step check divides H*W "
            f"but it steps over C*H*W ({x.shape[1]}*H*W/{steps} values = H*W/{steps} pixels): the check skipped; "
            "return_auc_per_sample calls np.trapz (removed in NumPy 2): curves compared, not its AUCs",
        ),
        Pair(
            f"road ({args.road_solver}) / ROAD",
            lambda: metric("road", solver=args.road_solver),
            _quiet(quantus_road),
            counted("road", solver=args.road_solver),
            "forward",
            road_agreement,
            "Quantus's ROAD raises IndexError on RGB (ranks C*H*W values, imputes H*W pixels): wrapped; "
            "ours runs MoRF and LeRF (2x its passes), Quantus MoRF only; Quantus floors p*H*W, we round",
        ),
        Pair(
            "randomisation / MPRT",
            lambda: metric("randomisation", modes=("cascading",), measures=("spearman",)),
            _quiet(quantus_mprt),
            counted("randomisation", modes=("cascading",), measures=("spearman",)),
            "gradient",
            mprt_agreement,
            "Quantus re-seeds each layer with one seed; MPRT's average includes the original model ('orig' vs 'original')",
        ),
        Pair(
            "random-logit / RandomLogit",
            lambda: metric("random-logit", measures=("ssim",)),
            _quiet(quantus_random_logit),
            counted("random-logit", measures=("ssim",)),
            "gradient",
            random_logit_agreement,
            "RandomLogit's num_classes defaults to 1000: set to 10",
        ),
        map_measure("sparseness", quantus.Sparseness),
        map_measure("complexity", quantus.Complexity),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = suite_parser("python -m benchmarks.speed quantus", __doc__.splitlines()[0], repeats=1)
    parser.add_argument("--method", default="saliency", help="the maps both sides are given (distinct values: no ties to break)")
    parser.add_argument("--quantus-steps", type=int, default=32, help="deletion's steps: H*W/steps whole pixels per step")
    parser.add_argument("--road-solver", default="auto", help="our road's solver: auto, cg or exact")
    parser.add_argument("--only", nargs="*", help="run only the pairs whose name starts with one of these")
    args = parser.parse_args(argv)
    try:
        import quantus
    except ImportError:
        raise SystemExit("quantus is not installed: `pip install quantus` (a reference for this benchmark only)")

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    with threadpool_limits(args.threads):
        inputs = Inputs(args, device)

        def one_pass(kind: str, size: int) -> Callable[[], object]:
            images, targets = tiled(inputs.x, size), tiled(inputs.target, size)
            if kind == "gradient":
                return lambda: inputs.method(inputs.model, images, targets)

            def forward() -> None:
                with torch.inference_mode():
                    inputs.model(images)

            return forward

        print(
            f"{args.batch} images 3x{args.size}x{args.size}, {inputs.model_name}, {device}, {args.threads} threads "
            f"(torch and BLAS), maps of {inputs.method.name!r}, {args.clock} clock, quantus {quantus.__version__}\n"
        )
        header = f"{'pair':<36}{'ours ms/img':>12}{'quantus':>10}{'ratio':>8}{'floor ms/img':>14}{'ours/floor':>11}"
        print(header)
        notes = []
        for pair in pairs(inputs, args):
            if args.only and not any(pair.name.startswith(prefix) for prefix in args.only):
                continue
            ours_result = pair.ours()  # a warm-up, and the values compared
            calls = pair.floor_calls()
            kind = pair.floor_kind
            ours_seconds, floor, whole = timed_with_floor(
                pair.ours, calls, lambda size: one_pass(kind, size), args.batch, args.repeats, device, args.clock
            )
            theirs_result = []
            theirs_seconds = fastest_seconds(lambda: theirs_result.append(pair.theirs()), args.repeats, device, args.clock)
            per_image = lambda seconds: seconds / args.batch * 1e3  # noqa: E731
            floor_text = f"{per_image(floor):>14.2f}{ours_seconds / floor:>11.2f}" if floor else f"{'-':>14}{'-':>11}"
            print(
                f"{pair.name:<36}{per_image(ours_seconds):>12.2f}{per_image(theirs_seconds):>10.2f}"
                f"{theirs_seconds / ours_seconds:>8.2f}{floor_text}"
            )
            floor_note = ""
            if calls:
                passes = sum(size * count for size, count in calls.items()) / args.batch
                sizes = ", ".join(f"{count} of {size}" for size, count in sorted(calls.items(), reverse=True))
                floor_note = (f"; floor: {passes:.0f} {kind} passes in calls of our sizes ({sizes} images); "
                              f"as passes of {args.batch}: {per_image(whole):.2f} ms/img, ours/that {ours_seconds / whole:.2f}")
            notes.append(f"{pair.name}: {pair.agreement(ours_result, theirs_result[0])}; {pair.note}{floor_note}")
        print("\nratio: Quantus's time over ours. Agreement and Quantus's defects, as handled:")
        for note in notes:
            print(f"- {note}")
