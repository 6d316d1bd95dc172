"""The paper's maps, all computed from one shared :class:`ClassGradients`.

g_q = dS_q/dI per pixel and channel, c the target class; every map reduces channels by a
max. Active and inactive follow the public code (osllogon/positive_active_saliency_maps):
a channel's g_c survives only if it is strictly above (below) g_q of every other class q,
then its absolute value is taken. A sign-split ``gradient-positive`` differs from
``positive``: it splits the sign after the channel reduction, ``positive`` before.

No map is min-max normalised here: maps keep their units, and any normalisation is a
metric's or a plot's explicit choice.
"""

from __future__ import annotations

from torch import Tensor

from signed_saliency.methods.core import ClassGradients, largest_magnitude, max_magnitude, register


@register("gradient", direction="signed", score="logit", family="paper", needs="gradients")
def gradient(grads: ClassGradients) -> Tensor:
    """dS_c/dI reduced over channels to its largest-magnitude value (sign kept)."""
    return largest_magnitude(grads.target)


@register("saliency", direction="magnitude", score="logit", family="paper", needs="gradients")
def saliency(grads: ClassGradients) -> Tensor:
    """Simonyan et al. (2014): max over channels of |dS_c/dI|."""
    return max_magnitude(grads.target)


@register("positive", direction="increase", score="logit", family="paper", needs="gradients")
def positive(grads: ClassGradients) -> Tensor:
    """Max over channels of ReLU(dS_c/dI): brightening these pixels raises S_c."""
    return grads.target.clamp(min=0).amax(dim=1)


@register("negative", direction="decrease", score="logit", family="paper", needs="gradients")
def negative(grads: ClassGradients) -> Tensor:
    """Max over channels of ReLU(-dS_c/dI): darkening these pixels raises S_c."""
    return (-grads.target).clamp(min=0).amax(dim=1)


@register("active", direction="increase", score="margin", family="paper", needs="all-gradients")
def active(grads: ClassGradients) -> Tensor:
    """|dS_c/dI| where g_c > g_q for every class q != c (else 0), max over channels."""
    other_max, _ = grads.require_all_classes()
    return (grads.target.abs() * (grads.target > other_max)).amax(dim=1)


@register("inactive", direction="decrease", score="margin", family="paper", needs="all-gradients")
def inactive(grads: ClassGradients) -> Tensor:
    """|dS_c/dI| where g_c < g_q for every class q != c (else 0), max over channels."""
    _, other_min = grads.require_all_classes()
    return (grads.target.abs() * (grads.target < other_min)).amax(dim=1)
