"""A bad setting value is a one-line error when the config is read, before any data loads."""

from __future__ import annotations

import pytest

from benchmarks import data, run
from signed_saliency import metrics
from signed_saliency.errors import UserError


@pytest.mark.parametrize(
    "settings, message",
    [
        ("[settings.deletion]\nsteps = 0", "metric 'deletion': steps must be a number at least 1, got 0"),
        ("[settings.deletion]\nsteps = \"4\"", "metric 'deletion': steps must be an integer, got '4'"),
        ("[settings.deletion]\nsteps = true", "metric 'deletion': steps must be an integer, got True"),
        ("[settings.deletion]\nbaselines = [\"grey\"]", "baselines must be a non-empty list of items each one of black, white"),
        ("[settings.deletion]\nblur_kernel = 4", "blur_kernel must be an odd positive integer, got 4"),
        ("[settings.road]\nfractions = [-0.1, 0.5]", "metric 'road': fractions must be a non-empty list of items each a fraction"),
        ("[settings.road]\nfractions = 0.5", "metric 'road': fractions must be a list, got 0.5"),
        ("[settings.sign-flip]\nregimes = []", "metric 'sign-flip': regimes must be a non-empty list, got []"),
        ("[settings.randomisation]\nmax_layers = 0", "max_layers must be a number at least 1 or None, got 0"),
        ("[settings.deletion]\nstep = 4", "metric 'deletion' has no setting 'step'"),
    ],
)
def test_a_bad_setting_fails_before_data_loads(workspace, monkeypatch, capsys, settings, message):
    tmp, config = workspace
    bad = tmp / "bad.toml"
    text = open(config()).read()
    bad.write_text(text[: text.index("[settings.deletion]")] + settings + "\n")
    monkeypatch.setattr(data, "load_images", lambda *args, **kwargs: pytest.fail("loaded data before checking settings"))
    assert run.main(["--config", str(bad), "--metrics", "*", "--out", str(tmp / "out"), "--quiet"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and message in error and "\n" not in error
    assert not (tmp / "out").exists()


def test_metrics_called_from_python_check_their_settings_too(tiny_cnn):
    import torch

    from signed_saliency import methods

    x = torch.rand(2, 3, 16, 16)
    saliency = methods.get("saliency")
    maps = saliency(tiny_cnn, x)
    for name, settings in [("deletion", {"steps": 0}), ("insertion", {"blur_sigma": -1.0}), ("sign-flip", {"eps": -0.1})]:
        with pytest.raises(UserError, match=f"metric '{name}'"):
            metrics.get(name)(tiny_cnn, x, torch.zeros(2, dtype=torch.long), maps, saliency, **settings)


def test_every_metric_accepts_its_own_defaults():
    for metric in metrics.registry:
        metric.check_settings(metric.defaults())


def test_a_check_of_a_setting_the_metric_lacks_is_refused_at_registration():
    with pytest.raises(UserError, match="checks stepz, which it has no setting of"):
        metrics.registry.register("checks-a-typo-test", checks={"stepz": metrics.setting_checks.at_least(1)})(
            lambda call, *, steps=1: None
        )
    assert "checks-a-typo-test" not in metrics.registry


def test_a_metric_of_the_old_many_argument_form_is_refused_at_registration():
    with pytest.raises(UserError, match=r"must take one MetricCall and keyword-only settings, not \(model, x, target, maps, method\)"):
        metrics.registry.register("old-form-test")(lambda model, x, target, maps, method, *, seed=0, ground_truth=None: None)
    assert "old-form-test" not in metrics.registry
