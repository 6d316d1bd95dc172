"""What every perturbation metric shares: ranking pixels, masking them, scoring the result.

A perturbation metric changes some pixels of each image, runs the model on the changed
batch and reads the target class's score. The pieces here are the only copies of:

- :func:`scoring`: model in eval mode, no autograd, everything on the model's device;
- :func:`rank_pixels` / :func:`first_pixels`: pixel orders with seeded random tie-breaks;
- :func:`baseline_image` / :func:`replace_pixels`: what a removed pixel becomes;
- :func:`forward_batches`: model calls over the perturbation steps, grouped or split by memory;
- :func:`class_scores`: probability, logit, margin and allegiance from the logits;
- :func:`normalised_auc` and :func:`default_baselines`.

A map ``(N,H,W)`` scores pixels, and every channel of a pixel moves together.
"""

from __future__ import annotations

import contextlib
from typing import Iterable, Iterator, Optional, Sequence

import torch
from torch import Tensor, nn

from signed_saliency.errors import UserError
from signed_saliency.lazy import lazy_import
from signed_saliency.methods.core import Method
from signed_saliency.runtime import evaluation_mode, model_device

gaussian_blur = lazy_import("torchvision.transforms.functional", "gaussian_blur")

# Input elements per model call: 32 images at 3x224x224, so 64 such images (and their
# activations) take a few GB, while small images are grouped across steps to fill a call.
FORWARD_ELEMENTS = 32 * 3 * 224 * 224
# On a CPU, steps are grouped into calls of at most 64 images at 3x32x32 only: there a
# large call costs more per image, not less (its activations outgrow the caches, and past
# glibc's mmap threshold each call's buffers are fresh pages that fault in). One thread of
# an AMD EPYC, fresh processes: deletion on the CIFAR-10 ResNet18, 64 images, in calls of
# 64 images 26.5 ms per image, of 128 28.1, of ~1,568 (FORWARD_ELEMENTS) 31.7. At 224 px
# two images are past this already, and the paper CNN costs about the same per image in
# calls of 2 to 32.
CPU_GROUP_ELEMENTS = 64 * 3 * 32 * 32

BASELINES = ("black", "white", "mean", "blur")


@contextlib.contextmanager
def scoring(model: nn.Module, *tensors: Tensor) -> Iterator[tuple[Tensor, ...]]:
    """Eval mode (restored afterwards) and inference mode, with ``tensors`` moved to the
    model's device, where every perturbation is built so nothing crosses devices per step."""
    device = model_device(model, tensors[0].device if tensors else torch.device("cpu"))
    with evaluation_mode(model), torch.inference_mode():
        yield tuple(t.to(device) for t in tensors)


def _random_keys(shape: Sequence[int], gen: torch.Generator, device: torch.device) -> Tensor:
    return torch.rand(tuple(shape), generator=gen).to(device)


def rank_pixels(maps: Tensor, gen: torch.Generator, *, descending: bool = True) -> Tensor:
    """Pixel indices ``(N,H*W)`` of each map, by value, ties in a seeded random order.

    Shuffling first and then sorting stably breaks ties (zeros included) at random without
    a second sort key; the draws depend only on ``gen``, not on the device.
    """
    flat = maps.flatten(1)
    shuffle = _random_keys(flat.shape, gen, flat.device).argsort(dim=1)
    order = flat.gather(1, shuffle).argsort(dim=1, descending=descending, stable=True)
    return shuffle.gather(1, order)


def random_ranking(maps: Tensor, gen: torch.Generator) -> Tensor:
    """A seeded random pixel order per image, the control that ignores the map."""
    return _random_keys(maps.flatten(1).shape, gen, maps.device).argsort(dim=1)


def positions(ranking: Tensor) -> Tensor:
    """Inverse of a ranking: each pixel's place in it, ``(N,H*W)``."""
    places = torch.empty_like(ranking)
    steps = torch.arange(ranking.shape[1], device=ranking.device).expand_as(ranking)
    return places.scatter_(1, ranking, steps)


def first_pixels(places: Tensor, count: int | Tensor, height: int, width: int) -> Tensor:
    """Boolean mask ``(N,1,H,W)`` of the first ``count`` pixels of each image's ranking
    (``count`` an int or a per-image ``(N,)`` tensor), given :func:`positions`."""
    if isinstance(count, Tensor):
        count = count.view(-1, 1)
    return (places < count).view(-1, 1, height, width)


def pixel_counts(fractions: Sequence[float], pixels: int) -> list[int]:
    """round(p * pixels) for each fraction, as plain ints (Python's rounding, as the paper)."""
    return [int(round(float(p) * pixels)) for p in fractions]


def replace_pixels(x: Tensor, mask: Tensor, baseline: Tensor) -> Tensor:
    """``x`` with every channel of the masked pixels taken from ``baseline`` (anything
    that broadcasts to ``x``: a scalar, per-channel values, an image)."""
    return torch.where(mask, baseline, x)


