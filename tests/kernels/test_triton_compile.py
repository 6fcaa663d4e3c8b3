"""Every shipped Triton kernel and configuration compiles for sm_80 and sm_90 here, with no GPU.

The interpreter the other Triton tests use accepts programs the GPU compiler rejects (block
shapes, dot operand shapes, register and shared-memory limits); this is where those are caught.
About a minute per target on a fresh machine (each target compiles in its own process; Triton's
cache makes later runs take seconds).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sysdl_kernels import triton_compile
from sysdl_kernels.triton_compile import SM_LIMITS, kernel_cases, occupancy

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compiled_rows():
    return triton_compile.compile_all(triton_compile.TARGETS)


def test_every_kernel_and_configuration_compiles_for_both_targets(compiled_rows):
    expected = {(case.kernel, case.label, f"sm_{target}") for case in kernel_cases() for target in (80, 90)}
    assert {(r["kernel"], r["config"], r["target"]) for r in compiled_rows} == expected
    assert {case.kernel for case in kernel_cases()} == {"gemm_kernel", "conv_kernel", "im2col_kernel"}
    assert {case.config.get("PRECISION") for case in kernel_cases()} == {"ieee", "tf32", None}
    for row in compiled_rows:
        assert 0 < row["registers"] <= 255, row
        assert row["launchable"], row
        assert row["blocks_per_sm"] >= 1, row


def test_the_implicit_gemm_conv_is_reported_with_its_resources(compiled_rows):
    conv = [r for r in compiled_rows if r["kernel"] == "conv_kernel"]
    assert {r["target"] for r in conv} == {"sm_80", "sm_90"}
    for row in conv:
        assert row["shared_bytes"] > 0                     # the pipeline's buffers for the dot operands
        assert row["spill_bytes"] >= 0 and row["tile_flops_per_byte"] > 0
        assert ("spills" in row["flags"]) == (row["spill_bytes"] > 0)
    # at least one conv configuration per target neither spills nor drops below two blocks per SM
    for target in ("sm_80", "sm_90"):
        assert any(r["flags"] == "" for r in conv if r["target"] == target), target


def test_occupancy_follows_the_calculators_rules():
    a100 = SM_LIMITS[80]
    # 255 registers -> 256 per thread, 8192 per warp -> 8 warps of registers -> 2 blocks of 4 warps
    assert occupancy(255, 0, 4, a100) == {"blocks_per_sm": 2, "warps_per_sm": 8, "occupancy": 0.125,
                                          "limited_by": "registers"}
    # 32 registers, 8 warps: the 64-warp limit (8 blocks), unless shared memory allows fewer
    assert occupancy(32, 0, 8, a100)["blocks_per_sm"] == 8
    assert occupancy(32, 80 * 1024, 8, a100) == {"blocks_per_sm": 2, "warps_per_sm": 16, "occupancy": 0.25,
                                                 "limited_by": "shared memory"}
    # a tile per SM of 1-warp blocks stops at the 32-block limit
    assert occupancy(16, 0, 1, a100)["blocks_per_sm"] == 32


def test_a_configuration_that_cannot_compile_or_launch_is_an_error():
    """A block that is not a power of two does not compile; a 256x256x64 fp32 tile compiles but
    needs more shared memory than a block may have, so it is marked as one that cannot launch."""
    script = ("from sysdl_kernels.triton_compile import KernelCase, CompileError, compile_case\n"
              "def case(m, n, k):\n"
              "    return KernelCase('gemm_kernel', {'RELU': True, 'PRECISION': 'ieee', 'BLOCK_M': m, 'BLOCK_N': n,"
              " 'BLOCK_K': k}, 8, 3, 0.0)\n"
              "try:\n    compile_case(case(48, 32, 32), 90)\nexcept CompileError as err:\n    print('refused:', err)\n"
              "row = compile_case(case(256, 256, 64), 80)\n"
              "print('launchable:', row['launchable'], row['flags'])\n")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=600)
    assert "refused: gemm_kernel 48x32x32 w8 s3 ieee does not compile for sm_90" in result.stdout, result.stderr[-3000:]
    assert "launchable: False needs" in result.stdout and "cannot launch" in result.stdout, result.stdout


def test_an_unknown_target_is_refused_by_the_compiling_process():
    result = subprocess.run([sys.executable, "-m", "sysdl_kernels.triton_compile", "75"], cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 1 and "unknown target(s) [75]" in result.stderr


def test_triton_report_writes_the_table(compiled_rows, tmp_path, capsys):
    from models.cli.main import main
    assert main(["triton-report", "--targets", "90", "--out-dir", str(tmp_path)]) == 0   # cached: seconds
    table = (tmp_path / "triton_report.md").read_text()
    assert "conv_kernel" in table and "sm_90" in table and "sm_80" not in table.split("Registers per thread")[0]
    assert (tmp_path / "triton_report.csv").read_text().count("\n") == len(kernel_cases()) + 1
    assert "configurations compiled" in capsys.readouterr().out
