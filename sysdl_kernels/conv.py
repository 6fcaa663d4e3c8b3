"""2-D convolution as matrix multiplication: im2col / col2im, forward and backward as one GEMM each.

    x (N, C, H, W) --im2col--> cols (N*OH*OW, C*KH*KW)        one row per output pixel
    out = cols @ W.reshape(O, C*KH*KW).T + b  -> (N*OH*OW, O)  one GEMM, rows are NHWC
    grad_W = grad_out2d.T @ cols                               one GEMM
    grad_x = col2im(grad_out2d @ W2d)                          one GEMM, then scatter-add
    grad_b = grad_out.sum over (N, OH, OW)

Stride, dilation (per axis) and zero padding (an int, (pad_h, pad_w) or per side as
(top, bottom, left, right)) are all supported, with non-square kernels.

Three implementations, from slow to fast:
  * ``conv2d_reference``: plain loops over (n, o, oh, ow); the oracle for speed comparisons.
  * ``conv2d`` / ``conv2d_backward`` on numpy arrays: im2col through a strided window view.
  * ``conv2d`` on torch tensors: ``conv2d_torch``, a gather in one of three layouts chosen per
    layer shape (``choose_layout``): NHWC, one row per output pixel read from channels-last
    memory (KW*C contiguous floats per kernel row) feeding one GEMM per cache-sized chunk of
    images whose output is already channels-last, run on oneDNN where torch has it (AVX-512
    on this CPU, ``gemm_backend``); 'rows', the same but gathering only along W into reused
    workspaces and summing the KH kernel rows' shifted GEMM outputs (stride 1, a third of the
    gather); or NCHW, the classic per-image (C*KH*KW, OH*OW) matrix feeding a batched GEMM,
    better when C*KH*KW is tiny (the 1-channel first layer).
``conv2d_backward`` works on numpy arrays and torch tensors alike (the same code).

Any memory layout is accepted for every argument (strided, transposed, channels-last, offset
or expanded views); the fast paths read the common layouts in place and copy the rest. On
torch tensors ``conv2d`` is differentiable: when autograd records it, its backward is
``conv2d_backward``, itself made of differentiable torch ops, so double backward works too.

IEEE specials: padding is multiplied as explicit zeros, so an infinite weight gives NaN at the
outputs whose window covers padding, as torch's F.conv2d does in float64 on the CPU (and on an
F.pad-ded input in any dtype). The one difference from torch: its float32 convolution on oneDNN
skips padded taps, so there it sums only the taps inside the input (tests/kernels/test_specials.py).
Otherwise inf and NaN propagate as in the sums they enter.

Every way sysdl computes a convolution, each with the oracle it is tested against
(tests/kernels/, through tests/oracle.py; F.conv2d in float64 is the oracle of the references):
  * direct loops ............ ``conv2d_reference`` (here)
  * numpy im2col ............ ``conv2d`` on arrays (here); oracle ``conv2d_reference``
  * torch lowerings ......... ``conv2d_torch`` in the 'nhwc', 'rows' and 'nchw' layouts (here)
  * Numba direct kernels .... ``sysdl_kernels.numba_layers.conv2d`` / ``conv2d_backward`` (the
                              from-scratch CNN's layer); oracle ``conv2d_reference``
  * Numba im2col + GEMM ..... ``sysdl_kernels.numba_gemm.im2col_gemm``, bias and ReLU fused;
                              beside it ``im2col_gemm_reference``
  * Triton im2col + GEMM .... ``sysdl_kernels.triton_ops.im2col`` + ``gemm_bias_relu`` (``conv2d``);
                              beside them ``im2col_reference`` and ``gemm_bias_relu_reference``
  * MatmulNet's lowerings ... ``sysdl_kernels.matmul_net.MatmulNet`` picks per layer among the
                              torch layouts above and the Numba im2col + GEMM, timed on the spot;
                              its oracle is the nn.Module it lowers
  * nn.Conv2d (oneDNN) ...... the baseline every benchmark is measured against (benchmarks/bench_conv.py)

    python -m sysdl_kernels.conv     # checks conv2d against the reference on a small problem
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from sysdl_kernels._array import check_array, check_shape, ops, output_size, pair, padding4, requires_grad

# Images per GEMM chunk are chosen so a chunk's im2col matrix holds about this many elements
# (~6 MB of float32): measured fastest here between 0.5M and 2M on the Fashion-MNIST shapes.
CHUNK_ELEMENTS = 1_500_000
# The 'rows' layout gathers a third as much per image into a reused workspace; ~2 MB chunks
# (16 images of 16 x 26 x 26) measured fastest, with 20; 8 or 32 images were 15-40% slower.
ROWS_CHUNK_ELEMENTS = 520_000


@dataclass(frozen=True)
class ConvGeometry:
    n: int
    c: int
    h: int
    w: int
    o: int
    kh: int
    kw: int
    stride: tuple[int, int]
    pads: tuple[int, int, int, int]      # top, bottom, left, right
    dilation: tuple[int, int]
    oh: int
    ow: int

    @property
    def kernel(self) -> tuple[int, int]:
        return self.kh, self.kw


def conv_geometry(x, weight, bias=None, stride=1, padding=0, dilation=1) -> ConvGeometry:
    """Validate a conv2d call and return its sizes; the errors name the argument at fault."""
    check_array(x, "x", ndim=4)
    check_array(weight, "weight", ndim=4, like=x)
    n, c, h, w = x.shape
    o, c_w, kh, kw = weight.shape
    if o < 1 or c < 1:
        # torch refuses O = 0 and returns a tensor of the wrong shape for C = 0
        raise ValueError(f"conv2d needs at least one input and one output channel, got x "
                         f"{tuple(x.shape)} and weight {tuple(weight.shape)}")
    if c_w != c:
        raise ValueError(f"weight expects {c_w} input channels (shape {tuple(weight.shape)}) but x has "
                         f"{c} (shape {tuple(x.shape)})")
    if bias is not None:
        check_array(bias, "bias", ndim=1, like=x)
        check_shape(bias, "bias", (o,))
    return make_geometry(x.shape, o, (kh, kw), stride, padding, dilation)


def make_geometry(x_shape, out_channels: int, kernel_size, stride, padding, dilation) -> ConvGeometry:
    n, c, h, w = (int(v) for v in x_shape)
    if h < 1 or w < 1:
        raise ValueError(f"x must have height and width >= 1, got shape {tuple(x_shape)}")
    kh, kw = pair(kernel_size, "kernel_size", 1)
    stride, dilation = pair(stride, "stride", 1), pair(dilation, "dilation", 1)
    pads = padding4(padding)
    oh = output_size(h, kh, stride[0], pads[0], pads[1], dilation[0], "height")
    ow = output_size(w, kw, stride[1], pads[2], pads[3], dilation[1], "width")
    return ConvGeometry(n, c, h, w, out_channels, kh, kw, stride, pads, dilation, oh, ow)


# ----------------------------------------------------------------------------------------------
# Reference: plain loops (numpy only). O(N*O*OH*OW) Python iterations: seconds for a batch.
# ----------------------------------------------------------------------------------------------

def conv2d_reference(x, weight, bias=None, stride=1, padding=0, dilation=1) -> np.ndarray:
    g = conv_geometry(x, weight, bias, stride, padding, dilation)
    if not isinstance(x, np.ndarray):
        raise TypeError("conv2d_reference takes numpy arrays")
    xp = ops(x).pad(x, g.pads)
    (sh, sw), (dh, dw) = g.stride, g.dilation
    out = np.zeros((g.n, g.o, g.oh, g.ow), dtype=x.dtype)
    for n in range(g.n):
        for o in range(g.o):
            for i in range(g.oh):
                for j in range(g.ow):
                    window = xp[n, :, i * sh:i * sh + dh * (g.kh - 1) + 1:dh, j * sw:j * sw + dw * (g.kw - 1) + 1:dw]
                    out[n, o, i, j] = np.sum(window * weight[o]) + (bias[o] if bias is not None else 0.0)
    return out


# ----------------------------------------------------------------------------------------------
# im2col / col2im, shared by numpy and torch
# ----------------------------------------------------------------------------------------------

def _im2col(x, g: ConvGeometry):
    lib = ops(x)
    windows = lib.windows(lib.pad(x, g.pads), g.kernel, g.stride, g.dilation)  # (N, C, OH, OW, KH, KW) view
    return lib.permute(windows, (0, 2, 3, 1, 4, 5)).reshape(g.n * g.oh * g.ow, g.c * g.kh * g.kw)


def im2col(x, kernel_size, stride=1, padding=0, dilation=1):
    """(N, C, H, W) -> (N*OH*OW, C*KH*KW): row (n, oh, ow) holds the window under that output pixel."""
    check_array(x, "x", ndim=4)
    return _im2col(x, make_geometry(x.shape, 0, kernel_size, stride, padding, dilation))


def accumulate_windows(tap_grad, x_shape, kernel, stride, pads, dilation, like):
    """Sum per-window gradients back onto the input: ``tap_grad(i, j)`` is the (N, C, OH, OW)
    gradient that kernel tap (i, j) sends to its input pixels. Used by col2im and the pools."""
    n, c, h, w = x_shape
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    top, bottom, left, right = pads
    grad = ops(like).zeros((n, c, h + top + bottom, w + left + right), like)
    for i in range(kh):
        for j in range(kw):
            piece = tap_grad(i, j)                                                  # (N, C, OH, OW)
            oh, ow = piece.shape[2], piece.shape[3]
            grad[:, :, i * dh:i * dh + sh * (oh - 1) + 1:sh, j * dw:j * dw + sw * (ow - 1) + 1:sw] += piece
    return grad[:, :, top:top + h, left:left + w]


def _col2im(cols, g: ConvGeometry):
    windows = ops(cols).permute(cols.reshape(g.n, g.oh, g.ow, g.c, g.kh, g.kw), (0, 3, 1, 2, 4, 5))
    return accumulate_windows(lambda i, j: windows[..., i, j], (g.n, g.c, g.h, g.w), g.kernel,
                              g.stride, g.pads, g.dilation, cols)


def col2im(cols, x_shape, kernel_size, stride=1, padding=0, dilation=1):
    """The adjoint of im2col: (N*OH*OW, C*KH*KW) -> (N, C, H, W), overlapping windows summed."""
    check_array(cols, "cols", ndim=2)
    g = make_geometry(x_shape, 0, kernel_size, stride, padding, dilation)
    check_shape(cols, "cols", (g.n * g.oh * g.ow, g.c * g.kh * g.kw))
    return _col2im(cols, g)


# ----------------------------------------------------------------------------------------------
# Forward and backward
# ----------------------------------------------------------------------------------------------

def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1):
    """Convolution (cross-correlation, as nn.Conv2d) by im2col + one GEMM; numpy or torch inputs.

    Returns (N, O, OH, OW). For torch tensors this is ``conv2d_torch`` with its layout choice."""
    g = conv_geometry(x, weight, bias, stride, padding, dilation)
    if isinstance(x, torch.Tensor):
        return _conv2d_torch(x, weight, bias, g)
    out = _im2col(x, g) @ weight.reshape(g.o, -1).T                         # (N*OH*OW, O)
    if bias is not None:
        out += bias
    return out.reshape(g.n, g.oh, g.ow, g.o).transpose(0, 3, 1, 2)            # NCHW view of NHWC


def conv2d_backward(grad_out, x, weight, stride=1, padding=0, dilation=1):
    """(grad_x, grad_weight, grad_bias) of ``conv2d``, each from one GEMM; numpy or torch."""
    g = conv_geometry(x, weight, None, stride, padding, dilation)
    check_array(grad_out, "grad_out", ndim=4, like=x)
    check_shape(grad_out, "grad_out", (g.n, g.o, g.oh, g.ow))
    lib = ops(x)
    cols = _im2col(x, g)                                                       # (N*OH*OW, C*KH*KW)
    grad2d = lib.permute(grad_out, (0, 2, 3, 1)).reshape(-1, g.o)              # (N*OH*OW, O)
    grad_weight = (grad2d.T @ cols).reshape(weight.shape)
    grad_x = _col2im(grad2d @ weight.reshape(g.o, -1), g)
    grad_bias = grad_out.sum((0, 2, 3))
    return grad_x, grad_weight, grad_bias


def gemm_backend(x: torch.Tensor) -> str:
    """Which library runs the NHWC layout's GEMM for tensors like ``x``: 'onednn' or 'blas'."""
    if (x.device.type == "cpu" and x.dtype == torch.float32 and torch.backends.mkldnn.is_available()
            and hasattr(torch.ops.mkldnn, "_linear_pointwise")):
        return "onednn"
    return "blas"


