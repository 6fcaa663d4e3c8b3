"""Autograd through the torch paths: every entry point either records a correct graph or refuses.

* conv2d_torch (every layout) and conv.conv2d on tensors run as conv.Conv2dFunction, whose
  backward is sysdl's conv2d_backward: x.grad, w.grad and b.grad equal F.conv2d's (the
  oracle), for any subset of them requiring grad, inside larger graphs and twice over.
* the pools and dense functions are written in differentiable torch ops: their autograd
  gradients equal torch's, the max-pool's following torch's choice of tap.
* the Triton launchers and MatmulNet have no backward: given a tensor that requires grad with
  grad mode on they raise a ValueError; under torch.no_grad() they run.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from sysdl_kernels import conv, dense, pool, triton_ops
from sysdl_kernels.matmul_net import MatmulNet
from tests.oracle import (NET_CONFIG, NET_SHAPES, assert_close, conv2d_oracle, conv_cases, pool2d_oracle,
                          pool_cases)

DTYPES = (np.float64, np.float32)
CONV_LAYOUTS = [("auto", 3), ("nhwc", 3), ("nchw", 3), ("rows", 1)]


@pytest.mark.parametrize("layout, max_stride", CONV_LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_conv2d_torch_gradients_are_f_conv2ds(layout, max_stride, dtype, data):
    """The issue's case: 'nhwc' left x.grad, w.grad and b.grad None, 'rows' raised inside torch."""
    case = data.draw(conv_cases(dtype, max_stride=max_stride), label="case")
    names = [n for n in ("x", "w", "b") if case[n] is not None]
    tracked = data.draw(st.lists(st.sampled_from(names), min_size=1, unique=True), label="requires grad")
    leaves = {n: torch.tensor(case[n], requires_grad=n in tracked) if case[n] is not None else None
              for n in ("x", "w", "b")}
    geometry = {k: case[k] for k in ("stride", "padding", "dilation")}
    out = conv.conv2d_torch(leaves["x"], leaves["w"], leaves["b"], **geometry, layout=layout)
    assert out.requires_grad
    out.backward(torch.from_numpy(case["grad_out"]))
    expected = dict(zip(("out", "x", "w", "b"), conv2d_oracle(case["x"], case["w"], case["b"],
                                                              grad_out=case["grad_out"], **geometry)))
    assert_close(out, expected["out"], dtype, "forward")
    for name in names:
        if name in tracked:
            assert leaves[name].grad is not None, f"{name}.grad was dropped"
            assert_close(leaves[name].grad, expected[name], dtype, f"grad of {name}")
        else:
            assert leaves[name].grad is None


@pytest.mark.parametrize("layout", ["nhwc", "nchw", "rows"])
def test_conv2d_inside_a_larger_graph(layout):
    """Gradients reach the ops before the conv and the loss after it, as through F.conv2d."""
    g = torch.Generator().manual_seed(0)
    x0, w0, b0 = (torch.randn(*s, generator=g, dtype=torch.float64) for s in ((3, 16, 9, 8), (5, 16, 3, 2), (5,)))
    grads = []
    for convolve in (lambda x, w, b: conv.conv2d_torch(x, w, b, padding=1, layout=layout),
                     lambda x, w, b: F.conv2d(x, w, b, padding=1)):
        x, w, b = (t.clone().requires_grad_() for t in (x0, w0, b0))
        loss = (convolve(torch.tanh(x) * 2, w.exp(), b) ** 2).mean() + (w ** 2).sum()
        loss.backward()
        grads.append((loss.detach(), x.grad, w.grad, b.grad))
    for name, got, expected in zip(("loss", "x", "w", "b"), *grads):
        assert_close(got, expected, np.float64, name)


def test_conv2d_without_grad_records_nothing():
    """Grad mode off, or nothing requiring grad: the plain fast path, no graph."""
    x, w = torch.randn(2, 16, 8, 7, requires_grad=True), torch.randn(4, 16, 3, 3, requires_grad=True)
    with torch.no_grad():
        assert not conv.conv2d_torch(x, w).requires_grad
    assert not conv.conv2d_torch(x.detach(), w.detach()).requires_grad
    assert conv.conv2d(x, w).grad_fn is not None                     # the dispatcher records too


