"""Numba GEMM kernels with bias and ReLU fused in the epilogue: MatmulNet's CPU engine.

    out = act(a @ weight.T + bias)                       gemm_bias_act      (dense layers)
    out[n] = act(weight2d @ im2col(x[n]) + bias)         im2col_gemm        (stride-1 convs)

Why hand-written: torch's fp32 matmul on this machine is MKL's AVX2 path (~160-210 GFLOP/s on
2 cores; oneDNN's AVX-512 GEMM is reachable only through linear/conv ops, which MatmulNet must
not run). LLVM compiles these loops for the host CPU, AVX-512 included.

* ``gemm_bias_act``: each thread takes blocks of 4 rows of ``a`` and computes 4x4 output tiles
  as 16 dot products over K run side by side: per K step 8 loads feed 16 FMAs, so the loop is
  bound by the FMA units rather than by loads. K is the unit-stride axis of both operands
  (``weight`` in nn.Linear's (N, K) layout), and the dot products are vectorised along it,
  which needs reassociation: sums are taken in a different order from BLAS (float32 results
  agree to ~1e-6 relative), but in a fixed order, so they do not depend on the thread count.
  Measured here: (1000 x 1152) @ (1152 x 60), ~410 GFLOP/s against MKL's ~160.
* ``im2col_gemm``: per image, the classic (C*KH*KW, OH*OW) im2col matrix is gathered into a
  per-thread scratch buffer that stays in L1/L2, then multiplied by the (O, C*KH*KW) weight,
  each output row accumulated as unit-stride updates over OH*OW pixels. It is the im2col
  gather feeding a GEMM, image by image, inside one kernel: the gathered matrix never goes
  to memory, and a chunk of images costs one call instead of a copy and a batched GEMM.

Both take numpy float32/float64 arrays (torch CPU tensors via ``.numpy()`` share memory) in any
layout, copying the inputs that are not C-contiguous, write into ``out`` (allocated when not
given; one passed must be C-contiguous, writeable and not overlap an input, else a ValueError)
and never write their inputs. They compile on first use per dtype
(``cache=True`` keeps them on disk). IEEE specials propagate as in torch (relu(NaN) = NaN).

    python -m sysdl_kernels.numba_gemm     # compiles, checks against numpy, prints GFLOP/s
"""

from __future__ import annotations

import numba
import numpy as np

from sysdl_kernels._array import check_shape

# Reassociation lets LLVM vectorise the K-loop sums; 'contract' lets it fuse multiply-adds.
# No nnan/ninf: NaN and inf propagate as in IEEE arithmetic.
_GEMM_JIT = dict(cache=True, parallel=True, fastmath={"reassoc", "contract"})
_CONV_JIT = dict(cache=True, parallel=True, fastmath={"contract"})
TILE = 4                # rows and columns of ``gemm_bias_act``'s register tile


# ----------------------------------------------------------------------------------------------
# References (numpy): the oracles the kernels are tested against
# ----------------------------------------------------------------------------------------------

def gemm_bias_act_reference(a, weight, bias=None, relu=False) -> np.ndarray:
    out = a @ weight.T + (0 if bias is None else bias)
    return np.maximum(out, 0) if relu else out


def im2col_gemm_reference(x, weight, bias=None, relu=False) -> np.ndarray:
    """Stride-1 unpadded conv, (N, C, H, W) x (O, C, KH, KW) -> (N, O, OH, OW), via im2col."""
    n, c, h, w = x.shape
    o, _, kh, kw = weight.shape
    oh, ow = h - kh + 1, w - kw + 1
    windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))  # (N, C, OH, OW, KH, KW)
    cols = windows.transpose(0, 1, 4, 5, 2, 3).reshape(n, c * kh * kw, oh * ow)
    out = weight.reshape(o, -1) @ cols + (0 if bias is None else bias[:, None])
    out = out.reshape(n, o, oh, ow)
    return np.maximum(out, 0) if relu else out