def baseline_image(
    x: Tensor,
    name: str,
    *,
    mean: Optional[Sequence[float]] = None,
    blur_kernel: int = 11,
    blur_sigma: float = 5.0,
) -> Tensor:
    """What a deleted pixel becomes: black (0), white (1), the dataset's per-channel
    ``mean``, or the image Gaussian-blurred (kernel ``blur_kernel``, sigma ``blur_sigma``)."""
    if name == "black":
        return x.new_zeros(())
    if name == "white":
        return x.new_ones(())
    if name == "mean":
        if mean is None:
            # A batch mean would make one image's result depend on its batch-mates.
            raise UserError("baseline 'mean' needs the dataset's per-channel mean: set the metric's 'mean'")
        values = torch.as_tensor(mean, dtype=x.dtype, device=x.device).flatten()
        if values.numel() not in (1, x.shape[1]):
            raise UserError(f"'mean' has {values.numel()} values for {x.shape[1]}-channel images")
        return values.view(1, -1, 1, 1)
    if name == "blur":
        return gaussian_blur(x, [blur_kernel, blur_kernel], [blur_sigma, blur_sigma])
    raise UserError(f"unknown baseline {name!r}; valid: {', '.join(BASELINES)}")


def default_baselines(method: Method) -> tuple[str, ...]:
    """The baselines a map's claim implies: an increase map's pixels raise the score when
    bright, so deleting them means darkening (black); a decrease map's the opposite
    (white); magnitude and signed maps claim no single direction, so both."""
    if method.direction == "increase":
        return ("black",)
    if method.direction == "decrease":
        return ("white",)
    return ("black", "white")


def _input_dtype(model: nn.Module) -> Optional[torch.dtype]:
    for tensor in model.parameters():
        if tensor.is_floating_point():
            return tensor.dtype
    return None


def _split_call(model: nn.Module, batch: Tensor, max_elements: int) -> Tensor:
    per_image = max(1, batch[0].numel())
    size = max(1, max_elements // per_image)
    # Perturbations are built in float32 like the maps; a model cast to bf16 or fp16
    # gets its own dtype only at the call, and its logits come back as float32.
    dtype = _input_dtype(model) or batch.dtype
    return torch.cat([model(chunk.to(dtype)).float() for chunk in batch.split(size)])


def forward_batches(
    model: nn.Module, batches: Iterable[Tensor], *, max_elements: int = FORWARD_ELEMENTS
) -> list[Tensor]:
    """Logits of each perturbed batch, in order, in calls of at most ``max_elements`` input
    elements (one image at least).

    Small batches (steps of a small-image batch) are concatenated into one call up to
    ``max_elements``, which keeps an accelerator busy; on a CPU only up to
    :data:`CPU_GROUP_ELEMENTS`, past which calls cost more per image. A batch larger than
    ``max_elements`` is split over several calls. ``batches`` may be a generator, so at
    most one group of perturbed images exists at a time.
    """
    results: list[Tensor] = []
    pending: list[Tensor] = []
    size = 0

    def flush() -> None:
        nonlocal pending, size
        if pending:
            logits = _split_call(model, torch.cat(pending) if len(pending) > 1 else pending[0], max_elements)
            results.extend(logits.split([len(b) for b in pending]))
        pending, size = [], 0

    for batch in batches:
        group_elements = min(max_elements, CPU_GROUP_ELEMENTS) if batch.is_cpu else max_elements
        if pending and size + batch.numel() > group_elements:
            flush()
        pending.append(batch)
        size += batch.numel()
    flush()
    return results


def class_scores(logits: Tensor, target: Tensor, reference: Optional[Tensor] = None) -> dict[str, Tensor]:
    """The target's softmax probability, logit and margin (its logit minus the best other
    logit), and allegiance: 1 where the argmax equals ``reference`` (the unperturbed
    prediction; the target itself when None). Each ``(N,)`` float."""
    logits = logits.float()
    index = target.view(-1, 1)
    logit = logits.gather(1, index).squeeze(1)
    other = logits.scatter(1, index, float("-inf")).amax(dim=1)
    expected = target if reference is None else reference
    return {
        "probability": logits.softmax(dim=1).gather(1, index).squeeze(1),
        "logit": logit,
        "margin": logit - other,
        "allegiance": (logits.argmax(dim=1) == expected).float(),
    }


def stack_scores(per_step: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    """``[{score: (N,)}] * T`` -> ``{score: (N,T)}``."""
    return {name: torch.stack([step[name] for step in per_step], dim=1) for name in per_step[0]}


def normalised_auc(x: Tensor, y: Tensor) -> Tensor:
    """Trapezoid area under each row of ``y`` over ``x``, divided by the x range, so a
    constant curve's area is its value whatever grid was used."""
    x = x.to(y)
    if len(x) < 2:
        return y[..., 0]
    return torch.trapezoid(y, x, dim=-1) / (x[-1] - x[0])


def grid(values: Sequence[float]) -> Tensor:
    return torch.tensor([float(v) for v in values], dtype=torch.float32)

