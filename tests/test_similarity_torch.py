"""The randomisation checks' similarity measures, batched in torch, against the libraries
they reproduce: scipy's Spearman correlation and skimage's SSIM and HOG, on the kinds of
maps a run meets, at CIFAR's and ImageNet's sizes."""

import numpy as np
import pytest
import torch

from signed_saliency.metrics.similarity import _hog_features, _scaled, similarities


def _maps_like_attributions(size: tuple[int, int], seed: int) -> torch.Tensor:
    """Signed, one-sided (mostly zero), blocky (upsampled, so gradients along the axes and
    at the orientation bins' edges, and many ties), constant and zero maps: what the
    measures meet in a run."""
    generator = torch.Generator().manual_seed(seed)
    signed = torch.randn(3, *size, generator=generator)
    coarse = torch.randn(2, 1, 3, 3, generator=generator)
    blocky = torch.nn.functional.interpolate(coarse, size=size, mode="nearest").squeeze(1)
    return torch.cat([signed, signed[:2].clamp(min=0), blocky, torch.full((1, *size), 0.3), torch.zeros(1, *size)])


def _pairs(size, seed=0):
    """Each kind of map against another map of every kind, and against itself."""
    first = _maps_like_attributions(size, seed)
    second = torch.cat([_maps_like_attributions(size, seed + 1)[torch.randperm(len(first), generator=torch.Generator().manual_seed(seed))], first])
    return torch.cat([first, first]), second


def _skimage_ssim(first, second):
    """SSIM as the suite defines it (scaled maps, range [0,1] or [-1,1], NaN for two zero
    maps), computed by skimage one pair at a time."""
    from skimage.metrics import structural_similarity

    side = min(first.shape[1:])
    window = min(7, side if side % 2 else side - 1)
    result = []
    for one, other in zip(_scaled(first).numpy(), _scaled(second).numpy()):
        if not (one.any() or other.any()):
            result.append(np.nan)
            continue
        data_range = 2.0 if min(one.min(), other.min()) < 0 else 1.0
        result.append(structural_similarity(one, other, win_size=window, data_range=data_range))
    return np.array(result)


@pytest.mark.parametrize("size", [(32, 32), (224, 224), (9, 11)])
def test_ssim_equals_skimage(size):
    first, second = _pairs(size)
    ours = similarities(first, second, ("ssim",))["ssim"]
    np.testing.assert_allclose(ours.numpy(), _skimage_ssim(first, second), atol=1e-5, rtol=0)


@pytest.mark.parametrize("size", [(32, 32), (224, 224)])
def test_spearman_equals_scipy_with_ties_and_nan_for_constant_maps(size):
    from scipy.stats import spearmanr

    first, second = _pairs(size)
    ours = similarities(first, second, ("spearman", "spearman-abs"))
    with np.errstate(invalid="ignore"), pytest.warns(Warning):  # scipy warns of the constant maps
        for measure, transform in (("spearman", np.asarray), ("spearman-abs", np.abs)):
            expected = [spearmanr(transform(a.flatten().numpy()), transform(b.flatten().numpy()))[0] for a, b in zip(first, second)]
            np.testing.assert_allclose(ours[measure].numpy(), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("size", [(32, 32), (224, 224), (33, 29), (12, 12), (9, 11)])
def test_batched_hog_matches_skimage_image_by_image(size):
    from skimage.feature import hog

    maps = _scaled(_maps_like_attributions(size, 0))
    cell = max(1, min(8, min(size) // 3))
    expected = np.stack([hog(m.numpy(), pixels_per_cell=(cell, cell), cells_per_block=(3, 3)) for m in maps])
    np.testing.assert_allclose(_hog_features(maps, 8).numpy(), expected, rtol=1e-5, atol=1e-7)


def test_hog_correlation_equals_pearson_of_skimage_features():
    from skimage.feature import hog

    first, second = _pairs((32, 32))
    ours = similarities(first, second, ("hog",))["hog"]
    features = lambda maps: [hog(m, pixels_per_cell=(8, 8), cells_per_block=(3, 3)) for m in _scaled(maps).numpy()]  # noqa: E731
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = [np.corrcoef(a, b)[0, 1] if a.std() and b.std() else np.nan for a, b in zip(features(first), features(second))]
    np.testing.assert_allclose(ours.numpy(), expected, atol=1e-5, rtol=0)
