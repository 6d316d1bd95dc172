"""The paper's maps against a naive per-class autograd computation, and the method contract."""

import copy

import pytest
import torch
from torch import nn

from signed_saliency import methods

PAPER_MAPS = ("gradient", "saliency", "positive", "negative", "active", "inactive")


def naive_class_gradients(model, x):
    """(K,N,C,H,W): a fresh forward and one autograd.grad per class, in eval mode, on a copy."""
    model = copy.deepcopy(model).eval()
    num_classes = model(x).shape[1]
    grads = []
    for q in range(num_classes):
        inputs = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(model(inputs)[:, q].sum(), inputs)
        grads.append(grad)
    return torch.stack(grads)


def reference_maps(model, x, target):
    """The paper's maps from their definitions; active/inactive by the public code's masking loop."""
    all_grads = naive_class_gradients(model, x)
    g = all_grads[target, torch.arange(x.shape[0])]
    own = target.view(-1, 1, 1, 1)
    active, inactive = g.clone(), g.clone()
    for q, grad_q in enumerate(all_grads):
        active[(own != q) & (active <= grad_q)] = 0
        inactive[(own != q) & (inactive >= grad_q)] = 0
    largest = g.gather(1, g.abs().argmax(dim=1, keepdim=True)).squeeze(1)
    is_own = own.unsqueeze(0) == torch.arange(len(all_grads)).view(-1, 1, 1, 1, 1)
    others_max = all_grads.masked_fill(is_own, float("-inf")).amax(dim=0)
    others_min = all_grads.masked_fill(is_own, float("inf")).amin(dim=0)
    return {
        "gradient": largest,
        "saliency": g.abs().amax(dim=1),
        "positive": g.clamp(min=0).amax(dim=1),
        "negative": (-g).clamp(min=0).amax(dim=1),
        "active": active.abs().amax(dim=1),
        "inactive": inactive.abs().amax(dim=1),
        "active-margin": (g - others_max).clamp(min=0).amax(dim=1),
        "inactive-margin": (others_min - g).clamp(min=0).amax(dim=1),
    }


@pytest.fixture
def batch():
    torch.manual_seed(1)
    return torch.rand(6, 3, 16, 16, dtype=torch.float64)


def bn_cnn():
    torch.manual_seed(2)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, stride=2), nn.BatchNorm2d(8), nn.ReLU()),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 7),
    ).double()
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return model


@pytest.mark.parametrize("given_target", [True, False])
def test_paper_maps_match_naive_autograd(tiny_cnn, batch, given_target):
    model = tiny_cnn.double()
    target = torch.tensor([0, 1, 2, 3, 4, 0]) if given_target else model(batch).argmax(dim=1)
    names = [*PAPER_MAPS, "active-margin", "inactive-margin"]
    maps = methods.explain(model, batch, target if given_target else None, names)
    expected = reference_maps(model, batch, target)
    for name, value in maps.items():
        torch.testing.assert_close(value, expected[name].float(), rtol=1e-5, atol=1e-7, msg=name)
    assert maps["active"].count_nonzero() > 0 and maps["inactive"].count_nonzero() > 0


def test_default_target_is_the_predicted_class(tiny_cnn, batch):
    model = tiny_cnn.double()
    predicted = model(batch).argmax(dim=1)
    for name in PAPER_MAPS:
        torch.testing.assert_close(methods.get(name)(model, batch), methods.get(name)(model, batch, predicted))


def test_class_gradients_fold_every_class(tiny_cnn, batch):
    model = tiny_cnn.double()
    target = torch.tensor([4, 3, 2, 1, 0, 2])
    grads = methods.class_gradients(model, batch, target, all_classes=True)
    naive = naive_class_gradients(model, batch)
    rows = torch.arange(len(target))
    torch.testing.assert_close(grads.target, naive[target, rows])
    for n, c in enumerate(target.tolist()):
        others = torch.cat([naive[:c, n], naive[c + 1 :, n]])
        torch.testing.assert_close(grads.other_max[n], others.amax(dim=0))
        torch.testing.assert_close(grads.other_min[n], others.amin(dim=0))
    torch.testing.assert_close(methods.class_gradients(model, batch, target).target, grads.target)
    with pytest.raises(ValueError, match="all classes"):
        methods.class_gradients(model, batch, target).require_all_classes()


