"""The input contract: bad images and bad maps are one-line errors or NaN rows, never numbers."""

import math

import pytest
import torch

from benchmarks.statistics import summarise
from signed_saliency import evaluate, methods, metrics
from signed_saliency.checks import NonFiniteMapsWarning, check_images, check_maps, find_nonfinite
from signed_saliency.datasets import get as get_dataset
from signed_saliency.errors import MethodError, MetricError, UserError
from signed_saliency.metrics.core import MetricCall, MetricOutput

DELETION = {"deletion": {"steps": 4}}


@pytest.fixture
def images():
    return torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))


@pytest.fixture
def registered():
    """Registers methods and metrics for one test and removes them afterwards."""
    added = []

    def register(kind, name, fn, **claims):
        registry = methods.registry if kind == "method" else metrics.registry
        registry.register(name, **claims)(fn)
        added.append((registry, name))

    yield register
    for registry, name in added:
        if registry is methods.registry:
            registry.unregister(name)
        else:
            del registry._entries[name]


@pytest.mark.parametrize(
    "convert, message",
    [
        (lambda x: x * 255, r"looks like 0-255: divide them by 255"),
        (lambda x: (x * 255).to(torch.uint8), r"images are uint8, expected floats in \[0, 1\]: convert with x.float\(\) / 255"),
        (lambda x: (x - 0.45) / 0.22, r"normalised images\?.*inside the model"),
        (lambda x: x[0], r"add the batch dimension with x.unsqueeze\(0\)"),
        (lambda x: x.permute(0, 2, 3, 1), r"x.permute\(0, 3, 1, 2\)"),
        (lambda x: x.numpy(), r"convert with torch.as_tensor"),
    ],
)
def test_images_in_another_form_are_a_one_line_error_saying_how_to_convert(tiny_cnn, images, convert, message):
    with pytest.raises(UserError, match=message) as caught:
        evaluate(tiny_cnn, convert(images), methods=["saliency"], metrics=["deletion"], settings=DELETION)
    assert "\n" not in str(caught.value)


def test_an_image_set_passed_as_images_says_to_take_its_floats(tiny_cnn):
    sample = get_dataset("signed-shapes").load("test", image_size=16, n=4)
    with pytest.raises(UserError, match=r"got an ImageSet \(signed-shapes test, 4 uint8 images\).*images.floats\(\)"):
        evaluate(tiny_cnn, sample, methods=["saliency"], metrics=["deletion"])
    evaluate(tiny_cnn, sample.floats(), sample.labels % 5, methods=["saliency"], metrics=["deletion"], settings=DELETION)


def test_images_on_another_device_than_the_model_say_where_to_move_them(tiny_cnn, images):
    with pytest.raises(UserError, match=r"images are on cpu, the model on meta: move them with x.to\('meta'\)"):
        check_images(images, tiny_cnn.to("meta"))


def test_images_within_rounding_of_the_range_pass(tiny_cnn, images):
    check_images(images.clamp(0, 1) * (1 + 1e-5), tiny_cnn)
    with pytest.raises(UserError, match="NaN or infinite"):
        check_images(images.masked_fill(images > 0.99, float("nan")))


def test_a_map_of_the_wrong_shape_names_the_method_and_both_shapes(tiny_cnn, images, registered):
    registered("method", "test-channel-map", lambda model, x, target: x[:, :1], direction="magnitude", needs="model")
    with pytest.raises(MethodError) as caught:
        methods.explain(tiny_cnn, images, None, ["saliency", "test-channel-map"])
    assert str(caught.value) == (
        "method 'test-channel-map' returned a map of shape (4, 1, 16, 16), expected (4, 16, 16) (N,H,W) "
        "for images (4, 3, 16, 16)"
    )
    with pytest.raises(MethodError, match=r"returned a map of shape list"):
        check_maps([[0.0]], images, "listed")


def test_nonfinite_maps_are_not_scored_their_rows_are_nan_and_counted(tiny_cnn, images, registered):
    def first_two_broken(model, x, target):
        maps = x.mean(dim=1)
        maps[:2, 3, 3] = float("nan")
        maps[1, 0, 0] = float("inf")
        return maps

    registered("method", "test-half-nan", first_two_broken, direction="magnitude", needs="model")
    with pytest.warns(NonFiniteMapsWarning, match=r"not scored.*: test-half-nan \(2\)$"):
        scores, curves = evaluate(
            tiny_cnn, images, methods=["saliency", "test-half-nan"], metrics=["deletion"], settings=DELETION, curves=True
        )
    broken = scores[scores["method"] == "test-half-nan"]
    assert broken.groupby("image")["value"].apply(lambda v: v.isna().all()).tolist() == [True, True, False, False]
    assert broken.loc[broken["image"] >= 2, "value"].notna().all()
    assert curves.loc[(curves["method"] == "test-half-nan") & (curves["image"] < 2), "y"].isna().all()
    summary = summarise(scores.assign(dataset="d", model="m"))
    assert summary.loc[summary["method"] == "test-half-nan", ["n", "n_nonfinite"]].drop_duplicates().values.tolist() == [[2, 2]]
    alone = evaluate(tiny_cnn, images, methods=["saliency"], metrics=["deletion"], settings=DELETION)
    saliency = scores[scores["method"] == "saliency"].reset_index(drop=True)
    assert saliency["value"].tolist() == alone["value"].tolist()


def test_a_record_of_nonfinite_maps_counts_per_method_across_batches():
    first = find_nonfinite({"a": torch.tensor([[[math.nan]], [[1.0]]]), "b": torch.ones(2, 1, 1)})
    second = find_nonfinite({"a": torch.full((3, 1, 1), math.inf), "b": torch.ones(3, 1, 1)})
    merged = first.merged(second)
    assert merged.counts == {"a": 4} and not find_nonfinite({"b": torch.ones(2, 1, 1)})
    assert merged.message() == "non-finite maps, not scored (their rows are NaN): a (4)"


def test_an_exception_in_a_users_method_is_one_line_naming_plugin_method_and_exception(tiny_cnn, images, registered):
    def broken(model, x, target):
        raise ZeroDivisionError("my bug\nsecond line")

    registered("method", "test-raises", broken, direction="magnitude", needs="model")
    with pytest.raises(MethodError) as caught:
        evaluate(tiny_cnn, images, methods=["test-raises"], metrics=["deletion"])
    assert str(caught.value) == f"method 'test-raises' (plugin {__name__}) raised ZeroDivisionError: my bug"
    assert isinstance(caught.value.__cause__, ZeroDivisionError)


def test_an_exception_in_a_users_metric_is_one_line_naming_it(tiny_cnn, images, registered):
    def broken_metric(call: MetricCall) -> MetricOutput:
        return {}["missing"]

    registered("metric", "test-broken-metric", broken_metric)
    with pytest.raises(MetricError, match=rf"^metric 'test-broken-metric' \(plugin {__name__}\) raised KeyError: 'missing'$"):
        evaluate(tiny_cnn, images, methods=["saliency"], metrics=["test-broken-metric"])


def test_the_librarys_own_errors_stay_tracebacks(images):
    no_feature_map = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 5))
    with pytest.raises(ValueError, match="grad-cam needs a feature map") as caught:
        methods.explain(no_feature_map, images, None, ["grad-cam"])
    assert not isinstance(caught.value, UserError)
