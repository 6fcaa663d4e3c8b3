"""The one place kernel tests get their oracle (PyTorch, float64 autograd) and their tolerances.

Every kernel family compares to these: conv2d forward and its three gradients against
F.conv2d + autograd, pools against F.max_pool2d / F.avg_pool2d, and so on. Inputs are drawn
by the hypothesis strategies below with awkward shapes: H != W, non-square kernels, stride up
to 3, padding per side, dilation, batch 1; ``layouts`` / ``with_layout`` put the same values in
other memory (strided, transposed, channels-last, offset, expanded, reversed views), and
``with_specials`` puts inf, -inf and NaN among them.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from hypothesis import strategies as st

# rtol is what the issue asks of each dtype; atol absorbs values that cancel to ~0.
TOLERANCES = {
    np.dtype(np.float64): {"rtol": 1e-10, "atol": 1e-12},
    np.dtype(np.float32): {"rtol": 1e-4, "atol": 1e-5},
}

# TF32 (tensor cores, `precision="tf32"`, torch's allow_tf32): the inputs are rounded to 10
# mantissa bits, a relative error up to 2**-11 each; a sum of K such products then errs by about
# sqrt(K) * 2**-11 of its scale. Callers scale atol by sqrt(K) and the output's scale.
TF32_TOLERANCE = {"rtol": 5e-3}


def assert_close(actual, expected, dtype=None, what: str = "") -> None:
    """Compare an array (numpy or torch) with the oracle under the dtype's tolerance."""
    actual = actual.detach().cpu().numpy() if isinstance(actual, torch.Tensor) else np.asarray(actual)
    expected = expected.detach().cpu().numpy() if isinstance(expected, torch.Tensor) else np.asarray(expected)
    tol = TOLERANCES[np.dtype(dtype or actual.dtype)]
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != oracle {expected.shape}"
    # Relative to the array's scale, so sums that cancel near zero do not fail on rounding; the
    # scale of its finite entries (inf and NaN must match exactly, in the same places).
    finite = np.abs(expected[np.isfinite(expected)])
    scale = max(float(finite.max(initial=0.0)), 1.0)
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


CONV_ARGS = ("x", "w", "b", "grad_out")      # the arrays of a conv_cases problem


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


def library_case(case: dict, to, views: dict | None):
    """The arrays to pass the kernel: ``views`` where given (e.g. from ``with_layout``, holding
    the values in ``case``), the others converted by ``to``; and a snapshot of the views."""
    lib_case = as_library(case, to)
    lib_case.update(views or {})
    return lib_case, {k: values_of(v) for k, v in (views or {}).items() if v is not None}


def assert_views_untouched(views: dict | None, before: dict) -> None:
    for k, v in before.items():
        np.testing.assert_array_equal(values_of(views[k]), v, err_msg=f"the kernel wrote into its input {k}")


def check_conv(case: dict, forward, backward, to=lambda a: a, views: dict | None = None) -> None:
    """Check a conv2d implementation (forward(x, w, b, stride, padding, dilation) and
    backward(grad_out, x, w, stride, padding, dilation) -> (gx, gw, gb)) against the oracle,
    on inputs converted by ``to`` (or given as ``views``); also that it leaves its inputs untouched."""
    before = snapshot(case)
    lib_case, views_before = library_case(case, to, views)
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
    assert_views_untouched(views, views_before)


def check_pool(kind: str, case: dict, forward, backward, to=lambda a: a, views: dict | None = None) -> None:
    """Check a pooling implementation: forward(x, kernel, stride, padding) -> out (or (out, argmax)
    for max) and backward(grad_out, state, x, kernel, stride, padding) with state the argmax (max)
    or None (avg); inputs converted by ``to`` or given as ``views``, as in ``check_conv``."""
    before = snapshot(case)
    lib_case, views_before = library_case(case, to, views)
    geometry = (case["kernel"], case["stride"], case["padding"])
    out, gx = pool2d_oracle(kind, case["x"], *geometry, grad_out=case["grad_out"])
    dtype = case["x"].dtype
    result = forward(lib_case["x"], *geometry)
    value, state = result if kind == "max" else (result, None)
    assert_close(value, out, dtype, f"{kind} pool forward")
    assert_close(backward(lib_case["grad_out"], state, lib_case["x"], *geometry), gx, dtype,
                 f"{kind} pool backward")
    assert_untouched(case, before)
    assert_views_untouched(views, views_before)


# ----------------------------------------------------------------------------------------------
# Memory layouts and IEEE specials
# ----------------------------------------------------------------------------------------------

