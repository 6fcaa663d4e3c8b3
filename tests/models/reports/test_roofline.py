"""models.reports.roofline: percent of roofline from known numbers, the compute roof when a GEMM
beats the theoretical peak, each machine against its own peaks, GPU rows against the datasheet,
missing peaks, `sysdl machine`'s file as the fallback, and the chart. The asv trees and
bench_machine figures come from tests/models/reports/results_trees.py."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from models.reports import roofline
from models.reports.bench_results import load_asv, load_pytest_benchmark, read_machine_figures
from models.reports.bench_table import run
from models.reports.roofline import NO_PEAKS, Roofs, measured_peaks, read_roofs, roofline_tables
from tests.models.reports.results_trees import (COMMIT_A, COMMIT_B, DATE_A, DATE_B, G1, G2, LOWERING,
                                                LOWERING_BYTES, LOWERING_FLOPS, flat_times, machine_figures,
                                                write_benchmarks_json, write_pytest_json, write_result)

PNG = b"\x89PNG\r\n\x1a\n"
GEMMS = {"torch.mm": 50.0, "F.linear": 45.0, "numpy @": 40.0, "sysdl numba": 30.0}       # GFLOP/s
TRIADS = {"L1": 100.0, "L2": 50.0, "L3": 20.0, "memory": 10.0}                           # GB/s
# 100 GFLOP/s peak, 10 GB/s main memory: the ridge at 10 FLOP per byte
FIGURES = machine_figures(100.0, GEMMS, TRIADS)
INTENSITY_1 = {LOWERING_FLOPS: [1e9, 0.0], LOWERING_BYTES: [1e9, 1e9]}        # G1: 1 FLOP/B; G2: none
INTENSITY_1000 = {LOWERING_FLOPS: [1e12, 0.0], LOWERING_BYTES: [1e9, 1e9]}    # G1: 1000 FLOP/B


def write_lowering(root, machine, times: dict, work: dict, figures: dict | None = None,
                   commit: str = COMMIT_B, date: int = DATE_B, started_at: int = 1_795_400_000_000):
    """One asv result file of the lowering family: times (case, implementation, device) -> s."""
    write_benchmarks_json(root)
    write_result(root, machine, commit, date, {LOWERING: flat_times(LOWERING, times), **work, **(figures or {})},
                 started_at=started_at)
    return root


def lowering_table(root, gpu: str | None = "H200", machine_dir=None):
    roofs = read_roofs([root], gpu, machine_dir or root / "no-machine-files")
    return roofline_tables(load_asv([root]), roofs)["lowering"]


def row(table, case, implementation, device="cpu", machine=None):
    numbers, cells = table.numbers, table.cells
    match = (numbers["case"] == case) & (numbers["implementation"] == implementation) & (numbers["device"] == device)
    if machine:
        match &= numbers["machine"] == machine
    assert match.sum() == 1, (case, implementation, device, machine)
    return numbers[match].iloc[0], cells[match.to_numpy()].iloc[0]


def test_known_numbers_give_exact_percentages(tmp_path):
    times = {(G1, "torch", "cpu"): 0.2, (G2, "torch", "cpu"): 0.5}
    table = lowering_table(write_lowering(tmp_path / "results", "cpu-box", times, INTENSITY_1, FIGURES))
    # 1 FLOP/B on 10 GB/s under a 100 GFLOP/s peak: roof 10 GFLOP/s; 1e9 FLOP in 0.2 s = 5 GFLOP/s: 50%
    numbers, cells = row(table, G1, "torch")
    assert (numbers["gflop_per_s"], numbers["gb_per_s"], numbers["flop_per_byte"]) == (5.0, 5.0, 1.0)
    assert numbers["roof_gflop_per_s"] == pytest.approx(10.0)
    assert numbers["percent_of_roof"] == pytest.approx(50.0) and numbers["bound"] == "memory"
    assert dict(cells[["time", "GFLOP/s", "GB/s", "FLOP/B", "roof", "% of roof", "bound", "peaks"]]) == {
        "time": "200 ms", "GFLOP/s": "5", "GB/s": "5", "FLOP/B": "1", "roof": "10 GFLOP/s", "% of roof": "50%",
        "bound": "memory", "peaks": "cpu-box, measured"}
    # no arithmetic (im2col): its bytes against the bandwidth, 1e9 B in 0.5 s = 2 GB/s of 10: 20%
    numbers, cells = row(table, G2, "torch")
    assert numbers["percent_of_roof"] == pytest.approx(20.0) and numbers["bound"] == "memory"
    assert (cells["GFLOP/s"], cells["GB/s"], cells["roof"], cells["% of roof"]) == ("no arithmetic", "2", "10 GB/s",
                                                                                    "20%")
    assert len(table.cells) == 2                         # only the timed rows, the skipped ones left out


def test_paleo_prediction_and_measured_ppp_beside_the_time(tmp_path):
    """PALEO on the same peaks at PPP 1: 1e9 FLOP at 100 GFLOP/s + 1e9 B at 10 GB/s = 0.11 s; the
    case took 0.2 s, so it reached a PPP of 0.55 (the roofline's max() says 50% of its roof)."""
    times = {(G1, "torch", "cpu"): 0.2}
    numbers, cells = row(lowering_table(write_lowering(tmp_path / "results", "cpu-box", times, INTENSITY_1, FIGURES)),
                         G1, "torch")
    assert numbers["paleo_seconds"] == pytest.approx(0.11) and numbers["measured_ppp"] == pytest.approx(0.55)
    assert (cells["PALEO at PPP 1 (predicted)"], cells["measured PPP"]) == ("110 ms", "0.55")


def test_a_case_past_the_ridge_is_compute_bound(tmp_path):
    times = {(G1, "torch", "cpu"): 20.0}                 # 1e12 FLOP in 20 s: 50 GFLOP/s of the 100 roof
    numbers, cells = row(lowering_table(write_lowering(tmp_path / "r", "cpu-box", times, INTENSITY_1000, FIGURES)),
                         G1, "torch")
    assert numbers["roof_gflop_per_s"] == pytest.approx(100.0) and numbers["roof_gb_per_s"] == pytest.approx(0.1)
    assert numbers["percent_of_roof"] == pytest.approx(50.0) and numbers["bound"] == "compute"
    assert (cells["roof"], cells["FLOP/B"], cells["% of roof"]) == ("100 GFLOP/s", "1,000", "50%")


def test_a_gemm_above_the_theoretical_peak_is_the_compute_roof(tmp_path):
    above = measured_peaks("vm, measured", "test", 100e9, {"torch.mm": 120e9, "numpy @": 90e9}, {"memory": 10e9})
    assert above.compute == 120e9
    assert "the best measured GEMM (torch.mm), above the theoretical FMA peak 100 GFLOP/s" in above.compute_label
    assert above.lines == {"GEMM torch.mm": 120e9, "GEMM numpy @": 90e9, "theoretical FMA peak": 100e9}
    below = measured_peaks("vm, measured", "test", 100e9, {"torch.mm": 80e9}, {"memory": 10e9})
    assert below.compute == 100e9 and below.compute_label.startswith("the theoretical FMA peak")
    assert measured_peaks("vm", "test", math.nan, {"torch.mm": 80e9}, {"memory": 10e9}).compute == 80e9
    assert measured_peaks("vm", "test", 100e9, {}, {"L1": 50e9}) is None          # no main-memory bandwidth
    # through the table: 50 GFLOP/s against 120, and the note says which roof
    figures = machine_figures(100.0, {**GEMMS, "torch.mm": 120.0}, TRIADS)
    table = lowering_table(write_lowering(tmp_path / "r", "vm", {(G1, "torch", "cpu"): 20.0}, INTENSITY_1000, figures))
    assert row(table, G1, "torch")[0]["percent_of_roof"] == pytest.approx(100 * 50 / 120)
    assert any("compute roof 120 GFLOP/s, the best measured GEMM (torch.mm), above the theoretical FMA peak 100"
               in note for note in table.notes)


def test_each_machine_is_set_against_its_own_peaks(tmp_path):
    root = tmp_path / "results"
    times = {(G1, "torch", "cpu"): 0.2}
    write_lowering(root, "slow-memory", times, INTENSITY_1, FIGURES)
    write_lowering(root, "fast-memory", times, INTENSITY_1, machine_figures(100.0, GEMMS, {**TRIADS, "memory": 20.0}))
    table = lowering_table(root)
    assert row(table, G1, "torch", machine="slow-memory")[0]["percent_of_roof"] == pytest.approx(50.0)
    assert row(table, G1, "torch", machine="fast-memory")[0]["percent_of_roof"] == pytest.approx(25.0)
    assert set(table.peaks) == {"slow-memory, measured", "fast-memory, measured"}


def test_gpu_rows_use_the_datasheet_and_are_labelled(tmp_path):
    times = {(G1, "torch", "cpu"): 20.0, (G1, "torch", "cuda"): 0.1, (G1, "torch tf32", "cuda"): 0.01}
    root = write_lowering(tmp_path / "r", "gpu-box", times, INTENSITY_1000, FIGURES)
    table = lowering_table(root)
    cpu, _ = row(table, G1, "torch", "cpu")
    assert (cpu["percent_of_roof"], cpu["peaks"]) == (pytest.approx(50.0), "gpu-box, measured")   # its own CPU's
    fp32, fp32_cells = row(table, G1, "torch", "cuda")            # 10 TFLOP/s of the H200's 67 fp32
    assert fp32["percent_of_roof"] == pytest.approx(100 * 10 / 67) and fp32["bound"] == "compute"
    assert (fp32_cells["peaks"], fp32_cells["roof"]) == ("H200 datasheet", "67,000 GFLOP/s")
    tf32, tf32_cells = row(table, G1, "torch tf32", "cuda")        # 100 TFLOP/s of the 495 TF32 tensor-core peak
    assert tf32["percent_of_roof"] == pytest.approx(100 * 100 / 495) and tf32_cells["peaks"] == "H200 datasheet, TF32"
    assert ("peaks of H200 datasheet, from the NVIDIA H200 datasheet (FP32, HBM3e; TF32 495 dense) for the H200 SXM "
            "141 GB in sysdl_kernels.perf_model.DEVICES (--gpu): compute roof 67,000 GFLOP/s, the fp32 peak; memory "
            "roof 4,800 GB/s, HBM bandwidth") in table.notes
    assert any("datasheet's roof of the --gpu device" in note for note in table.notes)
    # a GPU without tensor cores has no TF32 roof: a note, no percentage, no crash
    v100 = lowering_table(root, gpu="V100")
    assert row(v100, G1, "torch tf32", "cuda")[1]["% of roof"] == NO_PEAKS
    assert row(v100, G1, "torch", "cuda")[0]["percent_of_roof"] == pytest.approx(100 * 10 / 15.7)
    assert any("gpu-box cuda: no GPU datasheet" in note for note in v100.notes)


def test_missing_peaks_give_a_note_and_no_percentages(tmp_path):
    root = write_lowering(tmp_path / "r", "cpu-box", {(G1, "torch", "cpu"): 0.2}, INTENSITY_1)
    table = lowering_table(root)
    numbers, cells = row(table, G1, "torch")
    assert numbers["gflop_per_s"] == 5.0 and math.isnan(numbers["percent_of_roof"])    # the rates, no roof
    assert (cells["% of roof"], cells["roof"], cells["peaks"]) == (NO_PEAKS, "n/a", "none")
    assert table.notes[0] == ("cpu-box cpu: no measured peaks for cpu-box: run `asv run --python=same "
                              "--set-commit-hash $(git rev-parse HEAD) -b bench_machine` on that machine, or "
                              "`sysdl machine` there (runs/machine/<machine>.json)")
    assert roofline.plot(table, tmp_path / "chart.png").read_bytes()[:8] == PNG


def test_a_family_with_every_case_skipped_gets_an_empty_table_and_a_chart(tmp_path):
    table = lowering_table(write_lowering(tmp_path / "r", "cpu-box", {}, INTENSITY_1, FIGURES))
    assert table.cells.empty and list(table.cells.columns) == roofline.CELL_COLUMNS
    assert table.notes == ["no timed case (every case skipped or failed): nothing to set against a roof"]
    assert roofline.plot(table, tmp_path / "chart.png").read_bytes()[:8] == PNG


def test_rows_without_work_say_so(tmp_path):
    root = write_lowering(tmp_path / "r", "cpu-box", {(G1, "torch", "cpu"): 0.2}, {}, FIGURES)
    table = lowering_table(root)
    cells = row(table, G1, "torch")[1]
    assert (cells["GFLOP/s"], cells["% of roof"], cells["roof"]) == ("n/a", "no work recorded", "n/a")
    assert any("no work recorded" in note for note in table.notes)


def test_peaks_come_from_the_latest_commit_that_has_them(tmp_path):
    root = tmp_path / "r"
    write_lowering(root, "cpu-box", {}, {}, FIGURES, commit=COMMIT_A, date=DATE_A)       # peaks only at the older
    write_lowering(root, "cpu-box", {(G1, "torch", "cpu"): 0.2}, INTENSITY_1)
    table = lowering_table(root)
    assert row(table, G1, "torch")[0]["percent_of_roof"] == pytest.approx(50.0)
    assert "asv bench_machine at commit abc10000" in table.peaks["cpu-box, measured"].source
    newer = machine_figures(100.0, GEMMS, {**TRIADS, "memory": 20.0})
    write_lowering(root, "cpu-box", {(G1, "torch", "cpu"): 0.2}, {**INTENSITY_1, **newer}, started_at=1_795_500_000_000)
    table = lowering_table(root)
    assert row(table, G1, "torch")[0]["percent_of_roof"] == pytest.approx(25.0)
    assert "commit abd21111" in table.peaks["cpu-box, measured"].source


def test_read_machine_figures_one_row_per_figure(tmp_path):
    root = write_lowering(tmp_path / "r", "cpu-box", {}, {}, machine_figures(100.0, {"torch.mm": 50.0}, TRIADS))
    figures = read_machine_figures([root, tmp_path / "nowhere"])
    values = {(r.figure, r.param): r.value for r in figures.itertuples()}
    assert values == {("fma_peak", ""): 100.0, ("gemm", "torch.mm"): 50.0,
                      **{("triad", level): rate for level, rate in TRIADS.items()}}
    assert set(figures["commit"]) == {COMMIT_B} and set(figures["machine"]) == {"cpu-box"}


def test_sysdl_machine_file_is_the_fallback(tmp_path):
    machines = tmp_path / "machine"
    machines.mkdir()
    (machines / "laptop.json").write_text(json.dumps({
        "threads": 8, "theoretical_fma_peak": 100e9, "gemm": {"torch.mm": 50e9}, "bandwidth": {"memory": 10e9},
        "measured_at": "2026-11-20T10:00:00Z"}))
    path = write_pytest_json(tmp_path / "bench.json", [
        ("t", {"family": "lowering", "case": G1, "implementation": "torch", "device": "cpu", "threads": 4,
               "flops": 1e9, "bytes": 1e9}, 0.2)])
    (machines / "broken.json").write_text("{not json")              # skipped with a warning
    with pytest.warns(UserWarning, match="broken.json: not a file `sysdl machine` saved"):
        roofs = read_roofs([tmp_path / "no-asv"], None, machines)
    table = roofline_tables(load_pytest_benchmark([path]), roofs)["lowering"]
    assert row(table, G1, "torch")[0]["percent_of_roof"] == pytest.approx(50.0)
    assert table.notes[0].startswith(f"peaks of laptop, measured, from `sysdl machine` file "
                                     f"{machines / 'laptop.json'}, measured 2026-11-20T10:00:00Z, 8 threads: "
                                     "compute roof 100 GFLOP/s")
    assert "laptop, measured: timed on 4 threads, peaks measured on 8" in table.notes[1]
    # asv's figures of the same machine come first
    asv = write_lowering(tmp_path / "asv", "laptop", {}, {}, machine_figures(100.0, GEMMS, {"memory": 20.0}))
    with pytest.warns(UserWarning):
        roofs = read_roofs([asv], None, machines)
    assert roofs.for_row("pytest-benchmark", str(path), "laptop", "cpu", "torch").memory == 20e9
    assert Roofs().for_row("asv", "r", "laptop", "cuda", "torch") is None


def test_chart_and_csv_columns_from_bench_table_run(tmp_path, capsys):
    times = {(G1, "torch", "cpu"): 0.2, (G2, "torch", "cpu"): 0.5, (G1, "torch", "cuda"): 0.001,
             (G1, "triton", "cuda"): 0.002}
    root = write_lowering(tmp_path / "r", "gpu-box", times, INTENSITY_1, FIGURES)
    assert run(root, out_dir=tmp_path / "out", machine_dir=tmp_path / "none") == 0
    out = capsys.readouterr().out
    assert "## lowering: percent of roofline" in out and "| 50%" in out
    for name in ("bench_lowering_roofline.png", "bench_lowering.png"):
        assert (tmp_path / "out" / name).read_bytes()[:8] == PNG
    assert "H200 datasheet" in (tmp_path / "out" / "bench_lowering_roofline.md").read_text(encoding="utf-8")
    csv = pd.read_csv(tmp_path / "out" / "bench_lowering.csv")
    assert set(roofline.UTILISATION_COLUMNS) <= set(csv.columns)
    torch_cpu = csv[(csv["case"] == G1) & (csv["implementation"] == "torch") & (csv["device"] == "cpu")].iloc[0]
    assert (torch_cpu["percent_of_roof"], torch_cpu["bound"], torch_cpu["speedup"]) == (pytest.approx(50.0), "memory",
                                                                                         1.0)


def test_numbers_stay_readable():
    assert [roofline.format_percent(p) for p in (52.4, 3.42, 0.0123, 1234.0, math.nan)] == [
        "52%", "3.4%", "0.012%", "1,234%", "n/a"]
    assert [roofline.format_figures(v) for v in (1234.5, 140.2, 12.34, 0.01234, math.nan)] == [
        "1,234", "140", "12.3", "0.0123", "n/a"]
