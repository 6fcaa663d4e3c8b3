"""sysdl_kernels.numba_gemm against PyTorch (F.linear, F.conv2d, relu) in float64 as the oracle:
random awkward shapes in both dtypes (every remainder of the 4x4 tile), one large awkward GEMM,
IEEE specials through the fused epilogue, reused buffers, and bad input named."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from sysdl_kernels import numba_gemm as ng
from tests.oracle import assert_close

DTYPES = [np.float64, np.float32]


def linear_oracle(a, weight, bias, relu):
    out = F.linear(*(None if v is None else torch.from_numpy(v).double() for v in (a, weight, bias)))
    return (out.relu() if relu else out).numpy()


def conv_oracle(x, weight, bias, relu):
    out = F.conv2d(*(None if v is None else torch.from_numpy(v).double() for v in (x, weight, bias)))
    return (out.relu() if relu else out).numpy()


@st.composite
def gemm_cases(draw):
    m, n, k = draw(st.integers(1, 13)), draw(st.integers(1, 11)), draw(st.integers(0, 40))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    bias = rng.standard_normal(n) if draw(st.booleans()) else None
    return rng.standard_normal((m, k)), rng.standard_normal((n, k)), bias, draw(st.booleans())


@st.composite
def conv_cases(draw):
    n, c, o = draw(st.integers(1, 5)), draw(st.integers(1, 4)), draw(st.integers(1, 6))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    h, w = draw(st.integers(kh, 12)), draw(st.integers(kw, 12))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    bias = rng.standard_normal(o) if draw(st.booleans()) else None
    return rng.standard_normal((n, c, h, w)), rng.standard_normal((o, c, kh, kw)), bias, draw(st.booleans())


def _cast(dtype, *arrays):
    return [None if a is None else a.astype(dtype) for a in arrays]


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=150, deadline=None)
@given(case=gemm_cases())
def test_gemm_matches_torch(dtype, case):
    a, weight, bias, relu = case
    a, weight, bias = _cast(dtype, a, weight, bias)
    before = [v.copy() for v in (a, weight) + ((bias,) if bias is not None else ())]
    assert_close(ng.gemm_bias_act(a, weight, bias, relu=relu), linear_oracle(a, weight, bias, relu), dtype)
    assert all(np.array_equal(v, w) for v, w in zip((a, weight, bias), before))


@pytest.mark.parametrize("dtype", DTYPES)
def test_large_awkward_gemm(dtype):
    """(1823 x 781) @ (781 x 67): many full tiles, both remainders, a K no vector width divides."""
    rng = np.random.default_rng(3)
    a, weight, bias = _cast(dtype, rng.standard_normal((1823, 781)), rng.standard_normal((67, 781)),
                            rng.standard_normal(67))
    assert_close(ng.gemm_bias_act(a, weight, bias, relu=True), linear_oracle(a, weight, bias, True), dtype)
    strided = np.asfortranarray(a)                                   # not C-contiguous: still right
    assert_close(ng.gemm_bias_act(strided, weight, bias), linear_oracle(a, weight, bias, False), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=150, deadline=None)
@given(case=conv_cases())
def test_im2col_gemm_matches_torch(dtype, case):
    x, weight, bias, relu = case
    x, weight, bias = _cast(dtype, x, weight, bias)
    before = x.copy()
    assert_close(ng.im2col_gemm(x, weight, bias, relu=relu), conv_oracle(x, weight, bias, relu), dtype)
    assert_close(ng.im2col_gemm_reference(x, weight, bias, relu), conv_oracle(x, weight, bias, relu), dtype)
    assert np.array_equal(x, before)


def test_buffers_are_filled_in_place():
    rng = np.random.default_rng(0)
    x, weight = rng.standard_normal((7, 2, 9, 6)).astype(np.float32), rng.standard_normal((3, 2, 3, 2)).astype(np.float32)
    out = np.full((7, 3, 7, 5), np.nan, np.float32)
    scratch = np.full(ng.scratch_shape(x.shape, weight.shape), np.nan, np.float32)
    assert ng.im2col_gemm(x, weight, out=out, scratch=scratch) is out
    assert_close(out, conv_oracle(x, weight, None, False), np.float32)
    hidden = np.full((7, 3), np.nan, np.float32)
    assert ng.gemm_bias_act(x.reshape(7, -1), rng.standard_normal((3, 108)).astype(np.float32), out=hidden) is hidden
    assert np.isfinite(hidden).all()


@pytest.mark.parametrize("relu", [False, True])
def test_ieee_specials_pass_through_the_epilogue(relu):
    """As in torch: relu(-inf) = 0, relu(+inf) = inf, inf * 0 = NaN stays NaN, and a special in
    one row of a 4-row tile leaves the other rows alone."""
    a = np.zeros((6, 3), np.float32)
    a[0, 0], a[1, 0], a[2, 0] = -np.inf, np.inf, np.nan
    weight = np.eye(3, dtype=np.float32)[:2]
    out = ng.gemm_bias_act(a, weight, relu=relu)
    np.testing.assert_array_equal(out, linear_oracle(a, weight, None, relu).astype(np.float32))
    assert out[0, 0] == (0 if relu else -np.inf) and out[1, 0] == np.inf and np.isnan(out[2, 0])
    assert np.all(out[3:] == 0)


@pytest.mark.parametrize("call, error, match", [
    (lambda: ng.gemm_bias_act(np.ones((2, 3)), np.ones((4, 5))), ValueError, r"weight must have shape \(N, 3\)"),
    (lambda: ng.gemm_bias_act(np.ones(3), np.ones((4, 3))), ValueError, "a must have 2 dimensions"),
    (lambda: ng.gemm_bias_act(np.ones((2, 3), np.int64), np.ones((4, 3))), TypeError, "a must be float32 or float64"),
    (lambda: ng.gemm_bias_act(np.ones((2, 3)), np.ones((4, 3), np.float32)), TypeError, "mixed dtypes"),
    (lambda: ng.gemm_bias_act(np.ones((2, 3)), np.ones((4, 3)), np.ones(3)), ValueError, r"bias must have shape \(4,\)"),
    (lambda: ng.gemm_bias_act(np.ones((2, 3)), np.ones((4, 3)), out=np.ones((4, 2))), ValueError, "out must have shape"),
    (lambda: ng.gemm_bias_act(torch.ones(2, 3), np.ones((4, 3))), TypeError, r"\.numpy\(\)"),
    (lambda: ng.im2col_gemm(np.ones((1, 2, 5, 5)), np.ones((3, 1, 3, 3))), ValueError, "input channels"),
    (lambda: ng.im2col_gemm(np.ones((1, 2, 5, 2)), np.ones((3, 2, 3, 3))), ValueError, "larger than"),
    (lambda: ng.im2col_gemm(np.ones((1, 2, 5, 5)), np.ones((3, 2, 3, 3)), scratch=np.ones((1, 2, 3))),
     ValueError, "scratch must be"),
])
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()
