"""Shared, seeded benchmark inputs and the cases every harness (asv, pytest-benchmark) uses.

A kernel family (``Family``) is one list of cases: case labels x implementations x devices and a
factory that turns one (case, implementation, device) into a zero-argument callable, checked
against its reference before it is returned, and synchronising CUDA when it runs there. asv
classes (``TimedFamily``) and the pytest-benchmark tests (tests/benchmarks/test_benchmarks.py) both build
their cases from it, so no parameter list is written twice. A case that cannot run here (no
CUDA, Triton without a GPU) raises NotImplementedError from the factory: asv skips it, pytest
skips it; it is never timed as zero.

Inputs come from cached factories (built once per process, seeded), so a case's timing never
includes allocation and every implementation sees the same numbers.
"""

from __future__ import annotations

import functools
import itertools
import os
import zlib
from dataclasses import dataclass
from typing import Callable

import numpy as np

# The case schema every timing family follows; `sysdl bench-table` reads it back from the results
# (asv's benchmarks.json, pytest-benchmark's extra_info), never from this module.
PARAM_NAMES = ["case", "implementation", "device"]

DEVICES = ["cpu", "cuda"]


@dataclass(frozen=True)
class Family:
    name: str
    cases: tuple[str, ...]
    implementations: tuple[str, ...]       # the first is the baseline every speedup is over
    factory: Callable[[str, str, str], Callable[[], object]]
    devices: tuple[str, ...] = tuple(DEVICES)

    @property
    def baseline(self) -> str:
        return self.implementations[0]

    @property
    def params(self) -> list[list[str]]:
        return [list(self.cases), list(self.implementations), list(self.devices)]

    def all_cases(self):
        """Every (case, implementation, device), in asv's order."""
        return list(itertools.product(self.cases, self.implementations, self.devices))


class TimedFamily:
    """Base of an asv class timing one family: subclasses set ``family`` and a one-line time_."""
    family: Family
    param_names = PARAM_NAMES
    timeout = 300

    def setup(self, case, implementation, device):
        threads()
        self.run = self.family.factory(case, implementation, device)
        self.run()                                  # warm-up: JIT compile, first oneDNN/CUDA call


class RatioFigures:
    """Base of an asv class of ``track_*`` ratios per case label (see ``speed_ratio``)."""
    param_names = ["case"]
    timeout = 600
    unit = "x"

    def setup(self, case):
        threads()


def speed_ratio(family: Family, slow: str, fast: str, case: str, repeats: int = 5) -> float:
    """slow's time / fast's time for one case of ``family`` on the CPU: medians of calls
    interleaved in this process, after a warm-up (so both see the same machine state)."""
    import statistics

    from sysdl_kernels.runtime import interleaved
    times = interleaved({name: family.factory(case, name, "cpu") for name in (slow, fast)},
                        repeats=repeats, warmup=1)
    return statistics.median(times[slow]) / statistics.median(times[fast])


def require_device(device: str) -> None:
    """NotImplementedError (asv's "skip") when ``device`` is not usable here."""
    import torch
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise NotImplementedError("no CUDA device on this machine")


def cpu_only(implementation: str, device: str) -> None:
    if device != "cpu":
        raise NotImplementedError(f"{implementation} runs on the CPU only")


def require_compiled_triton() -> None:
    """Triton is timed compiled on CUDA only: the CPU interpreter is for correctness, its times mean nothing."""
    from sysdl_kernels import triton_ops
    if triton_ops.mode() != "compiled":
        raise NotImplementedError("Triton is timed on a CUDA GPU only (here: "
                                  f"{triton_ops.mode()}; the interpreter is not a timing)")


def synchronised(fn: Callable[[], object], device: str) -> Callable[[], object]:
    """fn, followed by torch.cuda.synchronize() on CUDA, so a timer sees the kernels finish."""
    if device != "cuda":
        return fn
    import torch

    def run():
        result = fn()
        torch.cuda.synchronize()
        return result
    return run

BATCH = 128
# The Fashion-MNIST CNN's two convolutions: (in channels, out channels, input H = W, kernel).
CONV_SHAPES = {
    "conv1 1->16 28x28": (1, 16, 28, 3),
    "conv2 16->16 26x26": (16, 16, 26, 3),
}


def threads() -> int:
    """Fix the thread count (``$SYSDL_BENCH_THREADS``, default all cores) and the allocator
    settings sysdl trains with (models.training.provenance); returns the thread count."""
    from sysdl_kernels.runtime import configure_cpu_runtime
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
    from models.data.datasets import DataNotFoundError, load_fashion_mnist, synthetic_splits
    try:
        split = load_fashion_mnist().train
    except DataNotFoundError:
        split = synthetic_splits(n_train=n_images, n_test=1).train
    return split.x[:n_images].numpy(), split.y[:n_images].numpy()
