"""The asv suite as users run it: `asv check` (every benchmark discovered, none malformed), then a
sample executed once through asv (`asv run --quick --dry-run --bench ...`): per family its
baseline on the first case, plus the training-epoch figure, none failing. Every case of every
family already runs once in tests/benchmarks/test_benchmarks.py, in one process; asv starts a
process per benchmark and case, so running all of them again here took 16 of CI's 38 minutes.
asv 0.6.6 has no --strict flag; `asv run` exits 2 when any benchmark errors (a skip,
NotImplementedError in setup, is not an error), which is what this checks. asv's machine file
goes to a temporary HOME so the user's own ~/.asv-machine.json is never touched.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def asv(tmp_path_factory):
    executable = shutil.which("asv", path=str(Path(sys.executable).parent)) or shutil.which("asv")
    if executable is None:
        pytest.skip("asv is not installed (pip install -e '.[dev]')")
    env = {**os.environ, "HOME": str(tmp_path_factory.mktemp("home")), "OPENBLAS_THREAD_TIMEOUT": "4"}

    def run(*args, timeout=1800):
        return subprocess.run([executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=timeout)
    machine = run("machine", "--yes", "--machine", "sysdl-ci")
    assert machine.returncode == 0, machine.stdout + machine.stderr
    return run


def test_asv_check_finds_no_problem(asv):
    result = asv("check", "--python=same")
    assert result.returncode == 0 and "No problems found" in result.stdout, result.stdout + result.stderr


def sample() -> dict[str, str]:
    """benchmark name -> the asv --bench regex of the one case of it that runs: each family's
    baseline on its first case, on the CPU (asv matches `name(param0, param1, ...)`, reprs)."""
    from benchmarks import bench_classic, bench_conv, bench_inference, bench_layers, bench_lowering
    timed = {"ConvForward.time_forward": bench_conv.CONV, "ScratchLayers.time_layer": bench_layers.LAYER_FAMILY,
             "Inference.time_predict": bench_inference.INFERENCE, "LoweringKernels.time_kernel": bench_lowering.LOWERING,
             "ClassicConv.time_forward": bench_classic.CLASSIC}
    regexes = {name: re.escape(f"{name}({family.cases[0]!r}, {family.baseline!r}, 'cpu')") + "$"
               for name, family in timed.items()}
    regexes["ScratchEpoch.track_numba_epoch_vs_pytorch"] = re.escape("ScratchEpoch.track_numba_epoch_vs_pytorch")
    return regexes


def test_a_sample_of_every_family_runs_through_asv_without_error(asv):
    regexes = sample()
    bench = [flag for regex in regexes.values() for flag in ("--bench", regex)]
    result = asv("run", "--quick", "--python=same", "--dry-run", "--machine", "sysdl-ci", "--show-stderr", *bench)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    assert "failed" not in output.lower(), output[-5000:]
    for name in regexes:
        assert name in output, f"{name} did not run"