def test_saliency_is_max_of_positive_and_negative(tiny_cnn, batch):
    maps = methods.explain(tiny_cnn, batch.float(), None, ["saliency", "positive", "negative", "gradient"])
    assert torch.equal(maps["saliency"], torch.maximum(maps["positive"], maps["negative"]))
    assert torch.equal(maps["saliency"], maps["gradient"].abs())


def test_active_and_inactive_are_zero_where_another_class_ties(batch):
    """Two classes with the same weights have the same gradient everywhere: a tie, never a win."""
    torch.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(4 * 16 * 16, 3)).double()
    with torch.no_grad():
        model[-1].weight[1] = model[-1].weight[0]
        model[-1].bias[1] = model[-1].bias[0]
    for target in (torch.zeros(6, dtype=torch.long), torch.ones(6, dtype=torch.long)):
        maps = methods.explain(model, batch, target, ["active", "inactive", "saliency"])
        assert maps["saliency"].count_nonzero() == maps["saliency"].numel()
        assert maps["active"].count_nonzero() == 0 and maps["inactive"].count_nonzero() == 0
    target = torch.full((6,), 2)
    maps = methods.explain(model, batch, target, ["active", "inactive"])
    assert maps["active"].count_nonzero() > 0 and maps["inactive"].count_nonzero() > 0


def test_active_keeps_a_channel_only_where_it_beats_every_class(tiny_cnn, batch):
    model = tiny_cnn.double()
    naive = naive_class_gradients(model, batch)
    target = model(batch).argmax(dim=1)
    g = naive[target, torch.arange(len(target))]
    is_own = target.view(1, -1, 1, 1, 1) == torch.arange(naive.shape[0]).view(-1, 1, 1, 1, 1)
    wins = g > naive.masked_fill(is_own, float("-inf")).amax(dim=0)
    active = methods.get("active")(model, batch)
    assert torch.all(active[~wins.any(dim=1)] == 0)
    torch.testing.assert_close(active, (g.abs() * wins).amax(dim=1).float())


def test_batch_of_one_matches_its_row_in_a_batch(tiny_cnn, batch):
    model = tiny_cnn.double()
    whole = methods.explain(model, batch, None, PAPER_MAPS)
    for n in (0, 5):
        single = methods.explain(model, batch[n : n + 1], None, PAPER_MAPS)
        for name in PAPER_MAPS:
            assert single[name].shape == (1, 16, 16)
            torch.testing.assert_close(single[name][0], whole[name][n], msg=name)


def test_inputs_are_left_alone_whether_or_not_they_require_grad(tiny_cnn, batch):
    x = batch.float()
    expected = methods.get("active")(tiny_cnn, x)
    leaf = x.clone().requires_grad_(True)
    torch.testing.assert_close(methods.get("active")(tiny_cnn, leaf), expected)
    assert leaf.grad is None and leaf.requires_grad
    with torch.no_grad():
        torch.testing.assert_close(methods.get("active")(tiny_cnn, x), expected)
    with torch.inference_mode():
        inference_x = x.clone()
        maps = methods.explain(tiny_cnn, inference_x, None, methods.names())
    torch.testing.assert_close(maps["active"], expected)


def test_train_mode_model_with_batchnorm_is_explained_in_eval_mode_and_restored(batch):
    model = bn_cnn()
    expected = reference_maps(model, batch, model.eval()(batch).argmax(dim=1))
    model.train()
    model[3][1].eval()  # a mixed state must come back exactly as it was
    flags = [module.training for module in model.modules()]
    stats = copy.deepcopy({k: v for k, v in model.state_dict().items() if "running" in k or "num_batches" in k})
    maps = methods.explain(model, batch, None, methods.names())
    assert [module.training for module in model.modules()] == flags
    for key, value in stats.items():
        assert torch.equal(model.state_dict()[key], value), key
    for name in PAPER_MAPS:
        torch.testing.assert_close(maps[name], expected[name].float(), rtol=1e-5, atol=1e-7, msg=name)


def test_no_gradient_reaches_the_parameters(tiny_cnn, batch):
    methods.explain(tiny_cnn, batch.float(), None, methods.names())
    for name in methods.names():
        methods.get(name)(tiny_cnn, batch[:2].float())
    assert all(p.grad is None for p in tiny_cnn.parameters())


