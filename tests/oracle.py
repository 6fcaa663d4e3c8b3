"""The one place kernel tests get their oracle (PyTorch, float64 autograd) and their tolerances.

Every kernel family compares to these: conv2d forward and its three gradients against
F.conv2d + autograd, pools against F.max_pool2d / F.avg_pool2d, and so on. Inputs are drawn
by the hypothesis strategies below with awkward shapes: H != W, non-square kernels, stride up
to 3, padding per side, dilation, batch 1.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from hypothesis import strategies as st

# rtol is what the issue asks of each dtype; atol absorbs values that cancel to ~0.
TOLERANCES = {
    np.dtype(np.float64): {"rtol": 1e-10, "atol": 1e-12},
    np.dtype(np.float32): {"rtol": 1e-4, "atol": 1e-5},
}


def assert_close(actual, expected, dtype=None, what: str = "") -> None:
    """Compare an array (numpy or torch) with the oracle under the dtype's tolerance."""
    actual = actual.detach().cpu().numpy() if isinstance(actual, torch.Tensor) else np.asarray(actual)
    expected = expected.detach().cpu().numpy() if isinstance(expected, torch.Tensor) else np.asarray(expected)
    tol = TOLERANCES[np.dtype(dtype or actual.dtype)]
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != oracle {expected.shape}"
    # Relative to the array's scale, so sums that cancel near zero do not fail on rounding.
    scale = max(float(np.abs(expected).max(initial=0.0)), 1.0)
    np.testing.assert_allclose(actual, expected, rtol=tol["rtol"], atol=tol["atol"] + tol["rtol"] * scale,
                               err_msg=what)


def pad4(padding) -> tuple[int, int, int, int]:
    """padding as (top, bottom, left, right) from an int, (ph, pw) or a 4-tuple."""
    if isinstance(padding, int):
        return (padding,) * 4
    if len(padding) == 2:
        return (padding[0], padding[0], padding[1], padding[1])
    return tuple(padding)


def conv2d_oracle(x, w, b, stride, padding, dilation, grad_out=None):
    """(out, grad_x, grad_w, grad_b) from torch autograd in float64; grads None without grad_out."""
    xt = torch.tensor(np.asarray(x, dtype=np.float64), requires_grad=True)
    wt = torch.tensor(np.asarray(w, dtype=np.float64), requires_grad=True)
    bt = None if b is None else torch.tensor(np.asarray(b, dtype=np.float64), requires_grad=True)
    top, bottom, left, right = pad4(padding)
    out = F.conv2d(F.pad(xt, (left, right, top, bottom)), wt, bt, stride=stride, dilation=dilation)
    if grad_out is None:
        return out.detach().numpy(), None, None, None
    out.backward(torch.tensor(np.asarray(grad_out, dtype=np.float64)))
    return (out.detach().numpy(), xt.grad.numpy(), wt.grad.numpy(),
            None if bt is None else bt.grad.numpy())


def pool2d_oracle(kind: str, x, kernel, stride, padding, grad_out=None):
    """(out, grad_x) of F.max_pool2d / F.avg_pool2d (count_include_pad=True) in float64."""
    xt = torch.tensor(np.asarray(x, dtype=np.float64), requires_grad=True)
    pool = F.max_pool2d if kind == "max" else F.avg_pool2d
    out = pool(xt, kernel, stride, padding)
    if grad_out is None:
        return out.detach().numpy(), None
    out.backward(torch.tensor(np.asarray(grad_out, dtype=np.float64)))
    return out.detach().numpy(), xt.grad.numpy()


def conv_output_size(size: int, kernel: int, stride: int, pad_before: int, pad_after: int, dilation: int) -> int:
    return (size + pad_before + pad_after - dilation * (kernel - 1) - 1) // stride + 1


