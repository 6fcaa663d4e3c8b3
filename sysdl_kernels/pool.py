"""Max- and average-pooling, forward and backward, on numpy arrays or torch tensors (one code).

Semantics are PyTorch's (F.max_pool2d, F.avg_pool2d with count_include_pad=True, floor mode):
a window of KH x KW moved by (SH, SW) over the input padded by (PH, PW) on each side, with
padding at most half the window. Max-pool pads with -inf and its backward sends each output's
gradient to the first maximum of its window (row-major order, as PyTorch's CPU kernel does).

    windows (N, C, OH, OW, KH, KW) --max/mean over the window--> out (N, C, OH, OW)
    backward: accumulate_windows (conv.py) sums every tap's gradient back onto the input.
"""

from __future__ import annotations

from sysdl_kernels._array import check_array, check_shape, ops, pair
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
    return lib.take_last(flat, argmax), argmax


def max_pool2d_backward(grad_out, argmax, x, kernel_size, stride=None, padding=0):
    """Gradient of ``max_pool2d`` with respect to x, given the forward's argmax."""
    g = _pool_geometry(x, kernel_size, stride, padding)
    _check_grad(grad_out, x, g)
    check_shape(argmax, "argmax", grad_out.shape)
    return accumulate_windows(lambda i, j: grad_out * (argmax == i * g.kw + j), x.shape, g.kernel,
                              g.stride, g.pads, g.dilation, x)


def avg_pool2d(x, kernel_size, stride=None, padding=0):
    g = _pool_geometry(x, kernel_size, stride, padding)
    lib = ops(x)
    return lib.windows(lib.pad(x, g.pads), g.kernel, g.stride, g.dilation).mean((-2, -1))


def avg_pool2d_backward(grad_out, x, kernel_size, stride=None, padding=0):
    g = _pool_geometry(x, kernel_size, stride, padding)
    _check_grad(grad_out, x, g)
    share = grad_out / (g.kh * g.kw)          # every tap of a window gets the same share
    return accumulate_windows(lambda i, j: share, x.shape, g.kernel, g.stride, g.pads, g.dilation, x)
