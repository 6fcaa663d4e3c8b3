"""sysdl_kernels.numba_layers against PyTorch through the shared oracle (tests/oracle.py):
hundreds of random awkward conv and max-pool problems in both dtypes; the same numbers as the
numpy im2col layers on the Fashion-MNIST shapes; relu; bad input named as numpy names it.

No timing here: speed is measured by a benchmark (see the module docstring)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import given, settings

from sysdl_kernels import conv, dense, pool
from sysdl_kernels import numba_layers as nb
from tests.oracle import assert_close, check_conv, check_pool, conv_cases, pool_cases

DTYPES = [np.float64, np.float32]


def _as(dtype, data: dict) -> dict:
    return {k: v.astype(dtype) if isinstance(v, np.ndarray) else v for k, v in data.items()}


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=300, deadline=None)
@given(data=conv_cases())
def test_conv2d_matches_torch(dtype, data):
    check_conv(_as(dtype, data), nb.conv2d, nb.conv2d_backward)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=300, deadline=None)
@given(data=conv_cases().filter(lambda case: case["stride"] == (1, 1)))
def test_conv2d_stride_1_matches_torch(dtype, data):
    """Stride 1 takes the wide-plane kernels (1 case in 9 above): 300 more of those."""
    check_conv(_as(dtype, data), nb.conv2d, nb.conv2d_backward)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=300, deadline=None)
@given(data=pool_cases())
def test_max_pool2d_matches_torch(dtype, data):
    check_pool("max", _as(dtype, data), nb.max_pool2d, nb.max_pool2d_backward)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=300, deadline=None)
@given(data=pool_cases())
def test_max_pool2d_argmax_is_numpys(dtype, data):
    """The argmax is part of the contract (the backward and the numpy backend share it)."""
    case = _as(dtype, data)
    x = case["x"].copy()
    x[..., ::2, :] = np.round(x[..., ::2, :])             # ties, so "first maximum" is exercised
    geometry = (case["kernel"], case["stride"], case["padding"])
    out, argmax = nb.max_pool2d(x, *geometry)
    expected_out, expected_argmax = pool.max_pool2d(x, *geometry)
    np.testing.assert_array_equal(out, expected_out)
    np.testing.assert_array_equal(argmax, expected_argmax)
    assert argmax.dtype == np.int64 and out.dtype == x.dtype


@pytest.mark.parametrize("dtype", DTYPES)
def test_fashion_mnist_shapes_match_numpy_layers(dtype):
    """Batch 8 of the CNN's shapes: conv 1->16 3x3 on 28x28 (unpadded and 'same'), conv 16->16
    3x3 on 26x26, max-pool 2x2, relu; numba and the numpy im2col layers give the same numbers."""
    rng = np.random.default_rng(0)
    for c_in, size, padding in [(1, 28, 0), (1, 28, 1), (16, 26, 0)]:
        x = rng.standard_normal((8, c_in, size, size)).astype(dtype)
        w = rng.standard_normal((16, c_in, 3, 3)).astype(dtype)
        b = rng.standard_normal(16).astype(dtype)
        out = nb.conv2d(x, w, b, padding=padding)
        assert_close(out, conv.conv2d(x, w, b, padding=padding), what=f"conv {c_in}->16 on {size}")
        grad_out = rng.standard_normal(out.shape).astype(dtype)
        for name, got, expected in zip(("grad_x", "grad_weight", "grad_bias"),
                                       nb.conv2d_backward(grad_out, x, w, padding=padding),
                                       conv.conv2d_backward(grad_out, x, w, padding=padding)):
            assert_close(got, expected, what=f"{name} {c_in}->16 on {size}")

        act = nb.relu(out)
        np.testing.assert_array_equal(act, dense.relu(out))
        np.testing.assert_array_equal(nb.relu_backward(grad_out, out), dense.relu_backward(grad_out, out))
        pooled, argmax = nb.max_pool2d(act, 2)
        expected_pooled, expected_argmax = pool.max_pool2d(act, 2)
        np.testing.assert_array_equal(pooled, expected_pooled)
        np.testing.assert_array_equal(argmax, expected_argmax)
        grad_pool = rng.standard_normal(pooled.shape).astype(dtype)
        np.testing.assert_array_equal(nb.max_pool2d_backward(grad_pool, argmax, act, 2),
                                      pool.max_pool2d_backward(grad_pool, expected_argmax, act, 2))


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_against_torch(dtype):
    x = np.random.default_rng(2).standard_normal((3, 5, 7, 2)).astype(dtype)
    x[0, 0, 0, 0] = 0.0                                      # relu'(0) = 0, as torch
    grad_out = np.random.default_rng(3).standard_normal(x.shape).astype(dtype)
    xt = torch.tensor(x.astype(np.float64), requires_grad=True)
    yt = torch.relu(xt)
    yt.backward(torch.tensor(grad_out.astype(np.float64)))
    y = nb.relu(x)
    assert y.dtype == x.dtype
    assert_close(y, yt.detach().numpy(), dtype)
    assert_close(nb.relu_backward(grad_out, x), xt.grad.numpy(), dtype)
    assert np.isnan(nb.relu(np.array([np.nan, -1.0], dtype=dtype))[0])   # NaN propagates, as dense.relu


def test_non_contiguous_inputs_everywhere():
    """Transposed weight, strided grad_out and pool inputs: copies inside, inputs untouched."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 2, 11, 9))[:, :, ::-1]                  # negative stride
    w = rng.standard_normal((3, 3, 2, 4)).transpose(3, 2, 0, 1)         # (4, 2, 3, 3), not contiguous
    args = dict(stride=(2, 1), padding=(1, 0, 2, 1), dilation=(1, 2))
    out = nb.conv2d(x, w, None, **args)
    assert_close(out, conv.conv2d(x, w, None, **args))
    grad_out = np.asfortranarray(rng.standard_normal(out.shape))
    for got, expected in zip(nb.conv2d_backward(grad_out, x, w, **args),
                             conv.conv2d_backward(grad_out, x, w, **args)):
        assert_close(got, expected)
    pooled, argmax = nb.max_pool2d(x, (3, 2), (2, 1), (1, 1))
    np.testing.assert_array_equal(pooled, pool.max_pool2d(x, (3, 2), (2, 1), (1, 1))[0])
    g = np.asfortranarray(rng.standard_normal(pooled.shape))
    assert_close(nb.max_pool2d_backward(g, np.asfortranarray(argmax), x, (3, 2), (2, 1), (1, 1)),
                 pool.max_pool2d_backward(g, argmax, x, (3, 2), (2, 1), (1, 1)))   # overlapping windows


