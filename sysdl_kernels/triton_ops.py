"""Triton launchers: implicit-GEMM convolution, an im2col gather, a GEMM with bias and ReLU fused.

    out = conv2d(x, weight, bias, stride=2, padding=1, relu=True)   # implicit GEMM, one kernel
    cols, oh, ow = im2col(x, kh, kw)                      # (N*OH*OW, KH*KW*C), columns (kh, kw, c)
    out = gemm_bias_relu(cols, weight, bias, relu=True)   # relu(cols @ weight + bias), (M, N)
    out = conv2d_im2col(x, weight, bias)                  # the explicit lowering: the two above

The kernels are in ``triton_kernels``; each launcher's oracle sits beside it here:
``conv2d_reference`` (F.conv2d), ``im2col_reference`` (torch's unfold, reordered) and
``gemm_bias_relu_reference`` (addmm, then ReLU).

On a CUDA GPU the kernels are compiled and the GEMM's and the convolution's block sizes
autotuned per problem size (the configurations: ``triton_kernels.GEMM_CONFIGS`` and
``CONV_CONFIGS``; ``sysdl triton-report`` compiles every one for sm_80 and sm_90 and reports
registers, spills, shared memory and occupancy); SYSDL_TRITON_AUTOTUNE=0 runs the first
configuration of each list instead (the GPU tests use it). Without a GPU they run under Triton's
interpreter, which must be switched on with ``TRITON_INTERPRET=1`` *before* triton is imported
(the tests' conftest does this): that is how they are tested on a CPU, correct but slow, so
interpreter timings mean nothing. With neither, ``require_triton`` raises; nothing silently
falls back to torch.

Precision is a stated choice (``precision=``): "ieee" multiplies in fp32 on the CUDA cores and
is checked against a float64 oracle at the fp32 tolerance (rtol 1e-4); "tf32" uses the tensor
cores with inputs rounded to 10 mantissa bits (relative error up to 2**-11 per input), checked
at rtol 5e-3 scaled by sqrt(K), as torch's own allow_tf32 is. The interpreter ignores "tf32"
(it multiplies in fp32), so that tolerance is exercised on a GPU only.

The launchers take inputs in any layout (the kernels index through their strides; the bias is
copied to a dense vector), size-0 problems included, and follow torch's IEEE semantics (the
fused ReLU keeps NaN). They have no backward: given a tensor that requires grad while grad mode
is on they raise, rather than return an output that silently drops the gradient. Indices are
int32: tensors spanning 2**31 elements or more are refused.

Memory traffic, for reference: the explicit lowering writes the KH*KW-times larger im2col
matrix and reads it back; the implicit kernel reads the input (from cache, mostly) instead.
im2col + cuBLAS + a separate bias-add and ReLU pass would also write and re-read the (M, N)
output twice more than the fused epilogues here.
"""

from __future__ import annotations

import functools
import os
from types import SimpleNamespace

import torch

from sysdl_kernels._array import output_size, padding4, pair, refuse_grad


def mode() -> str:
    """'compiled' on a CUDA device, 'interpreter' with TRITON_INTERPRET=1, else 'unavailable'."""
    if os.environ.get("TRITON_INTERPRET") == "1":
        return "interpreter"
    if torch.cuda.is_available():
        return "compiled"
    return "unavailable"


def require_triton() -> str:
    current = mode()
    if current == "unavailable":
        raise RuntimeError("the Triton backend needs a CUDA GPU, or TRITON_INTERPRET=1 set in the "
                           "environment before triton is imported (CPU interpreter, for testing)")
    try:
        import triton  # noqa: F401
    except ImportError as err:
        raise RuntimeError(f"the Triton backend needs the triton package: {err}") from err
    return current


def device() -> torch.device:
    return torch.device("cpu" if mode() == "interpreter" else "cuda")


