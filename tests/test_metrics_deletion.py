import math

import pytest
import torch

from helpers import Recorder, given_method

from signed_saliency import metrics
from signed_saliency.errors import UserError
from signed_saliency.metrics.deletion import PAPER_FRACTIONS, paper_masks


HAND_MAP = torch.tensor(
    [[0.0, 0.0, 1.0, 2.0], [2.0, 2.0, 3.0, 4.0], [4.0, 5.0, 6.0, 7.0], [8.0, 8.0, 8.0, 9.0]]
)


def test_paper_rule_on_a_hand_built_map():
    # sorted: 9 8 8 8 7 6 5 4 4 3 2 2 2 1 0 0; value = sorted[round(p*16)]; delete > value and != 0
    fractions = (0.0, 0.05, 0.2, 0.3, 0.5, 0.9)
    masks = paper_masks(HAND_MAP[None], fractions)[:, 0]
    expected = [
        HAND_MAP > 9,  # p=0: index 0 is the maximum, nothing is above it
        HAND_MAP > 8,  # p=.05: round(.8)=1 -> 8: only the 9
        HAND_MAP > 8,  # p=.2: round(3.2)=3 -> still 8: tied pixels at the threshold stay
        HAND_MAP > 6,  # p=.3: round(4.8)=5 -> 6
        HAND_MAP > 4,  # p=.5: round(8.0)=8 -> 4 (7 pixels, not 8)
        HAND_MAP > 0,  # p=.9: round(14.4)=14 -> 0: everything but the zeros
    ]
    for mask, want in zip(masks, expected):
        assert torch.equal(mask, want)
    # min-max normalisation: an offset map deletes the same pixels, its minimum never
    shifted = paper_masks((HAND_MAP + 5)[None], fractions)[:, 0]
    assert torch.equal(shifted, masks)
    assert int(masks[-1].sum()) == 14


def test_paper_constant_map_deletes_nothing():
    masks = paper_masks(torch.zeros(2, 4, 4), PAPER_FRACTIONS)
    assert not masks.any()


@pytest.mark.parametrize("direction,expected", [("increase", {"black": 0.0}), ("decrease", {"white": 1.0})])
def test_deletion_paper_sets_every_channel_to_the_baseline(direction, expected):
    torch.manual_seed(0)
    x = torch.rand(1, 3, 4, 4) * 0.8 + 0.1
    model = Recorder()
    fractions = (0.0, 0.05, 0.3, 0.9)
    target = torch.zeros(1, dtype=torch.long)
    out = metrics.get("deletion-paper")(model, x, target, HAND_MAP[None], given_method(direction), fractions=fractions)
    assert set(out.values) == set(expected)
    (name, value), = expected.items()
    steps = model.images(1)[1:, 0]  # after the unperturbed reference
    for step, mask in zip(steps, paper_masks(HAND_MAP[None], fractions)[:, 0]):
        assert torch.all(step[:, mask] == value)
        assert torch.equal(step[:, ~mask], x[0][:, ~mask])
    curve = out.curves[name]
    assert curve.y.shape == (1, len(fractions))
    assert torch.allclose(out.values[name], torch.trapezoid(curve.y, curve.x, dim=1))


def test_deletion_paper_variants_and_auc():
    torch.manual_seed(0)
    x = torch.rand(3, 3, 8, 8)
    maps = torch.zeros(3, 8, 8)  # nothing deleted: allegiance 1 throughout, AUC 0.9
    for direction, variants in [("magnitude", {"black", "white"}), ("signed", {"black", "white"})]:
        out = metrics.get("deletion-paper")(Recorder(), x, torch.zeros(3, dtype=torch.long), maps, given_method(direction))
        assert set(out.values) == variants
        for value in out.values.values():
            assert torch.allclose(value, torch.full((3,), 0.9))


def test_deletion_removes_exactly_round_p_hw_pixels_in_map_order():
    torch.manual_seed(0)
    n, steps = 2, 5
    x = torch.rand(n, 3, 6, 6) * 0.8 + 0.1
    maps = torch.randn(n, 6, 6)
    model = Recorder()
    target = torch.zeros(n, dtype=torch.long)
    out = metrics.get("deletion")(model, x, target, maps, given_method("signed"), steps=steps)
    seen = model.images(n)[1:]  # black steps then white steps, after the unperturbed pass
    assert seen.shape[0] == 2 * steps
    # a signed map claims its positive pixels raise the score when brightened: darkening
    # (black) deletes the most positive first, brightening (white) the most negative
    orders = [maps.flatten(1).argsort(dim=1, descending=True), maps.flatten(1).argsort(dim=1)]
    for k in range(1, steps + 1):
        count = round(k / steps * 36)
        for baseline, value in ((0, 0.0), (1, 1.0)):
            image = seen[baseline * steps + k - 1]
            deleted = (image == value).all(dim=1).flatten(1)
            assert (deleted.sum(dim=1) == count).all()
            assert torch.equal(deleted.gather(1, orders[baseline][:, :count]), torch.ones(n, count, dtype=torch.bool))
    scores = ("probability", "logit", "margin", "allegiance")
    assert set(out.values) == {f"{b}/{s}" for b in ("black", "white") for s in scores}
    curve = out.curves["black/logit"]
    assert curve.y.shape == (n, steps + 1) and torch.allclose(curve.x, torch.linspace(0, 1, steps + 1))


