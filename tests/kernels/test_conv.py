"""sysdl_kernels.conv and .pool against PyTorch: hundreds of random awkward problems, both dtypes,
numpy and torch inputs; plus im2col/col2im adjointness, the reference loops and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sysdl_kernels import conv, pool
from sysdl_kernels._array import padding4
from tests.oracle import assert_close, check_conv, check_pool, conv2d_oracle, conv_cases, pool_cases

LIBRARIES = {"numpy": lambda a: a, "torch": torch.from_numpy}
DTYPES = [np.float64, np.float32]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("library", LIBRARIES)
@settings(max_examples=300, deadline=None)
@given(data=conv_cases())
def test_conv2d_matches_torch(library, dtype, data):
    case = {k: v.astype(dtype) if isinstance(v, np.ndarray) else v for k, v in data.items()}
    check_conv(case, conv.conv2d, conv.conv2d_backward, LIBRARIES[library])


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("library", LIBRARIES)
@settings(max_examples=300, deadline=None)
@given(data=pool_cases())
def test_pools_match_torch(kind, library, dtype, data):
    case = {k: v.astype(dtype) if isinstance(v, np.ndarray) else v for k, v in data.items()}
    if kind == "max":
        check_pool(kind, case, pool.max_pool2d, pool.max_pool2d_backward, LIBRARIES[library])
    else:
        check_pool(kind, case, pool.avg_pool2d,
                   lambda g, _state, x, *geometry: pool.avg_pool2d_backward(g, x, *geometry),
                   LIBRARIES[library])


@settings(max_examples=30, deadline=None)
@given(case=conv_cases())
def test_reference_loops_match_torch(case):
    geometry = {k: case[k] for k in ("stride", "padding", "dilation")}
    expected = conv2d_oracle(case["x"], case["w"], case["b"], **geometry)[0]
    assert_close(conv.conv2d_reference(case["x"], case["w"], case["b"], **geometry), expected)


@settings(max_examples=50, deadline=None)
@given(case=conv_cases())
def test_col2im_is_the_adjoint_of_im2col(case):
    """<im2col(x), c> == <x, col2im(c)> for all x, c: what makes the backward correct."""
    x, (kh, kw) = case["x"], case["w"].shape[2:]
    geometry = dict(stride=case["stride"], padding=case["padding"], dilation=case["dilation"])
    cols = conv.im2col(x, (kh, kw), **geometry)
    probe = np.random.default_rng(1).standard_normal(cols.shape)
    back = conv.col2im(probe, x.shape, (kh, kw), **geometry)
    assert np.vdot(cols, probe) == pytest.approx(np.vdot(x, back), rel=1e-10)


@pytest.mark.parametrize("layout, max_stride", [("nhwc", 3), ("nchw", 3), ("rows", 1)])
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_every_torch_layout_matches_torch(layout, max_stride, data):
    """conv2d picks one layout per shape; each must be right on every shape it accepts."""
    case = data.draw(conv_cases(np.float32, max_stride=max_stride))
    check_conv(case, lambda *a, **k: conv.conv2d_torch(*a, **k, layout=layout), conv.conv2d_backward,
               torch.from_numpy)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("padding, dilation", [(0, 1), ((2, 0, 1, 1), 1), (0, (2, 1)), (1, (1, 2))])
def test_rows_layout_over_many_chunks(channels_last, padding, dilation, dtype):
    """37 images of 16 x 26 x 23 are three chunks, the last one short, through the reused
    workspaces; a channels-last input without padding is read in place and left as it was."""
    x = torch.randn(37, 16, 26, 23, dtype=dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    w, b = torch.randn(5, 16, 2, 3, dtype=dtype), torch.randn(5, dtype=dtype)
    before = x.clone()
    geometry = dict(padding=padding, dilation=dilation)
    assert 37 > 2 * (conv.ROWS_CHUNK_ELEMENTS // (26 * 23 * 3 * 16))      # padding only shrinks chunks
    out = conv.conv2d_torch(x, w, b, layout="rows", **geometry)
    pads = padding4(padding)
    expected = torch.nn.functional.conv2d(
        torch.nn.functional.pad(x, (pads[2], pads[3], pads[0], pads[1])), w, b, dilation=dilation)
    assert_close(out, expected, np.float32 if dtype == torch.float32 else np.float64)
    assert torch.equal(x, before)


def test_rows_layout_refuses_strides():
    x, w = torch.randn(2, 16, 9, 7), torch.randn(4, 16, 3, 3)
    with pytest.raises(ValueError, match="stride"):
        conv.conv2d_torch(x, w, stride=(1, 2), layout="rows")
    assert conv.choose_layout(16, 3, 3, stride=(1, 2)) == "nhwc"


@pytest.mark.parametrize("c_in, layout", [(1, "nchw"), (16, "rows")])
def test_fashion_mnist_shapes_pick_their_layout(c_in, layout):
    x = torch.randn(128, c_in, 28 - (c_in > 1) * 2, 28 - (c_in > 1) * 2)
    w, b = torch.randn(16, c_in, 3, 3), torch.randn(16)
    out = conv.conv2d(x, w, b)
    assert conv.choose_layout(c_in, 3, 3) == layout
    assert out.is_contiguous(memory_format=torch.channels_last if layout != "nchw" else torch.contiguous_format)
    assert_close(out, torch.nn.functional.conv2d(x, w, b), np.float32)


def test_empty_batch():
    w = torch.randn(4, 3, 3, 2)
    for x in (torch.randn(0, 3, 8, 6), np.zeros((0, 3, 8, 6), dtype=np.float32)):
        out = conv.conv2d(x, w if isinstance(x, torch.Tensor) else w.numpy())
        assert tuple(out.shape) == (0, 4, 6, 5)


X = np.zeros((2, 3, 8, 6))
W = np.zeros((4, 3, 3, 2))


@pytest.mark.parametrize("call, error, message", [
    (lambda: conv.conv2d(X[0], W), ValueError, r"x must have 4 dimensions, got 3"),
    (lambda: conv.conv2d(X, W[:, :2]), ValueError, r"weight expects 2 input channels .* but x has 3"),
    (lambda: conv.conv2d(X, np.zeros((4, 3, 9, 2))), ValueError, r"height: the kernel spans 9 pixels"),
    (lambda: conv.conv2d(X, np.zeros((4, 3, 2, 4)), dilation=(1, 3)), ValueError, r"width: the kernel spans 10"),
    (lambda: conv.conv2d(X, W, stride=0), ValueError, r"stride must be >= 1"),
    (lambda: conv.conv2d(X, W, dilation=(1, 0)), ValueError, r"dilation must be >= 1"),
    (lambda: conv.conv2d(X, W, padding=(0, -1)), ValueError, r"padding must be >= 0"),
    (lambda: conv.conv2d(X, W, padding=(1, 2, 3)), ValueError, r"padding must be an int, \(pad_h, pad_w\)"),
    (lambda: conv.conv2d(X.astype(np.int64), W), TypeError, r"x must be float32 or float64, got int64"),
    (lambda: conv.conv2d(X, W.astype(np.float32)), TypeError, r"weight is float32 but the input is float64"),
    (lambda: conv.conv2d(X, torch.zeros(4, 3, 3, 2, dtype=torch.float64)), TypeError, r"weight is a Tensor"),
    (lambda: conv.conv2d(X, W, np.zeros(3)), ValueError, r"bias must have shape \(4,\), got \(3,\)"),
    (lambda: conv.conv2d_backward(np.zeros((2, 4, 6, 4)), X, W), ValueError,
     r"grad_out must have shape \(2, 4, 6, 5\), got \(2, 4, 6, 4\)"),
    (lambda: conv.conv2d([[1.0]], W), TypeError, r"x must be a numpy array or a torch tensor, got list"),
    (lambda: pool.max_pool2d(X, 3, padding=2), ValueError, r"padding \(2, 2\) must be at most half"),
    (lambda: pool.avg_pool2d_backward(np.zeros((2, 3, 4, 4)), X, 2), ValueError,
     r"grad_out must have shape \(2, 3, 4, 3\)"),
])
def test_bad_input_is_named(call, error, message):
    with pytest.raises(error, match=message):
        call()