NUMPY_LAYERS = SimpleNamespace(conv2d=conv.conv2d, conv2d_backward=conv.conv2d_backward,
                               max_pool2d=pool.max_pool2d, max_pool2d_backward=pool.max_pool2d_backward,
                               relu_backward=dense.relu_backward)
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")   # numpy's inf - inf
@pytest.mark.parametrize("padding", [0, 1, (0, 2, 1, 0)])
def test_inf_in_x_or_weight_gives_numpys_infs_and_nans(padding):
    """The stride-1 kernels sum over wide rows that include columns the windows never see; an
    inf there (x's last column, or an inf weight times a zero-padded grad) must not leak a NaN."""
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal((2, 2, 7, 6)), rng.standard_normal((3, 2, 3, 3))
    x_inf = x.copy()
    x_inf[0, 1, 2, 5] = np.inf              # last column: seen by the right taps only
    x_inf[1, 0, 6, 0] = -np.inf             # bottom-left corner
    w_inf = w.copy()
    w_inf[1, 0, 0, 2] = np.inf
    for xs, ws in ((x_inf, w), (x, w_inf)):
        out = conv.conv2d(xs, ws, padding=padding)
        np.testing.assert_allclose(nb.conv2d(xs, ws, padding=padding), out, rtol=1e-10, equal_nan=True)
        grad_out = rng.standard_normal(out.shape)
        for name, got, expected in zip(("grad_x", "grad_weight", "grad_bias"),
                                       nb.conv2d_backward(grad_out, xs, ws, padding=padding),
                                       conv.conv2d_backward(grad_out, xs, ws, padding=padding)):
            np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12, equal_nan=True, err_msg=name)


X = np.zeros((2, 3, 8, 6))
W = np.zeros((4, 3, 3, 2))
BAD_CALLS = [
    (lambda m: m.conv2d(X[0], W), ValueError),
    (lambda m: m.conv2d(X, W[:, :2]), ValueError),
    (lambda m: m.conv2d(X, np.zeros((4, 3, 9, 2))), ValueError),
    (lambda m: m.conv2d(X, np.zeros((4, 3, 2, 4)), dilation=(1, 3)), ValueError),
    (lambda m: m.conv2d(X, W, stride=0), ValueError),
    (lambda m: m.conv2d(X, W, padding=(1, 2, 3)), ValueError),
    (lambda m: m.conv2d(X.astype(np.int64), W), TypeError),
    (lambda m: m.conv2d(X, W.astype(np.float32)), TypeError),
    (lambda m: m.conv2d(X, W, np.zeros(3)), ValueError),
    (lambda m: m.conv2d_backward(np.zeros((2, 4, 6, 4)), X, W), ValueError),
    (lambda m: m.conv2d([[1.0]], W), TypeError),
    (lambda m: m.max_pool2d(X, 3, padding=2), ValueError),
    (lambda m: m.max_pool2d_backward(np.zeros((2, 3, 4, 4)), np.zeros((2, 3, 4, 4), np.int64), X, 2), ValueError),
    (lambda m: m.relu_backward(np.zeros((2, 3)), np.zeros((3, 2))), ValueError),
]


@pytest.mark.parametrize("call, error", BAD_CALLS)
def test_bad_input_gives_numpys_error(call, error):
    """The validation is the numpy kernels' own: the same exception and the same message."""
    with pytest.raises(error) as expected:
        call(NUMPY_LAYERS)
    with pytest.raises(error) as got:
        call(nb)
    assert str(got.value) == str(expected.value)


@pytest.mark.parametrize("call, message", [
    (lambda: nb.conv2d(torch.zeros(2, 3, 8, 6), torch.zeros(4, 3, 3, 2)), r"numba kernels take numpy arrays"),
    (lambda: nb.max_pool2d(torch.zeros(2, 3, 8, 6), 2), r"but x is a Tensor"),
    (lambda: nb.max_pool2d_backward(np.zeros((2, 3, 4, 3)), np.zeros((2, 3, 4, 3)), X, 2),
     r"argmax must hold integers"),
])
def test_torch_tensors_and_float_argmax_are_refused(call, message):
    with pytest.raises(TypeError, match=message):
        call()