def test_a_signed_map_deletes_towards_a_mean_by_magnitude_and_others_by_value():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 6, 6) * 0.8 + 0.1
    maps = torch.randn(2, 6, 6)
    target = torch.zeros(2, dtype=torch.long)
    deletion = metrics.get("deletion")

    def seen(direction, map_, baseline):
        model = Recorder()
        deletion(model, x, target, map_, given_method(direction), steps=3, baselines=(baseline,), mean=(0.5, 0.5, 0.5))
        return model.images(2)

    assert torch.equal(seen("signed", maps, "mean"), seen("magnitude", maps.abs(), "mean"))
    assert torch.equal(seen("signed", maps, "white"), seen("decrease", -maps, "white"))
    assert torch.equal(seen("magnitude", maps.abs(), "white"), seen("decrease", maps.abs(), "white"))


def test_deletion_breaks_ties_at_random_but_by_seed():
    x = torch.rand(1, 3, 8, 8) * 0.8 + 0.1
    maps = torch.zeros(1, 8, 8)

    def deleted(seed):
        model = Recorder()
        target = torch.zeros(1, dtype=torch.long)
        metrics.get("deletion")(model, x, target, maps, given_method("increase"), steps=4, seed=seed)
        return (model.images(1)[1, 0] == 0).all(dim=0)

    first = deleted(0)
    assert int(first.sum()) == 16
    assert torch.equal(first, deleted(0))
    assert not torch.equal(first, deleted(1))
    assert first.flatten()[:16].sum() < 16  # not simply the first pixels in memory order


def test_deletion_baselines_defaults_and_mode(tiny_cnn):
    x = torch.rand(2, 3, 16, 16)
    target = torch.tensor([1, 2])
    maps = torch.rand(2, 16, 16)
    tiny_cnn.train()
    deletion = metrics.get("deletion")

    def baselines(direction, **settings):
        out = deletion(tiny_cnn, x, target, maps, given_method(direction), steps=4, **settings)
        return out, {key.split("/")[0] for key in out.values}

    assert baselines("increase")[1] == {"black"}
    assert baselines("decrease")[1] == {"white"}
    assert baselines("signed")[1] == {"black", "white"}
    out, names = baselines("magnitude", baselines=("blur", "mean"), mean=(0.5, 0.4, 0.3))
    assert names == {"blur", "mean"}
    assert tiny_cnn.training  # restored
    for key, value in out.values.items():
        assert value.shape == (2,) and torch.isfinite(value).all()
        if key.endswith(("probability", "allegiance")):
            assert ((0 <= value) & (value <= 1)).all()
    with pytest.raises(UserError):
        deletion(tiny_cnn, x, target, maps, given_method("increase"), baselines=("mean",))
    with pytest.raises(UserError):
        deletion(tiny_cnn, x, target, maps, given_method("increase"), no_such_setting=1)


def test_deletion_first_step_is_the_unperturbed_image(tiny_cnn):
    x = torch.rand(3, 3, 16, 16)
    target = torch.tensor([0, 1, 2])
    out = metrics.get("deletion")(tiny_cnn, x, target, torch.rand(3, 16, 16), given_method("increase"), steps=8)
    with torch.no_grad():
        probability = tiny_cnn.eval()(x).softmax(dim=1)[torch.arange(3), target]
    assert torch.allclose(out.curves["black/probability"].y[:, 0], probability, atol=1e-6)
    assert torch.equal(out.curves["black/allegiance"].y[:, 0], torch.ones(3))
    assert math.isclose(float(out.curves["black/probability"].x[-1]), 1.0)


def test_forward_batches_group_steps_on_a_cpu_up_to_its_limit_and_split_only_large_batches(tiny_cnn):
    from signed_saliency.metrics.perturbation import CPU_GROUP_ELEMENTS, forward_batches

    per_image = 3 * 16 * 16
    group = CPU_GROUP_ELEMENTS // per_image  # images per grouped call on a CPU
    sizes = []
    handle = tiny_cnn.register_forward_pre_hook(lambda _, inputs: sizes.append(len(inputs[0])))
    steps = [torch.rand(group // 2, 3, 16, 16) for _ in range(3)]
    with torch.no_grad():
        logits = forward_batches(tiny_cnn, steps)
        assert sizes == [2 * (group // 2), group // 2]  # two steps fill a call, the third starts the next
        sizes.clear()
        forward_batches(tiny_cnn, steps, max_elements=(group // 2 + 1) * per_image)
        assert sizes == [group // 2] * 3  # a lower limit of the caller's still holds
        sizes.clear()
        forward_batches(tiny_cnn, [torch.rand(2 * group, 3, 16, 16)])
        assert sizes == [2 * group]  # a CPU splits no batch below max_elements
    handle.remove()
    for step, logit in zip(steps, logits):
        torch.testing.assert_close(logit, tiny_cnn(step))
