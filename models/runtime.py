"""Process-wide CPU settings for training, and the provenance written beside every result.

``configure_cpu_runtime`` fixes the thread count and tells glibc's allocator to keep large
blocks on its heap. By default glibc serves blocks over 128 KiB-32 MiB (a dynamic threshold)
with a fresh ``mmap`` and returns them on free, so each training step's multi-megabyte
activations and gradients are page-faulted in anew: torch.profiler showed ReLU's backward on
a (128, 16, 26, 26) tensor taking ~10x its memory-bound time for that reason. Raising the mmap
and trim thresholds keeps those pages mapped between steps. The math is untouched.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

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


def configure_cpu_runtime(num_threads: int | None = None) -> dict:
    """Fix torch's intra-op threads (default: all cores) and the allocator; returns what was set."""
    import torch
    threads = (os.cpu_count() or 1) if num_threads is None else num_threads
    if threads < 1:
        raise ValueError(f"num_threads must be >= 1, got {threads}")
    torch.set_num_threads(threads)
    return {"torch_threads": threads, "malloc_keep_large": keep_large_allocations()}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit(cwd: str | os.PathLike | None = None) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=cwd or Path(__file__).parent,
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def provenance() -> dict:
    """Hardware, versions, threads and commit: written beside every timing."""
    import numpy
    import torch
    info = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
        "commit": git_commit(),
    }
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        if var in os.environ:
            info[var] = os.environ[var]
    return info


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
