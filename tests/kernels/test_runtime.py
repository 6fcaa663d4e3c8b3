"""sysdl_kernels.runtime: torch, Numba and the provenance agree on the thread count asked for."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# A fresh process: Numba's threading layer starts once per process, on its first parallel kernel.
ONE_THREAD = """
import json
import numba, numpy as np, torch
from sysdl_kernels.runtime import configure_cpu_runtime
from sysdl_kernels.numba_gemm import gemm_bias_act
from models.training.provenance import provenance
runtime = configure_cpu_runtime(1)
torch.get_num_threads()
gemm_bias_act(np.ones((67, 33), np.float32), np.ones((17, 33), np.float32))   # a parallel Numba kernel
print(json.dumps({"runtime": runtime, "torch": torch.get_num_threads(), "numba": numba.get_num_threads(),
                  "provenance": provenance()["torch_threads"]}))
"""


def test_one_thread_stays_one_thread_after_a_parallel_numba_kernel():
    out = subprocess.run([sys.executable, "-c", ONE_THREAD], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["torch"] == 1, "Numba's threading layer reset torch's thread count"
    assert result["numba"] == 1 and result["provenance"] == 1
    assert result["runtime"]["torch_threads"] == 1 and result["runtime"]["numba_threads"] == 1


def test_numba_threads_are_capped_at_numba_s_pool():
    import numba

    from sysdl_kernels.runtime import numba_thread_count
    assert numba_thread_count(1) == 1
    assert numba_thread_count(10_000) == numba.config.NUMBA_NUM_THREADS


class _Features:
    def __init__(self, text):
        self.text = text

    def flatten(self):
        return self.text


@pytest.mark.parametrize("host, expected", [
    ("+sse2,+avx2,+avx512f,+fma", "+sse2,+avx2,+avx512f,+fma,-prefer-256-bit"),
    ("+sse2,+avx2,-avx512f,+fma", None),          # no AVX-512: nothing to widen
])
def test_wide_vector_features_switch_off_the_256_bit_preference_only_with_avx512(host, expected, monkeypatch):
    from llvmlite import binding
    from sysdl_kernels.runtime import wide_vector_features
    monkeypatch.setattr(binding, "get_host_cpu_features", lambda: _Features(host))
    assert wide_vector_features() == expected


@pytest.mark.parametrize("preset", [{}, {"NUMBA_CPU_FEATURES": "+sse2"}, {"NUMBA_CPU_NAME": "generic"}])
def test_process_environment_keeps_the_user_s_numba_target(preset, monkeypatch):
    from sysdl_kernels import runtime
    for name in ("NUMBA_CPU_FEATURES", "NUMBA_CPU_NAME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in preset.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(runtime, "wide_vector_features", lambda: "+avx512f,-prefer-256-bit")
    runtime.set_process_environment()
    assert os.environ.get("NUMBA_CPU_FEATURES") == preset.get("NUMBA_CPU_FEATURES", None if preset else
                                                                "+avx512f,-prefer-256-bit")


def test_this_process_compiles_numba_at_full_vector_width():
    """conftest sets the environment before Numba loads, as `sysdl` and the benchmarks do."""
    import numba
    from sysdl_kernels.runtime import wide_vector_features
    if wide_vector_features() is None:
        pytest.skip("no AVX-512 here: nothing to widen")
    assert os.environ.get("NUMBA_CPU_FEATURES")
    assert numba.config.CPU_FEATURES == os.environ["NUMBA_CPU_FEATURES"]


def test_per_call_timing_loops_short_calls_and_counts_from_the_shortest():
    """A call far shorter than the sample is repeated (the count from the shortest of the first
    calls, which warm it up), a long one is called once per sample and calibrated in two calls
    (the first may be a compile); the times returned are per call and interleave the functions
    round by round."""
    from sysdl_kernels import runtime
    order = []
    slept = {"short": 1e-4, "long": 3e-3}

    def sleeper(name):
        def fn():
            order.append(name)
            time.sleep(slept[name])
        return fn

    per_call, calls = runtime.interleaved_per_call({name: sleeper(name) for name in slept}, repeats=3,
                                                   min_sample=2e-3)
    assert calls["long"] == 1 and 2 <= calls["short"] <= 20, calls
    assert order[:5] == ["short"] * 3 + ["long"] * 2    # 3 calibration calls; the long one stops at 2
    rounds = order[5:]
    assert len(rounds) == 3 * (calls["short"] + 1)
    assert rounds[calls["short"]] == "long" and rounds[-1] == "long"   # A..A B, A..A B, A..A B
    assert all(len(t) == 3 for t in per_call.values())
    assert all(slept[name] <= min(t) < slept[name] * 10 for name, t in per_call.items()), per_call


def test_per_call_timing_counts_past_a_slow_first_call():
    """A first call that compiles (here: sleeps 50 ms) does not set the count: the fast calls
    after it do, so the samples loop the fast call, as they would without the compile."""
    from sysdl_kernels import runtime
    seen = []

    def compiles_then_fast():
        time.sleep(0.05 if not seen else 1e-4)
        seen.append(1)

    assert runtime.shortest_call(compiles_then_fast, enough=2e-3) < 0.05
    seen.clear()
    _, calls = runtime.interleaved_per_call({"jit": compiles_then_fast}, repeats=2, min_sample=2e-3)
    assert calls["jit"] >= 2, calls


def test_busy_machine_is_measured_from_proc_stat_and_warned_of(monkeypatch, capsys):
    """/proc/stat's first line: idle and iowait are not busy; other_load is a share of the cores
    (this process's own time subtracted); warn_if_busy says so in one stderr line only above its
    limit."""
    from sysdl_kernels import runtime
    busy, total = runtime._cpu_jiffies("cpu  100 5 50 800 40 3 2 0 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n")
    assert (busy, total) == (160, 1000)
    load = runtime.other_load(0.05)
    assert load is None or 0.0 <= load <= (os.cpu_count() or 1) + 0.5
    monkeypatch.setattr(runtime, "other_load", lambda seconds: 1.3)
    assert runtime.warn_if_busy("sysdl infer-bench") == 1.3
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "1.3 of" in err[0] and "sysdl infer-bench" in err[0]
    monkeypatch.setattr(runtime, "other_load", lambda seconds: 0.2)
    runtime.warn_if_busy("sysdl machine")
    assert capsys.readouterr().err == ""
