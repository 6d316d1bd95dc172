"""``quantus:<Class>`` metrics against direct Quantus calls, and each of the adapter's fixes.

The direct calls build the Quantus class with the keyword arguments the adapter documents
(``quantus_kwargs``) under its patches (``quantus_fixes``), give it an explain function
written here with plain autograd, seed NumPy and torch themselves, and reduce Quantus's
return value as the module docstring says; the adapter must give the same numbers. Each
fix is then checked against what unpatched Quantus does.
"""

import numpy as np
import pytest
import torch

quantus = pytest.importorskip("quantus")

from helpers import given_method  # noqa: E402

from signed_saliency import methods, metrics  # noqa: E402
from signed_saliency.datasets.core import GroundTruth  # noqa: E402
from signed_saliency.errors import UserError  # noqa: E402
from signed_saliency.methods.core import Method  # noqa: E402
from signed_saliency.metrics import quantus_adapter as qa  # noqa: E402
from signed_saliency.metrics import quantus_specs  # noqa: E402

SIZE = 16
# Few samples and steps: the numbers only have to match, not to mean much.
QUICK = {
    "nr_runs": 5, "nr_samples": 3, "n_perturb_samples": 2, "regions_evaluation": 10, "nr_steps": 4,
    "percentages": [10, 50, 90],
}


@pytest.fixture
def batch(tiny_cnn):
    tiny_cnn.eval()
    torch.manual_seed(1)
    x = torch.rand(4, 3, SIZE, SIZE)
    target = torch.tensor([0, 1, 2, 3])
    mask = torch.zeros(4, SIZE, SIZE, dtype=torch.bool)
    mask[:, 4:11, 3:9] = True
    truth = GroundTruth(mask=mask, polarity=torch.tensor([1, -1, 1, -1]))
    return tiny_cnn, x, target, truth


def reference_explain(model, inputs, targets, **_):
    """dS_c/dI at its largest-magnitude channel, (N,1,H,W): the ``gradient`` method's map."""
    x = torch.tensor(np.asarray(inputs), requires_grad=True)
    logits = model(x)
    (grad,) = torch.autograd.grad(logits.gather(1, torch.as_tensor(targets).long().view(-1, 1)).sum(), x)
    return grad.gather(1, grad.abs().argmax(dim=1, keepdim=True)).numpy()


def settings_for(name):
    return {k: v for k, v in QUICK.items() if k in qa.default_settings(name)}


def direct(name, model, x, target, truth, settings, seed=0, **overrides):
    """A direct Quantus call on the ``gradient`` maps, as the adapter documents it."""
    kwargs = qa.quantus_kwargs(name, tuple(x.shape[1:]), settings, seed=seed)
    if name == "RandomLogit":
        kwargs["num_classes"] = 5  # the tiny model's
    kwargs.update(overrides)
    a_batch = reference_explain(model, x.numpy(), target.numpy())
    call = {}
    if qa.SPECS[name].category == "localisation":
        a_batch = a_batch * truth.polarity.numpy()[:, None, None, None]  # gradient is signed
        call["s_batch"] = truth.mask[:, None].numpy().astype(np.float32)
    np.random.seed(seed)
    torch.manual_seed(seed)
    with qa.quantus_fixes(x.shape[1]):
        metric = getattr(quantus, name)(**kwargs)
        if name == "ROAD":
            metric.custom_postprocess = lambda **_: None
        result = metric(
            model=model, x_batch=x.numpy(), y_batch=target.numpy(), a_batch=a_batch, explain_func=reference_explain,
            channel_first=True, device="cpu", batch_size=len(x), **call,
        )
    return metric, result


def expected_values(name, metric, result, n):
    if name in ("PixelFlipping", "Selectivity", "RegionPerturbation"):
        return np.trapezoid(np.asarray(result, dtype=float), dx=1, axis=1)
    if name == "ROAD":
        return np.asarray(metric.evaluation_scores[0], dtype=float).mean(axis=1)
    if name in ("MPRT", "SmoothMPRT"):
        return np.mean([v for layer, v in result.items() if layer != "original"], axis=0)
    if name == "SensitivityN":
        return np.full(n, np.nanmean(result))
    return np.asarray(result, dtype=float)


