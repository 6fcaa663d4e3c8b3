"""Triton kernels for MatmulNet: an im2col gather and a GEMM with bias and ReLU fused.

    cols, oh, ow = im2col(x, kh, kw)                      # (N*OH*OW, KH*KW*C), columns (kh, kw, c)
    out = gemm_bias_relu(cols, weight, bias, relu=True)   # relu(cols @ weight + bias), (M, N)

Each kernel's oracle sits beside it: ``im2col_reference`` (torch's unfold, reordered) and
``gemm_bias_relu_reference`` (addmm, then ReLU).

On a CUDA GPU the kernels are compiled and the GEMM's block sizes autotuned per (M, N, K).
Without a GPU they run under Triton's interpreter, which must be switched on with
``TRITON_INTERPRET=1`` *before* triton is imported (the tests' conftest does this): that is
how they are tested on a CPU, correct but slow, so interpreter timings mean nothing. With
neither, ``require_triton`` raises; nothing silently falls back to torch.

The launchers take inputs in any layout (the kernels index through their strides; the bias is
copied to a dense vector), size-0 problems included, and follow torch's IEEE semantics (the
fused ReLU keeps NaN). They have no backward: given a tensor that requires grad while grad mode
is on they raise, rather than return an output that silently drops the gradient.

Memory traffic of the naive alternative, for reference: im2col + cuBLAS + a separate bias-add
and ReLU pass writes and re-reads the (M, N) output twice more than the fused epilogue here.
"""

from __future__ import annotations

import functools
import os
from types import SimpleNamespace

import torch

from sysdl_kernels._array import refuse_grad


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
    """Define the kernels on first use, so importing this module imports no triton."""
    require_triton()
    import triton
    import triton.language as tl

    @triton.jit
    def im2col_kernel(
        # pointers
        x_ptr, cols_ptr,
        # sizes
        M, K, OH, OW, KW, C,
        # strides of x in elements (any layout)
        s_n, s_c, s_h, s_w,
        # meta-parameters
        BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr,
    ):
        rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)          # output pixels (n, oh, ow)
        ks = tl.program_id(1) * BLOCK_K + tl.arange(0, BLOCK_K)            # taps (kh, kw, c)
        n, r = rows // (OH * OW), rows % (OH * OW)
        oh, ow = r // OW, r % OW
        kh, rem = ks // (KW * C), ks % (KW * C)
        kw, c = rem // C, rem % C
        src = (n[:, None] * s_n + c[None, :] * s_c + (oh[:, None] + kh[None, :]) * s_h
               + (ow[:, None] + kw[None, :]) * s_w)
        mask = (rows[:, None] < M) & (ks[None, :] < K)
        values = tl.load(x_ptr + src, mask=mask, other=0.0)
        tl.store(cols_ptr + rows[:, None] * K + ks[None, :], values, mask=mask)

    @triton.jit
    def gemm_kernel(
        # pointers
        a_ptr, b_ptr, bias_ptr, out_ptr,
        # sizes
        M, N, K,
        # strides in elements
        s_am, s_ak, s_bk, s_bn, s_om, s_on,
        # meta-parameters
        RELU: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    ):
        rm = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
        rn = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
        rk = tl.arange(0, BLOCK_K)
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for k0 in range(0, K, BLOCK_K):
            a = tl.load(a_ptr + rm[:, None] * s_am + (k0 + rk)[None, :] * s_ak,
                        mask=(rm[:, None] < M) & ((k0 + rk)[None, :] < K), other=0.0)
            b = tl.load(b_ptr + (k0 + rk)[:, None] * s_bk + rn[None, :] * s_bn,
                        mask=((k0 + rk)[:, None] < K) & (rn[None, :] < N), other=0.0)
            acc += tl.dot(a, b, input_precision="ieee")
        # Epilogue, fused: bias and ReLU while the tile is still in registers.
        acc += tl.load(bias_ptr + rn, mask=rn < N, other=0.0)[None, :]
        if RELU:
            acc = tl.where(acc < 0.0, 0.0, acc)    # NaN stays NaN (tl.maximum would drop it on a GPU)
        tl.store(out_ptr + rm[:, None] * s_om + rn[None, :] * s_on, acc,
                 mask=(rm[:, None] < M) & (rn[None, :] < N))

    configs = [triton.Config({"BLOCK_M": m, "BLOCK_N": n, "BLOCK_K": k}, num_warps=w)
               for m, n, k, w in ((64, 32, 32, 4), (128, 32, 32, 4), (128, 64, 32, 4), (64, 64, 64, 4),
                                  (128, 128, 32, 8), (32, 32, 64, 2))]
    return SimpleNamespace(triton=triton, im2col=im2col_kernel, gemm=gemm_kernel,
                           gemm_tuned=triton.autotune(configs, key=["M", "N", "K"])(gemm_kernel))


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


def _check(t: torch.Tensor, name: str, ndim: int) -> None:
    if not isinstance(t, torch.Tensor) or t.dtype != torch.float32 or t.dim() != ndim:
        raise ValueError(f"{name} must be a float32 tensor with {ndim} dims, got "
                         f"{getattr(t, 'dtype', type(t).__name__)} {tuple(getattr(t, 'shape', ()))}")


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
    k = _kernels()
    cols = torch.empty((m, depth), device=x.device, dtype=x.dtype)
    if cols.numel() == 0:                      # no program to launch
        return cols, oh, ow
    # The interpreter's cost is per program, so it gets big tiles; a GPU wants many small ones.
    block_m, block_k = (64, 32) if mode() == "compiled" else (512, 64)
    grid = (k.triton.cdiv(m, block_m), k.triton.cdiv(depth, block_k))
    k.im2col[grid](x, cols, m, depth, oh, ow, kw, c, s_n, s_c, s_h, s_w, BLOCK_M=block_m, BLOCK_K=block_k)
    return cols, oh, ow


def gemm_bias_relu(a: torch.Tensor, b: torch.Tensor, bias: torch.Tensor, relu: bool = True) -> torch.Tensor:
    """relu(a @ b + bias) (or without relu): a (M, K), b (K, N), bias (N,) -> (M, N) float32."""
    _check(a, "a", 2)
    _check(b, "b", 2)
    _check(bias, "bias", 1)
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
        k.gemm_tuned[grid](*args, RELU=relu)
    else:                                     # the interpreter: one fixed, large tile (cost is per program)
        grid = (k.triton.cdiv(m, 256), k.triton.cdiv(n, 32))
        k.gemm[grid](*args, RELU=relu, BLOCK_M=256, BLOCK_N=32, BLOCK_K=64)
    return out


def conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, relu: bool = False) -> torch.Tensor:
    """Valid stride-1 convolution of x (N, C, H, W) by weight (O, C, KH, KW) as the two kernels
    above: im2col, then one GEMM with the bias (and ReLU) in its epilogue. Returns (N, O, OH, OW),
    channels-last in memory (the GEMM's rows are output pixels)."""
    _check(weight, "weight", 4)
    refuse_grad("triton_ops.conv2d", x=x, weight=weight, bias=bias)
    o, c, kh, kw = weight.shape
    if x.dim() == 4 and x.shape[1] != c:
        raise ValueError(f"x has {x.shape[1]} channels but weight expects {c}")
    cols, oh, ow = im2col(x, kh, kw)
    weight2d = weight.permute(2, 3, 1, 0).reshape(kh * kw * c, o)         # rows (kh, kw, c)
    out = gemm_bias_relu(cols, weight2d.contiguous(), bias, relu=relu)
    return out.view(x.shape[0], oh, ow, o).permute(0, 3, 1, 2)
