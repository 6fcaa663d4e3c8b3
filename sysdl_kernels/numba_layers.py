"""Numba CPU kernels for the from-scratch CNN: conv2d, max_pool2d and ReLU, forward and backward.

Same signatures, semantics and error messages as the numpy kernels in sysdl_kernels.conv,
.pool and .dense (their validation is called first), on numpy float32/float64 arrays only;
every output is a new C-contiguous array and the inputs are never written. Each public
function validates, makes its inputs C-contiguous (zero-padding a copy of x where the conv
pads), allocates the outputs and calls ``@numba.njit(parallel=True, fastmath=False)``
kernels (the stride-1 forward contracts its multiply-adds to FMAs: fastmath={"contract"},
which rounds once where a multiply and an add round twice, and never reorders a sum). They
compile lazily on the first call per dtype and layout (``cache=True`` keeps them on disk)
and run on ``numba.get_num_threads()`` threads (NUMBA_NUM_THREADS). Every thread owns the
outputs it writes, so results do not depend on the thread count.

Loop order, and why. Without fastmath the compiler may not reorder a sum, so a dot product
stays scalar; what vectorises is an element-wise update ``acc[t] += w * x[off + t]`` over a
long unit-stride run. A 24..28-pixel row is too short for that (an 8-wide x 4-unrolled loop
leaves it all to the scalar remainder), so the stride-1 kernels work on *wide* planes: the
output is computed as if it were Wp (the padded input width) columns wide, which makes the
(i, j)-shifted input under every output plane one flat run of (OH-1)*Wp + OW elements; the
Wp - OW extra columns (2 of 28 for a 3x3 kernel) are computed and dropped.
  * conv2d forward, stride 1 (``_correlate_wide``): ``prange`` over (n, pair of output
    channels); per input channel a pass over the two wide accumulators (a few KB, in L1).
    A 3x3 kernel takes all 9 taps for both outputs in one pass (9 input loads feed 18
    multiply-adds, contracted to FMAs); other kernels take three taps of a kernel row per
    pass, to cut the accumulator's loads and stores to a third.
  * grad_x, stride 1: grad_out zero-padded by the kernel's span and correlated with the
    flipped, transposed weight: the same kernel, ``prange`` over (n, c) planes, cropped.
  * grad_weight, stride 1 (``_grad_weight_wide``): ``prange`` over (o, c) pairs, each
    summing grad_out[:, o] times the shifted x[:, c] over the batch into a wide (KH*KW, run)
    accumulator, element-wise, then over the run once. grad_out is widened with zeros.
  * A wide sum also multiplies pixels no window covers by zero: 0 * inf = NaN would leak
    into grad_weight (x has an inf) or grad_x (the weight has one). Such results are redone
    by the row kernels below, which sum window pixels only, as the numpy kernels do.
  * Any other stride: the same jobs, one output row at a time (correct, not tuned).
  * max_pool2d: ``prange`` over (n, c) planes; windows inside the input take a branch-free
    scan over precomputed tap offsets, windows over the -inf padding a bounds-checked one over
    the pixels inside the input. The winner is torch's (see sysdl_kernels.pool): the first
    maximum, the last NaN, the first pixel inside the input when all are -inf. The backward
    scatters into one plane per job. relu: ``prange`` over elements, any shape (0-d too).

Any input layout is accepted (copied to C order where it is not), size-0 batches too; IEEE
specials give what the numpy kernels give (see their docstrings).

    python -m sysdl_kernels.numba_layers    # compiles, checks against the numpy kernels, prints threads

Speed is measured by a benchmark, not here. With numpy's OpenBLAS in the same process (the
CNN's linear layers), OpenBLAS threads spin for ~0.1 s after each GEMM and take a core from
these kernels on a 2-core machine: set OPENBLAS_THREAD_TIMEOUT=4 before numpy is imported.
"""

from __future__ import annotations

import numba
import numpy as np

from sysdl_kernels._array import check_array, check_shape
from sysdl_kernels.conv import ConvGeometry, conv_geometry
from sysdl_kernels.pool import _check_grad, _pool_geometry

_JIT = dict(cache=True, fastmath=False, parallel=True)


# ----------------------------------------------------------------------------------------------
# conv2d: stride-1 kernels on "wide" planes (the fast path)
# ----------------------------------------------------------------------------------------------

