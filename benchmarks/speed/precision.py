"""bf16 against float32 in the perturbation metrics: how much faster, and how far the AUCs move.

    python -m benchmarks.speed precision [--dataset imagenette] [--model cnn] [--batch 32] [--threads 2]

On a trained checkpoint (shipped or cached) and real images, each perturbation metric runs
on the same maps with the model in float32 and with its :class:`LowPrecisionForward` bf16
copy. Printed per metric: the time ratio (float32 / bf16, > 1 means bf16 is faster), and
per variant the mean AUC in each precision and the largest per-image change, so the cost
of a precision can be weighed against the tables' two decimals. Trained weights matter
here: on random weights the argmax that allegiance reads is noise.
"""

from __future__ import annotations

import torch

from benchmarks.config import DatasetRun
from benchmarks.data import load_images
from benchmarks.prepare import load_model
from benchmarks.speed import fastest_seconds, suite_parser
from signed_saliency import datasets, methods, metrics
from signed_saliency.methods.core import predict
from signed_saliency.runtime import forward_model

PERTURBATION_METRICS = [name for name in metrics.names() if metrics.get(name).forward_only]


def main(argv: list[str] | None = None) -> None:
    parser = suite_parser("python -m benchmarks.speed precision", __doc__.splitlines()[0], repeats=1)
    parser.set_defaults(batch=32)
    parser.add_argument("--dataset", default="imagenette")
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--method", default="positive", help="the maps every metric is given")
    parser.add_argument("--metrics", default=",".join(PERTURBATION_METRICS))
    parser.add_argument("--precision", default="bfloat16", help="the precision compared with float32")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    spec = datasets.get(args.dataset)
    images = load_images(args.dataset, spec.evaluation_split)
    # every n-th image: a spread of classes rather than the split's first class
    positions = torch.linspace(0, len(images) - 1, args.batch).long().tolist()
    x = images.floats(positions).to(device)
    run = DatasetRun(name=args.dataset, models=[args.model], precision=args.precision)
    loaded = load_model(run, args.model, spec.num_classes, images.image_size, device, quiet=True)
    target = predict(loaded.module, x)
    method = methods.get(args.method)
    maps = method(loaded.module, x, target)
    low = forward_model(loaded.module, args.precision)

    print(
        f"{args.dataset}/{args.model} ({loaded.checkpoint.name}), {args.batch} images at {images.image_size} px, "
        f"{device}, {torch.get_num_threads()} threads, maps of {method.name!r}; float32 against {args.precision}\n"
    )
    print(f"{'metric':<16}{'variant':<26}{'float32':>9}{args.precision:>10}{'mean diff':>11}{'max |diff|':>12}{'speed-up':>10}")
    for name in args.metrics.split(","):
        metric = metrics.get(name)
        outputs, seconds = {}, {}
        for label, model in (("float32", loaded.module), (args.precision, low)):
            # the call whose output is compared is also the warm-up of the timed ones
            outputs[label] = metric(model, x, target, maps, method, seed=0)
            seconds[label] = fastest_seconds(
                lambda: metric(model, x, target, maps, method, seed=0), args.repeats, device, args.clock
            )
        speedup = f"{seconds['float32'] / seconds[args.precision]:.2f}x"
        for row, (variant, full) in enumerate(outputs["float32"].values.items()):
            low_values = outputs[args.precision].values[variant]
            change = (low_values - full).double()
            print(
                f"{name if row == 0 else '':<16}{variant:<26}{full.double().mean():>9.4f}{low_values.double().mean():>10.4f}"
                f"{change.mean():>+11.4f}{change.abs().max():>12.4f}{speedup if row == 0 else '':>10}"
            )


if __name__ == "__main__":
    main()
