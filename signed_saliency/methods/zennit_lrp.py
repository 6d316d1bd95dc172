"""Layer-wise relevance propagation by zennit (Anders et al. 2021), with rules that hold on ResNets.

zennit's canonizers rewrite the model for the duration of a call and restore it after:
each batch norm is merged into the layer before it, and a torchvision ResNet block's
residual sum becomes a module with its own rule, so relevance flows through both
branches (captum's ``lrp-epsilon`` cannot). On a model with neither, they change nothing.

The output relevance is the target logit S_c (Bach et al. 2015), not zennit's usual
one-hot 1: relevance then sums to about S_c, and a pixel's sign says whether it
contributed to S_c, also when S_c is negative. z+ spreads the dense layer's signed
relevance down with positive weights only, so through a deep enough network an EpsilonPlus
map takes one sign (on the trained CIFAR-10 CNN, every pixel of every map checked): it is
registered without a sign split, whose one side would be empty.
Channels reduce as the other signed maps
do (largest magnitude, sign kept). A module zennit has no rule for (the models'
``Normalize``; ConvNeXt's GELU and LayerNorm) passes the plain gradient. zennit is
imported inside each call: importing this package must not load it.
"""

from __future__ import annotations

import functools

from torch import Tensor, nn
from torch.nn import functional as F

from signed_saliency.methods.core import largest_magnitude, register


def _relevance(composite_name: str, model: nn.Module, x: Tensor, target: Tensor) -> Tensor:
    from zennit import composites
    from zennit.attribution import Gradient
    from zennit.torchvision import ResNetCanonizer

    composite = getattr(composites, composite_name)(canonizers=[ResNetCanonizer()])
    with Gradient(model=model, composite=composite) as attributor:
        _, relevance = attributor(x, lambda logits: logits * F.one_hot(target, logits.shape[1]))
    return largest_magnitude(relevance)


register(
    "lrp-epsilon-plus", direction="signed", family="propagation", library="zennit", split_signs=False,
    description="LRP, zennit's EpsilonPlus: z+ in convolutions, epsilon in dense layers; signed, but one-signed on a deep net, so not split.",
)(functools.partial(_relevance, "EpsilonPlus"))
register(
    "lrp-epsilon-alpha2-beta1", direction="signed", family="propagation", library="zennit",
    description="LRP, zennit's EpsilonAlpha2Beta1: alpha=2, beta=1 in convolutions, epsilon in dense layers; signed.",
)(functools.partial(_relevance, "EpsilonAlpha2Beta1"))
