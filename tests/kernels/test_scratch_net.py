"""The from-scratch CNN: gradients equal torch.autograd's on the same weights; the gradient checker."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sysdl_kernels.scratch.gradcheck import gradcheck, relative_error
from sysdl_kernels.scratch.layers import BACKENDS
from sysdl_kernels.scratch.net import ScratchCNN, ScratchConfig, torch_twin
from tests.oracle import assert_close

CONFIGS = [ScratchConfig(), ScratchConfig(in_channels=3, image_size=10, conv_channels=5, kernel_size=5,
                                          hidden_units=9, num_classes=4)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("config", CONFIGS, ids=["fashion", "awkward"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_loss_and_gradients_match_torch_autograd(backend, config, dtype):
    rng = np.random.default_rng(0)
    net = ScratchCNN(config, backend=backend, seed=1, dtype=dtype)
    x = rng.standard_normal((5, config.in_channels, config.image_size, config.image_size)).astype(dtype)
    y = rng.integers(0, config.num_classes, 5)
    loss, grads = net.loss(x, y)

    twin = torch_twin(config, {k: v.astype(np.float64) for k, v in net.params.items()})
    expected = F.cross_entropy(twin(torch.from_numpy(x.astype(np.float64))), torch.from_numpy(y))
    expected.backward()
    assert_close(np.asarray(loss, dtype=dtype), expected.detach().numpy(), dtype, "loss")
    for name, param in twin.named_parameters():
        assert_close(grads[name], param.grad, dtype, name)


def test_predict_batches_agree_with_scores():
    net = ScratchCNN(CONFIGS[1])
    x = np.random.default_rng(0).standard_normal((7, 3, 10, 10)).astype(np.float32)
    np.testing.assert_array_equal(net.predict(x, batch_size=3), net.scores(x).argmax(1))


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradient_checker_passes_every_layer(backend):
    rows = gradcheck(backend=backend, samples=15)
    assert {r["layer"] for r in rows} >= {"conv", "relu1", "pool", "flatten", "fc1", "relu2", "fc2"}
    worst = max(rows, key=lambda r: r["max_rel_error"])
    assert worst["max_rel_error"] < 1e-6, worst


def test_gradient_checker_catches_a_wrong_backward(monkeypatch):
    """A checker that cannot fail is no checker: break fc1's weight gradient and watch it flag."""
    from sysdl_kernels.scratch import layers
    real = layers.dense.linear_backward
    monkeypatch.setattr(layers.dense, "linear_backward",
                        lambda g, x, w: tuple(v * 1.01 if i == 1 else v for i, v in enumerate(real(g, x, w))))
    rows = gradcheck(samples=10)
    bad = {(r["scope"], r["tensor"]) for r in rows if r["max_rel_error"] > 1e-3}
    assert ("layer", "weight") in bad and ("network loss", "fc1.weight") in bad


def test_relative_error():
    assert relative_error(np.array([1.0, 0.0]), np.array([1.0, 0.0])) == 0.0
    assert relative_error(np.array([1.0]), np.array([3.0])) == pytest.approx(0.5)


def test_bad_config():
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        ScratchConfig(kernel_size=4)
    with pytest.raises(ValueError, match="backend must be one of"):
        ScratchCNN(backend="cuda")