@pytest.mark.parametrize("name", [n for n in qa.SPECS if n != "ROAD"])  # ROAD fails on RGB: tested below
def test_adapter_equals_direct_quantus_call(batch, name):
    model, x, target, truth = batch
    if name == "NonSensitivity":  # one forward pass per channel value
        x, truth = x[..., :8, :8], GroundTruth(mask=truth.mask[..., :8, :8], polarity=truth.polarity)
    method = methods.get("gradient")
    maps = method(model, x, target)
    settings = settings_for(name)
    ours = metrics.get(qa.PREFIX + name)(model, x, target, maps, method, seed=0, ground_truth=truth, **settings)
    assert list(ours.values) == [""], ours.values  # no image failed
    metric, result = direct(name, model, x, target, truth, settings)
    np.testing.assert_allclose(ours.values[""].numpy(), expected_values(name, metric, result, len(x)),
                               rtol=1e-5, atol=1e-6, equal_nan=True)


def test_registry_resolves_quantus_names_on_demand(batch):
    metric = metrics.get("quantus:Sparseness")
    assert metrics.get("quantus:Sparseness") is metric
    assert metric.name == "quantus:Sparseness" and metric.family == "complexity" and metric.higher_is_better
    assert metrics.get("quantus:PointingGame").needs_ground_truth
    assert not any(name.startswith(qa.PREFIX) for name in metrics.names())  # listing is what is registered
    with pytest.raises(UserError, match=r"unknown metric 'quantus:Nope'.*valid: quantus:FaithfulnessCorrelation"):
        metrics.get("quantus:Nope")


def test_settings_are_the_quantus_arguments_and_checked(batch):
    model, x, target, truth = batch
    metric = metrics.get("quantus:FaithfulnessCorrelation")
    assert metric.defaults() == {"nr_runs": 100, "subset_size": None, "abs": False, "normalise": True,
                                 "perturb_baseline": "black"}
    with pytest.raises(UserError, match="no setting 'nr_run'"):
        metric.check_settings({"nr_run": 3})
    method = methods.get("saliency")
    maps = method(model, x, target)
    with pytest.raises(UserError, match="Quantus refuses its settings"):  # checked when the class is built
        metrics.get("quantus:MPRT")(model, x, target, maps, method, layer_order="sideways")
    # what Quantus checks only on data fails every image, as any Quantus failure does
    out = metric(model, x, target, maps, method, subset_size=10**6)
    assert np.isnan(out.values[""].numpy()).all() and out.values["error/ValueError"].tolist() == [1.0] * 4


def test_sized_defaults_follow_the_image():
    assert qa.quantus_kwargs("PixelFlipping", (3, 32, 32), {})["features_in_step"] == 3 * 32
    assert qa.quantus_kwargs("PixelFlipping", (3, 224, 224), {})["features_in_step"] == 3 * 224 * 224 // 32
    assert qa.quantus_kwargs("Selectivity", (3, 32, 32), {})["patch_size"] == 4
    assert qa.quantus_kwargs("Infidelity", (3, 32, 32), {})["perturb_patch_sizes"] == [4]
    assert qa.quantus_kwargs("FaithfulnessCorrelation", (3, 32, 32), {})["subset_size"] == 192
    assert qa.quantus_kwargs("TopKIntersection", (3, 32, 32), {"k": 10})["k"] == 10


def test_seed_reproduces_and_leaves_global_generators_alone(batch):
    model, x, target, _ = batch
    method = methods.get("saliency")
    maps = method(model, x, target)
    metric = metrics.get("quantus:FaithfulnessCorrelation")
    np.random.seed(123)
    torch.manual_seed(123)
    first = metric(model, x, target, maps, method, seed=5, nr_runs=5).values[""]
    assert np.random.rand() == np.random.RandomState(123).rand()
    assert torch.equal(torch.rand(1), torch.rand(1, generator=torch.Generator().manual_seed(123)))
    again = metric(model, x, target, maps, method, seed=5, nr_runs=5).values[""]
    other = metric(model, x, target, maps, method, seed=6, nr_runs=5).values[""]
    torch.testing.assert_close(first, again)
    assert not torch.equal(first, other)


def test_rows_do_not_depend_on_the_batch(batch):
    # Quantus's default normalise divides the batch by its max: here each map by its own
    model, x, target, _ = batch
    method = methods.get("gradient")
    maps = method(model, x, target)
    metric = metrics.get("quantus:FaithfulnessEstimate")
    whole = metric(model, x, target, maps, method).values[""]
    alone = metric(model, x[2:3], target[2:3], maps[2:3], method).values[""]
    torch.testing.assert_close(whole[2:3], alone)


