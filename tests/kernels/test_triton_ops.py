"""sysdl_kernels.triton_ops: compiled on a GPU, under TRITON_INTERPRET=1 here (tests/conftest.py)."""

from __future__ import annotations

import pytest
import torch

from sysdl_kernels import triton_ops
from sysdl_kernels.matmul_net import MatmulNet

DEVICE = triton_ops.device()


@pytest.mark.parametrize("m, k, n", [(1823, 781, 37), (1, 9, 16), (333, 144, 5), (64, 32, 32)])
@pytest.mark.parametrize("relu", [True, False])
def test_gemm_bias_relu(m, k, n, relu):
    g = torch.Generator().manual_seed(m)
    a, b, bias = torch.randn(m, k, generator=g), torch.randn(k, n, generator=g), torch.randn(n, generator=g)
    expected = a.double() @ b.double() + bias.double()
    expected = expected.relu() if relu else expected
    got = triton_ops.gemm_bias_relu(a.to(DEVICE), b.to(DEVICE), bias.to(DEVICE), relu=relu).cpu()
    torch.testing.assert_close(got.double(), expected, rtol=1e-4, atol=1e-4 * k ** 0.5)


def test_gemm_takes_transposed_views():
    a, b, bias = torch.randn(50, 30), torch.randn(20, 30), torch.randn(20)
    got = triton_ops.gemm_bias_relu(a.to(DEVICE), b.T.to(DEVICE), bias.to(DEVICE), relu=False).cpu()
    torch.testing.assert_close(got, a @ b.T + bias, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shape, kh, kw", [((3, 2, 9, 7), 3, 2), ((2, 5, 6, 11), 1, 4), ((1, 1, 28, 28), 3, 3)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_im2col(shape, kh, kw, channels_last):
    x = torch.randn(shape)
    n, c, h, w = shape
    expected = x.unfold(2, kh, 1).unfold(3, kw, 1)                         # (N, C, OH, OW, KH, KW)
    expected = expected.permute(0, 2, 3, 4, 5, 1).reshape(-1, kh * kw * c)
    source = x.permute(0, 2, 3, 1).contiguous() if channels_last else x
    cols, oh, ow = triton_ops.im2col(source.to(DEVICE), kh, kw, channels_last=channels_last)
    assert (oh, ow) == (h - kh + 1, w - kw + 1)
    assert torch.equal(cols.cpu(), expected)


@pytest.mark.parametrize("shape, o, kh, kw", [((3, 2, 9, 7), 5, 3, 2), ((2, 16, 12, 11), 16, 3, 3)])
@pytest.mark.parametrize("relu", [True, False])
@pytest.mark.parametrize("lowering", ["conv2d", "conv2d_im2col"])
def test_conv2d_matches_torch(shape, o, kh, kw, relu, lowering):
    """Both lowerings: the implicit GEMM (one kernel) and the explicit im2col + GEMM."""
    g = torch.Generator().manual_seed(o)
    x, w, b = torch.randn(*shape, generator=g), torch.randn(o, shape[1], kh, kw, generator=g), torch.randn(o, generator=g)
    expected = torch.nn.functional.conv2d(x.double(), w.double(), b.double())
    got = getattr(triton_ops, lowering)(x.to(DEVICE), w.to(DEVICE), b.to(DEVICE), relu=relu).cpu().double()
    torch.testing.assert_close(got, expected.relu() if relu else expected, rtol=1e-4, atol=1e-4)


def test_conv2d_refuses_a_channel_mismatch():
    with pytest.raises(ValueError, match="channels"):
        triton_ops.conv2d(torch.randn(1, 3, 8, 8).to(DEVICE), torch.randn(4, 2, 3, 3).to(DEVICE),
                          torch.randn(4).to(DEVICE))


def test_bad_shapes():
    with pytest.raises(ValueError, match="shapes do not chain"):
        triton_ops.gemm_bias_relu(torch.randn(3, 4), torch.randn(5, 2), torch.randn(2))
    with pytest.raises(ValueError, match="must be a float32 tensor"):
        triton_ops.gemm_bias_relu(torch.randn(3, 4).double(), torch.randn(4, 2), torch.randn(2))
    with pytest.raises(ValueError, match="larger than"):
        triton_ops.im2col(torch.randn(1, 1, 4, 4), 5, 5)


def test_without_gpu_or_interpreter_the_backend_refuses(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="needs a CUDA GPU, or TRITON_INTERPRET=1"):
        triton_ops.require_triton()


@pytest.mark.needs_data
def test_matmul_net_on_triton_matches_the_module(trained_small_checkpoint, fashion_mnist):
    from models.training.checkpoint import load_model
    model, _ = load_model(trained_small_checkpoint)
    x = fashion_mnist.test.x[:512]
    with torch.inference_mode():
        expected = model.eval()(x)
    got = MatmulNet.from_checkpoint(trained_small_checkpoint, backend="triton")(x)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    assert torch.equal(got.argmax(1), expected.argmax(1))


@pytest.mark.parametrize("shape, kh, kw", [((3, 2, 9, 7), 3, 2), ((2, 5, 6, 11), 1, 4)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_the_references_beside_the_kernels_agree_with_them(shape, kh, kw, channels_last):
    """im2col_reference and gemm_bias_relu_reference (what the lowering benchmarks check
    against) compute what the kernels do, column order and fused ReLU included."""
    x = torch.randn(shape)
    source = x.permute(0, 2, 3, 1).contiguous() if channels_last else x
    cols, oh, ow = triton_ops.im2col(source.to(DEVICE), kh, kw, channels_last=channels_last)
    ref_cols, ref_oh, ref_ow = triton_ops.im2col_reference(source, kh, kw, channels_last=channels_last)
    assert (oh, ow) == (ref_oh, ref_ow)
    torch.testing.assert_close(cols.cpu(), ref_cols, rtol=0, atol=0)
    weight, bias = torch.randn(cols.shape[1], 5), torch.tensor([1.0, -1e9, float("nan"), 0.0, -0.5])
    got = triton_ops.gemm_bias_relu(cols, weight.to(DEVICE), bias.to(DEVICE), relu=True).cpu()
    torch.testing.assert_close(got, triton_ops.gemm_bias_relu_reference(ref_cols, weight, bias, relu=True),
                               rtol=1e-4, atol=1e-4 * cols.shape[1] ** 0.5, equal_nan=True)
