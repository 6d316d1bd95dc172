"""Where and how a model runs: its device, its precision, its evaluation mode, and seeded
random generators. Every other module takes these from here."""

from __future__ import annotations

import contextlib
import copy
import warnings
import weakref
from typing import Iterator

import numpy as np
import torch
from torch import Tensor, nn

from signed_saliency.errors import UserError

PRECISIONS = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def model_device(model: nn.Module, fallback: torch.device) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return fallback


def generator(seed: int) -> torch.Generator:
    # A CPU generator gives the same draws whatever device the model is on.
    return torch.Generator().manual_seed(int(seed))


# model -> {(image shape, parameter shapes): outputs}; weak, so a model is not kept alive
_output_counts: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def output_count(model: nn.Module, x: Tensor) -> int:
    """How many outputs (classes) ``model`` gives for images shaped like ``x``'s, from one
    image's forward pass in eval mode, remembered per model. ``random-logit`` needs the
    count before its gradient pass, and a pass of one image cost 5% of the metric on
    ResNet18; the parameters' shapes are part of the key, so a replaced head is asked anew."""
    key = (tuple(x.shape[1:]), tuple(tuple(p.shape) for p in model.parameters()))
    counts = _output_counts.setdefault(model, {})
    if key not in counts:
        with evaluation_mode(model), torch.no_grad():
            counts[key] = int(model(x[:1]).shape[1])
    return counts[key]


@contextlib.contextmanager
def evaluation_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every submodule in eval mode for the duration, then restore each one's flag.

    A model already in eval mode is left alone: the randomisation checks enter this once
    per gradient pass, and walking ResNet18's modules twice cost 2.5 ms of a 120 ms pass."""
    training = [module for module in model.modules() if module.training]
    if training:
        model.eval()
    try:
        yield model
    finally:
        for module in training:
            module.training = True


class LowPrecisionForward(nn.Module):
    """A copy of ``model`` that runs under autocast to ``dtype`` on channels-last inputs and
    returns float32 logits: for the forward-only passes of the perturbation metrics.

    On a CPU with AMX (and on GPUs) this made ResNet18 at 224 px about 2.5x and the paper
    CNN at 224 px about 5x faster, with deletion AUCs moving by well under the tables'
    precision (``python -m benchmarks.speed precision`` measures both); at 32 px it is slower.
    The copy keeps the model that computes the maps in float32 and its default layout.
    """

    def __init__(self, model: nn.Module, dtype: torch.dtype = torch.bfloat16):
        super().__init__()
        self.model = copy.deepcopy(model).to(memory_format=torch.channels_last)
        self.dtype = dtype

    def forward(self, x: Tensor) -> Tensor:
        with torch.autocast(x.device.type, dtype=self.dtype):
            return self.model(x.contiguous(memory_format=torch.channels_last)).float()


def forward_model(model: nn.Module, precision: str) -> nn.Module:
    """``model`` itself for ``"float32"``, else a :class:`LowPrecisionForward` copy."""
    if precision not in PRECISIONS:
        raise UserError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    if precision == "float32":
        return model
    # torch's own test of the CPU; without native bf16 it is emulated, several times slower
    if model_device(model, torch.device("cpu")).type == "cpu" and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        warnings.warn(f"this CPU has no native bf16: precision {precision!r} will be slower than 'float32'", stacklevel=2)
    return LowPrecisionForward(model, PRECISIONS[precision])


@contextlib.contextmanager
def seeded_random(device: torch.device, seed: int) -> Iterator[None]:
    """torch's and numpy's global random states seeded with ``seed`` for the duration (torch
    on the CPU and on ``device`` if a GPU), then restored: a sampling method's map is
    reproducible and its call leaves the caller's random streams alone. captum's samplers
    draw from both (GradientShap's baselines and path points from numpy, noise from torch),
    and so does Quantus."""
    devices = [device] if device.type == "cuda" else []
    numpy_state = np.random.get_state()
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            np.random.seed(seed)
            yield
    finally:
        np.random.set_state(numpy_state)
