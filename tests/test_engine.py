"""The notebook entry point: evaluate() returns tidy rows and writes nothing."""

import pytest
import torch

from signed_saliency import evaluate
from signed_saliency.errors import UserError


def test_evaluate_returns_tidy_rows(tiny_cnn, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    images = torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    scores, curves = evaluate(
        tiny_cnn, images, methods=["saliency", "positive"], metrics=["sparseness", "deletion"],
        settings={"deletion": {"steps": 4}}, batch_size=4, curves=True,
    )
    assert list(tmp_path.iterdir()) == []
    assert set(scores.columns) == {"image", "target", "predicted", "method", "metric", "variant", "value"}
    assert scores.groupby(["method", "metric", "variant"])["image"].nunique().eq(6).all()
    assert set(scores["image"]) == set(range(6))
    with torch.no_grad():
        predicted = tiny_cnn(images).argmax(dim=1)
    first = scores.drop_duplicates("image").sort_values("image")
    assert first["target"].tolist() == predicted.tolist() == first["predicted"].tolist()
    assert set(curves["metric"]) == {"deletion"} and curves["x"].between(0, 1).all()


def test_evaluate_uses_given_targets_and_is_deterministic(tiny_cnn):
    images = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    targets = torch.tensor([1, 2, 3, 4])
    first = evaluate(tiny_cnn, images, targets, methods=["random"], metrics=["deletion"], settings={"deletion": {"steps": 4}})
    again = evaluate(tiny_cnn, images, targets, methods=["random"], metrics=["deletion"], settings={"deletion": {"steps": 4}})
    assert first["target"].drop_duplicates().tolist() == [1, 2, 3, 4]
    assert first.equals(again)


@pytest.mark.parametrize("empty", ["methods", "metrics"])
def test_an_empty_list_of_methods_or_metrics_is_an_error_not_everything(tiny_cnn, empty):
    images = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    chosen = {"methods": ["saliency"], "metrics": ["sparseness"], empty: []}
    with pytest.raises(UserError, match=f"no {empty} to evaluate"):
        evaluate(tiny_cnn, images, **chosen)
