"""Speed of the gradient methods against the paper code's way, on the CIFAR-10 ResNet18.

    python -m benchmarks.speed methods [--batch 64] [--repeats 5] [--threads 2] [--device cpu] [--clock wall]

Random weights: the cost of a pass does not depend on them. Each row is the median of
``--repeats`` timed runs after one warm-up run.
"""

from __future__ import annotations

import statistics
from typing import Callable

import torch
from torch import Tensor, nn

from benchmarks.speed import seconds_of, suite_parser
from signed_saliency import methods, models

PAPER_MAPS = ("saliency", "positive", "negative", "active", "inactive")


def paper_way_active(model: nn.Module, images: Tensor) -> Tensor:
    """The active map as the public code computes it (osllogon/positive_active_saliency_maps,
    ActiveSaliencyMap.explain): a forward and a full ``.backward()`` (parameters
    included) for the predicted class, two more forwards without grad for the class
    count and index, then a fresh forward and backward per class, masking as it goes."""
    inputs = images.clone().requires_grad_(True)
    outputs = model(inputs)
    model.zero_grad()
    outputs.max(dim=1).values.sum().backward()
    saliency_maps = inputs.grad
    with torch.no_grad():
        number_of_classes = model(images).size(1)
        class_indexes = model(images).argmax(dim=1).reshape(-1, 1, 1, 1)
    for i in range(number_of_classes):
        inputs = images.clone().requires_grad_(True)
        outputs = model(inputs)
        model.zero_grad()
        outputs[:, i].sum().backward()
        mask = (class_indexes != i) & (saliency_maps <= inputs.grad)
        saliency_maps[mask] = 0
    model.zero_grad()
    return saliency_maps.abs().amax(dim=1)


def batched_all_class(model: nn.Module, x: Tensor, chunk: int) -> list[Tensor]:
    """Alternative measured against the kept loop: one ``is_grads_batched`` backward per
    chunk of classes (a vmap over the backward graph)."""
    inputs = x.clone().requires_grad_(True)
    logits = model(inputs)
    num_classes = logits.shape[1]
    eye = torch.eye(num_classes, device=x.device)
    grads = []
    for start in range(0, num_classes, chunk):
        cotangents = eye[start : start + chunk, None, :].expand(-1, x.shape[0], -1)
        (grad,) = torch.autograd.grad(
            logits, inputs, cotangents, retain_graph=start + chunk < num_classes, is_grads_batched=True
        )
        grads.append(grad)
    return grads


def func_all_class(model: nn.Module, x: Tensor) -> Tensor:
    """Alternative measured against the kept loop: ``torch.func.vjp`` vmapped over one-hot cotangents."""
    logits, vjp_fn = torch.func.vjp(model, x)
    eye = torch.eye(logits.shape[1], device=x.device)
    (grads,) = torch.func.vmap(vjp_fn)(eye[:, None, :].expand(-1, x.shape[0], -1))
    return grads


def median_seconds(
    cases: dict[str, Callable[[], object]], repeats: int, device: torch.device, clock: str
) -> dict[str, float]:
    """Median time of each case over ``repeats`` rounds after a warm-up round. Rounds run
    every case in turn, so a load change on a shared machine hits every case alike."""
    for fn in cases.values():
        seconds_of(fn, device, clock)
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            times[name].append(seconds_of(fn, device, clock))
    return {name: statistics.median(values) for name, values in times.items()}


def main(argv: list[str] | None = None) -> None:
    parser = suite_parser("python -m benchmarks.speed methods", __doc__.splitlines()[0], repeats=5)
    parser.add_argument("--classes", type=int, default=10)
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    model = models.get("resnet18").build(args.classes).to(device).eval()
    x = torch.rand(args.batch, 3, args.size, args.size, device=device)

    all_class = "all-class gradients (kept: loop on one graph)"
    five, active, paper_way = "five paper maps, one explain", "active alone", "paper code's way, active alone"
    cases = {
        "saliency (single class)": lambda: methods.get("saliency")(model, x),
        all_class: lambda: methods.class_gradients(model, x, all_classes=True),
        "all-class gradients, is_grads_batched chunks of 5": lambda: batched_all_class(model, x, 5),
        "all-class gradients, is_grads_batched all at once": lambda: batched_all_class(model, x, args.classes),
        "all-class gradients, torch.func vjp + vmap": lambda: func_all_class(model, x),
        five: lambda: methods.explain(model, x, None, PAPER_MAPS),
        active: lambda: methods.get("active")(model, x),
        paper_way: lambda: paper_way_active(model, x),
    }
    rows = median_seconds(cases, args.repeats, device, args.clock)
    print(
        f"resnet18, {args.classes} classes, batch {args.batch} of 3x{args.size}x{args.size}, {device}, "
        f"{args.threads} threads, {args.clock} time, median of {args.repeats} interleaved rounds"
    )
    width = max(map(len, rows))
    for name, seconds in rows.items():
        print(f"  {name:<{width}}  {seconds * 1000:9.1f} ms")
    print(f"  five maps / all-class gradients: {rows[five] / rows[all_class]:.2f}  (target <= 1.1)")
    print(f"  active / paper code's way:       {rows[active] / rows[paper_way]:.2f}  (target <= 0.4)")
