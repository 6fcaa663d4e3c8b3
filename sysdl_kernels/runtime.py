"""How sysdl runs and times its kernels on the CPU: threads, the allocator, interleaved timing.

    from sysdl_kernels.runtime import configure_cpu_runtime, interleaved
    configure_cpu_runtime(2)                         # torch (and Numba) threads, glibc keeps large blocks
    times = interleaved({"a": f, "b": g}, repeats=10)   # A B, A B, ...: fair ratios on a noisy machine
    per_call, calls = interleaved_per_call({"a": f, "b": g}, repeats=5, min_sample=1e-3)   # microsecond calls too
    warn_if_busy("sysdl infer-bench")                # one stderr line when other processes hold cores

``configure_cpu_runtime`` fixes the thread count and tells glibc's allocator to keep large
blocks on its heap. By default glibc serves blocks over 128 KiB-32 MiB (a dynamic threshold)
with a fresh ``mmap`` and returns them on free, so each training step's multi-megabyte
activations and gradients are page-faulted in anew: torch.profiler showed ReLU's backward on
a (128, 16, 26, 26) tensor taking ~10x its memory-bound time for that reason. Raising the mmap
and trim thresholds keeps those pages mapped between steps. The math is untouched.

The jobs (models/) and the asv benchmarks (benchmarks/) both use this module, so a timing
in either runs under the same settings.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import os
import platform
import statistics
import time
from pathlib import Path


def set_process_environment() -> None:
    """Process-wide settings, made before numpy and Numba load (a user's own values win).

    * numpy's OpenBLAS threads spin ~0.1 s after every GEMM and take a core from Numba's threads
      (measured: a Numba conv 2.5 -> 6.3 ms right after a numpy matmul); OpenBLAS reads
      OPENBLAS_THREAD_TIMEOUT once, when numpy loads.
    * Numba compiles for the host CPU, but LLVM's tuning for Intel's AVX-512 server cores
      (Skylake-X to Emerald Rapids) prefers 256-bit vectors, so Numba's loops ran at half the
      width the CPU has. ``NUMBA_CPU_FEATURES`` (read when Numba loads) is set to the host's
      features with that preference switched off (``wide_vector_features``); measured on an
      Emerald Rapids Xeon: the fused CNN kernel of a 4-2-25 network 1.54x faster. Numba keys its
      disk cache by the feature string, so code compiled either way is never mixed up.
    """
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
    if "NUMBA_CPU_FEATURES" not in os.environ and "NUMBA_CPU_NAME" not in os.environ:
        features = wide_vector_features()
        if features:
            os.environ["NUMBA_CPU_FEATURES"] = features


def wide_vector_features() -> str | None:
    """LLVM's feature string for this CPU with "prefer-256-bit" off, where it has AVX-512 (else None:
    nothing to widen). Only llvmlite is loaded, not Numba."""
    try:
        from llvmlite import binding
        features = binding.get_host_cpu_features().flatten()
    except (ImportError, RuntimeError):
        return None
    if "+avx512f" not in features.split(","):
        return None
    return f"{features},-prefer-256-bit"


_M_TRIM_THRESHOLD = -1   # mallopt parameters from glibc's malloc.h
_M_MMAP_THRESHOLD = -3
_KEEP_BYTES = 64 << 20   # activations and gradients (a few MB) stay on the heap; a whole-data-set
                         # gather (188 MB per epoch) still gets its own mmap and goes back on free


def keep_large_allocations() -> bool:
    """Ask glibc malloc to keep blocks up to 64 MiB on the heap (and to keep up to 256 MiB of
    free heap before trimming); False where that is not glibc."""
    name = ctypes.util.find_library("c")
    if platform.system() != "Linux" or not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, _KEEP_BYTES)) and bool(
            libc.mallopt(_M_TRIM_THRESHOLD, 4 * _KEEP_BYTES))
    except (OSError, AttributeError):
        return False


def numba_thread_count(threads: int) -> int:
    """The Numba threads for ``threads``: Numba's pool holds NUMBA_NUM_THREADS, fixed at its start."""
    import numba
    return min(threads, numba.config.NUMBA_NUM_THREADS)


def configure_cpu_runtime(num_threads: int | None = None) -> dict:
    """Fix torch's intra-op threads and Numba's (default: all cores) and the allocator; returns
    what was set.

    Numba's threading layer starts its pool once per process, and under the OpenMP layer a
    start that comes after ``torch.set_num_threads`` resets torch's count to Numba's (measured:
    ``--threads 1`` ran torch on 2 threads after the first parallel kernel). So Numba's layer
    starts here first (``numba.set_num_threads`` starts it), and torch's count is set after it."""
    import numba
    import torch
    threads = (os.cpu_count() or 1) if num_threads is None else num_threads
    if threads < 1:
        raise ValueError(f"num_threads must be >= 1, got {threads}")
    numba_threads = numba_thread_count(threads)
    numba.set_num_threads(numba_threads)
    torch.set_num_threads(threads)
    if torch.get_num_threads() != threads:
        raise RuntimeError(f"torch runs {torch.get_num_threads()} threads after set_num_threads({threads})")
    return {"torch_threads": threads, "numba_threads": numba.get_num_threads(),
            "numba_threading_layer": numba.threading_layer(), "malloc_keep_large": keep_large_allocations()}


