"""Our perturbation metrics against quantus 0.6, the reference implementations.

quantus flips *channel values*: it broadcasts an (N,1,H,W) map to every channel, sorts
all C*H*W values and flips ``features_in_step`` of them per step. A map constant across
channels with distinct pixel values sorts each pixel's C copies next to each other, so
with ``features_in_step = C * k`` every quantus step flips exactly k whole pixels, which
is what our ``deletion`` does with ``steps = H*W / k``. Its "black" is each image's
minimum, so the baseline is passed as a number (0.0 or 1.0); its ``normalise`` (by the
batch's maximum) and ``abs`` are off; its curve starts after the first step, ours at the
unperturbed image. quantus's ROAD ranks C*H*W values but imputes H*W pixels, so it cannot
run on RGB; its imputation function is compared on RGB directly, and the whole metric on
one-channel images.
"""

import numpy as np
import pytest
import torch

quantus = pytest.importorskip("quantus")

from helpers import given_method  # noqa: E402

from signed_saliency import metrics  # noqa: E402
from signed_saliency.metrics.road import impute  # noqa: E402


@pytest.mark.parametrize("direction,baseline,value", [("increase", "black", 0.0), ("decrease", "white", 1.0)])
def test_deletion_probability_curve_equals_quantus_pixel_flipping(tiny_cnn, direction, baseline, value):
    tiny_cnn.eval()  # quantus refuses a model in training mode
    torch.manual_seed(1)
    n, height, width, steps = 6, 12, 12, 36
    x = torch.rand(n, 3, height, width)
    target = torch.arange(n) % 5
    maps = torch.rand(n, height, width)  # distinct values: both orders agree without tie-breaks
    ours = metrics.get("deletion")(tiny_cnn, x, target, maps, given_method(direction), steps=steps)
    reference = quantus.PixelFlipping(
        features_in_step=3 * height * width // steps,
        abs=False,
        normalise=False,
        perturb_baseline=value,
        disable_warnings=True,
    )
    theirs = reference(
        model=tiny_cnn,
        x_batch=x.numpy(),
        y_batch=target.numpy(),
        a_batch=maps[:, None].numpy(),
        channel_first=True,
        device="cpu",
    )
    curve = ours.curves[f"{baseline}/probability"].y[:, 1:].numpy()
    np.testing.assert_allclose(curve, np.array(theirs), atol=1e-5, rtol=0)


def test_road_imputation_equals_quantus_on_rgb():
    rng = np.random.default_rng(0)
    image = rng.random((3, 9, 7))
    removed = rng.random((9, 7)) < 0.4
    ours = impute(image, removed, noise=0.0, rng=np.random.default_rng(0))
    theirs = quantus.functions.perturb_func.noisy_linear_imputation(image, np.flatnonzero(removed), noise=0.0)
    np.testing.assert_allclose(ours, theirs, atol=1e-10)


def test_road_morf_accuracy_equals_quantus_on_one_channel():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(100, 3)).eval()
    x = torch.rand(24, 1, 10, 10)
    with torch.no_grad():
        target = model(x).argmax(dim=1)
    maps = torch.rand(24, 10, 10)
    percentages = [10, 30, 50, 70, 90]  # p * H*W integral: quantus floors, we round
    ours = metrics.get("road")(
        model, x, target, maps, given_method("increase"), fractions=[p / 100 for p in percentages], noise=0.0
    )
    reference = quantus.ROAD(percentages=percentages, noise=0.0, abs=False, normalise=False, disable_warnings=True)
    theirs = reference(
        model=model, x_batch=x.numpy(), y_batch=target.numpy(), a_batch=maps[:, None].numpy(), channel_first=True
    )
    curve = ours.curves["morf/accuracy"].y.mean(dim=0).numpy()
    np.testing.assert_allclose(curve, [theirs[p] for p in percentages], atol=1e-6)
    assert curve.min() < 1  # the comparison saw predictions change
