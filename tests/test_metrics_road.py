from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from helpers import Recorder, given_method

from signed_saliency import metrics
from signed_saliency.errors import UserError
from signed_saliency.methods.core import Method
from signed_saliency.metrics.perturbation import first_pixels, pixel_counts, positions, rank_pixels
from signed_saliency.metrics.road import FRACTIONS, add_noise_, impute
from signed_saliency.metrics.road_solvers import dissection_order, solve_cg, solve_exact, system_groups
from signed_saliency.runtime import generator

OFFSETS = {(dr, dc): 1 / 6 if dr == 0 or dc == 0 else 1 / 12 for dr in (-1, 0, 1) for dc in (-1, 0, 1) if dr or dc}


def _dense_imputation(image, removed):
    """The ROAD equations written out one pixel at a time and solved densely."""
    height, width = removed.shape
    unknowns = [tuple(p) for p in np.argwhere(removed)]
    index = {p: i for i, p in enumerate(unknowns)}
    a = np.zeros((len(unknowns), len(unknowns)))
    b = np.zeros((len(unknowns), image.shape[0]))
    for i, (r, c) in enumerate(unknowns):
        for (dr, dc), w in OFFSETS.items():
            rr, cc = r + dr, c + dc
            if 0 <= rr < height and 0 <= cc < width:
                a[i, i] += w
                if removed[rr, cc]:
                    a[i, index[(rr, cc)]] -= w
                else:
                    b[i] += w * image[:, rr, cc]
    out = image.copy()
    solution = np.linalg.solve(a, b)
    for i, (r, c) in enumerate(unknowns):
        out[:, r, c] = solution[i]
    return out


def test_imputation_equals_a_dense_solve():
    rng = np.random.default_rng(3)
    image = rng.random((3, 6, 5))
    removed = rng.random((6, 5)) < 0.5
    removed[0, 0] = removed[5, 4] = True  # corners: fewer neighbours
    ours = impute(image, removed, noise=0.0, rng=rng)
    np.testing.assert_allclose(ours, _dense_imputation(image, removed), atol=1e-12)
    assert np.array_equal(ours[:, ~removed], image[:, ~removed])
    noisy = impute(image, removed, noise=0.01, rng=np.random.default_rng(0))
    assert 0 < np.abs(noisy - ours).max() < 0.1


def test_system_groups_pack_consecutive_images_up_to_the_cap():
    groups = system_groups(np.array([3, 3, 3, 10, 1, 1]), max_unknowns=6)
    assert [g.tolist() for g in groups] == [[0, 1], [2], [3], [4, 5]]  # an image over the cap stands alone
    assert [g.tolist() for g in system_groups(np.array([5, 5]), max_unknowns=100)] == [[0, 1]]


def test_dissection_order_numbers_every_pixel_once_and_the_halving_line_last():
    order = dissection_order(9, 6)
    assert sorted(order.tolist()) == list(range(54))
    assert sorted(order[-6:].tolist()) == list(range(24, 30))  # row 4 halves the 9 rows
    # each half before the line, the top one first
    assert order[:24].max() < 24 and order[24:48].min() > 29


def test_batched_imputation_does_not_depend_on_how_images_are_grouped():
    rng = np.random.default_rng(1)
    images = rng.random((5, 3, 7, 6))
    removed = torch.from_numpy(rng.random((5, 1, 7, 6)) < 0.6)
    one_by_one = np.stack([impute(images[i], removed[i, 0].numpy(), 0.0, rng) for i in range(5)])
    with ThreadPoolExecutor(2) as pool:
        for cap in (1, 40, 10**6):
            grouped = solve_exact(torch.from_numpy(images), removed, pool, max_unknowns=cap)
            np.testing.assert_allclose(grouped.numpy(), one_by_one, atol=1e-12)


def _steps(maps):
    """Masks (jobs*N,1,H,W) of every ROAD step, MoRF then LeRF, as the metric makes them."""
    size = maps.shape[-1]
    places = positions(rank_pixels(maps, generator(0)))
    counts = pixel_counts(FRACTIONS, size * size)
    return torch.cat([first_pixels(p, c, size, size) for p in (places, size * size - 1 - places) for c in counts])