@st.composite
def layouts(draw, ndim: int, library: str = "numpy", expanded: bool = True):
    """A memory layout for an ndim array, as (kind, axis or storage order) for ``with_layout``.
    Torch has no negative strides, so 'reversed' is numpy's only; ``expanded=False`` leaves out
    the one layout that changes the values (for an argument whose values are given, an argmax)."""
    kinds = ["contiguous", "offset"]
    if ndim >= 1:
        kinds += ["strided"] + (["expanded"] if expanded else []) + (["reversed"] if library == "numpy" else [])
    if ndim >= 2:
        kinds += ["transposed", "permuted"]
    if ndim == 4:
        kinds += ["channels_last"]
    kind = draw(st.sampled_from(kinds))
    if kind in ("strided", "expanded", "reversed"):
        return kind, draw(st.integers(0, ndim - 1))
    if kind == "transposed":
        return "permuted", tuple(reversed(range(ndim)))
    if kind == "channels_last":
        return "permuted", (0, 2, 3, 1)
    if kind == "permuted":
        return kind, tuple(draw(st.permutations(range(ndim))))
    return kind, None


def with_layout(values, layout, library: str = "numpy"):
    """``values`` (a numpy array) laid out in memory as ``layout`` (from ``layouts``), as a numpy
    array or torch tensor view into a larger buffer filled with NaN (-7 for integers), so a
    kernel that misreads a stride or an offset reads the filler and fails the comparison.

    * 'permuted' stores the values in another axis order (a transposed / channels-last view);
    * 'strided' every other element along an axis; 'offset' at storage offset 3;
    * 'reversed' with a negative stride along an axis (numpy only);
    * 'expanded' with stride 0 along an axis: the values along it are replaced by the first
      slice's, so compare against ``values_of`` the result, not ``values``.
    """
    values = np.asarray(values)
    kind, arg = layout
    stored = values
    if kind == "expanded" and values.shape[arg] > 0:
        stored = np.take(values, [0], axis=arg)                 # broadcast back with stride 0
    elif kind == "permuted":
        stored = values.transpose(arg)
    elif kind == "reversed":
        stored = np.flip(values, arg)
    outer = list(stored.shape)
    if kind == "strided":
        outer[arg] *= 2
    offset = 3 if kind in ("offset", "expanded") else 0
    filler = np.nan if values.dtype.kind == "f" else -7
    base = np.full(offset + math.prod(outer) + 2, filler, dtype=values.dtype)
    block = base[offset:offset + math.prod(outer)].reshape(outer)
    if kind == "strided":
        block = block[(slice(None),) * arg + (slice(None, None, 2),)]
    block[...] = stored
    if kind == "permuted":
        view = block.transpose(np.argsort(arg))
    elif kind == "reversed":
        view = np.flip(block, arg)
    elif kind == "expanded":
        view = np.broadcast_to(block, values.shape)
    else:
        view = block
    if library == "numpy":
        return view
    size = values.itemsize
    start = (view.__array_interface__["data"][0] - base.__array_interface__["data"][0]) // size
    return torch.from_numpy(base).as_strided(view.shape, [s // size for s in view.strides], start)


def values_of(a) -> np.ndarray:
    """The values of a numpy array or torch tensor, as a fresh C-contiguous numpy array."""
    return np.array(a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else a, order="C")


SPECIALS = (np.inf, -np.inf, np.nan)


@st.composite
def with_specials(draw, values, max_count: int = 3):
    """A copy of ``values`` with 1..max_count entries (drawn) set to inf, -inf or NaN (drawn)."""
    out = np.array(values, copy=True)
    if out.size:
        for _ in range(draw(st.integers(1, max_count))):
            out.flat[draw(st.integers(0, out.size - 1))] = draw(st.sampled_from(SPECIALS))
    return out


# A small MatmulNet (sysdl_kernels.matmul_net) and the network it lowers, in float64 torch.
NET_CONFIG = {"in_channels": 2, "image_size": 10, "pool": "max", "pool_kernel": 2}
NET_SHAPES = {"conv1.weight": (3, 2, 3, 3), "conv1.bias": (3,), "conv2.weight": (4, 3, 2, 2), "conv2.bias": (4,),
              "fc1.weight": (5, 4 * 1 * 1), "fc1.bias": (5,), "fc2.weight": (3, 5), "fc2.bias": (3,)}


def matmul_net_oracle(state: dict, x: torch.Tensor, config: dict = NET_CONFIG) -> torch.Tensor:
    """The network MatmulNet lowers, in float64 torch: conv-relu-pool twice, fc1-relu, fc2."""
    s = {k: torch.as_tensor(v).double() for k, v in state.items()}
    act = x.double()
    pools = {None: lambda a, k: a, "max": F.max_pool2d, "avg": F.avg_pool2d}
    for name in ("conv1", "conv2"):
        act = F.conv2d(act, s[f"{name}.weight"], s[f"{name}.bias"]).relu()
        act = pools[config.get("pool")](act, config.get("pool_kernel", 2))
    hidden = F.linear(act.flatten(1), s["fc1.weight"], s["fc1.bias"]).relu()
    return F.linear(hidden, s["fc2.weight"], s["fc2.bias"])
