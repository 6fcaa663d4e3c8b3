"""asv benchmarks of the lowering family: MatmulNet's hand-written kernels (the Triton im2col gather; the GEMM with bias
and ReLU fused in the epilogue, in Triton and in Numba) against the torch operations they
replace; baseline: torch on the same device.

Triton cases run compiled on a CUDA GPU only: on a CPU they are skipped (the interpreter is
for correctness, in the tests; its times mean nothing). Numba cases run on the CPU only, GEMMs
only (its im2col is fused into its conv kernel, ``numba_gemm.im2col_gemm``). Shapes are the
MatmulNet GEMMs at batch 1000 (a 16-channel conv and the dense layers of the unpruned and of
the selected pruned network); inputs are seeded random numbers (the time does not depend on
them).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sysdl_kernels import triton_ops

from benchmarks.common import (Family, TimedFamily, cpu_only, require_compiled_triton, require_device,
                               synchronised)

# case label -> (kind, shape): GEMM (M, K, N) or im2col (N, C, H, W, K)
SHAPES = {
    "gemm+bias+relu 576000x144x16": ("gemm", (576_000, 144, 16)),
    "gemm+bias+relu 1000x9216x100": ("gemm", (1000, 9216, 100)),
    "gemm+bias+relu 1000x1152x60": ("gemm", (1000, 1152, 60)),
    "im2col 1000x16x26x26 3x3": ("im2col", (1000, 16, 26, 26, 3)),
}
IMPLEMENTATIONS = ("torch", "triton", "numba")


def lowering_case(case: str, implementation: str, device: str = "cpu"):
    """A callable running one kernel (Triton) or its torch counterpart, checked against each other
    when both can run."""
    require_device(device)
    if case not in SHAPES:
        raise ValueError(f"case must be one of {list(SHAPES)}, got {case!r}")
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"implementation must be one of {IMPLEMENTATIONS}, got {implementation!r}")
    kind, shape = SHAPES[case]
    if implementation == "triton":
        require_compiled_triton()
    if implementation == "numba":
        cpu_only(implementation, device)
        if kind != "gemm":
            raise NotImplementedError("Numba's im2col is fused into its conv kernel (numba_gemm.im2col_gemm)")
    g = torch.Generator().manual_seed(len(case))
    if kind == "gemm":
        m, k, n = shape
        a, b, bias = (t.to(device) for t in (torch.randn(m, k, generator=g), torch.randn(k, n, generator=g) / k ** 0.5,
                                             torch.randn(n, generator=g)))
        reference = lambda: triton_ops.gemm_bias_relu_reference(a, b, bias, relu=True)
        if implementation == "triton":
            fn = lambda: triton_ops.gemm_bias_relu(a, b, bias, relu=True)
        elif implementation == "numba":
            from sysdl_kernels import numba_gemm
            weight, out = b.T.contiguous().numpy(), torch.empty(m, n)          # nn.Linear's (N, K) layout
            fn = lambda: torch.from_numpy(numba_gemm.gemm_bias_act(a.numpy(), weight, bias.numpy(), relu=True,
                                                                   out=out.numpy()))
    else:
        n, c, h, w, k = shape
        x = torch.randn(n, c, h, w, generator=g).to(device)
        baseline = lambda: F.unfold(x, k)                                    # torch's own: (N, C*K*K, L)
        reference = lambda: triton_ops.im2col_reference(x, k, k)[0]          # unfold reordered: (N*L, K*K*C)
        if implementation == "triton":
            fn = lambda: triton_ops.im2col(x, k, k)[0]                       # (N*L, K*K*C)
    if implementation == "torch":
        return synchronised(baseline if kind == "im2col" else reference, device)
    got, expected = fn(), reference()
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max()))
    return synchronised(fn, device)


LOWERING = Family("lowering", tuple(SHAPES), IMPLEMENTATIONS, lowering_case)


class LoweringKernels(TimedFamily):
    family = LOWERING
    params = LOWERING.params

    def time_kernel(self, case, implementation, device):
        self.run()