def test_explain_returns_one_float_map_per_method(tiny_cnn, batch):
    names = methods.names()
    maps = methods.explain(tiny_cnn.double(), batch, torch.arange(6) % 5, names)
    assert list(maps) == names
    for name, value in maps.items():
        assert value.shape == (6, 16, 16) and value.dtype == torch.float32 and value.device == batch.device, name
        assert torch.isfinite(value).all(), name


def test_gradient_methods_share_one_forward_pass(count_forwards, tiny_cnn, batch):
    gradient_methods = [m.name for m in methods.registry if m.needs != "model"]
    with count_forwards(tiny_cnn) as calls:
        methods.explain(tiny_cnn, batch.float(), None, gradient_methods)
    assert len(calls) == 1


def test_every_method_describes_itself():
    for method in methods.registry:
        assert method.description, method
    paper = {m.name: m for m in methods.registry if m.family == "paper"}
    assert set(paper) == set(PAPER_MAPS)
    assert {n: m.score for n, m in paper.items() if m.score == "margin"} == {"active": "margin", "inactive": "margin"}


def test_unknown_method_name_lists_the_valid_ones():
    with pytest.raises(KeyError, match="saliency"):
        methods.get("salency")


def test_bad_inputs_are_refused(tiny_cnn):
    with pytest.raises(ValueError, match=r"\(N,C,H,W\)"):
        methods.get("saliency")(tiny_cnn, torch.rand(3, 16, 16))
    with pytest.raises(ValueError, match="target"):
        methods.get("saliency")(tiny_cnn, torch.rand(2, 3, 16, 16), torch.tensor([1]))


@pytest.fixture
def user_methods():
    """Names registered by a test, removed afterwards so other tests see the stock registry."""
    added = []
    yield added
    for name in added:
        methods.registry.unregister(name)


def test_a_method_registered_in_a_test_module_works_everywhere(count_forwards, tiny_cnn, batch, user_methods):
    @methods.register("test-doubled-gradient", direction="signed", score="logit", family="extension", needs="gradients")
    def doubled(grads):
        """Twice the largest-magnitude gradient."""
        return 2 * methods.get("gradient").fn(grads)

    user_methods.append("test-doubled-gradient")
    assert {"test-doubled-gradient", "test-doubled-gradient-positive", "test-doubled-gradient-negative"} <= set(
        methods.names()
    )
    with count_forwards(tiny_cnn) as calls:
        maps = methods.explain(tiny_cnn, batch.float(), None, ["gradient", "test-doubled-gradient-negative"])
    assert len(calls) == 1
    torch.testing.assert_close(maps["test-doubled-gradient-negative"], (-2 * maps["gradient"]).clamp(min=0))
    assert methods.get("test-doubled-gradient").description == "Twice the largest-magnitude gradient."


def test_unregister_removes_a_method_and_its_variants(user_methods):
    methods.register("test-removed", direction="signed", family="extension", needs="gradients")(lambda g: g.target[:, 0])
    before = len(methods.registry)
    methods.registry.unregister("test-removed")
    assert len(methods.registry) == before - 3
    assert not any(name.startswith("test-removed") for name in methods.names())


def test_configure_binds_options_and_rejects_unknown_ones(tiny_cnn, batch):
    ig = methods.get("integrated-gradients")
    few = ig.configure(n_steps=2, internal_batch_size=None)
    assert few.name == ig.name and few.direction == ig.direction
    assert not torch.allclose(few(tiny_cnn, batch.float()), ig(tiny_cnn, batch.float()))
    with pytest.raises(TypeError):
        ig.configure(steps=2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_every_method_runs_on_cuda_and_matches_cpu(tiny_cnn, batch):
    x = batch.float()
    cpu = methods.explain(tiny_cnn, x, None, methods.names())
    cuda = methods.explain(tiny_cnn.cuda(), x.cuda(), None, methods.names())
    for name in methods.names():
        assert cuda[name].device.type == "cuda", name
        if name not in {"smoothgrad", "smoothgrad-positive", "smoothgrad-negative"}:
            torch.testing.assert_close(cuda[name].cpu(), cpu[name], rtol=1e-3, atol=1e-5, msg=name)