def choose_layout(c: int, kh: int, kw: int, stride=(1, 1)) -> str:
    """The im2col layout for a kernel of C*KH*KW taps at ``stride`` (see ``conv2d_torch``).

    Measured here on the Fashion-MNIST shapes (batch 128, 3x3): 1 -> 16 channels, 'nchw' 0.24 ms
    vs 'nhwc' 0.9 ms (a 9-float row per output pixel gathers slowly); 16 -> 16 channels, 'rows'
    2.0 ms vs 'nhwc' 4.1 ms vs 'nchw' 4.3 ms, nn.Conv2d 1.0 ms ('rows' gathers a third of the
    data and runs a 48-wide GEMM, which oneDNN does at ~400 GFLOP/s against ~250 for the
    16-wide one).
    """
    if c * kh * kw < 32:
        return "nchw"
    return "rows" if tuple(stride) == (1, 1) and c * kw >= 16 else "nhwc"


def conv2d_torch(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                 stride=1, padding=0, dilation=1, layout: str = "auto") -> torch.Tensor:
    """Torch im2col convolution, (N, C, H, W) -> (N, O, OH, OW), in one of three layouts:

    * ``"nhwc"``: one row per output pixel, (N*OH*OW, KH*KW*C), gathered from the input's
      channels-last memory, then one GEMM (oneDNN where available) per cache-sized chunk of
      images; the output is already channels-last.
    * ``"nchw"``: per image a (C*KH*KW, OH*OW) matrix (the classic Caffe im2col), whose rows
      are long contiguous runs of the input, then one batched GEMM W @ cols per chunk; the
      output is NCHW-contiguous.
    * ``"rows"`` (stride 1 only): gather along W only, KW*C floats per input pixel, one GEMM
      against the KH kernel rows side by side, then KH shifted adds (``_conv2d_rows``); the
      output is channels-last.
    ``"auto"`` picks by ``choose_layout`` (call it to report which ran).

    Every argument may have any layout. When autograd records the call (grad mode on and an
    argument requiring grad) it runs as ``Conv2dFunction``, whose backward is ``conv2d_backward``.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"conv2d_torch takes torch tensors, got {type(x).__name__}")
    return _conv2d_torch(x, weight, bias, conv_geometry(x, weight, bias, stride, padding, dilation), layout)


def _conv2d_torch(x, weight, bias, g: ConvGeometry, layout: str = "auto"):
    if layout == "auto":
        layout = choose_layout(g.c, g.kh, g.kw, g.stride)
    if layout not in ("nhwc", "nchw", "rows"):
        raise ValueError(f"layout must be 'auto', 'nhwc', 'nchw' or 'rows', got {layout!r}")
    if layout == "rows" and g.stride != (1, 1):
        raise ValueError(f"layout 'rows' needs stride (1, 1), got {g.stride}")
    if requires_grad(x, weight, bias):
        return Conv2dFunction.apply(x, weight, bias, g, layout)
    return _conv2d_layout(x, weight, bias, g, layout)


class Conv2dFunction(torch.autograd.Function):
    """``conv2d_torch`` as an autograd op: the chosen layout's forward, ``conv2d_backward`` (the
    same im2col GEMMs, in torch) as its backward; autograd records that backward's torch ops
    under ``create_graph=True``, so gradients of gradients are right too."""

    @staticmethod
    def forward(ctx, x, weight, bias, g: ConvGeometry, layout: str):
        ctx.save_for_backward(x, weight)
        ctx.g, ctx.has_bias = g, bias is not None
        return _conv2d_layout(x, weight, bias, g, layout)

    @staticmethod
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        g, need = ctx.g, ctx.needs_input_grad
        grad_x, grad_weight, grad_bias = conv2d_backward(grad_out, x, weight, g.stride, g.pads, g.dilation)
        return (grad_x if need[0] else None, grad_weight if need[1] else None,
                grad_bias if ctx.has_bias and need[2] else None, None, None)


def _conv2d_layout(x, weight, bias, g: ConvGeometry, layout: str):
    # The GEMMs below read the bias as a dense vector: a strided or expanded one is copied (O floats).
    bias = bias.contiguous() if bias is not None else x.new_zeros(g.o)
    if g.n == 0:
        return x.new_empty((0, g.o, g.oh, g.ow))
    if layout == "rows":
        return _conv2d_rows(x, weight, bias, g)
    columns = _nhwc_columns if layout == "nhwc" else _nchw_columns
    chunk = max(1, CHUNK_ELEMENTS // (g.oh * g.ow * g.kh * g.kw * g.c))
    outputs = []
    if layout == "nhwc":
        weight2d = weight.permute(0, 2, 3, 1).reshape(g.o, g.kh * g.kw * g.c)    # (O, KH*KW*C)
    else:
        weight2d = weight.reshape(g.o, g.c * g.kh * g.kw)                          # (O, C*KH*KW)
    for start in range(0, g.n, chunk):
        # Layout change and padding per chunk, so the gather reads what is still in cache.
        window = columns(x[start:start + chunk], g)
        images = window.shape[0]
        if layout == "nhwc":
            cols = window.reshape(images * g.oh * g.ow, -1)                         # the gather
            outputs.append(_linear(cols, weight2d, bias))
        else:
            cols = window.reshape(images, g.c * g.kh * g.kw, g.oh * g.ow)            # the gather
            outputs.append(torch.baddbmm(bias.view(1, -1, 1), weight2d.expand(images, -1, -1), cols))
    out = outputs[0] if len(outputs) == 1 else torch.cat(outputs)
    if layout == "nhwc":
        return out.view(g.n, g.oh, g.ow, g.o).permute(0, 3, 1, 2)                  # channels-last NCHW
    return out.view(g.n, g.o, g.oh, g.ow)


def _linear(rows: torch.Tensor, weight2d: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """rows @ weight2d.T + bias, on oneDNN where torch has it (``gemm_backend``), else BLAS."""
    if gemm_backend(rows) == "onednn":
        # oneDNN's linear reads its operands as dense row-major matrices, whatever their strides
        # say; the gathers hand it contiguous rows already, the weight (small) may need a copy.
        rows, weight2d = rows.contiguous(), weight2d.contiguous()
        bias = None if bias is None else bias.contiguous()
        return torch.ops.mkldnn._linear_pointwise(rows, weight2d, bias, "none", [], "")
    return rows @ weight2d.T if bias is None else torch.addmm(bias, rows, weight2d.T)


def _conv2d_rows(x, weight, bias, g: ConvGeometry):
    """Stride-1 convolution from a gather along W only, one GEMM and KH shifted adds.

    Per chunk of images, in the padded NHWC image, X[n, h, w] = the KW taps of row h starting
    at column w, side by side (KW*C floats, for every padded row h and output column w): a
    third of the full im2col for 3x3. One GEMM P = X @ [W_0 | ... | W_KH-1] gives each kernel
    row's partial sum, and out[n, h, w] = sum_kh P[n, h + kh*DH, w, kh-th block].
    The padded image and X live in workspaces reused by every chunk, so a chunk's data is still
    in cache when the next step reads it (a GEMM reading a freshly allocated 2 MB buffer
    measured 1.3-2x slower than one reading a reused buffer).
    """
    (dh, dw), (top, bottom, left, right) = g.dilation, g.pads
    hp, wp = g.h + top + bottom, g.w + left + right
    weight_rows = weight.permute(2, 0, 3, 1).reshape(g.kh * g.o, g.kw * g.c)       # (KH*O, KW*C)
    bias_rows = torch.cat([bias, bias.new_zeros((g.kh - 1) * g.o)])                 # bias once
    out = x.new_empty((g.n, g.oh, g.ow, g.o))                                         # channels-last
    chunk = min(g.n, max(1, ROWS_CHUNK_ELEMENTS // (hp * wp * g.kw * g.c)))
    nhwc = x.permute(0, 2, 3, 1)
    # Channels-last input needing no padding is read in place; else a workspace whose zero
    # border, if any, is never written.
    padded = None
    if any(g.pads):
        padded = x.new_zeros((chunk, hp, wp, g.c))
    elif not nhwc.is_contiguous():
        padded = x.new_empty((chunk, hp, wp, g.c))
    taps = x.new_empty((chunk, hp, g.ow, g.kw, g.c))
    for start in range(0, g.n, chunk):
        images = min(chunk, g.n - start)
        source = nhwc[start:start + images]
        if padded is not None:
            padded[:images, top:top + g.h, left:left + g.w].copy_(source)
            source = padded[:images]
        s_n, s_h, s_w, s_c = source.stride()
        window = source.as_strided((images, hp, g.ow, g.kw, g.c), (s_n, s_h, s_w, dw * s_w, s_c))
        gathered = taps[:images]
        gathered.copy_(window)                                                        # the gather
        partial = _linear(gathered.view(-1, g.kw * g.c), weight_rows, bias_rows)    # the GEMM
        partial = partial.view(images, hp, g.ow, g.kh * g.o)
        target = out[start:start + images]

        def kernel_row(kh):
            """P[n, h + kh*DH, w, kh-th block] for every output pixel (n, h, w), as (n, OH, OW, O)."""
            return partial[:, kh * dh:kh * dh + g.oh, :, kh * g.o:(kh + 1) * g.o]

        if g.kh == 1:
            target.copy_(kernel_row(0))
        else:
            torch.add(kernel_row(0), kernel_row(1), out=target)
            for kh in range(2, g.kh):
                target += kernel_row(kh)
    return out.permute(0, 3, 1, 2)


def _padded(x, g: ConvGeometry, channels_last: bool):
    """x zero-padded, NHWC- or NCHW-contiguous; no copy when it already is and needs no padding."""
    top, bottom, left, right = g.pads
    n = x.shape[0]
    view = x.permute(0, 2, 3, 1) if channels_last else x                        # (N, H, W, C) or NCHW
    if not any(g.pads):
        return view.contiguous()
    if channels_last:
        padded = x.new_zeros((n, g.h + top + bottom, g.w + left + right, g.c))
        padded[:, top:top + g.h, left:left + g.w] = view
    else:
        padded = x.new_zeros((n, g.c, g.h + top + bottom, g.w + left + right))
        padded[:, :, top:top + g.h, left:left + g.w] = view
    return padded


def _nhwc_columns(x, g: ConvGeometry):
    """Window view (N, OH, OW, KH, KW*C) (or (N, OH, OW, KH, KW, C) when dilated along W) of x in NHWC."""
    source = _padded(x, g, channels_last=True)
    (sh, sw), (dh, dw) = g.stride, g.dilation
    s_n, s_h, s_w, s_c = source.stride()
    if dw == 1:
        # For a fixed kernel row, (KW, C) is one contiguous run of KW*C floats in NHWC memory.
        shape, strides = (g.oh, g.ow, g.kh, g.kw * g.c), (s_h * sh, s_w * sw, s_h * dh, 1)
    else:
        shape, strides = (g.oh, g.ow, g.kh, g.kw, g.c), (s_h * sh, s_w * sw, s_h * dh, s_w * dw, s_c)
    return source.as_strided((source.shape[0], *shape), (s_n, *strides))


def _nchw_columns(x, g: ConvGeometry):
    """Window view (N, C, KH, KW, OH, OW) of x in NCHW: its rows run along OW."""
    source = _padded(x, g, channels_last=False)
    (sh, sw), (dh, dw) = g.stride, g.dilation
    s_n, s_c, s_h, s_w = source.stride()
    return source.as_strided((source.shape[0], g.c, g.kh, g.kw, g.oh, g.ow),
                             (s_n, s_c, s_h * dh, s_w * dw, s_h * sh, s_w * sw))


if __name__ == "__main__":
    rng = np.random.default_rng(0)
    xs, ws, bs = rng.standard_normal((2, 3, 9, 7)), rng.standard_normal((4, 3, 3, 2)), rng.standard_normal(4)
    args = dict(stride=(2, 1), padding=(1, 0, 2, 1), dilation=(1, 2))
    diff = np.abs(conv2d(xs, ws, bs, **args) - conv2d_reference(xs, ws, bs, **args)).max()
    print(f"max |im2col - reference| = {diff:.2e}")
