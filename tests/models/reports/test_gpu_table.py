"""models.reports.gpu_table: the CPU-vs-GPU table per family, from a CPU machine's asv results and
a GPU machine's committed copy at another commit (tests/models/reports/results_trees.py), and
with no GPU results at all (every GPU number a prediction, labelled so)."""

from __future__ import annotations

import pandas as pd
import pytest

from models.reports import gpu_table
from models.reports.bench_results import load_asv, load_pytest_benchmark
from models.reports.bench_table import run
from models.reports.gpu_table import gpu_tables, make_prediction
from tests.models.reports.results_trees import G1, G2, write_cpu_and_gpu_dirs, write_pytest_json

FLOPS, BYTES = 1.3836e8, 5.12472e6                   # what the fixture's LoweringWork results record
H200 = {"fp32": 67e12, "tf32": 495e12, "bandwidth": 4.8e12}
PREDICTED = FLOPS / (0.5 * H200["fp32"]) + BYTES / (0.5 * H200["bandwidth"])          # 6.27 µs
PREDICTED_TF32 = FLOPS / (0.5 * H200["tf32"]) + BYTES / (0.5 * H200["bandwidth"])     # 2.69 µs
MEASURED = ["GPU h200-node (measured)", "CPU/GPU h200-node (measured)", "PPP h200-node (measured, vs H200)"]
PREDICTED_COLUMNS = ["GPU H200 (predicted, PPP 0.5)", "CPU/GPU H200 (predicted)"]


@pytest.fixture
def dirs(tmp_path):
    return write_cpu_and_gpu_dirs(tmp_path)


def lowering(frame, prediction=None):
    return gpu_tables(frame, prediction)["lowering"]


def number(table, implementation, kind, case=G1):
    numbers = table.numbers
    rows = numbers[(numbers["case"] == case) & (numbers["implementation"] == implementation) & (numbers["kind"] == kind)]
    assert len(rows) == 1, (case, implementation, kind)
    return rows.iloc[0]


def row_cells(table, case=G1):
    return table.cells[table.cells["case"] == case].set_index("implementation").drop(columns="case")


def test_measured_gpu_beside_its_prediction_with_ratios_and_measured_ppp(dirs):
    table = lowering(load_asv(list(dirs)))
    assert list(table.cells.columns) == ["case", "implementation", "CPU (cpu-box)", *MEASURED, *PREDICTED_COLUMNS]
    cells = row_cells(table)
    assert list(cells.loc["torch"]) == ["974 µs", "20.0 µs", "48.70x", "0.16", "6.27 µs", "155x"]
    # no CPU time of its own (CUDA only): compared with the baseline's CPU time, which it names
    assert list(cells.loc["torch tf32"]) == ["974 µs (torch)", "10.0 µs", "97.40x", "0.13", "2.69 µs", "361x"]
    assert list(cells.loc["triton"]) == ["974 µs (torch)", "25.0 µs", "38.96x", "0.13", "6.27 µs", "155x"]
    # im2col: no arithmetic, so no TF32 row; its prediction is its traffic alone
    assert list(row_cells(table, G2).index) == ["torch", "triton"]
    assert number(table, "triton", "predicted", G2)["gpu_seconds"] == pytest.approx(3.7504e8 / (0.5 * 4.8e12))
    measured, predicted = number(table, "triton", "measured"), number(table, "triton", "predicted")
    assert (measured["gpu"], measured["gpu_seconds"], measured["cpu_machine"]) == ("h200-node", 25e-6, "cpu-box")
    assert measured["cpu_over_gpu"] == pytest.approx(974 / 25)
    assert measured["ppp"] == pytest.approx(PREDICTED * 0.5 / 25e-6)          # exact_ppp: prediction at PPP 1
    assert (predicted["gpu"], predicted["ppp"]) == ("H200", 0.5)
    assert predicted["gpu_seconds"] == pytest.approx(PREDICTED)
    assert number(table, "torch tf32", "predicted")["gpu_seconds"] == pytest.approx(PREDICTED_TF32)
    assert (number(table, "torch", "predicted")["flops"], number(table, "torch", "predicted")["bytes"]) == (FLOPS, BYTES)


def test_provenance_names_each_machines_commit_and_directory(dirs):
    cpu, gpu = dirs
    table = lowering(load_asv(list(dirs)))
    assert table.provenance == [f"asv commit abd21111 (2026-11-21): cpu-box (cpu-box CPU, 2 threads, from {cpu})",
                                f"asv commit abc10000 (2026-11-18): h200-node (h200-node CPU, 2 threads, from {gpu})"]
    assert not any("no GPU has been measured" in note for note in table.notes)
    assert any(note.startswith("measured PPP: the PPP at which the H200 prediction") for note in table.notes)