@numba.njit(**_JIT)
def _pad_planes(x, top, left, out):
    # x (N, C, H, W) -> out (N, C, H + top + bottom, W + left + right), zeros around x
    n_img, n_ch, h, w = x.shape
    for job in numba.prange(n_img * n_ch):
        n, c = job // n_ch, job % n_ch
        plane = out[n, c]
        plane[:, :] = 0.0
        for y in range(h):
            plane[top + y, left:left + w] = x[n, c, y]


@numba.njit(inline="always")
def taps_by_rows(acc, xn, weight, o, c, base, wp, dh, dw, run):
    # acc[t] += sum over taps (i, j) of weight[o, c, i, j] * xn[base + i*dh*wp + j*dw + t]: any kernel,
    # three taps of a kernel row per pass over acc
    kh, kw = weight.shape[2], weight.shape[3]
    for i in range(kh):
        row = base + i * dh * wp
        j = 0
        while j + 3 <= kw:                          # three taps per pass over acc: 1/3 the stores
            w0, w1, w2 = weight[o, c, i, j], weight[o, c, i, j + 1], weight[o, c, i, j + 2]
            off = row + j * dw
            x0, x1, x2 = xn[off:off + run], xn[off + dw:off + dw + run], xn[off + 2 * dw:off + 2 * dw + run]
            for t in range(run):
                acc[t] += w0 * x0[t] + w1 * x1[t] + w2 * x2[t]
            j += 3
        while j < kw:
            wv = weight[o, c, i, j]
            xs = xn[row + j * dw:row + j * dw + run]
            for t in range(run):
                acc[t] += wv * xs[t]
            j += 1


@numba.njit(inline="always")
def kernel_3x3(weight, o, c):
    """The 9 weights of output o, input channel c of a 3x3 kernel, row-major, for ``tap_sum``."""
    return (weight[o, c, 0, 0], weight[o, c, 0, 1], weight[o, c, 0, 2],
            weight[o, c, 1, 0], weight[o, c, 1, 1], weight[o, c, 1, 2],
            weight[o, c, 2, 0], weight[o, c, 2, 1], weight[o, c, 2, 2])


@numba.njit(inline="always")
def tap_sum(r0, r1, r2, t, w):
    """The 9 taps of a 3x3 kernel at position t of three row views (``kernel_3x3``'s weights)."""
    return (w[0] * r0[t] + w[1] * r0[t + 1] + w[2] * r0[t + 2]
            + w[3] * r1[t] + w[4] * r1[t + 1] + w[5] * r1[t + 2]
            + w[6] * r2[t] + w[7] * r2[t + 1] + w[8] * r2[t + 2])


@numba.njit(inline="always")
def nine_taps(acc, xn, weight, o, c, base, row_stride, run):
    # A 3x3 undilated kernel for output o in one pass: acc[t] += the 9 taps of xn at base + t, rows
    # row_stride apart; 9 input loads and 9 multiply-adds per accumulator update. Three row views
    # indexed t, t + 1, t + 2 (offsets LLVM sees are non-negative, so the loop vectorises)
    w = kernel_3x3(weight, o, c)
    r0, r1, r2 = xn[base:], xn[base + row_stride:], xn[base + 2 * row_stride:]
    for t in range(run):
        acc[t] += tap_sum(r0, r1, r2, t, w)


@numba.njit(inline="always")
def nine_taps_two_outputs(acc0, acc1, xn, weight, o, c, base, wp, dh, dw, run):
    # A 3x3 kernel for outputs o and o + 1 in one pass: 9 input loads feed 18 multiply-adds and
    # two accumulator updates (tap by tap: 2 loads and a store per multiply-add)
    a00, a01, a02 = weight[o, c, 0, 0], weight[o, c, 0, 1], weight[o, c, 0, 2]
    a10, a11, a12 = weight[o, c, 1, 0], weight[o, c, 1, 1], weight[o, c, 1, 2]
    a20, a21, a22 = weight[o, c, 2, 0], weight[o, c, 2, 1], weight[o, c, 2, 2]
    b00, b01, b02 = weight[o + 1, c, 0, 0], weight[o + 1, c, 0, 1], weight[o + 1, c, 0, 2]
    b10, b11, b12 = weight[o + 1, c, 1, 0], weight[o + 1, c, 1, 1], weight[o + 1, c, 1, 2]
    b20, b21, b22 = weight[o + 1, c, 2, 0], weight[o + 1, c, 2, 1], weight[o + 1, c, 2, 2]
    r0, r1, r2 = base, base + dh * wp, base + 2 * dh * wp      # views, so the loop indexes by t alone
    x00, x01, x02 = xn[r0:], xn[r0 + dw:], xn[r0 + 2 * dw:]
    x10, x11, x12 = xn[r1:], xn[r1 + dw:], xn[r1 + 2 * dw:]
    x20, x21, x22 = xn[r2:], xn[r2 + dw:], xn[r2 + 2 * dw:]
    for t in range(run):
        v00, v01, v02 = x00[t], x01[t], x02[t]
        v10, v11, v12 = x10[t], x11[t], x12[t]
        v20, v21, v22 = x20[t], x21[t], x22[t]
        acc0[t] += (a00 * v00 + a01 * v01 + a02 * v02 + a10 * v10 + a11 * v11 + a12 * v12
                    + a20 * v20 + a21 * v21 + a22 * v22)
        acc1[t] += (b00 * v00 + b01 * v01 + b02 * v02 + b10 * v10 + b11 * v11 + b12 * v12
                    + b20 * v20 + b21 * v21 + b22 * v22)


