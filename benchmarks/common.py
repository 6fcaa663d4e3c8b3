"""Shared, seeded benchmark inputs and the cases every harness (asv, pytest-benchmark) uses.

A kernel family (``Family``) is one list of cases: case labels x implementations x devices, a
factory that turns one (case, implementation, device) into a zero-argument callable, checked
against its reference before it is returned (``assert_matches``) and run as ``on_device`` makes
it (torch's precision set, CUDA synchronised), and a work function: the FLOPs and bytes of one
call. asv classes (``TimedFamily``, ``CaseWork``) and the pytest-benchmark tests
(tests/benchmarks/test_benchmarks.py) both build their cases from it, so no parameter list is
written twice. A case that cannot run here (no CUDA, Triton without a GPU, TF32 on a CPU) raises
NotImplementedError from the factory: asv skips it, pytest skips it; it is never timed as zero.

Precision is part of an implementation's name: "<name> tf32" multiplies on a GPU's tensor cores
with inputs rounded to TF32 (CUDA only), every other implementation in IEEE fp32. `sysdl
bench-table` reads the same suffix back from the results.

Inputs come from cached factories (built once per process, seeded), so a case's timing never
includes allocation and every implementation sees the same numbers.
"""

from __future__ import annotations

import abc
import functools
import itertools
import math
import os
import zlib
from dataclasses import dataclass
from typing import Callable

import numpy as np

# The case schema every timing family follows; `sysdl bench-table` reads it back from the results
# (asv's benchmarks.json, pytest-benchmark's extra_info), never from this module.
PARAM_NAMES = ["case", "implementation", "device"]

DEVICES = ["cpu", "cuda"]
FLOAT32_BYTES = 4
TF32_SUFFIX = " tf32"
PRECISIONS = ("ieee", "tf32")


@dataclass(frozen=True)
class Family:
    name: str
    cases: tuple[str, ...]
    implementations: tuple[str, ...]       # the first is the baseline every speedup is over
    factory: Callable[[str, str, str], Callable[[], object]]
    # (case, implementation) -> (FLOPs, bytes moved) of one call, fp32: inputs read once and
    # outputs written once (the minimum compulsory traffic), as sysdl_kernels.flops counts them
    work: Callable[[str, str], tuple[float, float]] | None = None
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

    def work_of(self, case: str, implementation: str) -> tuple[float, float]:
        """(FLOPs, bytes) of one call of the case; ValueError for names the family does not have."""
        if case not in self.cases or implementation not in self.implementations:
            raise ValueError(f"{self.name} has cases {list(self.cases)} and implementations "
                             f"{list(self.implementations)}; got {case!r}, {implementation!r}")
        if self.work is None:
            raise NotImplementedError(f"the {self.name} family states no work per case")
        flops, moved = self.work(case, implementation)
        return float(flops), float(moved)


class TimedFamily:
    """Base of an asv class timing one family: subclasses set ``family`` and a one-line time_."""
    family: Family
    param_names = PARAM_NAMES
    timeout = 300

    def setup(self, case, implementation, device):
        threads()
        self.run = self.family.factory(case, implementation, device)
        self.run()                                  # warm-up: JIT compile, first oneDNN/CUDA call


class CaseWork(abc.ABC):
    """Base of an asv class recording one family's work per case: ``track_flops`` and
    ``track_bytes`` of one call (``Family.work``), the operation's minimum, the same for every
    implementation. `sysdl bench-table` reads them from asv's results (predicted GPU times),
    never by importing benchmarks/. Subclasses set ``family`` and ``params = [list(FAMILY.cases)]``.
    The base is abstract, so asv, which finds classes in every module's namespace, never runs it.
    Per case rather than per implementation because asv starts an interpreter per parameter
    combination (about 3 s here)."""
    param_names = ["case"]
    timeout = 300

    @property
    @abc.abstractmethod
    def family(self) -> Family:
        """The family whose cases this records."""

    def setup(self, case):
        self.flops, self.bytes = self.family.work_of(case, self.family.baseline)

    def track_flops(self, case):
        """Floating-point operations of one call (a multiply-add is 2; sysdl_kernels.flops)."""
        return self.flops
    track_flops.unit = "FLOP"

    def track_bytes(self, case):
        """Bytes one call must move at least: inputs read once, outputs written once, fp32."""
        return self.bytes
    track_bytes.unit = "B"


class ImplementationWork(CaseWork):
    """``CaseWork`` per (case, implementation), for a family whose implementations do different
    work (inference: the original network or the pruned one). Subclasses set ``family`` and
    ``params = [list(FAMILY.cases), list(FAMILY.implementations)]``."""
    param_names = ["case", "implementation"]

    def setup(self, case, implementation):
        self.flops, self.bytes = self.family.work_of(case, implementation)

    def track_flops(self, case, implementation):
        """Floating-point operations of one call (a multiply-add is 2; sysdl_kernels.flops)."""
        return self.flops
    track_flops.unit = "FLOP"

    def track_bytes(self, case, implementation):
        """Bytes one call must move at least: inputs read once, outputs written once, fp32."""
        return self.bytes
    track_bytes.unit = "B"