def test_failing_images_are_nan_rows_with_the_error_class(batch):
    model, x, target, _ = batch

    def fragile(model, x, target):
        if (target == 3).any():
            raise ZeroDivisionError("this image cannot be explained")
        return x.sum(dim=1)

    method = Method(name="fragile-test", fn=fragile, direction="magnitude", needs="model")
    maps = x.sum(dim=1)
    out = metrics.get("quantus:MaxSensitivity")(model, x, target, maps, method, nr_samples=2)
    values = out.values[""].numpy()
    assert np.isfinite(values[:3]).all() and np.isnan(values[3])
    assert out.values["error/ZeroDivisionError"].tolist() == [0.0, 0.0, 0.0, 1.0]


def test_features_in_step_counts_channels_and_pixel_flipping_equals_deletion(tiny_cnn):
    # 3 does not divide 16*16: unpatched Quantus refuses every whole-pixel step on RGB
    tiny_cnn.eval()
    torch.manual_seed(1)
    x, target, maps = torch.rand(4, 3, SIZE, SIZE), torch.tensor([0, 1, 2, 3]), torch.rand(4, SIZE, SIZE)
    with pytest.raises(AssertionError, match="features_in_step"):
        quantus.PixelFlipping(features_in_step=3 * 8, disable_warnings=True)(
            model=tiny_cnn, x_batch=x.numpy(), y_batch=target.numpy(), a_batch=maps[:, None].numpy(),
            channel_first=True, device="cpu")
    increase = given_method("increase")
    ours = metrics.get("quantus:PixelFlipping")(tiny_cnn, x, target, maps, increase, perturb_baseline=0.0)
    native = metrics.get("deletion")(tiny_cnn, x, target, maps, increase, steps=32)  # 8 pixels a step, as ours
    np.testing.assert_allclose(ours.curves[""].y.numpy(), native.curves["black/probability"].y[:, 1:].numpy(), atol=1e-5)


def test_quantus_auc_needs_the_numpy_2_shim(batch):
    assert not hasattr(np, "trapz")  # what Quantus 0.6's calculate_auc calls
    with pytest.raises(AttributeError):
        quantus.helpers.utils.calculate_auc(np.ones((2, 3)), batched=True)
    np.testing.assert_allclose(quantus_specs._calculate_auc(np.ones((2, 3)), batched=True), [2.0, 2.0])
    model, x, target, _ = batch
    method = methods.get("saliency")
    out = metrics.get("quantus:IROF")(model, x, target, method(model, x, target), method)
    assert list(out.values) == [""] and np.isfinite(out.values[""].numpy()).all()


def test_random_logit_reads_the_number_of_classes(batch):
    model, x, target, truth = batch
    method = methods.get("gradient")
    with pytest.raises((IndexError, RuntimeError)):  # quantus's 1000 classes on a 5-class model
        direct("RandomLogit", model, x, target, truth, {}, num_classes=1000)
    out = metrics.get("quantus:RandomLogit")(model, x, target, method(model, x, target), method)
    assert list(out.values) == [""] and np.isfinite(out.values[""].numpy()).all()


def test_road_per_image_on_one_channel_and_error_rows_on_rgb(batch):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(SIZE * SIZE, 3)).eval()
    x = torch.rand(4, 1, SIZE, SIZE)
    target = torch.tensor([0, 1, 2, 0])
    maps = torch.rand(4, SIZE, SIZE)
    increase = given_method("increase")
    percentages = [10, 50, 90]
    ours = metrics.get("quantus:ROAD")(model, x, target, maps, increase, percentages=percentages)
    reference = quantus.ROAD(percentages=percentages, normalise=True, normalise_func=qa.normalise_each_by_max,
                             disable_warnings=True)
    np.random.seed(0)
    batch_means = reference(model=model, x_batch=x.numpy(), y_batch=target.numpy(), a_batch=maps[:, None].numpy(),
                            channel_first=True, device="cpu")
    np.testing.assert_allclose(ours.curves[""].y.mean(dim=0).numpy(), [batch_means[p] for p in percentages], atol=1e-6)
    rgb_model, rgb, rgb_target, _ = batch
    failed = metrics.get("quantus:ROAD")(rgb_model, rgb, rgb_target, torch.rand(4, SIZE, SIZE), increase)
    assert np.isnan(failed.values[""].numpy()).all()
    assert failed.values["error/IndexError"].tolist() == [1.0] * 4


