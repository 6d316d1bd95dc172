import torch

from helpers import given_method

from signed_saliency import metrics
from signed_saliency.datasets.core import GroundTruth
from signed_saliency.metrics.ground_truth import applies, roc_auc

NAMES = ("sign-localisation", "sign-agreement", "pointing-game", "mask-auc")


def _truth():
    mask = torch.zeros(4, 8, 8, dtype=torch.bool)
    mask[0, 1:4, 1:4] = True
    mask[1, 4:7, 2:6] = True
    mask[2, 0:2, 0:8] = True
    mask[3, 5:8, 5:8] = True
    return GroundTruth(mask=mask, polarity=torch.tensor([1, -1, 1, -1]))


def _run(name, maps, direction, truth=None):
    truth = truth or _truth()
    return metrics.get(name)(None, None, None, maps, given_method(direction), seed=0, ground_truth=truth).values


def _oracle():
    truth = _truth()
    return truth.mask.float() * truth.polarity.view(-1, 1, 1)


def test_oracle_localises_perfectly_and_its_negation_not_at_all():
    oracle = _oracle()
    right = _run("sign-localisation", oracle, "signed")
    assert torch.equal(right[""], torch.ones(4)) and torch.equal(right["wrong-polarity"], torch.zeros(4))
    wrong = _run("sign-localisation", -oracle, "signed")
    assert torch.equal(wrong[""], torch.zeros(4)) and torch.equal(wrong["wrong-polarity"], torch.ones(4))
    assert torch.equal(_run("sign-agreement", oracle, "signed")[""], torch.ones(4))
    assert torch.equal(_run("sign-agreement", -oracle, "signed")[""], torch.zeros(4))
    assert torch.equal(_run("mask-auc", oracle, "signed")[""], torch.ones(4))
    assert torch.equal(_run("mask-auc", -oracle, "signed")[""], torch.zeros(4))
    assert torch.equal(_run("pointing-game", -oracle, "signed")[""], torch.ones(4))


def test_directional_maps_are_scored_on_their_polarity_only():
    truth = _truth()
    bright = truth.polarity > 0
    increase = truth.mask.float() * bright.view(-1, 1, 1)  # right where it claims, silent elsewhere
    values = _run("sign-localisation", increase, "increase")
    assert torch.equal(values[""][bright], torch.ones(2)) and values[""][~bright].isnan().all()
    assert torch.equal(values["wrong-polarity"][~bright], torch.zeros(2))
    assert values["wrong-polarity"][bright].isnan().all()
    decrease = truth.mask.float()  # claims "darken" on every object: right only on dark ones
    assert _run("sign-agreement", decrease, "decrease") == {}  # one sign by declaration: nothing to check
    localisation = _run("sign-localisation", decrease, "decrease")
    assert torch.equal(localisation[""][~bright], torch.ones(2))
    assert torch.equal(localisation["wrong-polarity"][bright], torch.ones(2))


def test_magnitude_maps_have_no_sign_to_check():
    magnitude = _oracle().abs() + 0.01
    assert _run("sign-agreement", magnitude, "magnitude") == {}
    assert _run("sign-agreement", magnitude, "increase") == {}
    values = _run("sign-localisation", magnitude, "magnitude")
    assert set(values) == {""} and (values[""] > 0.5).all()
    assert set(_run("mask-auc", magnitude, "magnitude")) == {""}


def test_ground_truth_metrics_need_ground_truth():
    for name in NAMES:
        out = metrics.get(name)(None, None, None, _oracle(), given_method("signed"), seed=0, ground_truth=None)
        assert not out and metrics.get(name).needs_ground_truth


def test_empty_maps():
    zeros = torch.zeros(4, 8, 8)
    assert torch.equal(_run("sign-localisation", zeros, "signed")[""], torch.zeros(4))
    assert _run("pointing-game", zeros, "signed")[""].isnan().all()
    assert _run("sign-agreement", zeros, "signed")[""].isnan().all()


def test_roc_auc_matches_sklearn_with_ties():
    from sklearn.metrics import roc_auc_score

    generator = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 4, (5, 6, 6), generator=generator).float()
    mask = torch.rand(5, 6, 6, generator=generator) > 0.6
    expected = torch.tensor([roc_auc_score(m.flatten().numpy(), s.flatten().numpy()) for s, m in zip(scores, mask)])
    torch.testing.assert_close(roc_auc(scores, mask), expected.float())
    assert roc_auc(scores[:1], torch.zeros(1, 6, 6, dtype=torch.bool)).isnan().all()


def test_the_images_marked_undefined_are_exactly_those_a_claim_does_not_apply_to_or_cannot_be_scored_on():
    """A variant is undefined by design on the images of the other polarity, and where the
    measure has nothing to score (a zero map has no peak to point with); those and only
    those values are NaN."""
    truth = _truth()
    maps = torch.rand(4, 8, 8) + 0.01
    maps[3] = 0  # no peak: pointing-game has no value there
    zero = torch.tensor([False, False, False, True])
    for name in ("sign-localisation", "mask-auc", "pointing-game"):
        for direction in ("increase", "decrease", "signed", "magnitude"):
            output = metrics.get(name)(None, None, None, maps, given_method(direction), seed=0, ground_truth=truth)
            for variant, value in output.values.items():
                # pointing-game scores every image; the others, with ranks or mass, score a zero map too
                expected = zero if name == "pointing-game" else ~applies(direction, variant, truth.polarity)
                assert torch.equal(output.undefined[variant], expected), (name, direction, variant)
                assert torch.equal(value.isnan(), expected), (name, direction, variant)


def test_sign_agreement_is_undefined_where_the_map_puts_no_mass_on_the_object():
    truth = _truth()
    maps = torch.rand(4, 8, 8) - 0.5
    maps[2] = maps[2] * ~truth.mask[2]  # all of its mass off the object
    output = metrics.get("sign-agreement")(None, None, None, maps, given_method("signed"), seed=0, ground_truth=truth)
    assert output.undefined[""].tolist() == [False, False, True, False]
    assert output.values[""].isnan().tolist() == [False, False, True, False]