@numba.njit(cache=True, parallel=True, fastmath={"contract"})
def _correlate_wide(src, weight, bias, has_bias, hp, wp, r0, q0, dh, dw, out):
    # src (N, C*Hp*Wp): padded planes, flat; weight (O, C, KH, KW); bias (O,) if has_bias
    # out (N, O, OH, OW) = stride-1 correlation read from src at row r0, column q0 onwards
    n_img, n_out, oh, ow = out.shape
    n_in, kh, kw = weight.shape[1], weight.shape[2], weight.shape[3]
    run = (oh - 1) * wp + ow                        # the wide output plane, flat
    pairs = (n_out + 1) // 2
    for job in numba.prange(n_img * pairs):         # (image, pair of output channels)
        n, o = job // pairs, 2 * (job % pairs)
        xn = src[n]
        two = o + 1 < n_out
        acc0, acc1 = np.empty(run, dtype=out.dtype), np.empty(run, dtype=out.dtype)
        acc0[:] = bias[o] if has_bias else 0.0
        acc1[:] = bias[o + 1] if has_bias and two else 0.0
        for c in range(n_in):
            base = (c * hp + r0) * wp + q0
            if two and kh == 3 and kw == 3:
                nine_taps_two_outputs(acc0, acc1, xn, weight, o, c, base, wp, dh, dw, run)
            elif kh == 3 and kw == 3 and dw == 1:
                nine_taps(acc0, xn, weight, o, c, base, dh * wp, run)
            else:
                taps_by_rows(acc0, xn, weight, o, c, base, wp, dh, dw, run)
                if two:
                    taps_by_rows(acc1, xn, weight, o + 1, c, base, wp, dh, dw, run)
        for r in range(oh):                         # keep OW of each Wp-wide row
            out[n, o, r, :] = acc0[r * wp:r * wp + ow]
            if two:
                out[n, o + 1, r, :] = acc1[r * wp:r * wp + ow]


