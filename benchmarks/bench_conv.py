"""asv benchmarks: conv2d forward on the Fashion-MNIST shapes, nine implementations, two devices.

    reference loops | numpy-im2col | numba | torch-im2col (sysdl conv2d_torch)
    | triton-im2col (explicit im2col matrix + GEMM) | triton (implicit GEMM, one kernel) | nn.Conv2d
    and at TF32 on a GPU's tensor cores (CUDA only): nn.Conv2d tf32, triton tf32

``ConvForward.time_forward`` times each case (the family's baseline is nn.Conv2d, in IEEE fp32
on CUDA too, although cuDNN defaults to TF32); ``ConvForward.peakmem_forward`` its peak memory
(im2col forms a matrix the direct convolution never does); ``ConvThroughput.track_gflops`` its
GFLOP/s; ``ConvWork`` the FLOPs and bytes of one call (what `sysdl bench-table` predicts GPU
times from); the ``ConvForwardRatios.track_*`` figures are ratios of medians measured in the same
process, interleaved, after warm-up (speed of A relative to B: B's time / A's time). Run with
``asv run`` (README, "Tracking speedups").
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from benchmarks.common import (BATCH, CONV_SHAPES, CaseWork, Family, RatioFigures, TimedFamily, assert_matches,
                               conv_inputs, cpu_only, on_device, require_compiled_triton, require_device,
                               require_tensor_cores, speed_ratio, split_precision)
from sysdl_kernels.runtime import median_seconds
from sysdl_kernels import conv
from sysdl_kernels.flops import Conv, analyze, memory_bytes

IMPLEMENTATIONS = ["nn.Conv2d", "nn.Conv2d tf32", "torch-im2col", "triton", "triton tf32", "triton-im2col",
                   "numpy-im2col", "numba", "reference"]
TORCH_IMPLEMENTATIONS = {"nn.Conv2d", "torch-im2col", "triton", "triton-im2col"}    # on torch tensors, any device


@functools.lru_cache(maxsize=None)
def conv_cost(shape: str):
    """sysdl_kernels.flops' LayerCost of one image through the shape's convolution."""
    c_in, c_out, size, k = CONV_SHAPES[shape]
    return analyze([Conv(c_out, k)], (c_in, size, size))[0]


def conv_work(shape: str, implementation: str) -> tuple[float, float]:
    """(FLOPs, bytes) of one batch: multiply-adds and bias adds; input, weights and bias read
    once, output written once. The same for every implementation (the operation's minimum)."""
    cost = conv_cost(shape)
    return BATCH * cost.flops, memory_bytes(cost, batch=BATCH)


def _torch_conv(implementation: str, precision: str):
    """The function (x, weight, bias) -> output of a torch-tensor implementation."""
    if implementation.startswith("triton"):
        require_compiled_triton()
        from sysdl_kernels import triton_ops
        kernel = {"triton": triton_ops.conv2d, "triton-im2col": triton_ops.conv2d_im2col}[implementation]
        return functools.partial(kernel, precision=precision)
    return {"nn.Conv2d": F.conv2d, "torch-im2col": conv.conv2d_torch}[implementation]


def _numpy_conv(implementation: str):
    if implementation == "numba":
        from sysdl_kernels import numba_layers
        return numba_layers.conv2d
    return {"numpy-im2col": conv.conv2d, "reference": conv.conv2d_reference}[implementation]


def conv_forward(shape: str, implementation: str, device: str = "cpu"):
    """A zero-argument callable running one forward of ``implementation`` on the shape's inputs
    on ``device``, checked against F.conv2d (fp32, CPU) at its precision's tolerance first."""
    require_device(device)
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"implementation must be one of {IMPLEMENTATIONS}, got {implementation!r}")
    name, precision = split_precision(implementation)
    if precision == "tf32":
        require_tensor_cores(implementation, device)
    x, w, b = conv_inputs(shape, BATCH)     # every implementation, the reference too (~3.5 s a call)
    if name in TORCH_IMPLEMENTATIONS:
        run = _torch_conv(name, precision)
        xt, wt, bt = (torch.from_numpy(a).to(device) for a in (x, w, b))
        fn = on_device(lambda: run(xt, wt, bt), device, precision)
    else:
        cpu_only(implementation, device)
        kernel = _numpy_conv(name)
        fn = lambda: kernel(x, w, b)
    expected = F.conv2d(*(torch.from_numpy(a) for a in (x, w, b)))
    assert_matches(fn(), expected, precision, depth=w[0].size)          # check before timing
    return fn


CONV = Family("conv", tuple(CONV_SHAPES), tuple(IMPLEMENTATIONS), conv_forward, conv_work)


class ConvForward(TimedFamily):
    family = CONV
    params = CONV.params

    def time_forward(self, case, implementation, device):
        self.run()

    def peakmem_forward(self, case, implementation, device):
        self.run()


class ConvWork(CaseWork):
    family = CONV
    params = [list(CONV.cases)]


class ConvThroughput(TimedFamily):
    """Useful arithmetic per second: 2 * multiply-adds of the convolution (bias adds not counted)."""
    family = CONV
    params = CONV.params
    unit = "GFLOP/s"

    def track_gflops(self, case, implementation, device):
        flops = BATCH * conv_cost(case).gemm_flops
        return flops / median_seconds(self.run, repeats=3 if implementation == "reference" else 20) / 1e9


class ConvForwardRatios(RatioFigures):
    """The kernel-library issue's figures, per shape: each a ratio of medians from one process."""
    params = list(CONV_SHAPES)

    def track_torch_im2col_speed_vs_nn_conv2d(self, case):
        """nn.Conv2d time / torch-im2col time: 1.0 is parity; issue 22 asks >= 0.8 on conv2."""
        return speed_ratio(CONV, "nn.Conv2d", "torch-im2col", case, repeats=20)

    def track_numba_speed_vs_nn_conv2d(self, case):
        """nn.Conv2d time / numba time: issue 22 asks >= 0.6 on conv2."""
        return speed_ratio(CONV, "nn.Conv2d", "numba", case, repeats=20)

    def track_numba_speedup_vs_reference(self, case):
        """reference time / numba time: the issue asks >= 100."""
        return speed_ratio(CONV, "reference", "numba", case, repeats=3)

    def track_numba_speedup_vs_numpy_im2col(self, case):
        """numpy-im2col time / numba time: the issue asks >= 1 (no slower)."""
        return speed_ratio(CONV, "numpy-im2col", "numba", case, repeats=10)
