import copy

import numpy as np
import pytest
import torch

from signed_saliency import methods, metrics
from signed_saliency.errors import UserError
from signed_saliency.methods.core import Method
from signed_saliency.metrics import randomisation as R
from signed_saliency.metrics.similarity import MEASURES, similarities


def _blurred_brightness(model, x, target):
    """A map that depends on the image only, like the `edge` control."""
    grey = x.mean(dim=1, keepdim=True)
    return torch.nn.functional.avg_pool2d(grey, 3, stride=1, padding=1).squeeze(1) * (1 + grey.squeeze(1))


MODEL_FREE = Method(name="model-free", fn=_blurred_brightness, direction="magnitude", needs="model")


@pytest.fixture
def batch():
    generator = torch.Generator().manual_seed(1)
    return torch.rand(4, 3, 16, 16, generator=generator), torch.tensor([0, 1, 2, 3])


def _same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


def test_layers_are_named_from_the_output_down(tiny_cnn):
    assert [name for name, _ in R.parameterised_layers(tiny_cnn)] == ["6", "2", "0"]


def test_cascading_reinitialises_the_named_layers_in_order_and_leaves_the_model_alone(tiny_cnn):
    original = copy.deepcopy(tiny_cnn.state_dict())
    rng = torch.get_rng_state()
    names = [name for name, _ in R.parameterised_layers(tiny_cnn)]
    for step, (index, damaged) in enumerate(R.randomised_models(tiny_cnn, "cascading", 5, [0, 1, 2])):
        assert index == step
        for position, name in enumerate(names):
            layer = dict(damaged.named_modules())[name]
            trained = {k.split(".", 1)[1]: v for k, v in original.items() if k.split(".")[0] == name}
            assert _same(layer.state_dict(), trained) == (position > index), (name, index)
    assert _same(tiny_cnn.state_dict(), original)
    assert torch.equal(torch.get_rng_state(), rng)


def test_independent_reinitialises_one_layer_at_a_time_with_the_cascading_weights(tiny_cnn):
    cascading = {}
    for index, damaged in R.randomised_models(tiny_cnn, "cascading", 5, [0, 1, 2]):
        name, _ = R.parameterised_layers(damaged)[index]
        cascading[name] = copy.deepcopy(dict(damaged.named_modules())[name].state_dict())
    for index, damaged in R.randomised_models(tiny_cnn, "independent", 5, [0, 1, 2]):
        changed = [
            name
            for name, layer in R.parameterised_layers(damaged)
            if not _same(layer.state_dict(), dict(tiny_cnn.named_modules())[name].state_dict())
        ]
        name = R.parameterised_layers(tiny_cnn)[index][0]
        assert changed == [name]
        assert _same(dict(damaged.named_modules())[name].state_dict(), cascading[name])


def test_reinitialisation_draws_what_reset_parameters_draws():
    for layer in (torch.nn.Conv2d(3, 4, 3), torch.nn.Linear(5, 2)):
        ours = copy.deepcopy(layer)
        R.reinitialise_(ours, 11)
        torch.manual_seed(11)
        layer.reset_parameters()
        assert _same(ours.state_dict(), layer.state_dict())


def test_batchnorm_and_other_layers_are_reset():
    norm = torch.nn.BatchNorm2d(3)
    with torch.no_grad():
        norm.weight.fill_(2.0)
        norm.running_mean.fill_(1.0)
    R.reinitialise_(norm, 0)
    assert torch.equal(norm.weight, torch.ones(3)) and torch.equal(norm.running_mean, torch.zeros(3))


def test_measured_layers_stride_keeps_the_deepest():
    assert R.measured_layers(10, None, 4) == [0, 4, 8, 9]
    assert R.measured_layers(10, 3, 1) == [0, 1, 2]
    assert R.measured_layers(3, None, 1) == [0, 1, 2]


def test_a_map_is_identical_to_itself():
    maps = torch.randn(3, 16, 16, generator=torch.Generator().manual_seed(0))
    maps[0, :4] = 0.0  # ties
    for measure, value in similarities(maps, maps.clone()).items():
        torch.testing.assert_close(value, torch.ones(3), atol=1e-6, rtol=0, msg=measure)