@numba.njit(**_JIT)
def _grad_weight_wide(g_wide, x_flat, hp, wp, dh, dw, oh, ow, grad_weight, grad_bias):
    # g_wide (N, O, OH*Wp): grad_out rows widened to Wp with zeros; x_flat (N, C*Hp*Wp) padded x
    # grad_weight (O, C, KH, KW), grad_bias (O,): written; one (o, c) pair per job, no race
    n_img, n_out = g_wide.shape[0], g_wide.shape[1]
    n_in, kh, kw = grad_weight.shape[1], grad_weight.shape[2], grad_weight.shape[3]
    run, plane = (oh - 1) * wp + ow, hp * wp
    for job in numba.prange(n_out * n_in):
        o, c = job // n_in, job % n_in
        # acc[tap, t] sums g * x over the batch element-wise (vectorises; a dot product would
        # not without fastmath), then is summed over t once
        acc = np.zeros((kh * kw, run), dtype=g_wide.dtype)
        for n in range(n_img):
            gs = g_wide[n, o]
            xc = x_flat[n, c * plane:(c + 1) * plane]
            for i in range(kh):
                j = 0
                while j + 3 <= kw:                  # three taps share each load of g
                    off = i * dh * wp + j * dw
                    a0, a1, a2 = acc[i * kw + j], acc[i * kw + j + 1], acc[i * kw + j + 2]
                    x0, x1, x2 = xc[off:off + run], xc[off + dw:off + dw + run], xc[off + 2 * dw:off + 2 * dw + run]
                    for t in range(run):
                        gv = gs[t]
                        a0[t] += gv * x0[t]
                        a1[t] += gv * x1[t]
                        a2[t] += gv * x2[t]
                    j += 3
                while j < kw:
                    off = i * dh * wp + j * dw
                    a, xs = acc[i * kw + j], xc[off:off + run]
                    for t in range(run):
                        a[t] += gs[t] * xs[t]
                    j += 1
        for tap in range(kh * kw):
            s = 0.0
            for t in range(run):
                s += acc[tap, t]
            grad_weight[o, c, tap // kw, tap % kw] = s
    for o in numba.prange(n_out):
        acc = np.zeros(run, dtype=g_wide.dtype)
        for n in range(n_img):
            gs = g_wide[n, o]
            for t in range(run):
                acc[t] += gs[t]
        s = 0.0
        for t in range(run):
            s += acc[t]
        grad_bias[o] = s


# ----------------------------------------------------------------------------------------------
# conv2d: row kernels, any stride (and the exact fallback when 0 * inf could enter a wide sum)
# ----------------------------------------------------------------------------------------------

@numba.njit(**_JIT)
def _conv2d_forward_rows(xp, weight, bias, has_bias, sh, sw, dh, dw, out):
    # xp (N, C, Hp, Wp) padded input; out (N, O, OH, OW); one (n, o) plane per job
    n_img, n_out, oh, ow = out.shape
    n_in, kh, kw = weight.shape[1], weight.shape[2], weight.shape[3]
    for job in numba.prange(n_img * n_out):
        n, o = job // n_out, job % n_out
        b = bias[o] if has_bias else 0.0
        for r in range(oh):
            orow = out[n, o, r]
            orow[:] = b
            for c in range(n_in):
                for i in range(kh):
                    xrow = xp[n, c, r * sh + i * dh]
                    for j in range(kw):
                        wv = weight[o, c, i, j]
                        for q in range(ow):
                            orow[q] += wv * xrow[q * sw + j * dw]


@numba.njit(**_JIT)
def _grad_params_rows(grad_out, xp, sh, sw, dh, dw, grad_weight, grad_bias):
    # grad_out (N, O, OH, OW); xp (N, C, Hp, Wp); grad_weight, grad_bias written, one o per job
    n_img, n_out, oh, ow = grad_out.shape
    n_in, kh, kw = grad_weight.shape[1], grad_weight.shape[2], grad_weight.shape[3]
    for o in numba.prange(n_out):
        acc = np.zeros((n_in, kh, kw, ow), dtype=grad_out.dtype)   # per-column partial sums
        bacc = np.zeros(ow, dtype=grad_out.dtype)
        for n in range(n_img):
            for r in range(oh):
                grow = grad_out[n, o, r]
                bacc += grow
                for c in range(n_in):
                    for i in range(kh):
                        xrow = xp[n, c, r * sh + i * dh]
                        for j in range(kw):
                            a = acc[c, i, j]
                            for q in range(ow):
                                a[q] += grow[q] * xrow[q * sw + j * dw]
        for c in range(n_in):
            for i in range(kh):
                for j in range(kw):
                    grad_weight[o, c, i, j] = _sum(acc[c, i, j])
        grad_bias[o] = _sum(bacc)


@numba.njit(**_JIT)
def _grad_input_rows(grad_out, weight, sh, sw, dh, dw, top, left, grad_x):
    # grad_out (N, O, OH, OW); weight (O, C, KH, KW); grad_x (N, C, H, W): written, one plane
    # per job, every tap scattering w * grad_out rows into a padded plane that is then cropped
    n_img, n_out, oh, ow = grad_out.shape
    n_in, kh, kw = weight.shape[1], weight.shape[2], weight.shape[3]
    h, w = grad_x.shape[2], grad_x.shape[3]
    hp = max((oh - 1) * sh + (kh - 1) * dh + 1, top + h)      # as far as a tap or x reaches
    wp = max((ow - 1) * sw + (kw - 1) * dw + 1, left + w)
    for job in numba.prange(n_img * n_in):
        n, c = job // n_in, job % n_in
        plane = np.zeros((hp, wp), dtype=grad_x.dtype)
        for o in range(n_out):
            for r in range(oh):
                grow = grad_out[n, o, r]
                for i in range(kh):
                    prow = plane[r * sh + i * dh]
                    for j in range(kw):
                        wv = weight[o, c, i, j]
                        for q in range(ow):
                            prow[q * sw + j * dw] += wv * grow[q]
        grad_x[n, c] = plane[top:top + h, left:left + w]


@numba.njit(cache=True, fastmath=False)
def _sum(a):
    s = 0.0
    for v in a:
        s += v
    return s


# ----------------------------------------------------------------------------------------------
# conv2d: public functions
# ----------------------------------------------------------------------------------------------

def _require_numpy(**arrays) -> None:
    for name, a in arrays.items():
        if a is not None and not isinstance(a, np.ndarray):
            raise TypeError(f"the numba kernels take numpy arrays, but {name} is a {type(a).__name__}; "
                            f"use sysdl_kernels.conv for torch tensors")


def _padded(x: np.ndarray, pads) -> np.ndarray:
    """x zero-padded by (top, bottom, left, right) into a new C-contiguous array; x itself
    (made contiguous) when there is no padding, since the kernels only read it."""
    x = np.ascontiguousarray(x)
    top, bottom, left, right = pads
    if not any(pads):
        return x
    n, c, h, w = x.shape
    out = np.empty((n, c, h + top + bottom, w + left + right), dtype=x.dtype)
    _pad_planes(x, top, left, out)
    return out


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1) -> np.ndarray:
    """Convolution (cross-correlation, as nn.Conv2d) by direct loops; returns (N, O, OH, OW)."""
    g = conv_geometry(x, weight, bias, stride, padding, dilation)
    _require_numpy(x=x, weight=weight, bias=bias)
    if g.n == 0:
        return np.empty((0, g.o, g.oh, g.ow), dtype=x.dtype)
    xp = _padded(x, g.pads)                                                    # (N, C, Hp, Wp)
    weight = np.ascontiguousarray(weight)
    has_bias = bias is not None
    bias = np.ascontiguousarray(bias) if has_bias else np.zeros(1, dtype=x.dtype)
    out = np.empty((g.n, g.o, g.oh, g.ow), dtype=x.dtype)
    (sh, sw), (dh, dw) = g.stride, g.dilation
    if (sh, sw) == (1, 1):
        hp, wp = xp.shape[2], xp.shape[3]
        _correlate_wide(xp.reshape(g.n, -1), weight, bias, has_bias, hp, wp, 0, 0, dh, dw, out)
    else:
        _conv2d_forward_rows(xp, weight, bias, has_bias, sh, sw, dh, dw, out)
    return out


