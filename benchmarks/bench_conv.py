"""asv benchmarks: conv2d forward on the Fashion-MNIST shapes, five implementations.

    nn.Conv2d (oneDNN) | torch-im2col (sysdl conv2d_torch) | numpy-im2col | numba | reference loops

``time_forward`` times each; the ``track_*`` figures are ratios of medians measured in the same
process, interleaved, after warm-up (speed of A relative to B: B's time / A's time).
"""

from __future__ import annotations

import statistics

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.common import BATCH, CONV_SHAPES, REFERENCE_BATCH, conv_inputs, threads
from models.runtime import interleaved
from sysdl_kernels import conv

IMPLEMENTATIONS = ["nn.Conv2d", "torch-im2col", "numpy-im2col", "numba", "reference"]


def conv_forward(implementation: str, shape: str):
    """A zero-argument callable running one forward of ``implementation`` on the shape's inputs
    (the reference on REFERENCE_BATCH images: it loops in Python), checked against F.conv2d."""
    batch = REFERENCE_BATCH if implementation == "reference" else BATCH
    x, w, b = conv_inputs(shape, batch)
    if implementation in ("nn.Conv2d", "torch-im2col"):
        xt, wt, bt = (torch.from_numpy(a) for a in (x, w, b))
        fn = {"nn.Conv2d": lambda: F.conv2d(xt, wt, bt),
              "torch-im2col": lambda: conv.conv2d_torch(xt, wt, bt)}[implementation]
    else:
        if implementation == "numba":
            from sysdl_kernels import numba_layers
            kernel = numba_layers.conv2d
        else:
            kernel = {"numpy-im2col": conv.conv2d, "reference": conv.conv2d_reference}[implementation]
        fn = lambda: kernel(x, w, b)
    expected = F.conv2d(*(torch.from_numpy(a) for a in (x, w, b))).numpy()
    np.testing.assert_allclose(np.asarray(fn()), expected, rtol=1e-4, atol=1e-4)   # check before timing
    return fn


def per_image_ratio(slow: str, fast: str, shape: str, repeats: int = 5) -> float:
    """(slow's time per image) / (fast's time per image), medians, interleaved."""
    fns = {name: conv_forward(name, shape) for name in (slow, fast)}
    times = interleaved(fns, repeats=repeats, warmup=1)
    per_image = {name: statistics.median(t) / (REFERENCE_BATCH if name == "reference" else BATCH)
                 for name, t in times.items()}
    return per_image[slow] / per_image[fast]


class ConvForward:
    params = (list(CONV_SHAPES), IMPLEMENTATIONS)
    param_names = ["shape", "implementation"]
    timeout = 300

    def setup(self, shape, implementation):
        threads()
        self.fn = conv_forward(implementation, shape)
        self.fn()                                   # warm-up: JIT compile, first oneDNN call

    def time_forward(self, shape, implementation):
        self.fn()


class ConvForwardRatios:
    """The issue's figures, per shape: each a ratio of medians from one process."""
    params = list(CONV_SHAPES)
    param_names = ["shape"]
    timeout = 600
    unit = "x"

    def setup(self, shape):
        threads()

    def track_torch_im2col_speed_vs_nn_conv2d(self, shape):
        """nn.Conv2d time / torch-im2col time: 1.0 is parity, the issue asks >= 0.5."""
        return per_image_ratio("nn.Conv2d", "torch-im2col", shape, repeats=20)

    def track_numba_speedup_vs_reference(self, shape):
        """reference time / numba time, per image: the issue asks >= 100."""
        return per_image_ratio("reference", "numba", shape, repeats=3)

    def track_numba_speedup_vs_numpy_im2col(self, shape):
        """numpy-im2col time / numba time: the issue asks >= 1 (no slower)."""
        return per_image_ratio("numpy-im2col", "numba", shape, repeats=10)