@pytest.mark.parametrize("name", ["model-free", "edge"])
def test_model_independent_map_survives_randomisation_unchanged(tiny_cnn, batch, name):
    if name == "edge" and "edge" not in methods.names():
        pytest.skip("the edge control is not registered")
    method = MODEL_FREE if name == "model-free" else methods.get(name)
    x, target = batch
    maps = method(tiny_cnn, x, target)
    out = metrics.get("randomisation")(tiny_cnn, x, target, maps, method, seed=0, chunk_size=3)
    assert set(out.curves) == {f"{mode}/{m}" for mode in R.MODES for m in MEASURES}
    for variant, curve in out.curves.items():
        assert curve.y.shape == (4, 4) and torch.equal(curve.x, torch.tensor([0.0, 1, 2, 3]))
        torch.testing.assert_close(curve.y, torch.ones(4, 4), atol=1e-5, rtol=0, msg=variant)
        torch.testing.assert_close(out.values[variant], torch.ones(4), atol=1e-5, rtol=0)
    logit = metrics.get("random-logit")(tiny_cnn, x, target, maps, method, seed=0)
    for value in logit.values.values():
        torch.testing.assert_close(value, torch.ones(4), atol=1e-5, rtol=0)


def _partly_constant(model, x, target):
    """Saliency, but zero everywhere on image 1: a map with no ranks to correlate."""
    maps = methods.get("saliency")(model, x, target)
    return maps * (torch.arange(len(x)) != 1).view(-1, 1, 1).to(maps)


def _failing_on_randomised_models(trained: torch.nn.Module) -> Method:
    """Saliency, but not finite on image 2 whenever the model is not ``trained``."""
    weights = [p.detach().clone() for p in trained.parameters()]

    def explain(model, x, target):
        maps = methods.get("saliency")(model, x, target)
        if all(torch.equal(p, w) for p, w in zip(model.parameters(), weights)):
            return maps
        return maps.masked_fill((torch.arange(len(x)) == 2).view(-1, 1, 1), float("nan"))

    return Method(name="failing-on-2", fn=explain, direction="magnitude", needs="model")


def test_a_constant_map_is_undefined_by_design_and_a_non_finite_recomputed_map_is_a_failure(tiny_cnn, batch):
    x, target = batch
    constant = Method(name="constant-on-1", fn=_partly_constant, direction="magnitude", needs="model")
    maps = constant(tiny_cnn, x, target)
    for name in ("randomisation", "random-logit"):
        output = metrics.get(name)(tiny_cnn, x, target, maps, constant, seed=0, measures=("spearman", "hog", "ssim"))
        for variant, value in output.values.items():  # recomputed, image 1's map is zero too: no SSIM either
            assert output.undefined[variant].tolist() == [False, True, False, False], (name, variant)
            assert value.isnan().tolist() == [False, True, False, False], (name, variant)

    failing = _failing_on_randomised_models(tiny_cnn)
    maps = failing(tiny_cnn, x, target)
    output = metrics.get("randomisation")(tiny_cnn, x, target, maps, failing, seed=0, measures=("spearman",))
    for variant, value in output.values.items():
        assert value.isnan().tolist() == [False, False, True, False] and not output.undefined[variant].any(), variant


def test_saliency_changes_when_the_model_does(tiny_cnn, batch):
    x, target = batch
    saliency = methods.get("saliency")
    maps = saliency(tiny_cnn, x, target)
    out = metrics.get("randomisation")(tiny_cnn, x, target, maps, saliency, seed=0, measures=("spearman", "ssim"))
    assert torch.allclose(out.curves["cascading/spearman"].y[:, 0], torch.ones(4))
    assert (out.values["cascading/spearman"] < 0.9).all()
    logit = metrics.get("random-logit")(tiny_cnn, x, target, maps, saliency, seed=0, measures=("spearman",))
    assert logit.values["spearman"].shape == (4,) and (logit.values["spearman"] < 0.99).all()