# ----------------------------------------------------------------------------------------------
# Kernels
# ----------------------------------------------------------------------------------------------

@numba.njit(inline="always")
def _dot(a, i, weight, j, k_count, zero):
    s = zero
    for k in range(k_count):
        s += a[i, k] * weight[j, k]
    return s


@numba.njit(inline="always")
def _epilogue(value, bias, j, relu, zero):
    value += bias[j]
    if relu and value < zero:       # written so a NaN stays NaN
        value = zero
    return value


@numba.njit(inline="always")
def _store4(out, i, j0, v0, v1, v2, v3, bias, relu, zero):
    out[i, j0] = _epilogue(v0, bias, j0, relu, zero)
    out[i, j0 + 1] = _epilogue(v1, bias, j0 + 1, relu, zero)
    out[i, j0 + 2] = _epilogue(v2, bias, j0 + 2, relu, zero)
    out[i, j0 + 3] = _epilogue(v3, bias, j0 + 3, relu, zero)


@numba.njit(inline="always")
def gemm_row_block(a, i0, weight, bias, relu, zero, out):
    """out[i0:i0+4] = act(a[i0:i0+4] @ weight.T + bias) (fewer rows at the end of a): one block
    of 4 rows in 4x4 register tiles. The building block of ``gemm_bias_act`` and of kernels that
    end in a dense layer (fused_cnn)."""
    m, k_count = a.shape
    n = weight.shape[0]
    full_cols = n - n % TILE
    if i0 + TILE <= m:
        for j0 in range(0, full_cols, TILE):
            s00 = s01 = s02 = s03 = zero
            s10 = s11 = s12 = s13 = zero
            s20 = s21 = s22 = s23 = zero
            s30 = s31 = s32 = s33 = zero
            for k in range(k_count):
                a0, a1, a2, a3 = a[i0, k], a[i0 + 1, k], a[i0 + 2, k], a[i0 + 3, k]
                b0, b1, b2, b3 = weight[j0, k], weight[j0 + 1, k], weight[j0 + 2, k], weight[j0 + 3, k]
                s00 += a0 * b0
                s01 += a0 * b1
                s02 += a0 * b2
                s03 += a0 * b3
                s10 += a1 * b0
                s11 += a1 * b1
                s12 += a1 * b2
                s13 += a1 * b3
                s20 += a2 * b0
                s21 += a2 * b1
                s22 += a2 * b2
                s23 += a2 * b3
                s30 += a3 * b0
                s31 += a3 * b1
                s32 += a3 * b2
                s33 += a3 * b3
            _store4(out, i0, j0, s00, s01, s02, s03, bias, relu, zero)
            _store4(out, i0 + 1, j0, s10, s11, s12, s13, bias, relu, zero)
            _store4(out, i0 + 2, j0, s20, s21, s22, s23, bias, relu, zero)
            _store4(out, i0 + 3, j0, s30, s31, s32, s33, bias, relu, zero)
        for i in range(i0, i0 + TILE):                  # the last N % 4 columns
            for j in range(full_cols, n):
                out[i, j] = _epilogue(_dot(a, i, weight, j, k_count, zero), bias, j, relu, zero)
    else:                                               # the last M % 4 rows
        for i in range(i0, m):
            for j in range(n):
                out[i, j] = _epilogue(_dot(a, i, weight, j, k_count, zero), bias, j, relu, zero)