def test_without_gpu_results_every_gpu_number_is_labelled_a_prediction(dirs):
    table = lowering(load_asv([dirs[0]]))
    assert list(table.cells.columns) == ["case", "implementation", "CPU (cpu-box)", *PREDICTED_COLUMNS]
    # the GPU-only implementations, which no machine ran, are there with their predictions; TF32 im2col is not
    assert [tuple(r) for r in table.cells[["case", "implementation"]].to_numpy()] == [
        (G1, "torch"), (G1, "torch tf32"), (G1, "triton"), (G2, "torch"), (G2, "triton")]
    assert set(table.numbers["kind"]) == {"predicted"} and set(table.numbers["gpu"]) == {"H200"}
    assert table.notes[0].startswith("no GPU has been measured yet (no cuda timings in these results): every GPU "
                                     "number below is a prediction for the H200; run the benchmarks on a GPU")
    assert table.notes[1].startswith("predicted: PALEO") and "H200 SXM 141 GB: fp32 67, TF32 tensor cores 495" \
        in table.notes[1] and "4.8 TB/s" in table.notes[1] and "at PPP 0.5" in table.notes[1]
    assert row_cells(table).loc["triton", "GPU H200 (predicted, PPP 0.5)"] == "6.27 µs"


def test_another_gpu_and_ppp_and_one_without_tensor_cores(dirs):
    frame = load_asv(list(dirs))
    a100 = lowering(frame, make_prediction("A100", 0.25))
    assert "GPU A100 (predicted, PPP 0.25)" in a100.cells.columns
    assert number(a100, "torch", "predicted")["gpu_seconds"] == pytest.approx(FLOPS / (0.25 * 19.5e12)
                                                                              + BYTES / (0.25 * 1555e9))
    v100 = lowering(frame, make_prediction("V100"))
    assert pd.isna(number(v100, "torch tf32", "predicted")["gpu_seconds"])
    assert "the V100 has no TF32 tensor cores: no prediction for the tf32 implementations" in v100.notes
    with pytest.raises(ValueError, match="unknown GPU 'TPU'"):
        make_prediction("TPU")
    with pytest.raises(ValueError, match="--ppp must be in"):
        make_prediction("H200", 1.5)


def test_cpu_times_from_pytest_benchmark_against_gpu_times_from_asv(dirs, tmp_path):
    info = {"family": "lowering", "case": G1, "device": "cpu", "baseline": "torch", "flops": FLOPS, "bytes": BYTES}
    path = write_pytest_json(tmp_path / "bench.json", [("a", {**info, "implementation": "torch"}, 1e-3)])
    frame = pd.concat([load_pytest_benchmark([path]), load_asv([dirs[1]])], ignore_index=True)
    cells = row_cells(lowering(frame))
    assert cells.loc["torch", "CPU (laptop)"] == "1.00 ms" and cells.loc["torch", MEASURED[1]] == "50.00x"


def test_outputs_label_predicted_in_the_csv_and_draw_it_hatched(dirs, tmp_path):
    table = lowering(load_asv(list(dirs)))
    written = gpu_table.write_outputs({"lowering": table}, tmp_path / "out")
    assert [p.name for p in written] == ["bench_lowering_gpu.md", "bench_lowering_gpu.csv", "bench_lowering_gpu.png"]
    csv = pd.read_csv(tmp_path / "out" / "bench_lowering_gpu.csv")
    assert list(csv.columns) == gpu_table.NUMBER_COLUMNS
    assert sorted(zip(csv["kind"], csv["gpu"])) == [("measured", "h200-node")] * 5 + [("predicted", "H200")] * 5
    assert written[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bars = gpu_table._bars(table.numbers)
    assert [(label, kind) for label, kind in bars] == [("CPU cpu-box", "cpu"), ("GPU h200-node (measured)", "measured"),
                                                      ("GPU H200 (predicted)", "predicted")]
    md = (tmp_path / "out" / "bench_lowering_gpu.md").read_text(encoding="utf-8")
    assert md.startswith("## lowering: CPU vs GPU") and "| GPU H200 (predicted, PPP 0.5)" in md


def test_run_reads_the_default_directories_and_prints_the_cpu_vs_gpu_table(dirs, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert run(out_dir="out", gpu="H100", ppp=0.4) == 0
    out = capsys.readouterr().out
    assert "## lowering: CPU vs GPU" in out and "GPU H100 (predicted, PPP 0.4)" in out
    assert "h200-node (h200-node CPU, 2 threads, from docs/results/h200-node/asv)" in out
    assert (tmp_path / "out" / "bench_lowering_gpu.csv").is_file()