def test_spearman_curve_matches_quantus_mprt(tiny_cnn, batch):
    """Cascading Spearman curve of `saliency` against quantus.MPRT (top_down, seed 42).

    Quantus re-seeds the global RNG with seed + 1 before every layer, so all its layers draw
    the same numbers; ours gives layer k the seed ``seed + k``. To compare everything else
    (layer set and order, cascading copy, recomputed maps, Spearman with ties, the unmodified
    model at x = 0) on identically randomised models, this test makes our layer seed Quantus'
    constant one; that the draws then agree bit for bit is checked in
    test_reinitialisation_draws_what_reset_parameters_draws.
    """
    quantus = pytest.importorskip("quantus")
    x, target = batch
    saliency = methods.get("saliency")
    maps = saliency(tiny_cnn, x, target)

    def explain(model, inputs, targets, **_):
        return saliency(model, torch.as_tensor(inputs), torch.as_tensor(targets)).numpy()[:, None]

    mprt = quantus.MPRT(layer_order="top_down", seed=42, abs=False, normalise=False, disable_warnings=True)
    theirs = mprt(
        model=tiny_cnn,
        x_batch=x.numpy(),
        y_batch=target.numpy(),
        a_batch=maps.numpy()[:, None],
        explain_func=explain,
        channel_first=True,
        device="cpu",
    )
    expected = np.stack([theirs[k] for k in ["original", "6", "2", "0"]], axis=1)

    original_seed = R.layer_seed
    R.layer_seed = lambda seed, index: seed + 1
    try:
        out = metrics.get("randomisation")(
            tiny_cnn, x, target, maps, saliency, seed=42, modes=("cascading",), measures=("spearman",)
        )
    finally:
        R.layer_seed = original_seed
    np.testing.assert_allclose(out.curves["cascading/spearman"].y.numpy(), expected, atol=1e-5)
    # Our summary averages the randomised layers only (Quantus' average includes "original").
    np.testing.assert_allclose(out.values["cascading/spearman"].numpy(), expected[:, 1:].mean(axis=1), atol=1e-5)


def test_ssim_stays_in_range_for_nearly_constant_maps():
    """Grad-CAM upsampled from a 1x1 feature map is nearly constant; SSIM over the pair's own
    tiny range went as far as 20 here before the range was fixed to the scaled maps' own."""
    from signed_saliency.metrics.similarity import similarities

    generator = torch.Generator().manual_seed(0)
    flat = 1.0 + 1e-9 * torch.rand(6, 16, 16, generator=generator)
    other = 1.0 + 1e-9 * torch.rand(6, 16, 16, generator=generator)
    values = similarities(flat, other, ("ssim",))["ssim"]
    assert values.isfinite().all() and values.abs().le(1.0).all()
    same = similarities(other, other, ("ssim",))["ssim"]
    torch.testing.assert_close(same, torch.ones(6))
    assert similarities(torch.zeros(2, 16, 16), torch.zeros(2, 16, 16), ("ssim",))["ssim"].isnan().all()


@pytest.mark.parametrize("name", ["randomisation", "random-logit"])
def test_methods_scored_together_equal_one_at_a_time_and_share_their_passes(tiny_cnn, batch, count_forwards, name):
    x, target = batch
    chosen = [methods.get(m) for m in ("saliency", "positive", "negative", "active", "inactive")]
    maps = methods.explain(tiny_cnn, x, target, chosen)
    metric = metrics.get(name)
    settings = {"seed": 2, **({"layer_stride": 2} if name == "randomisation" else {})}
    # one at a time first: random-logit's first call on a model also asks it for its class count
    alone_outputs = {method.name: metric(tiny_cnn, x, target, maps[method.name], method, **settings) for method in chosen}
    with count_forwards(tiny_cnn) as together_calls:  # the randomised copies keep the counting hook
        together = metric.score_methods(tiny_cnn, x, target, maps, chosen, **settings)
    with count_forwards(tiny_cnn) as one_calls:
        one = metric(tiny_cnn, x, target, maps["active"], methods.get("active"), **settings)
    for method in chosen:
        alone = alone_outputs[method.name]
        assert together[method.name].values.keys() == alone.values.keys()
        for variant, values in alone.values.items():
            torch.testing.assert_close(together[method.name].values[variant], values, equal_nan=True)
    assert one.values
    assert len(together_calls) == len(one_calls)  # five maps for the price of the one that needs all classes