def conv2d_backward(grad_out, x, weight, stride=1, padding=0, dilation=1):
    """(grad_x, grad_weight, grad_bias) of ``conv2d``."""
    g = conv_geometry(x, weight, None, stride, padding, dilation)
    check_array(grad_out, "grad_out", ndim=4, like=x)
    check_shape(grad_out, "grad_out", (g.n, g.o, g.oh, g.ow))
    _require_numpy(x=x, weight=weight, grad_out=grad_out)
    grad_out, weight = np.ascontiguousarray(grad_out), np.ascontiguousarray(weight)
    xp = _padded(x, g.pads)                                                    # (N, C, Hp, Wp)
    grad_x = np.empty(x.shape, dtype=x.dtype)
    grad_weight = np.empty(weight.shape, dtype=x.dtype)
    grad_bias = np.empty(g.o, dtype=x.dtype)
    if g.n == 0:                                     # nothing to sum over
        grad_weight[...], grad_bias[...] = 0, 0
        return grad_x, grad_weight, grad_bias
    if g.stride != (1, 1):
        _grad_params_rows(grad_out, xp, *g.stride, *g.dilation, grad_weight, grad_bias)
        _grad_input_rows(grad_out, weight, *g.stride, *g.dilation, g.pads[0], g.pads[2], grad_x)
        return grad_x, grad_weight, grad_bias
    _grad_params_wide(grad_out, xp, g, grad_weight, grad_bias)
    _grad_input_wide(grad_out, weight, g, grad_x)
    return grad_x, grad_weight, grad_bias


