"""`sysdl growth`: the fit and the regime detection on synthetic points with known answers, the
cache wording, and `--quick` end to end (it measures, but asserts no speed), including the
refusal to replace finished results."""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import pytest

from models.analysis import growth
from sysdl_kernels import runtime
from models.shared.command import new_parser, run_module
from models.shared.errors import UserError

CACHES = [{"level": 1, "type": "Data", "bytes": 48 << 10, "shared_by": "0"},
          {"level": 1, "type": "Instruction", "bytes": 32 << 10, "shared_by": "0"},
          {"level": 2, "type": "Unified", "bytes": 2 << 20, "shared_by": "0"},
          {"level": 3, "type": "Unified", "bytes": 32 << 20, "shared_by": "0-1"}]
LEVELS = growth.cache_levels(CACHES)


def test_cache_levels_are_the_data_caches_with_their_scope():
    assert LEVELS == [("L1d", 48 << 10, "per core"), ("L2", 2 << 20, "per core"), ("L3", 32 << 20, "shared")]


@pytest.mark.parametrize("overhead, rate", [(40e-6, 2e11), (0.0, 5e10), (1e-3, 1e12)])
def test_fit_recovers_a_known_rate_and_overhead(overhead, rate):
    flops = np.geomspace(1e5, 1e11, 9)
    fit = growth.fit_line(flops, overhead + flops / rate)
    assert fit.rate == pytest.approx(rate, rel=1e-6)
    assert fit.overhead == pytest.approx(overhead, rel=1e-6, abs=1e-12)


def test_fit_keeps_both_terms_non_negative():
    flops = np.geomspace(1e6, 1e9, 6)
    fit = growth.fit_line(flops, np.full(6, 1e-3))                      # flat: all overhead, no rate term
    assert fit.overhead == pytest.approx(1e-3) and fit.rate == float("inf")


def _sweep(slow_from: int, factor: float = 1.6, n: int = 10):
    """Working sets 16 KiB x 2^i, FLOPs proportional; linear (5 us + FLOPs / 100 GFLOP/s) below
    ``slow_from``, ``factor`` x slower from there."""
    working_sets = [(16 << 10) << i for i in range(n)]
    flops = np.array(working_sets, dtype=float) * 50
    seconds = 5e-6 + flops / 1e11
    seconds[slow_from:] *= factor
    return [f"size {i}" for i in range(n)], working_sets, flops, seconds


def test_regime_flags_exactly_the_slow_tail_and_names_the_cache_it_left():
    labels, working_sets, flops, seconds = _sweep(slow_from=8)           # 2 MiB at index 7, 4 MiB at 8
    regime = growth.linear_regime(flops, seconds)
    assert regime.flagged.tolist() == [False] * 8 + [True] * 2
    assert regime.leaves_at == 8
    assert regime.fit.rate == pytest.approx(1e11, rel=1e-6)             # refitted on the linear points only
    assert regime.fit.overhead == pytest.approx(5e-6, rel=1e-6)
    assert growth.finding(labels, working_sets, regime, LEVELS) == (
        "leaves it at size 8, 60% slower than the fit from there; working set 4 MiB > L2 2 MiB per core "
        "(fits L3 32 MiB shared); crosses L2 from size 7")


def test_a_departure_inside_one_cache_level_says_no_level_was_crossed():
    labels, working_sets, flops, seconds = _sweep(slow_from=6, factor=2.0)   # 512 KiB -> 1 MiB: both in L2
    regime = growth.linear_regime(flops, seconds)
    assert regime.flagged.tolist() == [False] * 6 + [True] * 4 and regime.leaves_at == 6
    text = growth.finding(labels, working_sets, regime, LEVELS)
    assert "leaves it at size 6, 100% slower than the fit from there" in text
    assert "working set 1 MiB > L1d 48 KiB per core (fits L2 2 MiB per core)" in text
    assert text.endswith("no cache size crossed from the size before")


def test_an_isolated_deviation_is_flagged_but_is_no_departure():
    labels, working_sets, flops, seconds = _sweep(slow_from=10)
    seconds[4] *= 1.5
    regime = growth.linear_regime(flops, seconds)
    assert regime.flagged.tolist() == [i == 4 for i in range(10)]
    assert regime.leaves_at is None
    assert growth.finding(labels, working_sets, regime, LEVELS) == (
        "linear over the sweep; isolated deviations: size 4 (+50%)")


def test_a_faster_tail_a_slow_start_and_no_regime_at_all_are_said_so():
    labels, working_sets, flops, seconds = _sweep(slow_from=8, factor=0.5)
    regime = growth.linear_regime(flops, seconds)
    assert regime.flagged.tolist() == [False] * 8 + [True] * 2
    assert "leaves it at size 8, 50% faster than the fit from there" in growth.finding(labels, working_sets,
                                                                                       regime, LEVELS)
    labels, working_sets, flops, seconds = _sweep(slow_from=10)
    seconds[:3] *= 0.4                                                    # small sizes faster than the line
    regime = growth.linear_regime(flops, seconds)
    assert regime.flagged.tolist() == [True] * 3 + [False] * 7 and regime.leaves_at is None
    assert growth.finding(labels, working_sets, regime, LEVELS) == (
        "linear from size 3 on (below it 60% faster than the fit)")
    everywhere = growth.Regime(regime.fit, np.full(10, 0.5), np.ones(10, bool), np.ones(10, bool), 0)
    assert growth.finding(labels, working_sets, everywhere, LEVELS) == (
        "no linear regime in this sweep: every size 50% slower than the fit")