@functools.lru_cache(maxsize=None)
def _kernels() -> SimpleNamespace:
    """The kernels (sysdl_kernels.triton_kernels) on first use, so importing this module imports no triton."""
    require_triton()
    import triton

    from sysdl_kernels import triton_kernels as tk
    return SimpleNamespace(triton=triton, im2col=tk.im2col_kernel, gemm=tk.gemm_kernel, conv=tk.conv_kernel,
                           gemm_tuned=tk.autotuned(tk.gemm_kernel, tk.GEMM_CONFIGS, ["M", "N", "K"]),
                           conv_tuned=tk.autotuned(tk.conv_kernel, tk.CONV_CONFIGS, ["M", "K", "O"]),
                           im2col_block=tk.IM2COL_BLOCK, gemm_fixed=tk.fixed(tk.GEMM_CONFIGS),
                           conv_fixed=tk.fixed(tk.CONV_CONFIGS))


def autotune_enabled() -> bool:
    """False with SYSDL_TRITON_AUTOTUNE=0 (the GPU tests: each new problem size would otherwise
    time every configuration first); the first configuration of each list runs then."""
    return os.environ.get("SYSDL_TRITON_AUTOTUNE", "1") != "0"


def im2col_reference(x: torch.Tensor, kh: int, kw: int, channels_last: bool = False):
    """The oracle of ``im2col``: torch's unfold, reordered to the (kh, kw, c) column order.
    Traffic: reads x once and writes the KH*KW-times larger cols, as the kernel does."""
    if channels_last:
        x = x.permute(0, 3, 1, 2)                                           # (N, C, H, W)
    n, c, h, w = x.shape
    oh, ow = h - kh + 1, w - kw + 1
    cols = torch.nn.functional.unfold(x, (kh, kw))                          # (N, C*KH*KW, OH*OW)
    cols = cols.view(n, c, kh, kw, oh * ow).permute(0, 4, 2, 3, 1)          # (N, OH*OW, KH, KW, C)
    return cols.reshape(n * oh * ow, kh * kw * c), oh, ow


def gemm_bias_relu_reference(a: torch.Tensor, b: torch.Tensor, bias: torch.Tensor, relu: bool = True) -> torch.Tensor:
    """The oracle of ``gemm_bias_relu``: addmm, then a separate ReLU pass (which reads and writes
    the (M, N) output once more: the traffic the fused epilogue saves)."""
    out = torch.addmm(bias, a, b)
    return torch.relu(out) if relu else out


PRECISIONS = ("ieee", "tf32")
INT32_LIMIT = 2 ** 31      # the kernels index in int32


def _check(t: torch.Tensor, name: str, ndim: int) -> None:
    if not isinstance(t, torch.Tensor) or t.dtype != torch.float32 or t.dim() != ndim:
        raise ValueError(f"{name} must be a float32 tensor with {ndim} dims, got "
                         f"{getattr(t, 'dtype', type(t).__name__)} {tuple(getattr(t, 'shape', ()))}")
    if t.numel() and max(t.storage_offset() + sum((n - 1) * abs(s) for n, s in zip(t.shape, t.stride())) + 1,
                         t.numel()) >= INT32_LIMIT:
        raise ValueError(f"{name} spans 2**31 elements or more; the Triton kernels index in int32")


def _check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return precision


def im2col(x: torch.Tensor, kh: int, kw: int, channels_last: bool = False):
    """Valid (stride 1, no padding) im2col of x, (N, C, H, W), or (N, H, W, C) if channels_last.
    Returns (cols (N*OH*OW, KH*KW*C), OH, OW)."""
    _check(x, "x", 4)
    refuse_grad("triton_ops.im2col", x=x)
    if min(kh, kw) < 1:
        raise ValueError(f"kernel size must be >= 1, got {kh}x{kw}")
    n, c, h, w = (x.shape[0], x.shape[3], x.shape[1], x.shape[2]) if channels_last else x.shape
    s_n, s_c, s_h, s_w = ((x.stride(0), x.stride(3), x.stride(1), x.stride(2)) if channels_last
                          else x.stride())
    oh, ow = h - kh + 1, w - kw + 1
    if oh < 1 or ow < 1:
        raise ValueError(f"kernel {kh}x{kw} is larger than the {h}x{w} input")
    m, depth = n * oh * ow, kh * kw * c
    if m * depth >= INT32_LIMIT:
        raise ValueError(f"the im2col matrix would have {m * depth:,} elements, 2**31 or more; the kernel "
                         f"indexes in int32 (use conv2d, which never forms it)")
    k = _kernels()
    cols = torch.empty((m, depth), device=x.device, dtype=x.dtype)
    if cols.numel() == 0:                      # no program to launch
        return cols, oh, ow
    # The interpreter's cost is per program, so it gets big tiles; a GPU wants many small ones.
    if mode() == "compiled":
        block_m, block_k, warps = k.im2col_block
    else:
        block_m, block_k, warps = 512, 64, 4
    grid = (k.triton.cdiv(m, block_m), k.triton.cdiv(depth, block_k))
    k.im2col[grid](x, cols, m, depth, oh, ow, kw, c, s_n, s_c, s_h, s_w, BLOCK_M=block_m, BLOCK_K=block_k,
                   num_warps=warps)
    return cols, oh, ow


