"""One rule makes every signed method's <name>-positive and <name>-negative."""


import pytest
import torch

from signed_saliency import methods
from signed_saliency.errors import UserError
from signed_saliency.methods.core import Method, sign_split


@pytest.fixture
def batch():
    torch.manual_seed(6)
    return torch.rand(3, 3, 16, 16)


def split_parents():
    """The signed methods registered with their sign split (all but those that decline it)."""
    return [m for m in methods.registry if m.split_signs]


def test_every_signed_method_has_both_variants_with_the_right_claims():
    signed = {m.name for m in split_parents()}
    assert {"gradient", "integrated-gradients", "smoothgrad", "input-x-gradient"} <= signed
    for parent in split_parents():
        for suffix, direction in (("positive", "increase"), ("negative", "decrease")):
            variant = methods.get(f"{parent.name}-{suffix}")
            assert variant.parent is parent and variant.direction == direction
            assert variant.family == "sign-split" and variant.score == parent.score and variant.needs == parent.needs
    split = [m for m in methods.registry if m.family == "sign-split"]
    assert len(split) == 2 * len(signed) and all(m.parent.direction == "signed" for m in split)


def test_variants_are_the_relu_of_the_signed_map_and_of_its_negation(tiny_cnn, batch):
    # the slow ones (sampled surrogates) take seconds each and split by the same rule
    quick = [m for m in split_parents() if m.cost == "quick"]
    names = [name for m in quick for name in (m.name, f"{m.name}-positive", f"{m.name}-negative")]
    maps = methods.explain(tiny_cnn, batch, None, names)
    for parent in quick:
        signed = maps[parent.name]
        assert (signed > 0).any() and (signed < 0).any(), parent.name
        assert torch.equal(maps[f"{parent.name}-positive"], signed.clamp(min=0))
        assert torch.equal(maps[f"{parent.name}-negative"], (-signed).clamp(min=0))
        alone = methods.get(f"{parent.name}-negative")(tiny_cnn, batch)
        torch.testing.assert_close(alone, maps[f"{parent.name}-negative"])


@pytest.mark.parametrize("parent", ["gradient", "integrated-gradients", "smoothgrad", "input-x-gradient"])
def test_variants_asked_with_their_parent_reuse_its_computation(count_forwards, tiny_cnn, batch, parent):
    with count_forwards(tiny_cnn) as alone:
        methods.explain(tiny_cnn, batch, None, [parent])
    with count_forwards(tiny_cnn) as together:
        methods.explain(tiny_cnn, batch, None, [parent, f"{parent}-positive", f"{parent}-negative"])
    assert len(together) == len(alone)


def test_configuring_a_variant_configures_its_parent(tiny_cnn, batch):
    variant = methods.get("integrated-gradients-positive").configure(n_steps=3)
    expected = methods.get("integrated-gradients").configure(n_steps=3)(tiny_cnn, batch).clamp(min=0)
    torch.testing.assert_close(variant(tiny_cnn, batch), expected)


def test_the_rule_applies_to_methods_added_after_import_and_can_be_declined():
    made = []
    try:
        methods.register("test-sign-default", direction="signed", family="extension", needs="gradients")(
            lambda grads: grads.target[:, 0]
        )
        made.append("test-sign-default")
        assert methods.names()[-3:] == ["test-sign-default", "test-sign-default-positive", "test-sign-default-negative"]
        methods.register("test-sign-off", direction="signed", family="extension", needs="gradients", split_signs=False)(
            lambda grads: grads.target[:, 0]
        )
        made.append("test-sign-off")
        assert "test-sign-off-positive" not in methods.names()
        entry = Method(
            name="test-sign-added", fn=lambda g: g.target[:, 0], direction="signed", needs="gradients", split_signs=True
        )
        methods.registry.add(entry.name, entry)
        made.append(entry.name)
        assert "test-sign-added-negative" in methods.names()
    finally:
        for name in made:
            methods.registry.unregister(name)
    assert not any(name.startswith("test-sign") for name in methods.names())


def test_only_signed_maps_can_be_split():
    with pytest.raises(UserError, match="signed"):
        methods.register("test-sign-magnitude", direction="magnitude", needs="gradients", split_signs=True)(
            lambda grads: grads.target[:, 0]
        )
    assert "test-sign-magnitude" not in methods.names()
    assert all(not m.split_signs for m in methods.registry if m.direction != "signed")


def test_sign_split_is_a_pure_function_of_the_parent():
    parent = methods.get("gradient")
    positive, negative = sign_split(parent)
    assert (positive.name, negative.name) == ("gradient-positive", "gradient-negative")
    assert positive == methods.get("gradient-positive") and negative == methods.get("gradient-negative")


def test_a_variant_name_already_taken_refuses_the_whole_method():
    methods.register("test-clash-positive", direction="magnitude", needs="gradients")(lambda g: g.target[:, 0])
    try:
        with pytest.raises(UserError, match="test-clash-positive"):
            methods.register("test-clash", direction="signed", needs="gradients")(lambda g: g.target[:, 0])
        assert "test-clash" not in methods.names()
    finally:
        methods.registry.unregister("test-clash-positive")


@pytest.mark.parametrize("key, value, valid", [
    ("direction", "upwards", "increase, decrease, magnitude, signed"),
    ("score", "probability", "logit, margin"),
    ("needs", "hessian", "gradients, all-gradients, model"),
    ("family", "mine", ", ".join(methods.core.FAMILIES)),
])
def test_a_bad_claim_is_refused_at_registration_in_one_line(key, value, valid):
    declared = {"direction": "increase", "needs": "gradients", key: value}
    with pytest.raises(UserError) as error:
        methods.register("test-bad-claim", **declared)(lambda grads: grads.target[:, 0])
    assert str(error.value) == f"method 'test-bad-claim': {key} must be one of {valid}, got {value!r}"
    assert "test-bad-claim" not in methods.names()
