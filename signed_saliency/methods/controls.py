"""Controls that know nothing of the model: what a metric should not reward.

``random`` tells how a metric scores noise; ``edge`` how it scores plain image structure,
which model-insensitive maps (Adebayo et al. 2018) resemble.
"""

from __future__ import annotations

import hashlib

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from signed_saliency.methods.core import register

RANDOM_SEED = 0
# ITU-R BT.601 luma, the grey level of an RGB image.
LUMA = (0.299, 0.587, 0.114)


def _image_seed(image: Tensor, seed: int) -> int:
    digest = hashlib.blake2b(image.detach().float().cpu().numpy().tobytes(), digest_size=8, key=str(seed).encode())
    return int.from_bytes(digest.digest(), "little") & (2**63 - 1)


@register("random", direction="magnitude", score="logit", family="control", needs="model")
def random(model: nn.Module, x: Tensor, target: Tensor, *, seed: int = RANDOM_SEED) -> Tensor:
    """Uniform noise in [0, 1) seeded by each image's content: one image, one map, in any batch."""
    height, width = x.shape[-2:]
    maps = [
        torch.rand(height, width, generator=torch.Generator().manual_seed(_image_seed(image, seed)))
        for image in x
    ]
    return torch.stack(maps).to(x.device)


def grey(x: Tensor) -> Tensor:
    """(N,1,H,W) grey level: BT.601 luma for RGB, the channel mean otherwise."""
    if x.shape[1] == 3:
        return (x * x.new_tensor(LUMA).view(1, 3, 1, 1)).sum(dim=1, keepdim=True)
    return x.mean(dim=1, keepdim=True)


@register("edge", direction="magnitude", score="logit", family="control", needs="model")
def edge(model: nn.Module, x: Tensor, target: Tensor) -> Tensor:
    """Sobel gradient magnitude of the grey level (replicated borders), model-independent."""
    sobel_x = x.new_tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    kernels = torch.stack([sobel_x, sobel_x.T])[:, None]
    padded = F.pad(grey(x), (1, 1, 1, 1), mode="replicate")
    gx, gy = F.conv2d(padded, kernels).unbind(dim=1)
    return torch.sqrt(gx.square() + gy.square())