def _grad_params_wide(grad_out, xp, g: ConvGeometry, grad_weight, grad_bias) -> None:
    """Stride 1: dL/dW[o, c, i, j] = sum over the batch of grad_out[:, o] * the (i, j)-shifted x[:, c]."""
    hp, wp = xp.shape[2], xp.shape[3]
    g_wide = _padded(grad_out, (0, 0, 0, wp - g.ow))                           # (N, O, OH, Wp)
    _grad_weight_wide(g_wide.reshape(g.n, g.o, -1), xp.reshape(g.n, -1), hp, wp, *g.dilation,
                      g.oh, g.ow, grad_weight, grad_bias)
    if np.isnan(grad_weight).any():
        # A wide sum also multiplies x's dropped columns by zero; if x holds inf or NaN there,
        # redo the sums over the window pixels only, as the numpy kernel does.
        _grad_params_rows(grad_out, xp, 1, 1, *g.dilation, grad_weight, grad_bias)


def _grad_input_wide(grad_out, weight, g: ConvGeometry, grad_x) -> None:
    """Stride 1: dL/dx is grad_out, zero-padded by the kernel's span, correlated with the
    flipped, transposed weight (C, O, KH, KW): the forward kernel again, cropped to x."""
    if not np.isfinite(weight).all():
        # zero padding times an inf weight would be NaN where the scatter adds nothing
        _grad_input_rows(grad_out, weight, 1, 1, *g.dilation, g.pads[0], g.pads[2], grad_x)
        return
    (dh, dw) = g.dilation
    span_h, span_w = (g.kh - 1) * dh, (g.kw - 1) * dw
    g_pad = _padded(grad_out, (span_h, span_h, span_w, span_w))               # (N, O, OH+2sh, OW+2sw)
    flipped = np.ascontiguousarray(weight[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))   # (C, O, KH, KW)
    no_bias = np.zeros(1, dtype=grad_x.dtype)
    _correlate_wide(g_pad.reshape(g.n, -1), flipped, no_bias, False, g_pad.shape[2], g_pad.shape[3],
                    g.pads[0], g.pads[2], dh, dw, grad_x)


# ----------------------------------------------------------------------------------------------
# max_pool2d
# ----------------------------------------------------------------------------------------------