def test_the_largest_fall_of_the_measured_rate_is_named_with_its_working_sets():
    labels, working_sets = ["K 1", "K 2", "K 3", "K 4"], [1 << 20, 3 << 20, 40 << 20, 80 << 20]
    assert growth.largest_fall(labels, [100, 127, 90, 89], working_sets, LEVELS) == (
        "measured rate falls 29% from K 2 to K 3 (127 -> 90 GFLOP/s; working set 3 MiB -> 40 MiB, crossing L3)")
    assert growth.largest_fall(labels, [100, 90, 85, 80], working_sets, LEVELS) == ""     # no drop over 20%


@pytest.mark.parametrize("working_set, text", [
    (20 << 10, "working set 20 KiB fits L1d 48 KiB per core"),
    (3 << 20, "working set 3 MiB > L2 2 MiB per core (fits L3 32 MiB shared)"),
    (40 << 20, "working set 40 MiB > L3 32 MiB shared: from main memory"),
])
def test_working_set_against_the_caches(working_set, text):
    assert growth.against_caches(working_set, LEVELS) == text
    assert growth.against_caches(working_set, []).endswith("(cache sizes not exposed here)")


def test_cache_crossings_map_to_flops_within_the_sweep_only():
    flops, working_sets = [1e6, 1e8], [1 << 20, 4 << 20]
    assert growth.crossing_flops(flops, working_sets, 2 << 20) == pytest.approx(1e7)     # halfway in log-log
    assert growth.crossing_flops(flops, working_sets, 48 << 10) is None
    assert growth.crossing_flops(flops, working_sets, 32 << 20) is None


def test_calls_per_sample_and_the_check_before_timing():
    assert runtime.calls_per_sample(1.0, 2e-3) == 1 and runtime.calls_per_sample(1e-4, 2e-3) == 20
    case = growth.Case("toy", 1.0, 4, {"a": lambda: np.ones(3), "b": lambda: np.ones(3) * 2})
    with pytest.raises(RuntimeError, match="b disagrees with a"):
        growth.check(case)


def _args(argv: list[str]) -> argparse.Namespace:
    parser = new_parser("growth")
    growth.add_arguments(parser)
    return parser.parse_args(argv)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("growth")
    assert growth.main(_args(["--quick", "--passes", "2", "--out-dir", str(out), "--no-progress",
                              "--threads", "1"])) == 0
    return out


def test_quick_run_writes_every_family_sweep_and_implementation(quick_run):
    points = pd.read_csv(quick_run / "growth_points.csv")
    expected = {("conv", s, i) for s in ("batch", "channels", "image") for i in ("nn.Conv2d", "torch-im2col", "numba")}
    expected |= {("gemm", s, i) for s in ("square", "K") for i in ("torch addmm+relu", "numba")}
    expected |= {("matmulnet", s, i) for s in ("batch", "width") for i in ("nn.Module", "MatmulNet")}
    assert set(points[["family", "sweep", "implementation"]].itertuples(index=False, name=None)) == expected
    assert len(points) == sum(len(s.quick) * (3 if s.family == "conv" else 2) for s in growth.SWEEPS)
    assert (points["seconds"] > 0).all() and (points["gflops"] > 0).all() and (points["calls"] >= 1).all()
    assert (points["pass_spread"] >= 0).all() and (points["best_seconds"] <= points["seconds"]).all()
    first = points[(points["family"] == "conv") & (points["sweep"] == "batch") & (points["size"] == 1)].iloc[0]
    assert first["flops"] == 2 * 1 * 16 * 24 * 24 * 16 * 3 * 3                # 2 N O OH OW C KH KW
    assert first["working_set_bytes"] == 4 * (16 * 26 * 26 + 16 * 16 * 9 + 16 + 16 * 24 * 24)
    square = points[(points["sweep"] == "square") & (points["size"] == 32)].iloc[0]
    assert square["flops"] == 2 * 32 ** 3 and square["working_set_bytes"] == 4 * (3 * 32 * 32 + 32)
    assert {"fit_seconds", "deviation", "flagged"} <= set(points.columns)

    fits = pd.read_csv(quick_run / "growth_fits.csv")
    assert set(fits[["family", "sweep", "implementation"]].itertuples(index=False, name=None)) == expected
    assert (fits["fit_rate_GFLOPs"] > 0).all() and (fits["fit_overhead_us"] >= 0).all()
    assert fits["regime"].str.len().gt(0).all() and "largest_fall" in fits.columns


def test_quick_run_writes_the_report_and_one_plot_per_family(quick_run):
    report = (quick_run / "growth.md").read_text()
    assert "--quick" in report and "fits, not measurements" in report and "L2 2 MiB per core" in report
    for name in ("nn.Conv2d", "torch-im2col", "torch addmm+relu", "MatmulNet", "nn.Module", "conv/image", "gemm/K",
                 "matmulnet/width"):
        assert name in report
    assert "| implementation" in (quick_run / "growth_points.md").read_text()
    for family in growth.FAMILIES:
        png = (quick_run / f"growth_{family}.png").read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 10_000


def test_finished_results_are_not_replaced_silently(quick_run, tmp_path, capsys):
    with pytest.raises(UserError, match="--overwrite"):
        growth.main(_args(["--quick", "--out-dir", str(quick_run)]))
    (tmp_path / "growth_points.csv").write_text("family\n")
    assert run_module("models.analysis.growth", ["--out-dir", str(tmp_path)]) == 2
    assert "already holds growth results (growth_points.csv)" in capsys.readouterr().err
    assert (tmp_path / "growth_points.csv").read_text() == "family\n"
    (tmp_path / "growth_conv.png").write_bytes(b"stale")
    assert growth.main(_args(["--quick", "--family", "gemm", "--out-dir", str(tmp_path), "--overwrite",
                              "--no-progress"])) == 0
    assert set(pd.read_csv(tmp_path / "growth_points.csv")["family"]) == {"gemm"}
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["growth_gemm.png"]     # no stale conv plot