@numba.njit(**_GEMM_JIT)
def _gemm_bias_act(a, weight, bias, relu, zero, out):
    # a (M, K); weight (N, K); bias (N,); zero: 0 in the arrays' dtype; out (M, N)
    for block in numba.prange((a.shape[0] + TILE - 1) // TILE):
        gemm_row_block(a, block * TILE, weight, bias, relu, zero, out)


@numba.njit(**_CONV_JIT)
def _im2col_gemm(x, weight, bias, relu, zero, kh, kw, scratch, out):
    # x (N, C, H, W); weight (O, C*KH*KW); bias (O,); scratch (threads, C*KH*KW, OH*OW); out (N, O, OH*OW)
    n, c, _, _ = x.shape
    o_count, k_count = weight.shape
    oh, ow = x.shape[2] - kh + 1, x.shape[3] - kw + 1
    threads = scratch.shape[0]
    for t in numba.prange(threads):
        cols = scratch[t]
        for b in range(t * n // threads, (t + 1) * n // threads):
            for ci in range(c):                         # im2col: cols[(ci, i, j), (y, z)] = x[b, ci, y + i, z + j]
                for i in range(kh):
                    for j in range(kw):
                        row = cols[(ci * kh + i) * kw + j]
                        for y in range(oh):
                            src = x[b, ci, y + i]
                            for z in range(ow):
                                row[y * ow + z] = src[z + j]
            for o in range(o_count):                    # GEMM: out[b] = weight @ cols
                acc = out[b, o]
                for p in range(oh * ow):
                    acc[p] = bias[o]
                for k in range(k_count):
                    w_ok = weight[o, k]
                    col = cols[k]
                    for p in range(oh * ow):
                        acc[p] += w_ok * col[p]
                if relu:
                    for p in range(oh * ow):
                        if acc[p] < zero:
                            acc[p] = zero


# ----------------------------------------------------------------------------------------------
# Public functions: validate, allocate, dispatch
# ----------------------------------------------------------------------------------------------

def _check(name: str, array, ndim: int, dtype=None) -> None:
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{name} must be a numpy array (a CPU torch tensor's .numpy()), got {type(array).__name__}")
    if array.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name} must be float32 or float64, got {array.dtype}")
    if dtype is not None and array.dtype != dtype:
        raise TypeError(f"{name} is {array.dtype} but the input is {dtype}; mixed dtypes are not supported")
    if array.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got {array.ndim} (shape {array.shape})")


def _check_buffer(name: str, buffer: np.ndarray, inputs) -> None:
    """A buffer the kernels write, whose memory they index as C order from several threads."""
    if not buffer.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous (strides {buffer.strides}); pass "
                         f"np.empty(shape, dtype) or leave it None")
    if not buffer.flags.writeable:
        raise ValueError(f"{name} is read-only; pass a writeable array")
    for input_name, array in inputs.items():
        if array is not None and np.may_share_memory(buffer, array):
            raise ValueError(f"{name} overlaps {input_name}; the kernels read their inputs while "
                             f"writing {name}, so pass a separate buffer")


def _bias_and_out(bias, out, out_shape, dtype, inputs):
    if bias is not None:
        _check("bias", bias, 1, dtype)
        check_shape(bias, "bias", (out_shape[1],))
    if out is None:
        out = np.empty(out_shape, dtype)
    else:
        _check("out", out, len(out_shape), dtype)
        check_shape(out, "out", out_shape)
        _check_buffer("out", out, {**inputs, "bias": bias})
    bias_array = np.ascontiguousarray(bias) if bias is not None else np.zeros(out_shape[1], dtype)
    return bias_array, out


def gemm_bias_act(a: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None, relu: bool = False,
                  out: np.ndarray | None = None) -> np.ndarray:
    """act(a @ weight.T + bias): a (M, K), weight (N, K) as in nn.Linear, bias (N,) -> (M, N)."""
    _check("a", a, 2)
    _check("weight", weight, 2, a.dtype)
    if weight.shape[1] != a.shape[1]:
        raise ValueError(f"weight must have shape (N, {a.shape[1]}) to match a's K = {a.shape[1]}, "
                         f"got {weight.shape}")
    bias_array, out = _bias_and_out(bias, out, (a.shape[0], weight.shape[0]), a.dtype,
                                    {"a": a, "weight": weight})
    if a.shape[1] == 0:
        out[:] = bias_array if bias is not None else 0
        return np.maximum(out, 0, out=out) if relu else out
    _gemm_bias_act(np.ascontiguousarray(a), np.ascontiguousarray(weight), bias_array, bool(relu),
                   a.dtype.type(0), out)
    return out


def im2col_gemm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None, relu: bool = False,
                out: np.ndarray | None = None, scratch: np.ndarray | None = None) -> np.ndarray:
    """act(conv2d(x, weight) + bias), stride 1, no padding: x (N, C, H, W), weight (O, C, KH, KW)
    -> (N, O, OH, OW). ``scratch`` (threads, C*KH*KW, OH*OW) holds each thread's im2col
    matrix; pass one to reuse it across calls (``scratch_shape``)."""
    _check("x", x, 4)
    _check("weight", weight, 4, x.dtype)
    n, c, h, w = x.shape
    o, c_w, kh, kw = weight.shape
    if c_w != c:
        raise ValueError(f"weight expects {c_w} input channels (shape {weight.shape}) but x has {c} "
                         f"(shape {x.shape})")
    if min(o, c, kh, kw) < 1:
        raise ValueError(f"im2col_gemm needs at least one input channel, output channel and kernel "
                         f"tap, got x {x.shape} and weight {weight.shape}")
    if kh > h or kw > w:
        raise ValueError(f"kernel {kh}x{kw} is larger than the {h}x{w} input")
    oh, ow = h - kh + 1, w - kw + 1
    bias_array, out = _bias_and_out(bias, out, (n, o, oh, ow), x.dtype, {"x": x, "weight": weight})
    shape = scratch_shape(x.shape, weight.shape)
    if scratch is None:
        scratch = np.empty(shape, x.dtype)
    elif not isinstance(scratch, np.ndarray) or scratch.shape != shape or scratch.dtype != x.dtype:
        raise ValueError(f"scratch must be a {x.dtype} array of shape {shape}, got "
                         f"{getattr(scratch, 'dtype', type(scratch).__name__)} {getattr(scratch, 'shape', '')}")
    else:
        _check_buffer("scratch", scratch, {"x": x, "weight": weight, "bias": bias, "out": out})
    if n:
        _im2col_gemm(np.ascontiguousarray(x), np.ascontiguousarray(weight).reshape(o, c * kh * kw), bias_array,
                     bool(relu), x.dtype.type(0), kh, kw, scratch, out.reshape(n, o, oh * ow))
    return out


