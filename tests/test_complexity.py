import math

import numpy as np
import pytest
import torch

from signed_saliency import metrics
from signed_saliency.methods.core import Method
from signed_saliency.metrics.complexity import entropy, gini

SIGNED = Method(name="given", fn=lambda model, x, target: None, direction="signed", needs="model")


def _call(name, maps):
    return metrics.get(name)(None, None, None, maps, SIGNED, seed=0).values[""]


def test_gini_by_hand():
    # Gini = sum_i (2i - n - 1) v_(i) / (n sum v), v_(i) the sorted |values|, i from 1.
    values = torch.tensor([[[3.0, 0.0], [-1.0, 2.0]]])
    n, ordered = 4, [0.0, 1.0, 2.0, 3.0]
    expected = sum((2 * (i + 1) - n - 1) * v for i, v in enumerate(ordered)) / (n * sum(ordered))
    torch.testing.assert_close(_call("sparseness", values), torch.tensor([expected]))
    one_pixel = torch.zeros(1, 4, 4)
    one_pixel[0, 1, 2] = -5.0
    torch.testing.assert_close(gini(one_pixel), torch.tensor([1 - 1 / 16]))
    torch.testing.assert_close(gini(torch.full((1, 4, 4), 2.0)), torch.tensor([0.0]))


def test_entropy_by_hand():
    values = torch.tensor([[[1.0, -1.0], [2.0, 0.0]]])
    p = [0.25, 0.25, 0.5]
    torch.testing.assert_close(_call("complexity", values), torch.tensor([-sum(q * math.log(q) for q in p)]))
    torch.testing.assert_close(entropy(torch.ones(1, 4, 4)), torch.tensor([math.log(16)]))


def test_zero_maps_are_undefined_by_design_not_failed():
    assert torch.isnan(gini(torch.zeros(2, 3, 3))).all() and torch.isnan(entropy(torch.zeros(2, 3, 3))).all()
    maps = torch.rand(3, 4, 4)
    maps[1] = 0
    for name in ("sparseness", "complexity"):
        output = metrics.get(name)(None, None, None, maps, SIGNED, seed=0)
        assert output.undefined[""].tolist() == [False, True, False]
        assert output.values[""].isnan().tolist() == [False, True, False]


def test_matches_quantus():
    quantus = pytest.importorskip("quantus")
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 1, 8, 8)).astype(np.float32)
    x = rng.random((3, 3, 8, 8)).astype(np.float32)
    y = np.zeros(3, dtype=int)
    for ours, theirs in [(gini, quantus.Sparseness), (entropy, quantus.Complexity)]:
        expected = theirs(disable_warnings=True, normalise=False)(model=None, x_batch=x, y_batch=y, a_batch=a.copy())
        np.testing.assert_allclose(ours(torch.from_numpy(a[:, 0])).numpy(), expected, atol=1e-5)
