"""Where and how a model runs: its device, its precision, its evaluation mode, and seeded
random generators. Every other module takes these from here."""

from __future__ import annotations

import contextlib
import copy
import warnings
from typing import Iterator

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


@contextlib.contextmanager
def evaluation_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every submodule in eval mode for the duration, then restore each one's flag."""
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in flags:
            module.training = training


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
