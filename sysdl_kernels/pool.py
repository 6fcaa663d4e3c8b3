"""Max- and average-pooling, forward and backward, on numpy arrays or torch tensors (one code).

Semantics are PyTorch's (F.max_pool2d, F.avg_pool2d with count_include_pad=True, floor mode):
a window of KH x KW moved by (SH, SW) over the input padded by (PH, PW) on each side, with
padding at most half the window. Max-pool pads with -inf and its backward sends each output's
gradient to the tap PyTorch's CPU kernel picks (F.max_pool2d, the ``argmax`` returned here):
  * the first maximum of its window, in row-major order;
  * a window holding NaN outputs NaN, and picks its *last* NaN (torch's ``val > max or
    isnan(val)``; numpy's and torch's argmax would pick the first);
  * a window whose input pixels are all -inf outputs -inf and picks its first pixel inside the
    input, never a padding tap (so its gradient is not lost in the padding).
Any input layout is accepted; on torch tensors both pools are differentiable by autograd (the
max-pool's gradient then follows the same argmax).

    windows (N, C, OH, OW, KH, KW) --max/mean over the window--> out (N, C, OH, OW)
    backward: accumulate_windows (conv.py) sums every tap's gradient back onto the input.
"""

from __future__ import annotations

from sysdl_kernels._array import all_finite, check_array, check_shape, keep_where, ops, pair
from sysdl_kernels.conv import accumulate_windows, make_geometry


def _pool_geometry(x, kernel_size, stride, padding):
    check_array(x, "x", ndim=4)
    kh, kw = pair(kernel_size, "kernel_size", 1)
    stride = (kh, kw) if stride is None else pair(stride, "stride", 1)
    ph, pw = pair(padding, "padding", 0)
    if ph > kh // 2 or pw > kw // 2:
        raise ValueError(f"padding {(ph, pw)} must be at most half the kernel size {(kh, kw)}")
    return make_geometry(x.shape, x.shape[1], (kh, kw), stride, (ph, ph, pw, pw), 1)


def _check_grad(grad_out, like, g):
    check_array(grad_out, "grad_out", ndim=4, like=like)
    check_shape(grad_out, "grad_out", (g.n, g.c, g.oh, g.ow))


def max_pool2d(x, kernel_size, stride=None, padding=0):
    """Returns (out, argmax): argmax is each output's winning tap, i*KW + j, for the backward."""
    g = _pool_geometry(x, kernel_size, stride, padding)
    lib = ops(x)
    windows = lib.windows(lib.pad(x, g.pads, float("-inf")), g.kernel, g.stride, g.dilation)
    flat = windows.reshape(g.n, g.c, g.oh, g.ow, g.kh * g.kw)                 # (N, C, OH, OW, KH*KW)
    argmax = flat.argmax(-1)
    out = lib.take_last(flat, argmax)
    # The two cases where torch's choice is not argmax's: each costs a sum (NaN) or a
    # comparison (-inf, with padding only) over the output, and where it occurs a pass over
    # the windows (NaN) or a gather.
    xp, changed = lib.xp, False
    if xp.isnan(out.sum()):                                                  # a NaN, or inf - inf
        taps = lib.arange(g.kh * g.kw, x) + 1
        last_nan = (xp.isnan(flat) * taps).argmax(-1)                        # the last NaN tap
        argmax, changed = xp.where(xp.isnan(out), last_nan, argmax), True
    if any(g.pads):
        empty = out == float("-inf")                                          # every pixel is -inf
        if empty.any():
            # each window's first tap inside the input: row max(0, PH - oh*SH), column likewise
            first_row = xp.clip(g.pads[0] - lib.arange(g.oh, x) * g.stride[0], 0, None)
            first_col = xp.clip(g.pads[2] - lib.arange(g.ow, x) * g.stride[1], 0, None)
            first_inside = first_row[:, None] * g.kw + first_col[None, :]     # (OH, OW)
            argmax, changed = xp.where(empty, first_inside, argmax), True
    if changed:
        out = lib.take_last(flat, argmax)          # the same values; autograd follows the new taps
    return out, argmax


def max_pool2d_backward(grad_out, argmax, x, kernel_size, stride=None, padding=0):
    """Gradient of ``max_pool2d`` with respect to x, given the forward's argmax."""
    g = _pool_geometry(x, kernel_size, stride, padding)
    _check_grad(grad_out, x, g)
    check_shape(argmax, "argmax", grad_out.shape)
    finite = all_finite(grad_out)     # checked once for every tap (see keep_where)
    return accumulate_windows(lambda i, j: keep_where(argmax == i * g.kw + j, grad_out, finite), x.shape,
                              g.kernel, g.stride, g.pads, g.dilation, x)


def avg_pool2d(x, kernel_size, stride=None, padding=0):
    g = _pool_geometry(x, kernel_size, stride, padding)
    lib = ops(x)
    return lib.windows(lib.pad(x, g.pads), g.kernel, g.stride, g.dilation).mean((-2, -1))


def avg_pool2d_backward(grad_out, x, kernel_size, stride=None, padding=0):
    g = _pool_geometry(x, kernel_size, stride, padding)
    _check_grad(grad_out, x, g)
    share = grad_out / (g.kh * g.kw)          # every tap of a window gets the same share
    return accumulate_windows(lambda i, j: share, x.shape, g.kernel, g.stride, g.pads, g.dilation, x)