class RatioFigures:
    """Base of an asv class of ``track_*`` ratios per case label (see ``speed_ratio``)."""
    param_names = ["case"]
    timeout = 600
    unit = "x"

    def setup(self, case):
        threads()


def speed_ratio(family: Family, slow: str, fast: str, case: str, repeats: int = 5,
                min_sample: float = 0.02) -> float:
    """slow's time / fast's time for one case of ``family`` on the CPU: medians of per-call times
    interleaved in this process after a warm-up (so both see the same machine state), a call
    shorter than ``min_sample`` repeated within each sample: one call of a fast kernel right after
    seconds of the slow one (the reference conv) caught it cold and made the ratio 5x too small."""
    import statistics

    from sysdl_kernels.runtime import interleaved_per_call
    per_call, _ = interleaved_per_call({name: family.factory(case, name, "cpu") for name in (slow, fast)},
                                       repeats=repeats, min_sample=min_sample, warmup=1)
    return statistics.median(per_call[slow]) / statistics.median(per_call[fast])


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


def split_precision(implementation: str) -> tuple[str, str]:
    """'triton tf32' -> ('triton', 'tf32'); 'triton' -> ('triton', 'ieee')."""
    if implementation.endswith(TF32_SUFFIX):
        return implementation.removesuffix(TF32_SUFFIX), "tf32"
    return implementation, "ieee"


def require_tensor_cores(implementation: str, device: str) -> None:
    """NotImplementedError (asv's "skip") for a TF32 implementation anywhere but CUDA."""
    if device != "cuda":
        raise NotImplementedError(f"{implementation}: TF32 is a tensor-core setting, CUDA only")


class torch_precision:
    """``with torch_precision("ieee"):`` runs the block with torch's TF32 switches for cuDNN
    convolutions (torch.backends.cudnn.allow_tf32, on by default) and cuBLAS matmuls
    (torch.backends.cuda.matmul.allow_tf32) both off ("ieee") or both on ("tf32"), and restores
    what they were. It calls the functions behind those two properties directly: through the
    properties a call costs about 5 µs on this machine, as long as the smallest GPU cases."""
    __slots__ = ("allow", "saved")

    def __init__(self, precision: str):
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.allow = precision == "tf32"

    def __enter__(self):
        import torch
        self.saved = torch._C._get_cudnn_allow_tf32(), torch._C._get_cublas_allow_tf32()
        torch._C._set_cudnn_allow_tf32(self.allow)
        torch._C._set_cublas_allow_tf32(self.allow)
        return self

    def __exit__(self, *exc):
        import torch
        torch._C._set_cudnn_allow_tf32(self.saved[0])
        torch._C._set_cublas_allow_tf32(self.saved[1])


def on_device(fn: Callable[[], object], device: str, precision: str = "ieee") -> Callable[[], object]:
    """fn as the timers call it. On CUDA: under ``torch_precision(precision)`` (so "nn.Conv2d" is
    fp32 although cuDNN defaults to TF32), then torch.cuda.synchronize(), so a timer sees the
    kernels finish. On the CPU fn itself: the switches change nothing there (TF32 is a tensor-core
    format) and a microsecond case should not time them."""
    torch_precision(precision)                            # a wrong name fails here, not in a timer
    if device != "cuda":
        return fn
    import torch

    def run():
        with torch_precision(precision):
            result = fn()
        torch.cuda.synchronize()
        return result
    return run


# The check before timing: the output against the reference (computed in fp64 or IEEE fp32) at the
# tolerance of the implementation's precision, relative to the output's scale, so values that
# cancel to near zero do not fail on rounding.
#   ieee  fp32 products and sums: rtol 1e-4, atol 1e-4 x scale (what the kernel issues ask of fp32).
#   tf32  inputs rounded to 10 mantissa bits, a relative error up to 2**-11 each; a sum of K
#         products then errs by about sqrt(K) * 2**-11 of its scale: rtol 5e-3, atol 5e-3 x
#         sqrt(K) x scale (tests/oracle.py's TF32_TOLERANCE, as torch's own allow_tf32 tests).
RTOL = {"ieee": 1e-4, "tf32": 5e-3}


def assert_matches(got, expected, precision: str = "ieee", depth: int = 1) -> None:
    """AssertionError unless ``got`` matches ``expected`` (tensors or arrays, any device) at the
    tolerance of ``precision``; depth: K, the number of products summed into each output."""
    import torch
    got, expected = _float_tensor_on_cpu(got), _float_tensor_on_cpu(expected)
    rtol = RTOL[precision]
    scale = float(expected.abs().max()) if expected.numel() else 0.0
    atol = rtol * scale * (math.sqrt(depth) if precision == "tf32" else 1.0)
    torch.testing.assert_close(got, expected, rtol=rtol, atol=atol)


def _float_tensor_on_cpu(values):
    import torch
    tensor = values if isinstance(values, torch.Tensor) else torch.from_numpy(np.asarray(values))
    return tensor.detach().cpu().float()


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
