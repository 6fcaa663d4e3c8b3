"""sysdl_kernels.matmul_net (CPU backend): equal to the nn.Module, matrix multiplications only."""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from models.training.checkpoint import load_model
from models.nets.fashion_cnn import FashionCNN, FashionCNNConfig
from sysdl_kernels.matmul_net import CONV_STRATEGIES, DENSE_ENGINES, PROGRAMS, MatmulNet

CONFIGS = [FashionCNNConfig(), FashionCNNConfig(conv1_channels=1, conv2_channels=3, hidden_units=5),
           FashionCNNConfig(conv1_channels=4, conv1_kernel=5, conv2_channels=2, conv2_kernel=2, pool="max"),
           FashionCNNConfig(conv1_channels=2, conv2_channels=6, hidden_units=11, pool="avg", pool_kernel=3)]


class RecordOps(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.add(str(func.overloadpacket))
        return func(*args, **(kwargs or {}))


def model_and_net(config, strategy=None, chunk=64, dense_engine=None, program=None):
    torch.manual_seed(0)
    model = FashionCNN(config).eval()
    return model, MatmulNet(model.state_dict(), config.to_dict(), chunk=chunk, strategy=strategy,
                            dense_engine=dense_engine, program=program)


@pytest.mark.parametrize("dense_engine", [None, *DENSE_ENGINES])
@pytest.mark.parametrize("strategy", [None, *CONV_STRATEGIES])
@pytest.mark.parametrize("config", CONFIGS, ids=["base", "tiny", "maxpool-5x5-2x2", "avgpool"])
@pytest.mark.parametrize("batch", [1, 37, 150])
def test_logits_match_the_module(config, strategy, dense_engine, batch):
    model, net = model_and_net(config, strategy, dense_engine=dense_engine)
    x = torch.randn(batch, 1, 28, 28)
    with torch.no_grad():
        expected = model(x)
    torch.testing.assert_close(net(x), expected, rtol=1e-4, atol=1e-4)


MATMUL_OPS = {"aten.addmm", "aten.mm", "aten.bmm", "aten.baddbmm", "aten.matmul"}


@pytest.mark.parametrize("strategy, dense_engine", [(None, None), ("nhwc", "torch"), ("numba", "numba")])
def test_only_matrix_multiplications_run(strategy, dense_engine):
    """No conv or linear op runs; torch's GEMMs show up as addmm, Numba's as no aten op at all."""
    model, net = model_and_net(CONFIGS[2], strategy, dense_engine=dense_engine)
    x = torch.randn(70, 1, 28, 28)
    net(x)                                           # tuning happens outside the recording
    with RecordOps() as recorder:
        net(x)
    assert recorder.ops, "the recorder saw nothing"
    forbidden = {op for op in recorder.ops if "conv" in op or "linear" in op or "mkldnn" in op}
    assert not forbidden, forbidden
    if dense_engine == "torch":
        assert {"aten.addmm"} <= recorder.ops
    if strategy == dense_engine == "numba":
        assert not recorder.ops & MATMUL_OPS, recorder.ops
    with RecordOps() as module_ops:                  # the recorder does see convolutions
        with torch.no_grad():
            model(x)
    assert any("conv" in op for op in module_ops.ops)


@pytest.mark.parametrize("config", CONFIGS[:2], ids=["base", "tiny"])
@pytest.mark.parametrize("batch", [1, 5, 150])
def test_the_fused_path_matches_the_module(config, batch):
    """The whole network in one Numba kernel: batch 1 (serial), a tile remainder, several chunks."""
    model, net = model_and_net(config, program="fused")
    x = torch.randn(batch, 1, 28, 28).permute(0, 1, 3, 2)           # a transposed view
    with torch.no_grad():
        expected = model(x)
    torch.testing.assert_close(net(x), expected, rtol=1e-4, atol=1e-4)
    assert set(net.program_choices.values()) == {"fused"} and "fused" in net.describe()
    again = net(x)                        # within one chunk: the direct path, one kernel call
    torch.testing.assert_close(again, expected, rtol=1e-4, atol=1e-4)
    assert again.shape == (batch, 10) and again.dtype == torch.float32
    with pytest.raises(ValueError, match="requires grad"):
        net(x.clone().requires_grad_())
    with torch.no_grad():                 # grad off: a tensor that requires grad is only read
        torch.testing.assert_close(net(x.clone().requires_grad_()), expected, rtol=1e-4, atol=1e-4)


def test_the_fused_path_runs_no_torch_op_on_the_layers():
    model, net = model_and_net(CONFIGS[1], program="fused")
    x = torch.randn(70, 1, 28, 28)
    net(x)
    with RecordOps() as recorder:
        net(x)
    assert recorder.ops, "the recorder saw nothing"
    assert not {op for op in recorder.ops if "conv" in op or "linear" in op or "mkldnn" in op or "relu" in op}
    assert not recorder.ops & MATMUL_OPS, recorder.ops


def test_the_faster_path_is_chosen_per_chunk_size():
    _, pooled = model_and_net(CONFIGS[2])
    pooled(torch.randn(3, 1, 28, 28))
    assert pooled.program_choices == {3: "layered"}                      # pooling: never fused
    _, plain = model_and_net(CONFIGS[1])
    plain(torch.randn(3, 1, 28, 28))
    assert set(plain.program_choices) == {3} and plain.program_choices[3] in PROGRAMS
    with pytest.raises(ValueError, match="fused program needs a network without pooling"):
        model_and_net(CONFIGS[2], program="fused")
    with pytest.raises(ValueError, match="program must be one of"):
        model_and_net(CONFIGS[1], program="winograd")


@pytest.mark.parametrize("strategy", ["nhwc", "numba"])
def test_buffers_are_reused_across_calls(strategy):
    _, net = model_and_net(CONFIGS[0], strategy=strategy)
    x = torch.randn(64, 1, 28, 28)
    net(x)
    before = {k: v.data_ptr() for k, v in net._buffers.items()}
    net(x)
    assert before == {k: v.data_ptr() for k, v in net._buffers.items()}


def test_choices_are_reported():
    _, net = model_and_net(CONFIGS[1], chunk=32)
    net(torch.randn(40, 1, 28, 28))
    assert set(net.choices) == {32, 8}
    assert all(v in CONV_STRATEGIES for choice in net.choices.values() for v in choice.values())
    assert set(net.dense_choices) == {32, 8}
    assert all(set(choice) == {"fc1", "fc2"} and set(choice.values()) <= set(DENSE_ENGINES)
               for choice in net.dense_choices.values())
    assert "conv1=" in net.describe() and "fc1=" in net.describe()


def test_bad_input():
    _, net = model_and_net(CONFIGS[1])
    with pytest.raises(ValueError, match=r"x must have shape \(N, 1, 28, 28\)"):
        net(torch.randn(2, 3, 28, 28))
    with pytest.raises(TypeError, match="x must be float32"):
        net(torch.randn(2, 1, 28, 28, dtype=torch.float64))
    with pytest.raises(ValueError, match="backend must be one of"):
        MatmulNet({}, {}, backend="opencl")
    with pytest.raises(ValueError, match="strategy must be one of"):
        MatmulNet(FashionCNN().state_dict(), FashionCNNConfig().to_dict(), strategy="winograd")
    with pytest.raises(ValueError, match="dense_engine must be one of"):
        MatmulNet(FashionCNN().state_dict(), FashionCNNConfig().to_dict(), dense_engine="cublas")


@pytest.mark.needs_data
def test_whole_test_set_from_a_checkpoint(trained_small_checkpoint, fashion_mnist):
    model, _ = load_model(trained_small_checkpoint)
    net = MatmulNet.from_checkpoint(trained_small_checkpoint)
    with torch.inference_mode():
        expected = model.eval()(fashion_mnist.test.x)
    got = net(fashion_mnist.test.x)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    assert torch.equal(got.argmax(1), expected.argmax(1))


def test_a_fixed_fused_program_tunes_nothing_else_and_conflicts_are_named():
    _, net = model_and_net(CONFIGS[1], program="fused")
    net(torch.randn(5, 1, 28, 28))
    assert net.choices == {} and net.describe() == "MatmulNet[cpu] chunk 5: fused (one Numba kernel)"
    with pytest.raises(ValueError, match="fused program has none"):
        model_and_net(CONFIGS[1], strategy="nhwc", program="fused")
    torch.manual_seed(0)
    with pytest.raises(ValueError, match="the triton backend has one"):
        MatmulNet(FashionCNN(CONFIGS[1]).state_dict(), CONFIGS[1].to_dict(), backend="triton", program="layered")
