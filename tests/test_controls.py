"""The model-independent controls: seeded noise and Sobel edges."""

import pytest
import torch
from torch import nn

from signed_saliency import methods


@pytest.fixture
def batch():
    torch.manual_seed(8)
    return torch.rand(4, 3, 12, 10)


def test_random_depends_only_on_each_images_content(tiny_cnn, batch):
    random = methods.get("random")
    first = random(tiny_cnn, batch)
    assert first.shape == (4, 12, 10) and (first >= 0).all() and (first < 1).all()
    assert torch.equal(random(tiny_cnn, batch), first)
    order = torch.tensor([2, 0, 3, 1])
    assert torch.equal(random(tiny_cnn, batch[order]), first[order])
    assert torch.equal(random(tiny_cnn, batch[1:2]), first[1:2])
    other_model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 12 * 10, 2))
    assert torch.equal(random(other_model, batch), first)
    assert not torch.equal(first[0], first[1])
    assert not torch.equal(random.configure(seed=1)(tiny_cnn, batch), first)


def test_random_does_not_touch_the_global_random_state(tiny_cnn, batch):
    state = torch.get_rng_state()
    methods.get("random")(tiny_cnn, batch)
    assert torch.equal(torch.get_rng_state(), state)


def step_image(column, values=(1.0, 1.0, 1.0), size=(6, 8)):
    image = torch.zeros(1, 3, *size)
    image[0, :, :, column:] = torch.tensor(values).view(3, 1, 1)
    return image


def test_edge_on_a_vertical_step_is_four_times_the_step_on_its_two_columns(tiny_cnn):
    edges = methods.get("edge")(tiny_cnn, step_image(column=4))
    expected = torch.zeros(1, 6, 8)
    expected[..., 3:5] = 4.0
    torch.testing.assert_close(edges, expected)


def test_edge_on_a_horizontal_step_and_on_colour(tiny_cnn):
    transposed = step_image(column=3, size=(8, 8)).transpose(-1, -2).contiguous()
    expected = torch.zeros(1, 8, 8)
    expected[:, 2:4, :] = 4.0
    torch.testing.assert_close(methods.get("edge")(tiny_cnn, transposed), expected)
    red = methods.get("edge")(tiny_cnn, step_image(column=4, values=(1.0, 0.0, 0.0)))
    torch.testing.assert_close(red[..., 3:5], torch.full((1, 6, 2), 4 * 0.299))


def test_edge_ignores_the_model_and_flat_images_have_none(tiny_cnn, batch):
    other_model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 12 * 10, 2))
    torch.testing.assert_close(methods.get("edge")(tiny_cnn, batch), methods.get("edge")(other_model, batch))
    assert methods.get("edge")(tiny_cnn, torch.full((2, 3, 5, 5), 0.7)).abs().max() < 1e-6


def test_controls_claim_magnitude():
    for name in ("random", "edge"):
        method = methods.get(name)
        assert method.family == "control" and method.direction == "magnitude"
