"""sysdl_kernels.flops: the analytic formula against torch.utils.flop_counter and the models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from models.nets.fashion_cnn import FashionCNN, FashionCNNConfig, count_parameters
from sysdl_kernels import flops


def random_configs(count: int):
    rng = np.random.default_rng(0)
    for _ in range(count):
        pool = rng.choice([None, "max", "avg"])
        yield FashionCNNConfig(
            in_channels=int(rng.integers(1, 4)), image_size=int(rng.integers(12, 33)),
            conv1_channels=int(rng.integers(1, 33)), conv1_kernel=int(rng.integers(1, 6)),
            conv2_channels=int(rng.integers(1, 33)), conv2_kernel=int(rng.integers(1, 6)),
            hidden_units=int(rng.integers(1, 300)), num_classes=int(rng.integers(2, 12)),
            pool=pool, pool_kernel=2)


@pytest.mark.parametrize("config", list(random_configs(24)), ids=lambda c: f"{c.conv1_channels}-{c.conv2_channels}-{c.hidden_units}-{c.pool}")
def test_gemm_flops_and_params_match_torch(config):
    model = FashionCNN(config)
    costs = config.cost()
    x = torch.randn(1, config.in_channels, config.image_size, config.image_size)
    with FlopCounterMode(display=False) as counter:
        model(x)
    assert flops.totals(costs)["gemm_flops"] == counter.get_total_flops()
    assert flops.totals(costs)["params"] == count_parameters(model)
    assert costs[-1].output_shape == (config.num_classes,)


def test_base_network_figures():
    total = flops.totals(FashionCNNConfig().cost())
    assert total["gemm_flops"] == 2 * (16 * 26 * 26 * 9 + 16 * 24 * 24 * 16 * 9 + 100 * 9216 + 10 * 100)
    assert total["flops"] == total["gemm_flops"] + (10816 + 9216 + 100 + 10) + (10816 + 9216 + 100)
    assert total["params"] == 925_190


def test_pool_and_errors():
    cost = flops.analyze([flops.Pool("avg", 2)], (3, 5, 7))[0]
    assert cost.output_shape == (3, 2, 3) and cost.other_flops == 18 * 4
    with pytest.raises(ValueError, match="add Flatten"):
        flops.analyze([flops.Linear(3)], (1, 4, 4))
    with pytest.raises(ValueError, match="does not fit"):
        flops.analyze([flops.Conv(2, 9)], (1, 4, 4))


def _torch_layer_check(spec, module, input_shape):
    """One layer description against the torch module it describes: output shape, params, GEMM FLOPs."""
    cost = flops.analyze([spec], input_shape)[0]
    with FlopCounterMode(display=False) as counter:
        out = module(torch.randn(1, *input_shape))
    assert cost.output_shape == tuple(out.shape[1:])
    assert cost.params == sum(p.numel() for p in module.parameters())
    assert cost.gemm_flops == counter.get_total_flops()
    assert cost.input_activations == int(np.prod(input_shape))
    return cost


@pytest.mark.parametrize("kernel, stride, padding, groups, bias", [
    ((3, 5), (2, 1), (1, 2), 2, False), (1, 1, 0, 1, True), (4, 3, 2, 3, True), ((5, 2), 2, (0, 1), 6, False)])
def test_conv_padding_stride_groups_match_torch(kernel, stride, padding, groups, bias):
    module = torch.nn.Conv2d(6, 12, kernel, stride, padding, groups=groups, bias=bias)
    _torch_layer_check(flops.Conv(12, kernel, stride, padding, bias, groups), module, (6, 13, 17))


@pytest.mark.parametrize("kind, kernel, stride, padding, ceil_mode", [
    ("max", 3, 2, 0, True), ("max", 3, 2, 1, True), ("max", 3, 1, 1, True), ("max", 2, 2, 0, True),
    ("max", 2, 2, 1, True),                    # on width 7 the last window would start in the padding
    ("max", (2, 3), (2, 2), (1, 1), False), ("avg", 3, 2, 1, True), ("avg", (3, 2), None, 0, False)])
def test_pool_padding_and_ceil_mode_match_torch(kind, kernel, stride, padding, ceil_mode):
    cls = torch.nn.MaxPool2d if kind == "max" else torch.nn.AvgPool2d
    module = cls(kernel, stride, padding, ceil_mode=ceil_mode)
    for shape in [(3, 13, 17), (2, 14, 7), (1, 8, 8)]:
        _torch_layer_check(flops.Pool(kind, kernel, stride, padding, ceil_mode), module, shape)


def test_adaptive_pool_batchnorm_dropout():
    cost = _torch_layer_check(flops.AdaptiveAvgPool((3, 2)), torch.nn.AdaptiveAvgPool2d((3, 2)), (4, 5, 7))
    # Windows along H=5 -> 3: [0,2) [1,4) [3,5) = 2+3+2; along W=7 -> 2: [0,4) [3,7) = 4+4.
    assert cost.other_flops == 4 * (2 + 3 + 2) * (4 + 4)
    bn = _torch_layer_check(flops.BatchNorm(), torch.nn.BatchNorm2d(4).eval(), (4, 5, 7))
    assert (bn.weights, bn.biases, bn.other_flops) == (4, 4, 2 * 4 * 5 * 7)
    dropout = _torch_layer_check(flops.Dropout(), torch.nn.Dropout().eval(), (4, 5, 7))
    assert dropout.flops == flops.memory_bytes(dropout) == 0


def test_concat_and_residual_rows():
    body = (("conv", flops.Conv(8, 3, stride=2, padding=1, bias=False)), ("bn", flops.BatchNorm()))
    shortcut = (("proj", flops.Conv(8, 1, stride=2, bias=False)),)       # 4x9x9 -> 8x5x5, as the body
    block = flops.Residual(body, shortcut, after=(("relu", flops.ReLU()),))
    costs = flops.analyze([("block", block)], (4, 9, 9))
    assert [c.name for c in costs] == ["block.conv", "block.bn", "block.proj", "block.add", "block.relu"]
    add = costs[3]
    assert add.output_shape == (8, 5, 5) and add.other_flops == 200 and add.input_activations == 400
    branches = flops.Concat((flops.Conv(3, 1), flops.Sequential((flops.Conv(5, 3, padding=1), flops.ReLU()))))
    costs = flops.analyze([branches], (2, 6, 7))
    assert costs[-1].name == "0:concat.concat" and costs[-1].output_shape == (8, 6, 7)
    assert costs[-1].input_activations == 8 * 6 * 7 and len({c.name for c in costs}) == len(costs)


def test_composite_errors():
    with pytest.raises(ValueError, match="projection shortcut"):
        flops.analyze([flops.Residual((flops.Conv(8, 3),))], (4, 9, 9))
    with pytest.raises(ValueError, match="one H x W"):
        flops.analyze([flops.Concat((flops.Conv(3, 1), flops.Conv(3, 3)))], (2, 6, 7))
    with pytest.raises(ValueError, match="groups=3 must divide"):
        flops.analyze([flops.Conv(8, 3, groups=3)], (6, 9, 9))
    with pytest.raises(ValueError, match="one name per layer"):
        flops.analyze([flops.ReLU()], (1, 2, 2), names=["a", "b"])
    with pytest.raises(TypeError, match="unknown layer description"):
        flops.analyze([torch.nn.ReLU()], (1, 2, 2))