def gemm_bias_relu(a: torch.Tensor, b: torch.Tensor, bias: torch.Tensor, relu: bool = True,
                   precision: str = "ieee") -> torch.Tensor:
    """relu(a @ b + bias) (or without relu): a (M, K), b (K, N), bias (N,) -> (M, N) float32.
    precision: "ieee" (fp32 products) or "tf32" (tensor cores; see the module docstring)."""
    _check(a, "a", 2)
    _check(b, "b", 2)
    _check(bias, "bias", 1)
    _check_precision(precision)
    if a.shape[1] != b.shape[0] or bias.shape[0] != b.shape[1]:
        raise ValueError(f"shapes do not chain: a {tuple(a.shape)} @ b {tuple(b.shape)} + bias {tuple(bias.shape)}")
    if not (a.device == b.device == bias.device):
        raise ValueError(f"a, b and bias must be on one device, got {a.device}, {b.device}, {bias.device}")
    refuse_grad("triton_ops.gemm_bias_relu", a=a, b=b, bias=bias)
    m, depth = a.shape
    n = b.shape[1]
    k = _kernels()
    out = torch.empty((m, n), device=a.device, dtype=torch.float32)
    if out.numel() == 0:                       # no program to launch
        return out
    bias = bias.contiguous()                   # the kernel reads it as a dense vector
    args = (a, b, bias, out, m, n, depth, a.stride(0), a.stride(1), b.stride(0), b.stride(1),
            out.stride(0), out.stride(1))
    if mode() == "compiled":
        grid = lambda meta: (k.triton.cdiv(m, meta["BLOCK_M"]), k.triton.cdiv(n, meta["BLOCK_N"]))
        if autotune_enabled():
            k.gemm_tuned[grid](*args, RELU=relu, PRECISION=precision)
        else:
            k.gemm[grid](*args, RELU=relu, PRECISION=precision, **k.gemm_fixed)
    else:                                     # the interpreter: one fixed, large tile (cost is per program)
        grid = (k.triton.cdiv(m, 256), k.triton.cdiv(n, 32))
        k.gemm[grid](*args, RELU=relu, PRECISION=precision, BLOCK_M=256, BLOCK_N=32, BLOCK_K=64)
    return out


def conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, stride=1, padding=0,
           dilation=1, relu: bool = False, channels_last: bool = False, precision: str = "ieee") -> torch.Tensor:
    """Convolution as one implicit-GEMM kernel: each (pixels x taps) tile of the im2col matrix is
    gathered inside the GEMM's K loop and never written to memory; bias and ReLU fused.

    x: (N, C, H, W), or (N, H, W, C) with channels_last, any strides; weight (O, C, KH, KW);
    bias (O,) or None; stride, dilation: int or (h, w); padding: int, (h, w) or (top, bottom,
    left, right), zeros. Returns (N, O, OH, OW), channels-last in memory (the GEMM's rows are
    output pixels), as F.conv2d(x, weight, bias, stride, padding, dilation) (then ReLU) would."""
    _check(x, "x", 4)
    _check(weight, "weight", 4)
    if bias is not None:
        _check(bias, "bias", 1)
    _check_precision(precision)
    refuse_grad("triton_ops.conv2d", x=x, weight=weight, bias=bias)
    if channels_last:
        x = x.permute(0, 3, 1, 2)                                    # a view: (N, C, H, W) by strides
    n, c, h, w = x.shape
    o, c_w, kh, kw = weight.shape
    if c != c_w:
        raise ValueError(f"x has {c} channels but weight expects {c_w}")
    if min(kh, kw) < 1:
        raise ValueError(f"kernel size must be >= 1, got {kh}x{kw}")
    if bias is not None and bias.shape[0] != o:
        raise ValueError(f"bias has {bias.shape[0]} entries but weight has {o} output channels")
    if not (x.device == weight.device and (bias is None or bias.device == x.device)):
        raise ValueError("x, weight and bias must be on one device")
    sh, sw = pair(stride, "stride", 1)
    dh, dw = pair(dilation, "dilation", 1)
    top, bottom, left, right = padding4(padding)
    oh = output_size(h, kh, sh, top, bottom, dh, "conv2d (height)")
    ow = output_size(w, kw, sw, left, right, dw, "conv2d (width)")
    out = torch.empty((n, oh, ow, o), device=x.device, dtype=torch.float32).permute(0, 3, 1, 2)
    m, depth = n * oh * ow, kh * kw * c
    if out.numel() == 0:                       # no program to launch
        return out
    if depth == 0:                             # no input channels: every output is the bias alone
        fill = bias if bias is not None else torch.zeros(o, device=x.device)
        out.copy_(fill.view(1, o, 1, 1).expand_as(out))
        return out.relu_() if relu else out
    _check(out, "the output", 4)
    k = _kernels()
    w2d = weight.permute(2, 3, 1, 0).reshape(depth, o)                 # rows (kh, kw, c); small: a copy at most
    bias_arg = x if bias is None else bias.contiguous()
    args = (x, w2d, bias_arg, out, m, depth, o, c, h, w, oh, ow, kw, sh, sw, top, left, dh, dw,
            *x.stride(), *w2d.stride(), *out.stride())
    meta = dict(HAS_BIAS=bias is not None, RELU=relu, PRECISION=precision)
    if mode() == "compiled":
        grid = lambda cfg: (k.triton.cdiv(m, cfg["BLOCK_M"]), k.triton.cdiv(o, cfg["BLOCK_N"]))
        if autotune_enabled():
            k.conv_tuned[grid](*args, **meta)
        else:
            k.conv[grid](*args, **meta, **k.conv_fixed)
    else:                                     # the interpreter: large tiles (its cost is per program)
        block_n = min(64, max(16, 1 << (o - 1).bit_length()))
        grid = (k.triton.cdiv(m, 256), k.triton.cdiv(o, block_n))
        k.conv[grid](*args, **meta, BLOCK_M=256, BLOCK_N=block_n, BLOCK_K=32)
    return out


def conv2d_im2col(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, relu: bool = False,
                  precision: str = "ieee") -> torch.Tensor:
    """The explicit lowering, kept as the comparison for ``conv2d``: valid stride-1 convolution of
    x (N, C, H, W) by weight (O, C, KH, KW) as two kernels, im2col (the (N*OH*OW, KH*KW*C) matrix
    written to memory), then one GEMM with the bias (and ReLU) in its epilogue. Returns
    (N, O, OH, OW), channels-last in memory."""
    _check(weight, "weight", 4)
    refuse_grad("triton_ops.conv2d_im2col", x=x, weight=weight, bias=bias)
    o, c, kh, kw = weight.shape
    if x.dim() == 4 and x.shape[1] != c:
        raise ValueError(f"x has {x.shape[1]} channels but weight expects {c}")
    cols, oh, ow = im2col(x, kh, kw)
    weight2d = weight.permute(2, 3, 1, 0).reshape(kh * kw * c, o)         # rows (kh, kw, c)
    out = gemm_bias_relu(cols, weight2d.contiguous(), bias, relu=relu, precision=precision)
    return out.view(x.shape[0], oh, ow, o).permute(0, 3, 1, 2)


def conv2d_reference(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, stride=1,
                     padding=0, dilation=1, relu: bool = False, channels_last: bool = False) -> torch.Tensor:
    """The oracle of ``conv2d``: F.conv2d on explicitly zero-padded input (so asymmetric padding
    works too), then ReLU."""
    if channels_last:
        x = x.permute(0, 3, 1, 2)
    top, bottom, left, right = padding4(padding)
    out = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (left, right, top, bottom)), weight, bias,
                                     stride=stride, dilation=dilation)
    return torch.relu(out) if relu else out