def scratch_shape(x_shape, weight_shape) -> tuple[int, int, int]:
    """(threads, C*KH*KW, OH*OW): the per-thread im2col buffers ``im2col_gemm`` works in."""
    n, c, h, w = x_shape
    _, _, kh, kw = weight_shape
    threads = max(1, min(numba.get_num_threads(), n))
    return threads, c * kh * kw, (h - kh + 1) * (w - kw + 1)


if __name__ == "__main__":
    import time

    rng = np.random.default_rng(0)
    a, wt, b = (rng.standard_normal(s).astype(np.float32) for s in ((1000, 1152), (60, 1152), (60,)))
    got = gemm_bias_act(a, wt, b, relu=True)
    start, calls = time.perf_counter(), 200          # before numpy's BLAS runs: its threads spin after
    for _ in range(calls):
        gemm_bias_act(a, wt, b, relu=True, out=got)
    seconds = (time.perf_counter() - start) / calls
    print(f"(1000 x 1152) @ (1152 x 60): {seconds * 1e3:.3f} ms, {2 * a.size * 60 / seconds / 1e9:.0f} GFLOP/s "
          f"on {numba.get_num_threads()} threads")
    print(f"gemm max |numba - numpy| = {np.abs(got - gemm_bias_act_reference(a, wt, b, True)).max():.2e}")
    x, w4 = rng.standard_normal((64, 3, 13, 11)).astype(np.float32), rng.standard_normal((5, 3, 3, 2)).astype(np.float32)
    diff = np.abs(im2col_gemm(x, w4, relu=True) - im2col_gemm_reference(x, w4, relu=True)).max()
    print(f"conv max |numba - numpy| = {diff:.2e}")
