"""This machine's limits: the fp32 FMA peak from its specification, GEMM rates by each path sysdl
uses, and memory and cache bandwidth from a STREAM-style triad.

    from sysdl_kernels import peaks
    facts = peaks.cpu_facts()                     # cores, vector width, FMA units, clock, caches: each with its source
    peaks.theoretical_fma_peak(facts)             # FLOP/s = cores x fp32 lanes x FMA units x 2 x clock
    peaks.gemm_rates(threads=2)                   # {"torch.mm": FLOP/s, "F.linear": ..., "numpy @": ..., "sysdl numba": ...}
    peaks.triad_bandwidth(64 << 20)               # bytes/s of a[i] = b[i] + s * c[i] over 3 arrays of that many bytes

`sysdl machine` (models/hardware/machine.py) runs these once and saves them with the machine's
name; benchmarks/bench_machine.py records the same figures in asv's results, so a table made
from another machine's results uses that machine's peaks.

How each fact is found (``cpu_facts`` returns the source beside each value):
  * cores: the CPUs this process may run on (os.sched_getaffinity);
  * fp32 lanes per vector: 16 with AVX-512F, 8 with AVX2, else 4 (SSE), from /proc/cpuinfo flags;
  * FMA units per core: a table of known cores (``FMA_UNITS``) by vendor and family/model, else
    2 for AVX-512 server cores and 2 for AVX2 cores (stated as an assumption);
  * clock: /sys cpufreq's cpuinfo_max_freq when the kernel exposes it, else /proc/cpuinfo's
    "cpu MHz" (the nominal clock in most VMs: turbo can exceed it, so the theoretical peak may be
    lower than a measured rate, and the table says so);
  * caches: /sys/devices/system/cpu/cpu0/cache (level, type, size, which CPUs share it).

The triad (STREAM's kernel) counts 3 arrays x 4 bytes per element (two reads, one write; the
write-allocate read STREAM also ignores is not counted). Out of cache it is main-memory
bandwidth; with arrays that fit a cache level, repeated in one Numba call (one private set per
thread), it is that level's bandwidth.
"""

from __future__ import annotations

import functools
import os
import re
import statistics
import time
from pathlib import Path

import numpy as np

# (vendor, family, model) -> (FMA units per core for the widest vector, source)
FMA_UNITS = {
    ("GenuineIntel", 6, 143): (2, "Sapphire Rapids Xeon: 2 AVX-512 FMA units per core (Intel optimization manual)"),
    ("GenuineIntel", 6, 207): (2, "Emerald Rapids Xeon: 2 AVX-512 FMA units per core (Intel optimization manual)"),
    ("GenuineIntel", 6, 106): (2, "Ice Lake Xeon: 2 AVX-512 FMA units per core on Gold/Platinum (Intel)"),
    ("GenuineIntel", 6, 85): (2, "Skylake/Cascade Lake Xeon Gold/Platinum: 2 AVX-512 FMA units (Intel)"),
    ("AuthenticAMD", 26, None): (2, "Zen 5: two 512-bit FMA pipes per core (AMD)"),
    ("AuthenticAMD", 25, None): (1, "Zen 3/4: two 256-bit FMA pipes = one 512-bit FMA per cycle (AMD)"),
}
CYCLE_SECONDS_PER_CALL = 0.05      # a triad call runs at least this long before it is timed


def _cpuinfo() -> dict:
    """The first processor's fields of /proc/cpuinfo ({} where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    fields = {}
    for line in text.split("\n\n")[0].splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


@functools.cache
def cpu_vendor() -> str:
    """/proc/cpuinfo's vendor_id ("GenuineIntel", "AuthenticAMD", ...; "?" where there is none)."""
    return _cpuinfo().get("vendor_id", "?")


def _caches() -> list[dict]:
    caches = []
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            level = int((index / "level").read_text())
            kind = (index / "type").read_text().strip()
            size = (index / "size").read_text().strip()
            shared = (index / "shared_cpu_list").read_text().strip()
        except OSError:
            continue
        number, unit = re.fullmatch(r"(\d+)([KMG]?)", size).groups()
        caches.append({"level": level, "type": kind, "bytes": int(number) << {"": 0, "K": 10, "M": 20, "G": 30}[unit],
                       "shared_by": shared})
    return caches


def cpu_facts() -> dict:
    """What the theoretical peak is computed from, each value with how it was found."""
    info = _cpuinfo()
    flags = set(info.get("flags", "").split())
    vendor, family, model = info.get("vendor_id", "?"), int(info.get("cpu family", -1)), int(info.get("model", -1))
    lanes, isa = (16, "AVX-512F") if "avx512f" in flags else (8, "AVX2") if "avx2" in flags else (4, "SSE")
    units, units_source = FMA_UNITS.get((vendor, family, model)) or FMA_UNITS.get((vendor, family, None)) or (
        2, f"assumed: 2 FMA units per core ({isa}); not in sysdl's table of known cores")
    max_freq = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    if max_freq.exists():
        clock, clock_source = int(max_freq.read_text()) * 1e3, "cpufreq cpuinfo_max_freq (maximum, turbo included)"
    else:
        clock = float(info.get("cpu MHz", "nan")) * 1e6
        clock_source = "/proc/cpuinfo 'cpu MHz' (no cpufreq here, a VM: the nominal clock; turbo may exceed it)"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return {"cpu": info.get("model name", "unknown"), "vendor": vendor, "family": family, "model": model,
            "cores": cores, "cores_source": "os.sched_getaffinity: the CPUs this process may use",
            "fp32_lanes": lanes, "fp32_lanes_source": f"{isa} in /proc/cpuinfo flags",
            "fma_units": units, "fma_units_source": units_source,
            "clock_hz": clock, "clock_source": clock_source, "caches": _caches()}


