"""models.nets.fashion_cnn: shapes, validation errors, initialisers."""

from __future__ import annotations

import pytest
import torch

from models.nets.fashion_cnn import INIT_METHODS, FashionCNN, FashionCNNConfig, count_parameters


def test_default_network_is_the_spec():
    net = FashionCNN()
    assert net.conv1.weight.shape == (16, 1, 3, 3) and net.conv2.weight.shape == (16, 16, 3, 3)
    assert net.fc1.weight.shape == (100, 16 * 24 * 24) and net.fc2.weight.shape == (10, 100)
    assert count_parameters(net) == (16 * 9 + 16) + (16 * 16 * 9 + 16) + (9216 * 100 + 100) + (100 * 10 + 10)
    assert net(torch.randn(3, 1, 28, 28)).shape == (3, 10)


@pytest.mark.parametrize("changes, flat", [
    ({"conv1_kernel": 5, "conv2_kernel": 2, "conv1_channels": 7, "conv2_channels": 3}, 3 * 23 * 23),
    ({"pool": "max"}, 16 * 5 * 5),                     # 28 -> 26 -> 13 -> 11 -> 5
    ({"pool": "avg", "pool_kernel": 3, "image_size": 32, "in_channels": 3}, 16 * 2 * 2),  # 32-30-10-8-2
])
def test_configurable_sizes(changes, flat):
    cfg = FashionCNNConfig().replace(**changes)
    net = FashionCNN(cfg)
    assert cfg.flat_features == flat and net.fc1.in_features == flat
    out = net(torch.randn(2, cfg.in_channels, cfg.image_size, cfg.image_size))
    assert out.shape == (2, cfg.num_classes)


@pytest.mark.parametrize("changes, message", [
    ({"conv1_kernel": 29}, r"conv1: kernel 29x29 is larger than its 28x28 input"),
    ({"conv2_kernel": 27}, r"conv2: kernel 27x27 is larger than its 26x26 input"),
    ({"conv1_channels": 0}, r"conv1_channels must be a positive integer, got 0"),
    ({"hidden_units": -3}, r"hidden_units must be a positive integer"),
    ({"pool": "max", "pool_kernel": 30}, r"conv1 pool: window 30"),
    ({"pool": "median"}, r"pool must be one of"),
    ({"init": "orthogonal"}, r"init must be one of"),
])
def test_impossible_configs_name_the_layer(changes, message):
    with pytest.raises(ValueError, match=message):
        FashionCNNConfig(**changes)


def test_config_round_trip_and_unknown_fields():
    cfg = FashionCNNConfig(conv1_channels=4, pool="avg")
    assert FashionCNNConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown FashionCNNConfig fields"):
        FashionCNNConfig.from_dict({**cfg.to_dict(), "depth": 3})


@pytest.mark.parametrize("method", INIT_METHODS)
def test_init_methods(method):
    torch.manual_seed(0)
    net = FashionCNN(FashionCNNConfig(init=method))
    for layer in (net.conv1, net.conv2, net.fc1, net.fc2):
        assert torch.count_nonzero(layer.bias) == 0
        assert layer.weight.std() > 0
    # Xavier/Kaiming scale with fan-in: the wide fc1 gets much smaller weights than conv1.
    if method.startswith(("xavier", "kaiming")):
        assert net.fc1.weight.std() < net.conv1.weight.std() / 5


@pytest.mark.parametrize("as_conv", [True, False], ids=["whole-map-conv", "linear"])
@pytest.mark.parametrize("shape, out", [((1, 3, 5, 7), 4), ((6, 16, 24, 24), 100), ((3, 2, 1, 9), 1)])
def test_dense_on_feature_map_is_linear_on_the_flattened_map(shape, out, as_conv, monkeypatch):
    """fc1 runs as a whole-map convolution on non-Intel CPUs, as F.linear elsewhere; either way its
    values and gradients equal F.linear's."""
    from models.nets import fashion_cnn
    from models.nets.fashion_cnn import dense_on_feature_map
    monkeypatch.setattr(fashion_cnn, "whole_map_conv_is_faster", lambda: as_conv)
    torch.manual_seed(0)
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    w = torch.randn(out, x[0].numel(), dtype=torch.float64, requires_grad=True)
    b = torch.randn(out, dtype=torch.float64, requires_grad=True)
    grad = torch.randn(shape[0], out, dtype=torch.float64)
    y = dense_on_feature_map(x, w, b)
    expected = torch.nn.functional.linear(x.flatten(1), w, b)
    torch.testing.assert_close(y, expected, rtol=1e-12, atol=1e-12)
    got = torch.autograd.grad(y, (x, w, b), grad)
    want = torch.autograd.grad(expected, (x, w, b), grad)
    for g, e in zip(got, want):
        torch.testing.assert_close(g, e, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("vendor, as_conv", [("GenuineIntel", False), ("AuthenticAMD", True), ("?", True)])
def test_fc1_path_depends_on_the_cpu_vendor_only(vendor, as_conv, monkeypatch):
    from models.nets.fashion_cnn import whole_map_conv_is_faster
    from sysdl_kernels import peaks
    monkeypatch.setattr(peaks, "cpu_vendor", lambda: vendor)
    assert whole_map_conv_is_faster() is as_conv


def test_in_place_relu_leaves_captured_maps_and_gradients_as_out_of_place():
    """The forward pass applies ReLU in place when nothing is captured; logits and every gradient are
    those of the out-of-place pass (the capturing one), and the captured maps keep their negatives."""
    torch.manual_seed(0)
    net = FashionCNN(FashionCNNConfig(conv1_channels=3, conv2_channels=4, hidden_units=5)).double()
    x = torch.randn(4, 1, 28, 28, dtype=torch.float64)
    captured = {}
    kept = net(x, capture=captured)
    fast = net(x)
    torch.testing.assert_close(fast, kept, rtol=0, atol=0)
    assert (captured["conv1"] < 0).any() and (captured["conv2"] < 0).any()
    grads_kept = torch.autograd.grad(kept.square().sum(), list(net.parameters()))
    grads_fast = torch.autograd.grad(fast.square().sum(), list(net.parameters()))
    for g, e in zip(grads_fast, grads_kept):
        torch.testing.assert_close(g, e, rtol=0, atol=0)