def test_mprt_average_leaves_out_the_original_model(batch):
    model, x, target, truth = batch
    method = methods.get("gradient")
    ours = metrics.get("quantus:SmoothMPRT")(model, x, target, method(model, x, target), method, nr_samples=3)
    metric, by_layer = direct("SmoothMPRT", model, x, target, truth, {"nr_samples": 3})
    randomised = np.mean([v for layer, v in by_layer.items() if layer != "original"], axis=0)
    np.testing.assert_allclose(ours.values[""].numpy(), randomised, rtol=1e-5)
    # Quantus's own average skips a key "orig" that does not exist, so it counts "original"
    with_original = np.mean(list(by_layer.values()), axis=0)
    metric.evaluation_scores = by_layer
    np.testing.assert_allclose(metric.recompute_average_correlation_per_sample(), with_original, rtol=1e-6)
    assert not np.allclose(with_original, randomised)


def test_attribution_localisation_keeps_a_signed_maps_ranking(batch):
    model, x, target, truth = batch
    signed = given_method("signed")
    claim = truth.mask.float() * truth.polarity.view(-1, 1, 1)  # + on bright objects, - on dark ones
    metric = metrics.get("quantus:AttributionLocalisation")
    assert metric(model, x, target, claim, signed, ground_truth=truth).values[""].tolist() == pytest.approx([1.0] * 4)
    # the opposite claim is all wrong: none of its positive mass is on the object
    noise = 0.01 * torch.rand(4, SIZE, SIZE)
    wrong = metric(model, x, target, noise - claim, signed, ground_truth=truth).values[""]
    assert wrong.max() < 0.1
    # with Quantus's abs default both claims score alike
    a = (noise - claim)[:, None].numpy() * truth.polarity.numpy()[:, None, None, None]
    default = quantus.AttributionLocalisation(disable_warnings=True)(
        model=model, x_batch=x.numpy(), y_batch=target.numpy(), a_batch=a,
        s_batch=truth.mask[:, None].numpy().astype(np.float32), channel_first=True, device="cpu")
    assert min(default) > 0.9


@pytest.mark.parametrize("ours,native,variant", [
    ("quantus:Sparseness", "sparseness", ""),
    ("quantus:Complexity", "complexity", ""),
    ("quantus:AUC", "mask-auc", ""),
    ("quantus:AttributionLocalisation", "sign-localisation", ""),
    ("quantus:PointingGame", "pointing-game", ""),
])
def test_quantus_agrees_with_the_native_metric_of_the_same_definition(batch, ours, native, variant):
    model, x, target, truth = batch
    method = methods.get("gradient" if native != "pointing-game" else "saliency")
    maps = method(model, x, target)
    theirs = metrics.get(ours)(model, x, target, maps, method, ground_truth=truth).values[""]
    mine = metrics.get(native)(model, x, target, maps, method, ground_truth=truth).values[variant]
    torch.testing.assert_close(theirs, mine, rtol=1e-4, atol=1e-5)


def test_engine_scores_quantus_names_as_tidy_rows(batch):
    from signed_saliency import evaluate

    model, x, target, _ = batch
    scores = evaluate(model, x, target, methods=["saliency", "positive"], metrics=["quantus:Sparseness", "sparseness"])
    wide = scores.pivot_table(index=["method", "image"], columns="metric", values="value")
    assert len(wide) == 8
    np.testing.assert_allclose(wide["quantus:Sparseness"], wide["sparseness"], rtol=1e-4)


def test_runs_inside_a_callers_inference_mode(batch):
    # MPRT re-initialises layers in place and MaxSensitivity re-explains: neither works in inference mode
    model, x, target, _ = batch
    method = methods.get("gradient")
    expected = {name: metrics.get(name)(model, x, target, method(model, x, target), method, nr_samples=2).values
                for name in ("quantus:SmoothMPRT", "quantus:MaxSensitivity")}
    with torch.inference_mode():
        x, maps = x.clone(), method(model, x, target).clone()
        for name, values in expected.items():
            got = metrics.get(name)(model, x, target, maps, method, nr_samples=2).values
            assert list(got) == [""]
            torch.testing.assert_close(got[""], values[""])