@pytest.mark.parametrize("size,images", [(32, 4), (224, 1)])
def test_conjugate_gradients_equal_the_exact_solve_at_every_fraction(size, images):
    generator_ = torch.Generator().manual_seed(size)
    x = torch.nn.functional.avg_pool2d(torch.rand(images, 3, size, size, generator=generator_), 5, 1, 2)
    # blobs of 4 px (a smooth map: removed regions, CG's hard case) and single pixels; the
    # slowest case, 56-px blobs at 224 px, agreed within 3e-7 but takes CG 24 s of CPU
    cells = size // 4
    smooth = torch.nn.functional.interpolate(torch.rand(images, 1, cells, cells, generator=generator_), size=size, mode="bilinear")
    for maps in (smooth[:, 0], torch.rand(images, size, size, generator=generator_)):
        removed = _steps(maps)
        batch = x.repeat(len(removed) // images, 1, 1, 1)
        with ThreadPoolExecutor(1) as pool:
            exact = add_noise_(solve_exact(batch, removed, pool), removed, 0.01, np.random.default_rng(0))
        ours = add_noise_(solve_cg(batch, removed), removed, 0.01, np.random.default_rng(0))
        assert (ours - exact).abs().max() <= 1e-5
        assert torch.equal(ours[~removed.expand_as(ours)], batch.double()[~removed.expand_as(ours)])


def test_road_gives_the_same_values_with_either_solver(tiny_cnn):
    x, maps = torch.rand(6, 3, 16, 16), torch.rand(6, 16, 16)
    target = torch.arange(6) % 5
    road = metrics.get("road")
    exact = road(tiny_cnn, x, target, maps, given_method("increase"), solver="exact")
    ours = road(tiny_cnn, x, target, maps, given_method("increase"), solver="cg")
    for key, curve in exact.curves.items():
        torch.testing.assert_close(ours.curves[key].y, curve.y, atol=1e-5, rtol=0)
    with pytest.raises(UserError, match="solver"):
        road(tiny_cnn, x, target, maps, given_method("increase"), solver="magic")


def test_road_runs_on_rgb_32x32_and_reports_the_gap():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 10)).train()
    x = torch.rand(4, 3, 32, 32)
    target = torch.tensor([0, 1, 2, 3])
    maps = torch.rand(4, 32, 32)
    out = metrics.get("road")(model, x, target, maps, given_method("increase"), fractions=(0.2, 0.5, 0.8), seed=3)
    assert model.training
    assert set(out.curves) == {f"{o}/{s}" for o in ("morf", "lerf") for s in ("accuracy", "probability")}
    assert set(out.values) == {"accuracy", "probability"}
    for score in ("accuracy", "probability"):
        gap = out.values[score]
        assert gap.shape == (4,) and torch.isfinite(gap).all()
        lerf, morf = out.curves[f"lerf/{score}"], out.curves[f"morf/{score}"]
        assert torch.allclose(gap, torch.trapezoid(lerf.y - morf.y, lerf.x, dim=1) / 0.6, atol=1e-6)
    again = metrics.get("road")(model, x, target, maps, given_method("increase"), fractions=(0.2, 0.5, 0.8), seed=3)
    assert torch.equal(again.curves["morf/probability"].y, out.curves["morf/probability"].y)


def test_road_removes_most_then_least_relevant_pixels():

    x = torch.rand(1, 3, 8, 8)
    maps = torch.arange(64.0).view(1, 8, 8)
    target = torch.zeros(1, dtype=torch.long)
    recorder = Recorder(classes=3)
    metrics.get("road")(recorder, x, target, maps, given_method("increase"), fractions=(0.25,), noise=0.0)
    morf, lerf = torch.cat(recorder.seen)
    changed = lambda image: (image != x[0]).any(dim=0).flatten()  # noqa: E731
    assert torch.equal(changed(morf).nonzero().flatten(), torch.arange(48, 64))
    assert torch.equal(changed(lerf).nonzero().flatten(), torch.arange(0, 16))


def test_road_rejects_removing_everything(tiny_cnn):
    with pytest.raises(UserError, match="fractions must be a non-empty list of items each a fraction in"):
        metrics.get("road")(
            tiny_cnn,
            torch.rand(1, 3, 8, 8),
            torch.zeros(1, dtype=torch.long),
            torch.rand(1, 8, 8),
            given_method("increase"),
            fractions=(1.0,),
        )


def test_road_reports_each_imputed_step_without_changing_its_values():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4))
    x, maps, target = torch.rand(2, 3, 8, 8), torch.rand(2, 8, 8), torch.tensor([0, 1])
    heard = []
    road = metrics.get("road")
    out = road(model, x, target, maps, given_method("increase"), fractions=(0.2, 0.5), progress=lambda *a: heard.append(a))
    assert heard == [(0, 4), (1, 4), (2, 4), (3, 4), (4, 4)]  # MoRF and LeRF, two fractions each
    silent = road(model, x, target, maps, given_method("increase"), fractions=(0.2, 0.5))
    assert torch.equal(out.values["probability"], silent.values["probability"])
    assert "progress" not in road.defaults()  # a call parameter, not a setting configs could change
