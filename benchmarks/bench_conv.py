"""asv benchmarks: conv2d forward on the Fashion-MNIST shapes, six implementations, two devices.

    reference loops | numpy-im2col | numba | torch-im2col (sysdl conv2d_torch) | triton | nn.Conv2d

``ConvForward.time_forward`` times each case (the family's baseline is nn.Conv2d);
``ConvForward.peakmem_forward`` its peak memory (im2col forms a matrix the direct convolution
never does); ``ConvThroughput.track_gflops`` its GFLOP/s; the ``ConvForwardRatios.track_*``
figures are ratios of medians measured in the same process, interleaved, after warm-up (speed
of A relative to B: B's time / A's time). Run with ``asv run`` (README, "Tracking speedups").
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.common import (BATCH, CONV_SHAPES, Family, RatioFigures, TimedFamily, conv_inputs, speed_ratio,
                               cpu_only, require_compiled_triton, require_device, synchronised)
from sysdl_kernels.runtime import median_seconds
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


class ConvForwardRatios(RatioFigures):
    """The kernel-library issue's figures, per shape: each a ratio of medians from one process."""
    params = list(CONV_SHAPES)

    def track_torch_im2col_speed_vs_nn_conv2d(self, case):
        """nn.Conv2d time / torch-im2col time: 1.0 is parity, the issue asks >= 0.5."""
        return speed_ratio(CONV, "nn.Conv2d", "torch-im2col", case, repeats=20)

    def track_numba_speedup_vs_reference(self, case):
        """reference time / numba time: the issue asks >= 100."""
        return speed_ratio(CONV, "reference", "numba", case, repeats=3)

    def track_numba_speedup_vs_numpy_im2col(self, case):
        """numpy-im2col time / numba time: the issue asks >= 1 (no slower)."""
        return speed_ratio(CONV, "numpy-im2col", "numba", case, repeats=10)
