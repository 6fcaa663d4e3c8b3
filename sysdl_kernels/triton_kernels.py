"""The Triton kernels themselves, at module level, and the block configurations they run with.

    from sysdl_kernels import triton_ops       # the launchers: what callers use
    from sysdl_kernels import triton_compile   # the same kernels compiled for sm_80 / sm_90, no GPU

Importing this module imports triton, so it is imported only by the launchers and the compile
report, lazily. Whether the kernels below are compiled or interpreted is decided by triton when
this module is imported (``TRITON_INTERPRET=1`` set before, as the tests' conftest does, gives
the CPU interpreter); ``triton_compile`` compiles the same Python source for a GPU target either
way. Three kernels:

  * ``im2col_kernel``: the explicit gather, (N*OH*OW, KH*KW*C) written to memory;
  * ``gemm_kernel``: out = act(a @ b + bias), bias and ReLU fused in the epilogue;
  * ``conv_kernel``: implicit-GEMM convolution: the im2col gather happens inside the GEMM's K
    loop, tile by tile, so the (N*OH*OW, KH*KW*C) matrix is never written anywhere; stride, zero
    padding (masked loads) and dilation; input and output in any layout (strides); bias and ReLU
    fused in the epilogue.

``PRECISION`` is ``tl.dot``'s ``input_precision``: "ieee" multiplies fp32 on the CUDA cores;
"tf32" on the tensor cores, with the inputs rounded to a 10-bit mantissa (triton_ops says what
each setting is checked to). Indices are int32: a tensor of 2**31 elements or more is refused by
the launchers.
"""

from __future__ import annotations

import triton
import triton.language as tl
import triton.testing

# (BLOCK_M, BLOCK_N, BLOCK_K, num_warps, num_stages): the autotune space on a GPU, as plain data
# so the compile report (triton_compile) walks exactly the configurations the launchers tune over.
# Chosen from `sysdl triton-report` (docs/kernels.md): tiles that compile without spilling and keep
# two blocks per SM on sm_80 and sm_90 where one exists, plus the large tiles big problems need
# on the tensor cores (flagged in the report: they spill a little in ieee or fit one block per SM).
GEMM_CONFIGS = (
    (64, 32, 32, 4, 3), (128, 32, 32, 8, 3), (64, 64, 32, 4, 3), (32, 32, 64, 4, 3),
    (128, 64, 32, 4, 3), (128, 128, 32, 8, 3),
)
CONV_CONFIGS = (
    (64, 16, 32, 4, 3), (32, 32, 64, 4, 3), (32, 32, 32, 2, 3), (64, 32, 32, 8, 3),
    (64, 64, 32, 8, 3), (128, 32, 32, 8, 3), (128, 64, 32, 8, 4),
)
IM2COL_BLOCK = (64, 32, 4)          # (BLOCK_M, BLOCK_K, num_warps) on a GPU: a copy, nothing to tune
PRECISIONS = ("ieee", "tf32")


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
    RELU: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
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
        acc += tl.dot(a, b, input_precision=PRECISION)
    # Epilogue, fused: bias and ReLU while the tile is still in registers.
    acc += tl.load(bias_ptr + rn, mask=rn < N, other=0.0)[None, :]
    if RELU:
        acc = tl.where(acc < 0.0, 0.0, acc)    # NaN stays NaN (tl.maximum would drop it on a GPU)
    tl.store(out_ptr + rm[:, None] * s_om + rn[None, :] * s_on, acc,
             mask=(rm[:, None] < M) & (rn[None, :] < N))


@triton.jit
def conv_kernel(
    # pointers: x (N, C, H, W) by strides, w the (KH*KW*C, O) matrix, bias (O,), out (N, O, OH, OW) by strides
    x_ptr, w_ptr, bias_ptr, out_ptr,
    # GEMM sizes: M = N*OH*OW output pixels, K = KH*KW*C taps, O output channels
    M, K, O,
    # geometry
    C, H, W, OH, OW, KW,
    stride_h, stride_w, pad_h, pad_w, dil_h, dil_w,
    # strides in elements
    s_xn, s_xc, s_xh, s_xw, s_wk, s_wo, s_on, s_oc, s_oh, s_ow,
    # meta-parameters
    HAS_BIAS: tl.constexpr, RELU: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    rm = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)            # output pixels (n, oh, ow)
    rn = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)            # output channels
    rk = tl.arange(0, BLOCK_K)
    n = rm // (OH * OW)
    oh = (rm % (OH * OW)) // OW
    ow = rm % OW
    ih0 = oh * stride_h - pad_h                                         # the window's top-left corner
    iw0 = ow * stride_w - pad_w
    x_rows = x_ptr + (n * s_xn + ih0 * s_xh + iw0 * s_xw)               # per row: where its window starts
    row_ok = rm < M
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        ks = k0 + rk                                                    # taps (kh, kw, c), c fastest
        dh = (ks // (KW * C)) * dil_h                                   # the tap's offset in the window
        dw = ((ks % (KW * C)) // C) * dil_w
        tap = (ks % C) * s_xc + dh * s_xh + dw * s_xw                   # per column: its offset from the row's start
        ih = ih0[:, None] + dh[None, :]
        iw = iw0[:, None] + dw[None, :]
        # The gather: one (BLOCK_M, BLOCK_K) tile of the im2col matrix, built in registers; the
        # zero padding is the mask (a padded tap reads nothing and contributes 0).
        inside = (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
        a = tl.load(x_rows[:, None] + tap[None, :], mask=row_ok[:, None] & (ks < K)[None, :] & inside, other=0.0)
        b = tl.load(w_ptr + ks[:, None] * s_wk + rn[None, :] * s_wo,
                    mask=(ks < K)[:, None] & (rn < O)[None, :], other=0.0)
        acc += tl.dot(a, b, input_precision=PRECISION)
    if HAS_BIAS:
        acc += tl.load(bias_ptr + rn, mask=rn < O, other=0.0)[None, :]
    if RELU:
        acc = tl.where(acc < 0.0, 0.0, acc)    # NaN stays NaN
    out = (out_ptr + (n * s_on + oh * s_oh + ow * s_ow)[:, None] + rn[None, :] * s_oc)
    tl.store(out, acc, mask=row_ok[:, None] & (rn < O)[None, :])


AUTOTUNE_WARMUP_MS, AUTOTUNE_REP_MS = 5, 20      # per configuration, per new problem size (Triton's: 25, 100)


def _short_bench(kernel_call, quantiles):
    """The autotuner's timing of one configuration, shorter than Triton's default: a problem size
    seen for the first time costs ~25 ms per configuration instead of ~125 ms."""
    return triton.testing.do_bench(kernel_call, warmup=AUTOTUNE_WARMUP_MS, rep=AUTOTUNE_REP_MS, quantiles=quantiles)


def autotuned(kernel, configs, key):
    """``kernel`` autotuned over ``configs`` (tuples as in GEMM_CONFIGS) on ``key``'s arguments."""
    return triton.autotune([triton.Config({"BLOCK_M": m, "BLOCK_N": n, "BLOCK_K": k}, num_warps=w, num_stages=s)
                            for m, n, k, w, s in configs], key=key, do_bench=_short_bench)(kernel)


def fixed(configs) -> dict:
    """The first configuration as launch keywords: what runs when autotuning is off."""
    m, n, k, warps, stages = configs[0]
    return {"BLOCK_M": m, "BLOCK_N": n, "BLOCK_K": k, "num_warps": warps, "num_stages": stages}
