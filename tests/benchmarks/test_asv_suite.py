"""The asv suite as users run it: `asv check`, then every benchmark executed once (`asv run --quick
--dry-run`), none failing. asv 0.6.6 has no --strict flag; `asv run` exits 2 when any benchmark
errors (a skip, NotImplementedError in setup, is not an error), which is what this checks.
Runs in the default suite (a few minutes), so CI exercises it; asv's machine file goes to a
temporary HOME so the user's own ~/.asv-machine.json is never touched.
"""

from __future__ import annotations

import os
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


def test_every_benchmark_runs_once_without_error(asv):
    result = asv("run", "--quick", "--python=same", "--dry-run", "--machine", "sysdl-ci", "--show-stderr")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    assert "failed" not in output.lower(), output[-5000:]
    for family in ("ConvForward.time_forward", "ScratchLayers.time_layer", "Inference.time_predict",
                   "LoweringKernels.time_kernel", "ScratchEpoch.track_numba_epoch_vs_pytorch"):
        assert family in output, f"{family} did not run"
