"""asv benchmarks: conv2d forward on the Fashion-MNIST shapes, six implementations, two devices.

    reference loops | numpy-im2col | numba | torch-im2col (sysdl conv2d_torch) | triton | nn.Conv2d

``ConvForward.time_forward`` times each case (the family's baseline is nn.Conv2d);
``ConvForward.peakmem_forward`` its peak memory (im2col forms a matrix the direct convolution
never does); ``ConvThroughput.track_gflops`` its GFLOP/s; the ``ConvForwardRatios.track_*``
figures are ratios of medians measured in the same process, interleaved, after warm-up (speed
of A relative to B: B's time / A's time). Run with ``asv run`` (README, "Tracking speedups").
"""

from __future__ import annotations

import statistics

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.common import (BATCH, CONV_SHAPES, Family, TimedFamily, conv_inputs,
                               cpu_only, require_compiled_triton, require_device, synchronised, threads)
from models.runtime import interleaved, median_seconds
from sysdl_kernels import conv
from sysdl_kernels.flops import Conv, analyze

IMPLEMENTATIONS = ["nn.Conv2d", "torch-im2col", "triton", "numpy-im2col", "numba", "reference"]
TORCH_IMPLEMENTATIONS = {"nn.Conv2d", "torch-im2col", "triton"}


def conv_forward(shape: str, implementation: str, device: str = "cpu"):
    """A zero-argument callable running one forward of ``implementation`` on the shape's inputs
    on ``device``, checked against F.conv2d before it is returned."""
    require_device(device)
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"implementation must be one of {IMPLEMENTATIONS}, got {implementation!r}")
    x, w, b = conv_inputs(shape, BATCH)     # every implementation, the reference too (~3.5 s a call)
    if implementation in TORCH_IMPLEMENTATIONS:
        if implementation == "triton":
            require_compiled_triton()
            from sysdl_kernels import triton_ops
            run = triton_ops.conv2d
        else:
            run = {"nn.Conv2d": F.conv2d, "torch-im2col": conv.conv2d_torch}[implementation]
        xt, wt, bt = (torch.from_numpy(a).to(device) for a in (x, w, b))
        fn = synchronised(lambda: run(xt, wt, bt), device)
    else:
        cpu_only(implementation, device)
        if implementation == "numba":
            from sysdl_kernels import numba_layers
            kernel = numba_layers.conv2d
        else:
            kernel = {"numpy-im2col": conv.conv2d, "reference": conv.conv2d_reference}[implementation]
        fn = lambda: kernel(x, w, b)
    expected = F.conv2d(*(torch.from_numpy(a) for a in (x, w, b))).numpy()
    got = fn()
    got = got.cpu().numpy() if isinstance(got, torch.Tensor) else np.asarray(got)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)   # check before timing
    return fn


CONV = Family("conv", tuple(CONV_SHAPES), tuple(IMPLEMENTATIONS), conv_forward)


def speed_ratio(slow: str, fast: str, shape: str, repeats: int = 5) -> float:
    """slow's time / fast's time on the same batch, medians, interleaved, on the CPU."""
    times = interleaved({name: conv_forward(shape, name) for name in (slow, fast)}, repeats=repeats, warmup=1)
    return statistics.median(times[slow]) / statistics.median(times[fast])


class ConvForward(TimedFamily):
    family = CONV
    params = CONV.params

    def time_forward(self, case, implementation, device):
        self.run()

    def peakmem_forward(self, case, implementation, device):
        self.run()


class ConvThroughput(TimedFamily):
    """Useful arithmetic per second: 2 * multiply-adds of the convolution (bias adds not counted)."""
    family = CONV
    params = CONV.params
    unit = "GFLOP/s"

    def track_gflops(self, case, implementation, device):
        c_in, c_out, size, k = CONV_SHAPES[case]
        flops = BATCH * analyze([Conv(c_out, k)], (c_in, size, size))[0].gemm_flops
        return flops / median_seconds(self.run, repeats=3 if implementation == "reference" else 20) / 1e9


class ConvForwardRatios:
    """The kernel-library issue's figures, per shape: each a ratio of medians from one process."""
    params = list(CONV_SHAPES)
    param_names = ["shape"]
    timeout = 600
    unit = "x"

    def setup(self, shape):
        threads()

    def track_torch_im2col_speed_vs_nn_conv2d(self, shape):
        """nn.Conv2d time / torch-im2col time: 1.0 is parity, the issue asks >= 0.5."""
        return speed_ratio("nn.Conv2d", "torch-im2col", shape, repeats=20)

    def track_numba_speedup_vs_reference(self, shape):
        """reference time / numba time: the issue asks >= 100."""
        return speed_ratio("reference", "numba", shape, repeats=3)

    def track_numba_speedup_vs_numpy_im2col(self, shape):
        """numpy-im2col time / numba time: the issue asks >= 1 (no slower)."""
        return speed_ratio("numpy-im2col", "numba", shape, repeats=10)