def _cpu_jiffies(stat_text: str) -> tuple[int, int]:
    """(busy, total) clock ticks of all CPUs from /proc/stat's first line ("cpu user nice system
    idle iowait irq softirq steal ..."): idle and iowait are not busy."""
    fields = [int(v) for v in stat_text.split("\n", 1)[0].split()[1:]]
    total = sum(fields[:8])
    return total - fields[3] - fields[4], total


def other_load(seconds: float = 0.25) -> float | None:
    """Cores' worth of CPU time that other processes used over ``seconds`` (this process's own
    threads subtracted, e.g. OpenMP threads still spinning); None where /proc/stat is missing."""
    try:
        stat = Path("/proc/stat")
        busy0, total0 = _cpu_jiffies(stat.read_text())
        own0, start = sum(os.times()[:2]), time.monotonic()
        time.sleep(seconds)
        busy1, total1 = _cpu_jiffies(stat.read_text())
        own1, elapsed = sum(os.times()[:2]), time.monotonic() - start
    except (OSError, ValueError, IndexError):
        return None
    if total1 <= total0:
        return None
    cores = os.cpu_count() or 1
    busy = (busy1 - busy0) / (total1 - total0) * cores       # of all cores, over the window
    return max(0.0, busy - (own1 - own0) / elapsed)


def warn_if_busy(what: str, limit: float = 0.5, seconds: float = 0.25) -> float | None:
    """Before a timing: print one line to stderr when other processes keep more than ``limit``
    cores busy. On 2 cores one other CPU-bound process makes a 2-thread torch or Numba job wait
    at every parallel region for the thread it holds (measured: pruning steps 7-10x slower), so a
    timing taken then is not the machine's. Returns the load measured (None: not measurable)."""
    import sys
    load = other_load(seconds)
    if load is not None and load > limit:
        print(f"warning: other processes kept {load:.1f} of {os.cpu_count() or 1} cores busy; {what}'s timings "
              f"will be slow and noisy: pause them or run on a quiet machine", file=sys.stderr)
    return load


def median_seconds(fn, repeats: int = 10, warmup: int = 2, sync=None) -> float:
    """Median wall time of ``fn()`` after ``warmup`` untimed calls; ``sync`` (e.g.
    torch.cuda.synchronize) runs before each clock read."""
    return statistics.median(interleaved({"fn": fn}, repeats, warmup, sync)["fn"])


def interleaved(fns: dict, repeats: int = 10, warmup: int = 2, sync=None) -> dict[str, list[float]]:
    """Seconds of each function over ``repeats`` rounds A B C, A B C, ...: noise on a shared
    machine then falls on all of them alike, so their ratios are fair."""
    sync = sync or (lambda: None)
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    sync()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            sync()
            times[name].append(time.perf_counter() - start)
    return times


def calls_per_sample(one_call: float, min_sample: float) -> int:
    """How many calls make a sample of at least ``min_sample`` seconds."""
    return max(1, math.ceil(min_sample / max(one_call, 1e-9)))


def shortest_call(fn, calls: int = 3, enough: float = math.inf, sync=None) -> float:
    """The shortest of up to ``calls`` calls, fewer once one after the first takes ``enough``
    seconds: one call preempted by another process would mislead a count based on it, and the
    first may be a JIT compile (a microsecond kernel's first call took seconds, its count became 1
    and single-call samples let MatmulNet pick its 5x slower program at batch 1)."""
    sync = sync or (lambda: None)
    best = math.inf
    for count in range(1, calls + 1):
        start = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - start)
        if best >= enough and count >= 2:
            break
    return best


def interleaved_per_call(fns: dict, repeats: int, min_sample: float, warmup: int = 0,
                         sync=None) -> tuple[dict[str, list[float]], dict[str, int]]:
    """Seconds per call of each function over ``repeats`` interleaved rounds (``interleaved``),
    each sample a loop of as many calls as fill ``min_sample`` seconds: a microsecond call timed
    once is noise (one preemption outweighs it). The count comes from ``shortest_call``, whose
    calls are the warm-up too (JIT, caches; ``warmup`` adds more). Returns (per-call seconds of
    every round, calls per sample)."""
    calls = {name: calls_per_sample(shortest_call(fn, enough=min_sample, sync=sync), min_sample)
             for name, fn in fns.items()}

    def looped(fn, count):
        def run():
            for _ in range(count):
                fn()
        return run

    samples = interleaved({name: looped(fn, calls[name]) for name, fn in fns.items()}, repeats, warmup, sync)
    return {name: [t / calls[name] for t in samples[name]] for name in fns}, calls
