"""asv benchmarks of the lowering family: MatmulNet's hand-written kernels (the Triton im2col gather; the GEMM with bias
and ReLU fused in the epilogue, in Triton and in Numba) against the torch operations they
replace; baseline: torch on the same device, in IEEE fp32.

Triton cases run compiled on a CUDA GPU only: on a CPU they are skipped (the interpreter is
for correctness, in the tests; its times mean nothing). Numba cases run on the CPU only, GEMMs
only (its im2col is fused into its conv kernel, ``numba_gemm.im2col_gemm``). "torch tf32" and
"triton tf32" multiply on the tensor cores with TF32 inputs: CUDA only, GEMMs only (im2col
does no arithmetic). Shapes are the MatmulNet GEMMs at batch 1000 (a 16-channel conv and the
dense layers of the unpruned and of the selected pruned network); inputs are seeded random
numbers (the time does not depend on them). ``LoweringWork`` records each case's FLOPs and bytes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sysdl_kernels import triton_ops
from sysdl_kernels.flops import Linear, ReLU, analyze, memory_bytes

from benchmarks.common import (FLOAT32_BYTES, CaseWork, Family, TimedFamily, assert_matches, cpu_only, on_device,
                               require_compiled_triton, require_device, require_tensor_cores, split_precision)

# case label -> (kind, shape): GEMM (M, K, N) or im2col (N, C, H, W, K)
SHAPES = {
    "gemm+bias+relu 576000x144x16": ("gemm", (576_000, 144, 16)),
    "gemm+bias+relu 1000x9216x100": ("gemm", (1000, 9216, 100)),
    "gemm+bias+relu 1000x1152x60": ("gemm", (1000, 1152, 60)),
    "im2col 1000x16x26x26 3x3": ("im2col", (1000, 16, 26, 26, 3)),
}
IMPLEMENTATIONS = ("torch", "torch tf32", "triton", "triton tf32", "numba")


def _missing_everywhere(kind: str, implementation: str) -> str | None:
    """Why an implementation has no such case on any device (None when it has one somewhere)."""
    name, precision = split_precision(implementation)
    if kind != "gemm" and precision == "tf32":
        return f"{implementation}: im2col moves data and does no arithmetic, so it has no TF32 variant"
    if kind != "gemm" and name == "numba":
        return "Numba's im2col is fused into its conv kernel (numba_gemm.im2col_gemm)"
    return None


def lowering_work(case: str, implementation: str) -> tuple[float, float]:
    """(FLOPs, bytes) of one call. GEMM: multiply-adds, bias adds and ReLU comparisons; A, B and
    the bias read once, the output written once (the ReLU is fused: no traffic of its own).
    im2col: no arithmetic; the input read once, the (N*OH*OW, K*K*C) matrix written once.
    NotImplementedError for a case that exists on no device (it has no work to record)."""
    kind, shape = SHAPES[case]
    why = _missing_everywhere(kind, implementation)
    if why:
        raise NotImplementedError(why)
    if kind == "gemm":
        m, k, n = shape
        dense, relu = analyze([Linear(n), ReLU()], (k,))             # one row of A
        return m * (dense.flops + relu.flops), memory_bytes(dense, batch=m)
    n, c, h, w, k = shape
    rows, depth = n * (h - k + 1) * (w - k + 1), k * k * c
    return 0.0, FLOAT32_BYTES * (n * c * h * w + rows * depth)


def _gemm_case(shape, implementation: str, precision: str, device: str, g: torch.Generator):
    """(callable, reference callable, K) for a GEMM case; the reference is torch's, in IEEE fp32."""
    m, k, n = shape
    a, b, bias = (t.to(device) for t in (torch.randn(m, k, generator=g), torch.randn(k, n, generator=g) / k ** 0.5,
                                         torch.randn(n, generator=g)))
    reference = lambda: triton_ops.gemm_bias_relu_reference(a, b, bias, relu=True)
    if implementation == "triton":
        fn = lambda: triton_ops.gemm_bias_relu(a, b, bias, relu=True, precision=precision)
    elif implementation == "numba":
        from sysdl_kernels import numba_gemm
        weight, out = b.T.contiguous().numpy(), torch.empty(m, n)          # nn.Linear's (N, K) layout
        fn = lambda: torch.from_numpy(numba_gemm.gemm_bias_act(a.numpy(), weight, bias.numpy(), relu=True,
                                                               out=out.numpy()))
    else:
        fn = reference
    return on_device(fn, device, precision), on_device(reference, device, "ieee"), k


def _im2col_case(shape, implementation: str, device: str, g: torch.Generator):
    """(callable, reference callable, 1) for an im2col case; torch's is F.unfold."""
    n, c, h, w, k = shape
    x = torch.randn(n, c, h, w, generator=g).to(device)
    if implementation == "torch":                                         # the reference itself
        unfold = on_device(lambda: F.unfold(x, k), device)                # torch's own: (N, C*K*K, L)
        return unfold, unfold, 1
    fn = lambda: triton_ops.im2col(x, k, k)[0]                             # (N*L, K*K*C)
    reference = lambda: triton_ops.im2col_reference(x, k, k)[0]          # unfold reordered: (N*L, K*K*C)
    return on_device(fn, device), on_device(reference, device), 1


def lowering_case(case: str, implementation: str, device: str = "cpu"):
    """A callable running one kernel (Triton, Numba) or its torch counterpart, checked against
    torch in IEEE fp32 at the tolerance of its precision first."""
    require_device(device)
    if case not in SHAPES:
        raise ValueError(f"case must be one of {list(SHAPES)}, got {case!r}")
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"implementation must be one of {IMPLEMENTATIONS}, got {implementation!r}")
    kind, shape = SHAPES[case]
    why = _missing_everywhere(kind, implementation)
    if why:
        raise NotImplementedError(why)
    name, precision = split_precision(implementation)
    if precision == "tf32":
        require_tensor_cores(implementation, device)
    if name == "triton":
        require_compiled_triton()
    if name == "numba":
        cpu_only(implementation, device)
    g = torch.Generator().manual_seed(len(case))
    if kind == "gemm":
        fn, reference, depth = _gemm_case(shape, name, precision, device, g)
    else:
        fn, reference, depth = _im2col_case(shape, name, device, g)
    if implementation != "torch":                                         # torch is the reference itself
        assert_matches(fn(), reference(), precision, depth)
    return fn


LOWERING = Family("lowering", tuple(SHAPES), IMPLEMENTATIONS, lowering_case, lowering_work)


class LoweringKernels(TimedFamily):
    family = LOWERING
    params = LOWERING.params

    def time_kernel(self, case, implementation, device):
        self.run()


class LoweringWork(CaseWork):
    family = LOWERING
    params = [list(LOWERING.cases)]
