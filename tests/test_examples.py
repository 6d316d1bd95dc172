"""The README's example plugin registers, runs, and ranks pixels differently from saliency."""

import sys
from pathlib import Path

import pytest
import torch

from benchmarks.plugins import import_plugins
from signed_saliency import datasets, evaluate, methods
from signed_saliency.models.checkpoints import load_checkpoint

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def example_plugin():
    import_plugins([str(ROOT / "examples" / "my_methods.py")])
    yield methods.get("gradient-x-contrast")
    methods.registry.unregister("gradient-x-contrast")
    del sys.modules["my_methods"]


def rank_correlation(a, b):
    """Per-image Spearman correlation of two (N,H,W) maps' pixel rankings."""
    ranks = [m.flatten(1).argsort(dim=1).argsort(dim=1).double() for m in (a, b)]
    ra, rb = (r - r.mean(dim=1, keepdim=True) for r in ranks)
    return (ra * rb).sum(dim=1) / (ra.norm(dim=1) * rb.norm(dim=1))


def test_the_example_method_registers_runs_and_ranks_unlike_saliency(example_plugin):
    model, _ = load_checkpoint(ROOT / "results" / "paper" / "checkpoints" / "cifar10-cnn")
    sample = datasets.get("cifar10").load("sample")
    x = sample.floats(torch.randperm(len(sample), generator=torch.Generator().manual_seed(0))[:8])
    maps = methods.explain(model, x, None, ["saliency", "gradient-x-contrast"])
    # a monotone transform of saliency (the old example, its square) ranks pixels as it does
    assert torch.allclose(rank_correlation(maps["saliency"], maps["saliency"] ** 2), torch.ones(8, dtype=torch.float64))
    correlation = rank_correlation(maps["saliency"], maps["gradient-x-contrast"])
    assert correlation.max() < 0.9 and correlation.mean() < 0.8
    top = [set(m.flatten(1).topk(100).indices[i].tolist()) for m in maps.values() for i in range(8)]
    overlap = [len(top[i] & top[8 + i]) / 100 for i in range(8)]
    assert max(overlap) < 0.75

    scores = evaluate(model, x, methods=["saliency", "gradient-x-contrast"], metrics=["deletion"])
    means = scores[scores["variant"] == "black/probability"].groupby("method")["value"].mean()
    assert abs(means["saliency"] - means["gradient-x-contrast"]) > 1e-3
    assert example_plugin.family == "user" and example_plugin.direction == "magnitude"