@st.composite
def conv_cases(draw, dtype=np.float64, max_stride=3):
    """A random conv2d problem within the issue's ranges whose output is at least 1x1."""
    n = draw(st.integers(1, 4))
    c_in, c_out = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    stride = (draw(st.integers(1, max_stride)), draw(st.integers(1, max_stride)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = tuple(draw(st.integers(0, 2)) for _ in range(4))     # top, bottom, left, right
    min_h = max(1, dilation[0] * (kh - 1) + 1 - padding[0] - padding[1])
    min_w = max(1, dilation[1] * (kw - 1) + 1 - padding[2] - padding[3])
    h = draw(st.integers(min_h, min_h + 9))
    w = draw(st.integers(min_w, min_w + 9).filter(lambda v: v != h))   # never square
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    oh = conv_output_size(h, kh, stride[0], padding[0], padding[1], dilation[0])
    ow = conv_output_size(w, kw, stride[1], padding[2], padding[3], dilation[1])
    x = rng.standard_normal((n, c_in, h, w)).astype(dtype)
    return {
        "x": np.asfortranarray(x) if draw(st.booleans()) else x,     # non-contiguous input too
        "w": rng.standard_normal((c_out, c_in, kh, kw)).astype(dtype),
        "b": rng.standard_normal(c_out).astype(dtype) if draw(st.booleans()) else None,
        "stride": stride, "padding": padding, "dilation": dilation,
        "grad_out": rng.standard_normal((n, c_out, oh, ow)).astype(dtype),
    }


@st.composite
def pool_cases(draw, dtype=np.float64):
    """A random pooling problem: non-square window, stride 1..3, symmetric padding <= half the window."""
    n, c = draw(st.integers(1, 4)), draw(st.integers(1, 7))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2)))   # PyTorch's limit
    h = draw(st.integers(max(1, kh - 2 * padding[0]), 12))
    w = draw(st.integers(max(1, kw - 2 * padding[1]), 12).filter(lambda v: v != h))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    oh = (h + 2 * padding[0] - kh) // stride[0] + 1
    ow = (w + 2 * padding[1] - kw) // stride[1] + 1
    return {
        "x": rng.standard_normal((n, c, h, w)).astype(dtype),
        "kernel": (kh, kw), "stride": stride, "padding": padding,
        "grad_out": rng.standard_normal((n, c, oh, ow)).astype(dtype),
    }


def as_library(case: dict, to) -> dict:
    """The case's arrays converted by ``to`` (e.g. torch.from_numpy), other entries as they are."""
    return {k: to(v) if isinstance(v, np.ndarray) else v for k, v in case.items()}


def snapshot(case: dict) -> dict:
    return {k: np.array(v, copy=True) for k, v in case.items() if isinstance(v, np.ndarray)}


def assert_untouched(case: dict, before: dict) -> None:
    for k, v in before.items():
        np.testing.assert_array_equal(case[k], v, err_msg=f"the kernel wrote into its input {k}")


def check_conv(case: dict, forward, backward, to=lambda a: a) -> None:
    """Check a conv2d implementation (forward(x, w, b, stride, padding, dilation) and
    backward(grad_out, x, w, stride, padding, dilation) -> (gx, gw, gb)) against the oracle,
    on inputs converted by ``to``; also that it leaves its inputs untouched."""
    before = snapshot(case)
    lib_case = as_library(case, to)
    geometry = {k: case[k] for k in ("stride", "padding", "dilation")}
    out, gx, gw, gb = conv2d_oracle(case["x"], case["w"], case["b"], grad_out=case["grad_out"], **geometry)
    dtype = case["x"].dtype
    assert_close(forward(lib_case["x"], lib_case["w"], lib_case["b"], **geometry), out, dtype, "forward")
    got = backward(lib_case["grad_out"], lib_case["x"], lib_case["w"], **geometry)
    for name, value, expected in zip(("grad_x", "grad_weight"), got, (gx, gw)):
        assert_close(value, expected, dtype, name)
    if gb is not None:
        assert_close(got[2], gb, dtype, "grad_bias")
    assert_untouched(case, before)


def check_pool(kind: str, case: dict, forward, backward, to=lambda a: a) -> None:
    """Check a pooling implementation: forward(x, kernel, stride, padding) -> out (or (out, argmax)
    for max) and backward(grad_out, state, x, kernel, stride, padding) with state the argmax (max)
    or None (avg)."""
    before = snapshot(case)
    lib_case = as_library(case, to)
    geometry = (case["kernel"], case["stride"], case["padding"])
    out, gx = pool2d_oracle(kind, case["x"], *geometry, grad_out=case["grad_out"])
    dtype = case["x"].dtype
    result = forward(lib_case["x"], *geometry)
    value, state = result if kind == "max" else (result, None)
    assert_close(value, out, dtype, f"{kind} pool forward")
    assert_close(backward(lib_case["grad_out"], state, lib_case["x"], *geometry), gx, dtype,
                 f"{kind} pool backward")
    assert_untouched(case, before)
