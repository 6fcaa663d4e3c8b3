"""models.scratch.train / scratch_profile: the scratch training loop, overfit check, convergence
comparison and per-layer profile (correctness and completeness only; no timing asserted)."""

from __future__ import annotations

import numpy as np
import pytest

from models.scratch import profile as scratch_profile
from models.scratch import train as scratch_train
from models.data.datasets import synthetic_splits


def test_optimizers_from_one_table():
    params = [np.zeros(3)]
    for name in scratch_train.OPTIMIZERS:
        assert scratch_train.make_optimizer(name, params) is not None
    with pytest.raises(ValueError, match="unknown optimizer 'lbfgs'"):
        scratch_train.make_optimizer("lbfgs", params)


def test_converge_records_every_split(tmp_path):
    data = synthetic_splits(n_train=256, n_test=64, val_size=64)
    results = scratch_train.converge(data, ("sgd-momentum", "adam"), epochs=3, backend="numpy",
                                     batch_size=32, track=False, progress=False)
    assert set(results) == {"sgd-momentum", "adam"}
    for history in results.values():
        assert [r["epoch"] for r in history] == [1, 2, 3]
        assert {"loss", "train_error", "val_error", "test_error", "epoch_time"} <= set(history[0])
        assert history[-1]["loss"] < history[0]["loss"]
    path = scratch_train.plot_convergence(results, tmp_path / "c.png")
    assert path.stat().st_size > 1000


@pytest.mark.needs_data
def test_overfits_100_fashion_mnist_images(fashion_mnist):
    result = scratch_train.overfit(fashion_mnist, samples=100, backend="numpy", progress=False)
    assert result["reached"] and result["train_acc"] >= 0.99
    assert result["gap"] > 0.05        # it should overfit: 100 images are not the data set


def test_profile_covers_every_layer_and_implementation():
    x = np.random.default_rng(0).standard_normal((4, 1, 28, 28)).astype(np.float32)
    results = scratch_profile.run_profile(x, repeats=1)
    assert {"numpy", "numba", "pytorch cpu"} <= set(results)
    for timings in results.values():
        assert list(timings) == ["conv", "relu1", "pool", "flatten", "fc1", "relu2", "fc2"]
        assert all(f >= 0 and b >= 0 for f, b in timings.values())
    table = scratch_profile.layer_table(results)
    assert "total" in table.index and ("numba speedup", "fwd+bwd") in table.columns
