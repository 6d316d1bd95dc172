"""Every metric runs where its model is.

On any machine: the library's metrics and methods move tensors to the CPU only where the
list below says why (a test of the source, so a new ``.cpu()`` on a hot path fails here
until it is removed or explained). With a GPU: every metric, on a tiny model on cuda,
gives the numbers it gives on the CPU.
"""

import copy
import re
from pathlib import Path

import pytest
import torch

from signed_saliency import methods, metrics
from signed_saliency.datasets.core import GroundTruth

LIBRARY = Path(__file__).resolve().parents[1] / "signed_saliency"
TO_CPU = re.compile(r"\.cpu\(\)|\.numpy\(\)|[\"']cpu[\"']")

# (file, occurrences): why each is not a round trip on a hot path
ALLOWED = {
    "metrics/road.py": (2, "impute() is the NumPy reference the tests use; 'auto' picks the solver by asking "
                        "whether the model is on a CPU"),
    "metrics/road_solvers.py": (5, "solver 'exact' is scipy's SuperLU, a CPU solver by nature (its system is set up "
                                "in NumPy, the stencil's weights once per image size)"),
    "metrics/core.py": (1, "to_cpu (MetricOutput.of): each metric's final per-image values and curves, once per call"),
    "metrics/perturbation.py": (1, "the CPU is the fallback device of a model without tensors"),
    "metrics/quantus_adapter.py": (11, "Quantus takes NumPy batches and calls models and explain_func on NumPy: "
                                   "the adapter converts at that boundary, once per Quantus call"),
    "methods/captum_more.py": (2, "skimage's SLIC superpixels run on NumPy images, once per batch"),
    "metrics/randomisation.py": (2, "fork_rng takes other arguments for a CPU"),
    "methods/controls.py": (2, "the random control's seed is a hash of each image's bytes, once per call"),
}


def test_metrics_and_methods_move_tensors_to_the_cpu_only_where_listed():
    found = {}
    for folder in ("metrics", "methods"):
        for path in sorted((LIBRARY / folder).glob("*.py")):
            count = len(TO_CPU.findall(path.read_text()))
            if count:
                found[f"{folder}/{path.name}"] = count
    assert found == {name: count for name, (count, _) in ALLOWED.items()}


# --- with a GPU -------------------------------------------------------------------------

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _inputs(tiny_cnn):
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(6, 3, 16, 16, generator=generator)
    target = torch.arange(6) % 5
    mask = torch.zeros(6, 16, 16, dtype=torch.bool)
    mask[:, 4:10, 5:11] = True
    truth = GroundTruth(mask=mask, polarity=torch.tensor([1, -1, 1, -1, 1, -1]))
    return x, target, truth


def _on(device, tiny_cnn, x, target, truth, method, metric):
    model = copy.deepcopy(tiny_cnn).to(device).eval()
    x, target = x.to(device), target.to(device)
    maps = method(model, x, target)
    moved = GroundTruth(mask=truth.mask.to(device), polarity=truth.polarity.to(device))
    settings = {"max_layers": 2} if metric.name == "randomisation" else {}
    return maps, metric(model, x, target, maps, method, seed=1, ground_truth=moved, **settings)


@cuda
@pytest.mark.parametrize("name", metrics.names())
def test_every_metric_gives_on_cuda_what_it_gives_on_the_cpu(tiny_cnn, name):
    x, target, truth = _inputs(tiny_cnn)
    method, metric = methods.get("saliency"), metrics.get(name)
    cpu_maps, on_cpu = _on("cpu", tiny_cnn, x, target, truth, method, metric)
    gpu_maps, on_gpu = _on("cuda", tiny_cnn, x, target, truth, method, metric)
    torch.testing.assert_close(gpu_maps.cpu(), cpu_maps, atol=1e-5, rtol=1e-4)
    assert on_gpu.values.keys() == on_cpu.values.keys() and on_gpu.curves.keys() == on_cpu.curves.keys()
    for variant, values in on_cpu.values.items():
        assert on_gpu.values[variant].device.type == "cpu"  # outputs come back as a CPU run's do
        if "accuracy" in variant:  # an argmax may flip where two logits tie within rounding
            assert (on_gpu.values[variant] - values).abs().max() <= 1 / 3
        else:
            torch.testing.assert_close(on_gpu.values[variant], values, atol=1e-4, rtol=1e-4, equal_nan=True)


@cuda
def test_road_solves_on_the_gpu_as_scipy_does_on_the_cpu(tiny_cnn):
    x, target, _ = _inputs(tiny_cnn)
    maps = torch.rand(6, 16, 16, generator=torch.Generator().manual_seed(2))
    method, road = methods.get("saliency"), metrics.get("road")
    on_cpu = road(tiny_cnn.eval(), x, target, maps, method, solver="exact")
    on_gpu = road(copy.deepcopy(tiny_cnn).cuda(), x.cuda(), target.cuda(), maps.cuda(), method)  # auto: cg
    torch.testing.assert_close(on_gpu.curves["morf/probability"].y, on_cpu.curves["morf/probability"].y, atol=1e-4, rtol=0)
