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
    assert set(scores.columns) == {"image", "target", "predicted", "method", "metric", "variant", "value", "undefined"}
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


def test_the_runner_and_evaluate_give_the_same_rows_on_the_same_batch(workspace):
    import pandas as pd

    from benchmarks import plan, prepare, store
    from benchmarks.config import load_config
    from benchmarks.execute import execute
    from benchmarks.provenance import StageTimer

    tmp, config_path = workspace
    config = load_config(config_path())
    config.validate()
    cpu = torch.device("cpu")
    prepared = prepare.prepare(config, cpu, StageTimer(), quiet=True)
    group = plan.build_plan(config, prepared)[1]  # batch 1: its seed is the config's plus one
    execute([group], prepared, config, tmp / "out", cpu, StageTimer(), quiet=True)
    shards = [store.load_shard(tmp / "out" / "shards" / shard.name) for shard in group.shards]
    runner_scores = pd.concat([shard["scores"] for shard in shards]).drop(columns=["dataset", "model", "label"])
    runner_curves = pd.concat([shard["curves"] for shard in shards if len(shard["curves"])]).drop(columns=["dataset", "model"])

    item = prepared[0]
    positions = list(group.image_positions)
    scores, curves = evaluate(
        item.models["cnn"].module, item.images.floats(positions), methods=config.method_names(),
        metrics=config.metric_names(), settings=config.settings, seed=config.seed + group.batch,
        ground_truth=item.images.ground_truth.select(positions), batch_size=len(positions), curves=True,
    )
    image_ids = dict(enumerate(item.images.indices[positions].tolist()))
    for ours, theirs in ((scores, runner_scores), (curves, runner_curves)):
        ours = ours.assign(image=ours["image"].map(image_ids))
        order = [column for column in ["method", "metric", "variant", "image", "x"] if column in ours]
        ours, theirs = (frame.sort_values(order, kind="stable").reset_index(drop=True) for frame in (ours, theirs))
        pd.testing.assert_frame_equal(ours, theirs[list(ours.columns)], check_dtype=False)
