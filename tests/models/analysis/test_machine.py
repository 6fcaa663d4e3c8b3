"""`sysdl machine` and sysdl_kernels.peaks: the facts behind the theoretical peak with their
sources, the arithmetic, the measuring functions on tiny problems (no speed asserted), and the
command's save / show / refuse-to-replace behaviour."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from models.analysis import machine
from models.cli.main import main
from sysdl_kernels import peaks


def test_facts_come_with_their_sources():
    facts = peaks.cpu_facts()
    assert facts["cores"] >= 1 and facts["fp32_lanes"] in (4, 8, 16) and facts["fma_units"] in (1, 2)
    for key in ("cores", "fp32_lanes", "fma_units", "clock"):
        assert facts[f"{key}_source"], key
    assert all(c["bytes"] > 0 and c["level"] >= 1 for c in facts["caches"])


def test_theoretical_peak_is_the_product_of_its_factors():
    facts = {"cores": 2, "fp32_lanes": 16, "fma_units": 2, "clock_hz": 2.1e9}
    assert peaks.theoretical_fma_peak(facts) == pytest.approx(2 * 16 * 2 * 2 * 2.1e9)     # 268.8 GFLOP/s
    assert peaks.theoretical_fma_peak(facts, cores=1) == pytest.approx(134.4e9)


def test_known_cores_table_is_used_before_the_assumption(monkeypatch):
    monkeypatch.setattr(peaks, "_cpuinfo", lambda: {"vendor_id": "AuthenticAMD", "cpu family": "25", "model": "17",
                                                    "flags": "avx2 fma avx512f", "cpu MHz": "3000.0"})
    facts = peaks.cpu_facts()
    assert facts["fma_units"] == 1 and "Zen 3/4" in facts["fma_units_source"]
    monkeypatch.setattr(peaks, "_cpuinfo", lambda: {"vendor_id": "Other", "cpu family": "1", "model": "1",
                                                    "flags": "avx2", "cpu MHz": "1000.0"})
    facts = peaks.cpu_facts()
    assert facts["fp32_lanes"] == 8 and facts["fma_units_source"].startswith("assumed")


def test_measuring_functions_return_rates_on_tiny_problems():
    rates = peaks.gemm_rates(size=64, repeats=1)
    assert set(rates) == {"torch.mm", "F.linear", "numpy @", "sysdl numba"}
    assert all(math.isfinite(r) and r > 0 for r in rates.values())
    with pytest.raises(ValueError, match="unknown GEMM path"):
        peaks.gemm_rates(size=16, paths=["cublas"])
    bandwidth = peaks.triad_bandwidth(4096, threads=1, repeats=1)
    assert math.isnan(bandwidth) or bandwidth > 0


def _figures():
    facts = {"cpu": "Test CPU", "cores": 2, "cores_source": "test", "fp32_lanes": 16, "fp32_lanes_source": "AVX-512F",
             "fma_units": 2, "fma_units_source": "table", "clock_hz": 2.0e9, "clock_source": "cpuinfo",
             "caches": [{"level": 1, "type": "Data", "bytes": 48 << 10, "shared_by": "0"}]}
    return {"threads": 2, "facts": facts, "theoretical_fma_peak": 256e9, "measured_at": "2026-12-02T00:00:00Z",
            "gemm": {"torch.mm": 200e9, "sysdl numba": 300e9}, "bandwidth": {"L1": 400e9, "memory": 20e9}}


def test_the_table_gives_percent_of_peak_and_flags_a_rate_above_it():
    text = "\n".join(machine.lines("box", _figures()))
    assert "**256.0 GFLOP/s**" in text and "200.0 GFLOP/s (78% of the peak)" in text
    assert "triad bandwidth, memory | 20.0 GB/s" in text
    assert "above the theoretical peak" in text                  # 300 > 256: the clock read is too low


def test_show_prints_saved_figures_and_a_saved_file_is_not_replaced(tmp_path, capsys):
    (tmp_path / "box.json").write_text(json.dumps(_figures()))
    assert main(["machine", "--name", "box", "--out-dir", str(tmp_path), "--show"]) == 0
    assert "Test CPU" in capsys.readouterr().out
    assert main(["machine", "--name", "box", "--out-dir", str(tmp_path)]) == 2
    assert "--overwrite measures again" in capsys.readouterr().err
    assert main(["machine", "--name", "other", "--out-dir", str(tmp_path), "--show"]) == 2
    assert "no saved figures" in capsys.readouterr().err


def test_triad_counts_three_arrays(monkeypatch):
    """bytes = 3 arrays x 4 bytes x elements x threads x rounds, over the extra time of R more rounds."""
    times = iter([0.1, 0.3])                                     # median seconds at R, then at 2R
    monkeypatch.setattr(peaks, "_median_seconds", lambda fn, repeats: next(times))
    monkeypatch.setattr(peaks, "CYCLE_SECONDS_PER_CALL", 0.0)    # R = 1 at once
    rate = peaks.triad_bandwidth(4000, threads=2)
    assert rate == pytest.approx(3 * 4 * 1000 * 2 * 1 / 0.2)
    assert np.isfinite(rate)