def theoretical_fma_peak(facts: dict, cores: int | None = None) -> float:
    """FLOP/s: cores x fp32 lanes x FMA units x 2 (an FMA is two FLOPs) x clock."""
    return (cores or facts["cores"]) * facts["fp32_lanes"] * facts["fma_units"] * 2 * facts["clock_hz"]


def _median_seconds(fn, repeats: int) -> float:
    fn()                                                            # warm-up: JIT, first-touch, threads
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def gemm_rates(size: int = 2048, repeats: int = 5, paths=None) -> dict[str, float]:
    """FLOP/s of one (size x size) fp32 GEMM by each path sysdl uses, median of ``repeats``:
    torch.mm and F.linear (torch's CPU BLAS: MKL or oneDNN, whichever this torch build calls),
    numpy's @ (its own BLAS) and sysdl's register-tiled Numba GEMM (numba_gemm)."""
    import torch
    import torch.nn.functional as F

    from sysdl_kernels import numba_gemm
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(size, size, generator=g), torch.randn(size, size, generator=g)
    out = torch.empty(size, size)
    an, bn = a.numpy(), b.numpy()
    bias, out_np = np.zeros(size, np.float32), np.empty((size, size), np.float32)
    every = {
        "torch.mm": lambda: torch.mm(a, b, out=out),
        "F.linear": lambda: F.linear(a, b),
        "numpy @": lambda: np.matmul(an, bn, out=out_np),
        "sysdl numba": lambda: numba_gemm.gemm_bias_act(an, bn, bias, relu=False, out=out_np),
    }
    if paths is not None:
        unknown = set(paths) - set(every)
        if unknown:
            raise ValueError(f"unknown GEMM path(s) {sorted(unknown)}; known: {list(every)}")
    flops = 2.0 * size ** 3
    return {name: flops / _median_seconds(every[name], repeats) for name in (paths or every)}


@functools.lru_cache(maxsize=None)
def _triad_kernel():
    """The Numba triad, defined (and loaded from Numba's cache) once per process."""
    import numba

    @numba.njit(parallel=True, cache=True, fastmath=True)
    def triad(a, b, c, scalar, rounds):
        """a[t] = b[t] + scalar * c[t] for each thread's private row t, ``rounds`` times."""
        for t in numba.prange(a.shape[0]):
            for _ in range(rounds):
                for i in range(a.shape[1]):
                    a[t, i] = b[t, i] + scalar * c[t, i]
        return a
    return triad


def triad_bandwidth(bytes_per_array: int, threads: int | None = None, repeats: int = 5) -> float:
    """Bytes/s of the STREAM triad with 3 arrays of ``bytes_per_array`` per thread, all threads at
    once. The kernel repeats the triad R times in one call, R doubled until a call runs
    ~CYCLE_SECONDS_PER_CALL; the rate is R rounds over the median time of 2R rounds minus that
    of R, so the fixed cost of a parallel call (thread wake-up) drops out."""
    import numba
    threads = threads or numba.get_num_threads()
    n = max(16, bytes_per_array // 4)
    a, b, c = (np.ones((threads, n), np.float32) for _ in range(3))
    triad = _triad_kernel()
    scalar = np.float32(3.0)

    def seconds(rounds: int) -> float:
        return _median_seconds(lambda: triad(a, b, c, scalar, rounds), repeats)
    triad(a, b, c, scalar, 1)                                       # compile (or load), first touch
    rounds = 1
    while rounds < 1 << 30:
        start = time.perf_counter()
        triad(a, b, c, scalar, rounds)
        if time.perf_counter() - start >= CYCLE_SECONDS_PER_CALL:
            break
        rounds *= 2
    single = seconds(rounds)
    extra = seconds(2 * rounds) - single
    return 3 * 4 * n * threads * rounds / extra if extra > 0 else float("nan")


def cache_bandwidths(facts: dict, threads: int | None = None, levels=None) -> dict[str, float]:
    """Triad bytes/s with the working set in each data cache level ("L1", "L2", ...) and in main
    memory ("memory"), or only those in ``levels``: a quarter of each cache per thread (of each
    thread's share of a shared cache), 4x the last-level cache (at least 256 MiB) in all for memory."""
    import numba
    threads = threads or numba.get_num_threads()
    data = [c for c in facts["caches"] if c["type"] in ("Data", "Unified")]
    rates = {}
    for cache in data:
        name = f"L{cache['level']}"
        if levels is None or name in levels:
            sharers = threads if "-" in cache["shared_by"] or "," in cache["shared_by"] else 1
            rates[name] = triad_bandwidth(cache["bytes"] // (12 * sharers), threads)
    if levels is None or "memory" in levels:
        last = max((c["bytes"] for c in data), default=32 << 20)
        rates["memory"] = triad_bandwidth(max(4 * last, 256 << 20) // (3 * threads), threads, repeats=3)
    return rates