@pytest.mark.parametrize("layout", ["nhwc", "nchw", "rows"])
def test_conv2d_gradients_of_gradients_are_f_conv2ds(layout):
    """create_graph=True records the backward's torch ops: a gradient penalty's gradients are
    F.conv2d's (not silently dropped, as a once-differentiable op would drop w's)."""
    g = torch.Generator().manual_seed(1)
    x0, w0, b0 = (torch.randn(*s, generator=g, dtype=torch.float64) for s in ((2, 16, 6, 5), (3, 16, 2, 3), (3,)))
    results = []
    for convolve in (lambda x, w, b: conv.conv2d_torch(x, w, b, padding=(1, 0, 0, 1), layout=layout),
                     lambda x, w, b: F.conv2d(F.pad(x, (0, 1, 1, 0)), w, b)):
        x, w, b = (t.clone().requires_grad_() for t in (x0, w0, b0))
        out = convolve(x, w, b)
        grad_x, grad_w = torch.autograd.grad((out ** 3).sum(), (x, w), create_graph=True)
        ((grad_x ** 2).sum() + (grad_w * w).sum()).backward()
        results.append((x.grad, w.grad, b.grad))
    for name, got, expected in zip(("x", "w", "b"), *results):
        assert_close(got, expected, np.float64, name)


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_pool_gradients_by_autograd_are_torchs(kind, dtype, data):
    case = data.draw(pool_cases(dtype), label="case")
    if data.draw(st.booleans(), label="with ties, NaN and -inf"):
        x = np.round(case["x"])
        x.flat[data.draw(st.integers(0, x.size - 1))] = np.nan
        x[..., :1, :] = -np.inf
        case["x"] = x
    geometry = (case["kernel"], case["stride"], case["padding"])
    x = torch.tensor(case["x"], requires_grad=True)
    out = pool.max_pool2d(x, *geometry)[0] if kind == "max" else pool.avg_pool2d(x, *geometry)
    out.backward(torch.from_numpy(case["grad_out"]))
    expected_out, expected_grad = pool2d_oracle(kind, case["x"], *geometry, grad_out=case["grad_out"])
    assert_close(out, expected_out, dtype, "forward")
    assert_close(x.grad, expected_grad, dtype, "grad by autograd")


@pytest.mark.parametrize("dtype", DTYPES)
def test_dense_gradients_by_autograd_are_torchs(dtype):
    rng = np.random.default_rng(0)
    x0, w0, b0 = rng.standard_normal((6, 5)), rng.standard_normal((4, 5)), rng.standard_normal(4)
    x0[0, :3] = [-np.inf, np.inf, 0.0]                                   # relu's specials
    labels = torch.from_numpy(rng.integers(0, 4, 6))
    results = []
    for relu, linear, cross_entropy in (
            (dense.relu, dense.linear, lambda z, y: dense.softmax_cross_entropy(z, y)[0]),
            (torch.relu, F.linear, F.cross_entropy)):
        x, w, b = (torch.tensor(a.astype(dtype), requires_grad=True) for a in (x0, w0, b0))
        hidden = relu(x)
        loss = cross_entropy(linear(torch.nan_to_num(hidden, posinf=3.0), w, b), labels)
        loss.backward()
        results.append((loss.detach(), x.grad, w.grad, b.grad))
    for name, got, expected in zip(("loss", "x", "w", "b"), *results):
        assert_close(got, expected, dtype, name)


TRITON_CALLS = {
    "gemm_bias_relu": (lambda t: triton_ops.gemm_bias_relu(t, torch.randn(4, 3), torch.randn(3)), (5, 4)),
    "im2col": (lambda t: triton_ops.im2col(t, 2, 2)[0], (1, 2, 4, 4)),
    "conv2d": (lambda t: triton_ops.conv2d(t, torch.randn(3, 2, 2, 2), torch.randn(3)), (1, 2, 4, 4)),
    "conv2d_im2col": (lambda t: triton_ops.conv2d_im2col(t, torch.randn(3, 2, 2, 2), torch.randn(3)), (1, 2, 4, 4)),
}


@pytest.mark.parametrize("name", TRITON_CALLS)
def test_triton_launchers_refuse_tensors_that_require_grad(name):
    """Their output is a fresh buffer: returned as is, it would silently cut the graph."""
    call, shape = TRITON_CALLS[name]
    x = torch.randn(*shape, requires_grad=True)
    with pytest.raises(ValueError, match=rf"triton_ops.{name} has no backward, but \w+ requires grad"):
        call(x)
    with torch.no_grad():
        assert not call(x).requires_grad
    assert not call(x.detach()).requires_grad


@pytest.mark.parametrize("strategy", ["nhwc", "numba"])
def test_matmul_net_refuses_a_batch_that_requires_grad(strategy):
    state = {k: torch.randn(s) for k, s in NET_SHAPES.items()}
    net = MatmulNet(state, NET_CONFIG, strategy=strategy, dense_engine="numba")
    x = torch.randn(2, 2, 10, 10, requires_grad=True)
    with pytest.raises(ValueError, match=r"MatmulNet has no backward, but x requires grad"):
        net(x)
    with torch.no_grad():                           # the numba path used to fail on x.numpy() here
        logits = net(x)
    assert not logits.requires_grad
    assert_close(logits, net(x.detach()), np.float32)
