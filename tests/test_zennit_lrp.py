"""zennit's LRP composites against direct calls of zennit, and what they do on ResNets."""

from pathlib import Path

import pytest
import torch
from torch.nn import functional as F
from zennit.attribution import Gradient
from zennit.composites import EpsilonAlpha2Beta1, EpsilonPlus
from zennit.torchvision import ResNetCanonizer

from signed_saliency import datasets, methods, models
from signed_saliency.methods.core import largest_magnitude, predict
from signed_saliency.models.checkpoints import load_checkpoint

COMPOSITES = {"lrp-epsilon-plus": EpsilonPlus, "lrp-epsilon-alpha2-beta1": EpsilonAlpha2Beta1}


def zennits(model, composite, x, target):
    with Gradient(model=model, composite=composite(canonizers=[ResNetCanonizer()])) as attributor:
        return attributor(x, lambda logits: logits * F.one_hot(target, logits.shape[1]))[1]


@pytest.mark.parametrize("name", COMPOSITES)
def test_lrp_is_zennits_composite_from_the_target_logit(tiny_cnn, batch, target, name):
    ours = methods.get(name)(tiny_cnn, batch, target)
    relevance = zennits(tiny_cnn, COMPOSITES[name], batch, target)
    torch.testing.assert_close(ours, largest_magnitude(relevance))
    # the output relevance is S_c, not zennit's usual 1 (relevance is linear in it)
    with Gradient(model=tiny_cnn, composite=COMPOSITES[name](canonizers=[ResNetCanonizer()])) as attributor:
        from_one = attributor(batch, F.one_hot(target, 5).float())[1]
    with torch.no_grad():
        logits = tiny_cnn(batch).gather(1, target[:, None])[:, 0]
    assert (logits < 0).any() and (logits > 0).any()
    torch.testing.assert_close(relevance, from_one * logits.view(-1, 1, 1, 1))


def test_lrp_on_resnet18_flows_through_the_skip_connections_and_restores_the_model():
    torch.manual_seed(0)
    model = models.get("resnet18").build(10).eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(1, 3, 32, 32)
    target = torch.tensor([1])
    ours = methods.get("lrp-epsilon-plus")(model, x, target)
    assert ours.shape == (1, 32, 32) and torch.isfinite(ours).all()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items()), "batch norms left merged"
    # without the canonizer the residual sums get no rule: a different map
    with Gradient(model=model, composite=EpsilonPlus()) as attributor:
        plain = attributor(x, lambda logits: logits * F.one_hot(target, 10))[1]
    assert not torch.allclose(ours, largest_magnitude(plain))


def test_epsilon_plus_maps_of_a_trained_cnn_have_one_sign_so_they_are_not_split():
    model, _ = load_checkpoint(Path(__file__).resolve().parents[1] / "results/paper/checkpoints/cifar10-cnn.pt")
    x = datasets.get("cifar10").load(split="sample").floats(slice(0, 4))
    for target in (None, (predict(model, x) + 1) % 10):  # the predicted class, then another
        relevance = methods.get("lrp-epsilon-plus")(model, x, target).flatten(1)
        assert ((relevance >= 0).all(dim=1) | (relevance <= 0).all(dim=1)).all()
    assert "lrp-epsilon-plus-positive" not in methods.names() and "lrp-epsilon-alpha2-beta1-positive" in methods.names()
