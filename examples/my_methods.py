"""An example plugin: a method of your own, benchmarked beside the paper's.

    python -m benchmarks.run --plugin examples/my_methods.py --methods saliency,gradient-x-contrast

Saliency ranks pixels by how steeply the score changes there (|dS_c/dI|), whatever the
image holds. This method weighs that slope by how much the pixel stands out from its
neighbourhood: sum_c dS_c/dI_c * (I_c - mean of I_c over the 5x5 pixels around it), the
first-order change of S_c if the pixel lost its local detail (became the blur of its
neighbourhood). It is Input x Gradient with a blurred image as the baseline instead of a
black one, so flat regions score zero however steep the gradient: a different ranking
from saliency's, not a monotone transform of it (which would score identically on every
ranking metric).
"""

from torch.nn import functional as F

from signed_saliency.methods import class_gradients, register

NEIGHBOURHOOD = 5  # pixels per side of the local mean


@register("gradient-x-contrast", direction="magnitude", score="logit", family="user", needs="model")
def gradient_x_contrast(model, x, target):
    """|sum over channels of dS_c/dI * (I - its 5x5 local mean)|: the score's change if each pixel lost its detail."""
    gradient = class_gradients(model, x, target).target
    padded = F.pad(x, [NEIGHBOURHOOD // 2] * 4, mode="replicate")
    local_mean = F.avg_pool2d(padded, NEIGHBOURHOOD, stride=1)
    return (gradient * (x - local_mean)).sum(dim=1).abs()