def test_randomisation_reports_each_model_it_compares_and_other_metrics_ignore_progress(tiny_cnn, batch):
    x, target = batch
    saliency = methods.get("saliency")
    maps = saliency(tiny_cnn, x, target)
    heard = []
    hear = lambda *step: heard.append(step)  # noqa: E731
    randomisation = metrics.get("randomisation")
    out = randomisation(tiny_cnn, x, target, maps, saliency, seed=0, measures=("spearman",), progress=hear)
    steps = 1 + len(R.MODES) * len(R.parameterised_layers(tiny_cnn))  # the unchanged model, then each damaged one
    assert heard == [(done, steps) for done in range(steps + 1)]
    silent = randomisation(tiny_cnn, x, target, maps, saliency, seed=0, measures=("spearman",))
    assert _same(out.values, silent.values)
    logit = metrics.get("random-logit")
    assert not logit.reports_progress
    logit(tiny_cnn, x, target, maps, saliency, seed=0, measures=("spearman",), progress=hear)
    assert len(heard) == steps + 1


def test_an_empty_set_of_randomised_layers_is_an_error_not_a_similarity_of_one(tiny_cnn, batch):
    x, target = batch
    saliency = methods.get("saliency")
    maps = saliency(tiny_cnn, x, target)
    randomisation = metrics.get("randomisation")
    with pytest.raises(UserError, match="max_layers must be a number at least 1 or None"):
        randomisation(tiny_cnn, x, target, maps, saliency, seed=0, max_layers=0)
    parameter_free = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten())
    with pytest.raises(ValueError, match="no layer with parameters"):
        randomisation(parameter_free, x, target, maps, MODEL_FREE, seed=0)


def test_convnext_layer_scale_is_refilled_with_convnexts_constant():
    import inspect

    from torchvision.models.convnext import CNBlock, ConvNeXt

    assert R.CONSTANT_PARAMETERS[R.CNBlock, "layer_scale"] == inspect.signature(ConvNeXt).parameters["layer_scale"].default
    block = CNBlock(4, layer_scale=1e-6, stochastic_depth_prob=0.0)
    with torch.no_grad():
        block.layer_scale.fill_(0.3)  # what training makes of it
    R.reinitialise_(block, 0)
    assert torch.equal(block.layer_scale, torch.full((4, 1, 1), 1e-6))


def test_randomisation_runs_on_convnext_tiny():
    """ConvNeXt's blocks own ``layer_scale`` directly and have no reset_parameters()."""
    from torchvision.models.convnext import CNBlock

    from signed_saliency import models

    torch.manual_seed(0)
    model = models.get("convnext-tiny").build(num_classes=10)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    target = torch.tensor([3, 7])
    saliency = methods.get("saliency")
    maps = saliency(model, x, target)
    # the top 8 layers: the head, the classifier's Linear and LayerNorm2d, the last block's
    # four layers and then the block itself, owner of the layer_scale that could not be reset;
    # measured after the first and that eighth (cascading still resets the six between)
    assert isinstance(R.parameterised_layers(model)[7][1], CNBlock)
    out = metrics.get("randomisation")(
        model, x, target, maps, saliency, seed=0, measures=("spearman",), max_layers=8, layer_stride=7
    )
    assert torch.equal(out.curves["cascading/spearman"].x, torch.tensor([0.0, 1, 8]))
    assert set(out.values) == {f"{mode}/spearman" for mode in R.MODES}
    for variant, values in out.values.items():
        assert values.shape == (2,) and values.isfinite().all(), variant


def test_output_count_is_remembered_per_model_until_its_head_changes(tiny_cnn, count_forwards):
    from signed_saliency.runtime import output_count

    x = torch.rand(2, 3, 16, 16)
    assert output_count(tiny_cnn, x) == 5
    with count_forwards(tiny_cnn) as calls:
        assert output_count(tiny_cnn, x) == 5
    assert not calls
    tiny_cnn[-1] = torch.nn.Linear(8, 7)
    assert output_count(tiny_cnn, x) == 7
