import pytest
import torch
from torch import nn

from signed_saliency import methods, metrics
from signed_saliency.methods.core import Method


def _signed_random_method():
    """A random map that claims signs: the registered ``random`` control is a magnitude
    map (uniform in [0,1)), which sign-flip answers with ``best-of-sign`` values, so the
    sign control here is that map centred on 0 and declared signed."""
    if "random" in methods.names():
        control = methods.get("random")

        def random_signs(model, x, target):
            return 2 * control(model, x, target) - 1

    else:

        def random_signs(model, x, target):
            return torch.rand(x.shape[0], *x.shape[2:], generator=torch.Generator().manual_seed(7)) * 2 - 1

    return Method(name="test-random-signs", fn=random_signs, direction="signed")


@pytest.fixture
def linear_model():
    """Logits linear in the pixels, one weight per pixel shared by its channels, so the
    sign of the gradient says exactly which way each pixel moves every logit."""
    torch.manual_seed(0)
    classes, height, width = 4, 12, 12
    per_pixel = torch.randn(classes, 1, height, width).expand(classes, 3, height, width)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * height * width, classes))
    with torch.no_grad():
        model[1].weight.copy_(per_pixel.reshape(classes, -1))
        model[1].bias.zero_()
    return model


def test_sign_flip_rewards_informative_signs(linear_model):
    torch.manual_seed(1)
    x = torch.rand(48, 3, 12, 12)
    target = torch.arange(48) % 4
    metric = metrics.get("sign-flip")
    summary = {}
    chosen = {
        "positive": methods.get("positive"),
        "negative": methods.get("negative"),
        "gradient": methods.get("gradient"),
        "random": _signed_random_method(),
    }
    for name, method in chosen.items():
        maps = method(linear_model, x, target)
        out = metric(linear_model, x, target, maps, method)
        assert set(out.values) == {f"{r}/{s}" for r in ("saturate", "small") for s in ("logit", "margin")}
        assert {key.rsplit("/", 1)[1] for key in out.curves} == {"against", "along", "random"}
        summary[name] = out.values
    for name in ("positive", "negative", "gradient"):
        for regime in ("saturate", "small"):
            # exact for the logit: every moved pixel moves it the claimed way
            assert (summary[name][f"{regime}/logit"] > 0).all()
            assert summary[name][f"{regime}/margin"].mean() > 0
    for regime in ("saturate", "small"):
        for score in ("logit", "margin"):
            informative = summary["gradient"][f"{regime}/{score}"].mean()
            assert abs(summary["random"][f"{regime}/{score}"].mean()) < 0.05 * informative


def test_sign_flip_curves_and_moves(linear_model):
    x = torch.rand(4, 3, 12, 12)
    target = torch.zeros(4, dtype=torch.long)
    method = methods.get("positive")
    maps = method(linear_model, x, target)
    settings = dict(fractions=(0.1, 0.5), regimes=("small",), eps=0.2)
    out = metrics.get("sign-flip")(linear_model, x, target, maps, method, **settings)
    curve = out.curves["small/logit/against"]
    assert torch.allclose(curve.x, torch.tensor([0.0, 0.1, 0.5]))
    assert torch.equal(curve.y[:, 0], torch.zeros(4))
    # a linear logit: moving the top pixels darker by eps changes it by -eps * sum of their weights
    weights = linear_model[1].weight[0].view(3, 12, 12)
    top = maps.flatten(1).argsort(dim=1, descending=True)[:, : round(0.1 * 144)]
    moved = torch.zeros(4, 144, dtype=torch.bool).scatter_(1, top, True).view(4, 1, 12, 12)
    with torch.no_grad():
        expected = (((x - 0.2).clamp(0, 1) - x) * moved * weights).flatten(1).sum(dim=1)
    assert torch.allclose(curve.y[:, 1], expected, atol=1e-5)


@pytest.mark.parametrize("name", ["saliency", "random"])
def test_sign_flip_magnitude_reports_both_directions(tiny_cnn, name):
    if name not in methods.names():
        pytest.skip(f"no {name!r} method registered")
    x = torch.rand(3, 3, 16, 16)
    target = torch.tensor([0, 1, 2])
    method = methods.get(name)
    maps = method(tiny_cnn, x, target)
    out = metrics.get("sign-flip")(tiny_cnn, x, target, maps, method, fractions=(0.05, 0.1))
    assert set(out.values) == {f"{r}/{s}/best-of-sign" for r in ("saturate", "small") for s in ("logit", "margin")}
    assert {key.rsplit("/", 1)[1] for key in out.curves} == {"darker", "brighter", "random-darker", "random-brighter"}
    assert all((value >= 0).all() for value in out.values.values())