@numba.njit(**_JIT)
def _max_pool2d_forward(x, kh, kw, sh, sw, ph, pw, out, argmax):
    # x (N, C, H, W); out (N, C, OH, OW) and argmax (same shape, tap i*KW + j): written
    n_img, n_ch, oh, ow = out.shape
    h, w = x.shape[2], x.shape[3]
    offsets = np.empty(kh * kw, dtype=np.int64)          # tap -> offset in the flat plane
    for tap in range(kh * kw):
        offsets[tap] = (tap // kw) * w + tap % kw
    planes = x.reshape(n_img * n_ch, h * w)
    for job in numba.prange(n_img * n_ch):
        n, c = job // n_ch, job % n_ch
        plane = planes[job]
        for r in range(oh):
            y0 = r * sh - ph
            for q in range(ow):
                z0 = q * sw - pw
                # taps in row-major order: the first maximum wins, and every NaN beats what came
                # before (torch's CPU rule, so the last NaN wins); branch-free, since the winner
                # is random
                if y0 >= 0 and z0 >= 0 and y0 + kh <= h and z0 + kw <= w:
                    base = y0 * w + z0
                    best, best_tap = plane[base], 0
                    for tap in range(1, kh * kw):
                        v = plane[base + offsets[tap]]
                        better = (v > best) | (v != v)
                        best = v if better else best
                        best_tap = tap if better else best_tap
                else:                                     # the window overlaps the -inf padding
                    best, best_tap = -np.inf, -1          # padding never wins: the first pixel inside does
                    for tap in range(kh * kw):
                        y, z = y0 + tap // kw, z0 + tap % kw
                        if 0 <= y < h and 0 <= z < w:
                            v = plane[y * w + z]
                            if best_tap < 0 or v > best or v != v:
                                best, best_tap = v, tap
                out[n, c, r, q] = best
                argmax[n, c, r, q] = best_tap


@numba.njit(**_JIT)
def _max_pool2d_backward(grad_out, argmax, kh, kw, sh, sw, ph, pw, grad_x):
    # grad_out, argmax (N, C, OH, OW); grad_x (N, C, H, W): written, one plane per job
    n_img, n_ch, oh, ow = grad_out.shape
    h, w = grad_x.shape[2], grad_x.shape[3]
    for job in numba.prange(n_img * n_ch):
        n, c = job // n_ch, job % n_ch
        plane = grad_x[n, c]
        plane[:, :] = 0.0
        for r in range(oh):
            for q in range(ow):
                tap = argmax[n, c, r, q]
                if tap < 0 or tap >= kh * kw:          # no tap of this window: no gradient
                    continue
                y, z = r * sh - ph + tap // kw, q * sw - pw + tap % kw
                if 0 <= y < h and 0 <= z < w:          # a padding tap has no input pixel
                    plane[y, z] += grad_out[n, c, r, q]


def max_pool2d(x, kernel_size, stride=None, padding=0):
    """Returns (out, argmax): argmax (int64) is each output's winning tap, i*KW + j."""
    g = _pool_geometry(x, kernel_size, stride, padding)
    _require_numpy(x=x)
    out = np.empty((g.n, g.c, g.oh, g.ow), dtype=x.dtype)
    argmax = np.empty((g.n, g.c, g.oh, g.ow), dtype=np.int64)
    _max_pool2d_forward(np.ascontiguousarray(x), g.kh, g.kw, *g.stride, g.pads[0], g.pads[2], out, argmax)
    return out, argmax


def max_pool2d_backward(grad_out, argmax, x, kernel_size, stride=None, padding=0):
    """Gradient of ``max_pool2d`` with respect to x, given the forward's argmax."""
    g = _pool_geometry(x, kernel_size, stride, padding)
    _check_grad(grad_out, x, g)
    check_shape(argmax, "argmax", grad_out.shape)
    _require_numpy(x=x, grad_out=grad_out, argmax=argmax)
    if argmax.dtype.kind not in "iu":
        raise TypeError(f"argmax must hold integers (the tap indices max_pool2d returns), got {argmax.dtype}")
    grad_x = np.empty(x.shape, dtype=x.dtype)
    _max_pool2d_backward(np.ascontiguousarray(grad_out), np.ascontiguousarray(argmax, dtype=np.int64),
                         g.kh, g.kw, *g.stride, g.pads[0], g.pads[2], grad_x)
    return grad_x


# ----------------------------------------------------------------------------------------------
# relu: one pass, two threads (numpy's x * (x > 0) makes two passes and a temporary)
# ----------------------------------------------------------------------------------------------

@numba.njit(**_JIT)
def _relu(x, out):
    for k in numba.prange(x.size):
        v = x[k]
        out[k] = 0.0 if v <= 0 else v           # NaN stays NaN, as in dense.relu


@numba.njit(**_JIT)
def _relu_backward(grad_out, x, out):
    for k in numba.prange(x.size):
        out[k] = 0.0 if x[k] <= 0 else grad_out[k]      # torch's: x NaN passes the gradient


def relu(x):
    check_array(x, "x")
    _require_numpy(x=x)
    out = np.empty(x.shape, dtype=x.dtype)           # x's shape: ascontiguousarray makes 0-d 1-d
    _relu(np.ascontiguousarray(x).reshape(-1), out.reshape(-1))
    return out


def relu_backward(grad_out, x):
    check_array(x, "x")
    check_array(grad_out, "grad_out", like=x)
    check_shape(grad_out, "grad_out", x.shape)
    _require_numpy(x=x, grad_out=grad_out)
    out = np.empty(x.shape, dtype=x.dtype)
    _relu_backward(np.ascontiguousarray(grad_out).reshape(-1), np.ascontiguousarray(x).reshape(-1),
                   out.reshape(-1))
    return out


if __name__ == "__main__":
    from sysdl_kernels import conv, pool

    rng = np.random.default_rng(0)
    xs, ws, bs = rng.standard_normal((2, 3, 9, 7)), rng.standard_normal((4, 3, 3, 2)), rng.standard_normal(4)
    for args in (dict(padding=(1, 0, 2, 1), dilation=(1, 2)), dict(stride=(2, 1), padding=1)):
        diff = np.abs(conv2d(xs, ws, bs, **args) - conv.conv2d(xs, ws, bs, **args)).max()
        print(f"{args}: max |numba - im2col| = {diff:.2e}")
    diff = np.abs(max_pool2d(xs, 2)[0] - pool.max_pool2d(xs, 2)[0]).max()
    print(f"max_pool2d 2x2: max |numba - numpy| = {diff:.2e}")
    print(f"numba {numba.__version__}, threading layer {numba.threading_layer()}, "
          f"{numba.get_num_threads()} threads")
