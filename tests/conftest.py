import contextlib
import os
import textwrap

import pytest
import torch

# Two cores here: one torch thread per test process keeps BLAS and torch from fighting.
torch.set_num_threads(int(os.environ.get("SIGNED_SALIENCY_TEST_THREADS", "2")))

from benchmarks.paths import default_data_root  # noqa: E402
from benchmarks.train import write_checkpoint  # noqa: E402
from signed_saliency import methods, models  # noqa: E402
from signed_saliency.models.checkpoints import half_state_dict  # noqa: E402


@pytest.fixture(scope="session")
def data_root():
    """The real data root, or a skip with the reason when this machine has none."""
    root = default_data_root()
    if not (root / "cifar10-jpg").is_dir() and not (root / "imagenette2-224").is_dir():
        pytest.skip(f"no data root at {root} (set SIGNED_SALIENCY_DATA)")
    return root


@pytest.fixture
def tiny_cnn():
    """A small seeded classifier on 3x16x16 images with 5 classes."""
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 8, 3, padding=1, stride=2),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 5),
    )


@pytest.fixture
def batch():
    """Four seeded 3x16x16 images for ``tiny_cnn`` (a test module may define its own)."""
    torch.manual_seed(4)
    return torch.rand(4, 3, 16, 16)


@pytest.fixture
def target():
    """A target class for each image of ``batch``."""
    return torch.tensor([0, 3, 1, 4])


@pytest.fixture
def user_methods():
    """Names registered by a test, removed afterwards so other tests see the stock registry."""
    added = []
    yield added
    for name in added:
        methods.registry.unregister(name)


@pytest.fixture
def imagenet_weights(tmp_path, monkeypatch):
    """``imagenet_weights("resnet18")`` puts seeded stand-ins for torchvision's ImageNet
    weights where a private torch hub cache keeps them, and returns them."""
    from signed_saliency.models import imagenet

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def cache(name: str) -> dict:
        torch.manual_seed(0)
        weights = models.get(name).build(num_classes=10).backbone.state_dict()
        path = imagenet.cached_weights_path(imagenet.PRETRAINED_WEIGHTS[name])
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(weights, path)
        return weights

    return cache


@pytest.fixture
def count_forwards():
    """``with count_forwards(model) as calls:`` records one entry per forward call."""

    @contextlib.contextmanager
    def counting(model):
        calls = []
        handle = model.register_forward_hook(lambda *_: calls.append(1))
        try:
            yield calls
        finally:
            handle.remove()

    return counting


TINY = """
seed = 3
batch_size = 4
methods = ["saliency", "positive"]
metrics = ["deletion", "sparseness"]
examples = 2

[[datasets]]
name = "signed-shapes"
split = "test"
n_images = 8
models = ["cnn"]
options = {{ n = 40 }}
precision = "{precision}"

[settings.deletion]
steps = {steps}
"""


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A cache holding a seeded, untrained signed-shapes CNN, and a tiny config file."""
    return make_workspace(tmp_path, monkeypatch)


def make_workspace(tmp_path, monkeypatch):
    """:func:`workspace` for fixtures of a wider scope, which bring their own monkeypatch."""
    monkeypatch.setenv("SIGNED_SALIENCY_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    model = models.get("cnn").build(num_classes=10)
    manifest = {"dataset": "signed-shapes", "model": "cnn", "num_classes": 10, "image_size": 32, "epochs": 0}
    write_checkpoint(half_state_dict(model), manifest, tmp_path / "cache" / "checkpoints" / "signed-shapes-cnn.pt")

    def config(steps: int = 4, precision: str = "float32") -> str:
        path = tmp_path / f"tiny-{steps}-{precision}.toml"
        path.write_text(textwrap.dedent(TINY.format(steps=steps, precision=precision)))
        return str(path)

    return tmp_path, config
