"""Shared, seeded benchmark inputs and the cases every harness (asv, pytest-benchmark) uses.

Inputs come from cached factories (built once per process, seeded), so a case's timing never
includes allocation and every implementation sees the same numbers.
"""

from __future__ import annotations

import functools
import os
import zlib

import numpy as np

BATCH = 128
# The Fashion-MNIST CNN's two convolutions: (in channels, out channels, input H = W, kernel).
CONV_SHAPES = {
    "conv1 1->16 28x28": (1, 16, 28, 3),
    "conv2 16->16 26x26": (16, 16, 26, 3),
}
REFERENCE_BATCH = 4          # conv2d_reference loops in Python: timed on a few images, per image


def threads() -> int:
    """Fix the thread count (``$SYSDL_BENCH_THREADS``, default all cores) and the allocator
    settings sysdl trains with (models.runtime); returns the thread count."""
    from models.runtime import configure_cpu_runtime
    count = int(os.environ.get("SYSDL_BENCH_THREADS", os.cpu_count() or 1))
    return configure_cpu_runtime(count)["torch_threads"]


@functools.lru_cache(maxsize=None)
def conv_inputs(shape: str, batch: int = BATCH, dtype: str = "float32"):
    """(x, weight, bias) as numpy arrays for a CONV_SHAPES case, seeded by its name."""
    c_in, c_out, size, k = CONV_SHAPES[shape]
    rng = np.random.default_rng(zlib.crc32(shape.encode()))     # str hash() differs per process
    x = rng.standard_normal((batch, c_in, size, size)).astype(dtype)
    w = (rng.standard_normal((c_out, c_in, k, k)) / np.sqrt(c_in * k * k)).astype(dtype)
    b = rng.standard_normal(c_out).astype(dtype)
    return x, w, b


@functools.lru_cache(maxsize=None)
def fashion_batches(n_images: int):
    """(x float32 NCHW, y int64) numpy arrays: real Fashion-MNIST training images when installed,
    else seeded synthetic ones of the same shape (timings do not depend on pixel values)."""
    from models.data import DataNotFoundError, load_fashion_mnist, synthetic_splits
    try:
        split = load_fashion_mnist().train
    except DataNotFoundError:
        split = synthetic_splits(n_train=n_images, n_test=1).train
    return split.x[:n_images].numpy(), split.y[:n_images].numpy()
