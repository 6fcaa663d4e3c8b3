"""sysdl_kernels.flops: the analytic formula against torch.utils.flop_counter and the models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from models.fashion_cnn import FashionCNN, FashionCNNConfig, count_parameters
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
