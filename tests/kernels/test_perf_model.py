"""sysdl_kernels.perf_model: the Optimus loss-curve and speed fits recover known coefficients
from synthetic data, the closed-form steps to a target match the curve, an unreachable target
is refused, and the depth/device regression reproduces a known law.

    pytest tests/kernels/test_perf_model.py
"""

from __future__ import annotations

import numpy as np
import pytest

from sysdl_kernels.perf_model import (UnreachableTargetError, fit_coefficient_regression, fit_loss_curve,
                                      fit_quality, fit_speed_model, loss_curve, speed_terms, steps_to_loss,
                                      time_to_target)

# (b0, b1, b2, k): a per-step curve from 0 and a per-epoch curve from 1, as our logs have them
CURVES = {"steps": (0.05, 0.5, 0.2, np.arange(0, 501, 5.0)),
          "epochs": (0.8, 1.2, 0.1, np.arange(1, 31, 1.0))}
THETA = np.array([2e-3, 0.01, 0.02, 0.003, 0.004])     # s per unit of M/w, 1, w/p, w, p
BATCH = 64


def _grid():
    workers, servers = np.meshgrid([1, 2, 3, 4, 6, 8, 12, 16], [1, 2, 3, 4])
    return workers.ravel(), servers.ravel()


@pytest.mark.parametrize("name", CURVES)
@pytest.mark.parametrize("noise", [0.0, 0.01])
def test_loss_fit_recovers_known_coefficients(name, noise):
    b0, b1, b2, k = CURVES[name]
    loss = loss_curve(k, b0, b1, b2) * (1 + noise * np.random.default_rng(7).standard_normal(k.size))
    fit = fit_loss_curve(k, loss)
    assert [fit.b0, fit.b1, fit.b2] == pytest.approx([b0, b1, b2], rel=0.05)
    assert fit.r2 > 0.99 and fit.mape < 2 * 100 * noise + 1e-6
    assert fit.n_points == k.size and fit.k_max == k.max()


def test_steps_to_loss_is_where_the_curve_meets_the_target():
    b0, b1, b2, _ = CURVES["steps"]
    for target in (1.5, 0.5, 0.21):
        k = steps_to_loss(target, b0, b1, b2)
        assert loss_curve(k, b0, b1, b2) == pytest.approx(target, rel=1e-12)
        assert loss_curve(k - 1, b0, b1, b2) > target          # not reached one step earlier
    assert steps_to_loss(10.0, b0, b1, b2) == 0.0              # already below it at k = 0


@pytest.mark.parametrize("target", [0.2, 0.1])
def test_target_at_or_below_the_asymptote_is_unreachable(target):
    with pytest.raises(UnreachableTargetError, match=r"unreachable.*b2 = 0\.2.*above 0\.2"):
        steps_to_loss(target, 0.05, 0.5, 0.2)


def test_flat_curve_reaches_only_targets_it_starts_below():
    assert steps_to_loss(3.0, 0.0, 0.5, 0.2) == 0.0
    with pytest.raises(UnreachableTargetError, match="flat"):
        steps_to_loss(1.0, 0.0, 0.5, 0.2)


def test_loss_fit_refuses_too_few_or_invalid_points():
    with pytest.raises(ValueError, match="at least 3"):
        fit_loss_curve([1, 2], [1.0, 0.5])
    with pytest.raises(ValueError, match="differ in length"):
        fit_loss_curve([1, 2, 3], [1.0, 0.5])
    with pytest.raises(ValueError, match="losses > 0"):
        fit_loss_curve([1, 2, 3], [1.0, 0.5, -0.1])


def test_fit_quality_on_known_values():
    r2, mape = fit_quality([1.0, 2.0, 3.0], [1.1, 2.0, 2.7])
    assert r2 == pytest.approx(1 - (0.01 + 0.09) / 2.0)
    assert mape == pytest.approx(100 * (0.1 + 0 + 0.1) / 3)


@pytest.mark.parametrize("noise", [0.0, 0.002])
def test_speed_fit_recovers_known_coefficients(noise):
    workers, servers = _grid()
    speed = 1 / (speed_terms(workers, servers, BATCH) @ THETA)
    speed *= 1 + noise * np.random.default_rng(3).standard_normal(speed.size)
    fit = fit_speed_model(workers, servers, speed, BATCH)
    assert fit.theta == pytest.approx(THETA, rel=0.05)
    assert fit.speed(5, 3) == pytest.approx(1 / (speed_terms(5, 3, BATCH) @ THETA)[0], rel=0.01)


def test_speed_fit_keeps_coefficients_non_negative():
    workers, servers = _grid()
    speed = 1 / (speed_terms(workers, servers, BATCH) @ np.array([2e-3, 0.01, 0.0, 0.0, 0.004]))
    fit = fit_speed_model(workers, servers, speed * (1 + 0.01 * np.sin(workers * servers)), BATCH)
    assert np.all(fit.theta >= 0)


def test_speed_fit_refuses_bad_input():
    with pytest.raises(ValueError, match="at least that many"):
        fit_speed_model([1, 2], [1, 1], [3.0, 4.0])
    with pytest.raises(ValueError, match="> 0 steps per second"):
        fit_speed_model([1, 2, 3, 4, 5], [1] * 5, [1.0, 2.0, 0.0, 1.0, 1.0])
    with pytest.raises(ValueError, match=">= 1"):
        speed_terms([0], [1], BATCH)


def test_time_to_target_is_steps_over_speed():
    workers, servers = _grid()
    fit = fit_speed_model(workers, servers, 1 / (speed_terms(workers, servers, BATCH) @ THETA), BATCH)
    times = time_to_target(1000, fit, [1, 4, 16], [2, 2, 4])
    assert times == pytest.approx(1000 / fit.speed([1, 4, 16], [2, 2, 4]))


def test_coefficient_regression_recovers_a_depth_and_device_law():
    depths = np.array([2, 4, 8, 2, 4, 8], dtype=float)
    devices = ["cpu"] * 3 + ["cuda"] * 3
    gpu = np.array([0, 0, 0, 1, 1, 1])
    b0 = np.exp(0.5 - 0.1 * depths + 0.7 * gpu)       # log-linear, as the model assumes
    b1 = np.exp(-1.0 + 0.05 * depths)
    b2 = 0.3 - 0.02 * depths + 0.01 * gpu             # linear
    model = fit_coefficient_regression(depths, devices, np.column_stack([b0, b1, b2]))
    assert model.features == ("intercept", "depth", "device=cuda") and not model.notes
    assert model.predict(6, "cuda") == pytest.approx((np.exp(0.5 - 0.6 + 0.7), np.exp(-1.0 + 0.3), 0.19), rel=1e-3)
    with pytest.raises(ValueError, match="none of the logs"):
        model.predict(6, "tpu")


def test_coefficient_regression_says_what_one_family_cannot_support():
    model = fit_coefficient_regression([4, 4], ["cpu", "cpu"], [[1.0, 0.5, 0.1], [1.2, 0.4, 0.0]])
    assert model.features == ("intercept",)
    assert any("depth 4" in note for note in model.notes) and any("cpu" in note for note in model.notes)
    b0, b1, b2 = model.predict(16, "cpu")                # depth is ignored: geometric / arithmetic means
    assert (b0, b1, b2) == pytest.approx((np.sqrt(1.2), np.sqrt(0.2), 0.05), rel=1e-4)
