"""Methods computed by other packages: what they declare, their versions, a missing package,
lazy imports, and every one on the shipped CIFAR-10 CNN."""

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from signed_saliency import datasets, methods
from signed_saliency.errors import UserError
from signed_saliency.models.checkpoints import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]

# name: (library, direction, family); all explain the target logit
LIBRARY_METHODS = {
    "deeplift": ("captum", "signed", "propagation"),
    "deeplift-shap": ("captum", "signed", "propagation"),
    "gradient-shap": ("captum", "signed", "gradient"),
    "occlusion": ("captum", "signed", "perturbation"),
    "feature-ablation": ("captum", "signed", "perturbation"),
    "lime": ("captum", "signed", "surrogate"),
    "kernel-shap": ("captum", "signed", "surrogate"),
    "deconvolution": ("captum", "magnitude", "propagation"),
    "guided-grad-cam": ("captum", "magnitude", "propagation"),
    "lrp-epsilon": ("captum", "signed", "propagation"),
    "smoothgrad-squared": ("captum", "magnitude", "gradient"),
    "vargrad": ("captum", "magnitude", "gradient"),
    "grad-cam-plus-plus": ("grad-cam", "magnitude", "cam"),
    "xgrad-cam": ("grad-cam", "magnitude", "cam"),
    "layer-cam": ("grad-cam", "magnitude", "cam"),
    "eigen-cam": ("grad-cam", "magnitude", "cam"),
    "score-cam": ("grad-cam", "magnitude", "cam"),
    "lrp-epsilon-plus": ("zennit", "signed", "propagation"),
    "lrp-epsilon-alpha2-beta1": ("zennit", "signed", "propagation"),
}
SLOW = {"lime", "kernel-shap", "score-cam"}
# fewer samples and patches than the defaults: the test checks shapes and values, not quality
LIGHTER_SETTINGS = {"lime": {"samples": 20}, "kernel-shap": {"samples": 20}, "gradient-shap": {"samples": 4},
                    "smoothgrad-squared": {"samples": 4}, "vargrad": {"samples": 4}, "occlusion": {"patch_fraction": 1 / 4}}


def test_library_methods_declare_their_library_claims_and_cost():
    for name, (library, direction, family) in LIBRARY_METHODS.items():
        method = methods.get(name)
        assert (method.library, method.direction, method.score, method.family, method.needs) == (
            library, direction, "logit", family, "model"
        ), name
        assert (method.cost == "slow") == (name in SLOW), name
    assert len([m for m in methods.registry if m.parent is None]) >= 25


def test_quick_names_leave_out_slow_methods_and_their_sign_splits():
    quick = methods.quick_names()
    assert not {"lime", "lime-positive", "lime-negative", "kernel-shap-negative", "score-cam"} & set(quick)
    assert {"gradient", "deeplift", "deeplift-positive", "grad-cam-plus-plus"} <= set(quick)
    assert methods.get("lime-negative").cost == "slow" and methods.get("lime-negative").library == "captum"
    assert quick == [n for n in methods.names() if methods.get(n).cost == "quick"]


def test_a_cost_must_be_quick_or_slow():
    with pytest.raises(UserError, match="cost must be one of"):
        methods.Method(name="x", fn=lambda m, x, t: x, direction="magnitude", cost="glacial")


def test_library_versions_are_the_installed_packages():
    versions = methods.library_versions()
    assert versions == {
        library: importlib.metadata.version(library) for library in ("captum", "grad-cam", "zennit")
    }
    assert methods.library_versions(["gradient", "layer-cam"]) == {"grad-cam": importlib.metadata.version("grad-cam")}


def test_a_missing_library_is_a_one_line_error_on_use_not_on_registration(tiny_cnn, user_methods):
    @methods.register("test-absent", direction="signed", family="extension", library="no-such-attribution-package")
    def absent(model, x, target):
        """Needs a package that is not installed."""
        import no_such_attribution_package  # noqa: F401

    user_methods.append("test-absent")
    assert methods.library_versions(["test-absent"]) == {"no-such-attribution-package": None}
    with pytest.raises(UserError, match=r"^method 'test-absent-negative' needs the no-such-attribution-package "
                                        r"package: pip install no-such-attribution-package$"):
        methods.get("test-absent-negative")(tiny_cnn, torch.rand(1, 3, 16, 16))


def test_importing_the_library_loads_neither_zennit_nor_grad_cam():
    code = "import sys, signed_saliency; print(sorted({'zennit', 'pytorch_grad_cam'} & set(sys.modules)))"
    output = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert output.stdout.strip() == "[]"


def test_every_library_method_runs_on_the_shipped_cifar10_cnn():
    model, _ = load_checkpoint(ROOT / "results/paper/checkpoints/cifar10-cnn.pt", {"dataset": "cifar10"})
    x = datasets.get("cifar10").load(split="sample").floats(slice(0, 2))
    chosen = [methods.get(name).configure(**LIGHTER_SETTINGS.get(name, {})) for name in LIBRARY_METHODS]
    maps = methods.explain(model, x, None, chosen)
    for name, value in maps.items():
        assert value.shape == (2, 32, 32) and value.dtype == torch.float32, name
        assert torch.isfinite(value).all() and value.abs().amax() > 0, name
        if methods.get(name).direction == "magnitude":
            assert (value >= 0).all(), name
