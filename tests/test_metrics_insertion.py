import torch
from torchvision.transforms.functional import gaussian_blur

from helpers import Recorder, given_method

from signed_saliency import metrics


def test_insertion_goes_from_blurred_to_original(tiny_cnn):
    torch.manual_seed(0)
    x = torch.rand(3, 3, 16, 16)
    target = torch.tensor([0, 3, 4])
    out = metrics.get("insertion")(tiny_cnn, x, target, torch.rand(3, 16, 16), given_method("increase"), steps=8)
    assert set(out.values) == {"highest-first"}
    curve = out.curves["highest-first"]
    with torch.no_grad():
        model = tiny_cnn.eval()
        start = model(gaussian_blur(x, [11, 11], [5.0, 5.0])).softmax(dim=1)[torch.arange(3), target]
        end = model(x).softmax(dim=1)[torch.arange(3), target]
    assert curve.y.shape == (3, 9)
    assert torch.allclose(curve.y[:, 0], start, atol=1e-6)
    assert torch.allclose(curve.y[:, -1], end, atol=1e-6)
    assert torch.allclose(out.values["highest-first"], torch.trapezoid(curve.y, curve.x, dim=1), atol=1e-6)


def test_signed_maps_insert_both_ways():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 8, 8)
    maps = torch.randn(2, 8, 8)
    model = Recorder(classes=3)
    out = metrics.get("insertion")(model, x, torch.zeros(2, dtype=torch.long), maps, given_method("signed"), steps=4)
    assert set(out.values) == {"most-positive-first", "most-negative-first"}
    seen = torch.cat(model.seen).view(-1, 2, 3, 8, 8)[2:]  # after the blurred and original ends
    restored = (seen == x).all(dim=2).flatten(2)  # (steps, N, H*W)
    for i, order in enumerate([maps.flatten(1).argsort(1, descending=True), maps.flatten(1).argsort(1)]):
        first = restored[i * 3]  # 16 pixels of 64 at step 1 of 4
        assert torch.equal(first.gather(1, order[:, :16]), torch.ones(2, 16, dtype=torch.bool))
        assert (first.sum(dim=1) == 16).all()
