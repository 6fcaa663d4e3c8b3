"""sysdl_kernels.runtime: torch, Numba and the provenance agree on the thread count asked for."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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
