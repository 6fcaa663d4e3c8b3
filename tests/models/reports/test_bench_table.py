"""models.reports.bench_table (and the bench_results reader under it) on small asv result trees
and pytest-benchmark JSON (tests/models/reports/results_trees.py). Several asv directories and
the work figures: test_bench_results.py; the CPU-vs-GPU tables: test_gpu_table.py."""

from __future__ import annotations

import argparse
import math

import pytest

from models.reports import bench_table
from models.reports.bench_results import GPU_HINT, NoResultsError, load_asv, load_pytest_benchmark
from models.reports.bench_table import compare_commits, family_tables, run, write_outputs
from tests.models.reports.results_trees import (BACKWARD, C1, C2, COMMIT_A, COMMIT_B, CONV, DATE_A, DATE_B,
                                                INFERENCE, conv_times, write_benchmarks_json, write_pytest_json,
                                                write_result)

BASELINES = {"conv": "nn.Conv2d", "layers": "torch", "inference": "original nn.Module", "triton": "torch"}


# (case, implementation, device) -> median seconds; missing keys are asv's nulls (skipped).
CPU_BOX_B = {(C1, "nn.Conv2d", "cpu"): 0.004, (C1, "numba", "cpu"): 0.002,
             (C2, "nn.Conv2d", "cpu"): 0.010, (C2, "numba", "cpu"): 0.0025}
CPU_BOX_A = {(C1, "nn.Conv2d", "cpu"): 0.003, (C1, "numba", "cpu"): 0.0019,
             (C2, "nn.Conv2d", "cpu"): 0.0095, (C2, "numba", "cpu"): 0.005}
GPU_BOX_B = {(C1, "nn.Conv2d", "cpu"): 0.003, (C1, "nn.Conv2d", "cuda"): 0.0005, (C1, "numba", "cpu"): 0.0015,
             (C1, "triton", "cuda"): 0.00025,
             (C2, "nn.Conv2d", "cpu"): 0.008, (C2, "numba", "cpu"): 0.004, (C2, "triton", "cuda"): 0.002}
INFERENCE_B = [0.5, None, 0.25, None, 20.0, None, 4.0, None]   # batch x impl x device, cuda skipped


@pytest.fixture
def asv_dir(tmp_path):
    root = tmp_path / "results"
    write_benchmarks_json(root)
    ignored = {"bench_conv.ConvForwardRatios.track_ratio": [1.5, 2.5],
               "bench_conv.ConvForward.peakmem_forward": [1e8] * 12, "bench_old.Old.time_forward": [9.0]}
    write_result(root, "cpu-box", COMMIT_A, DATE_A, {CONV: conv_times(CPU_BOX_A)})
    write_result(root, "cpu-box", COMMIT_B, DATE_B, {CONV: conv_times(CPU_BOX_B), INFERENCE: INFERENCE_B, **ignored})
    # An earlier run of the same commit in another environment: the later run wins.
    write_result(root, "cpu-box", COMMIT_B, DATE_B, {CONV: [7.0] * 12}, env="existing-py_other", started_at=1)
    write_result(root, "gpu-box", COMMIT_B, DATE_B, {CONV: conv_times(GPU_BOX_B)})
    return root


def cell(frame, case, implementation, device, machine="cpu-box"):
    row = frame[(frame["case"] == case) & (frame["implementation"] == implementation)
                & (frame["device"] == device) & (frame["machine"] == machine)]
    assert len(row) == 1, (case, implementation, device, machine)
    return row.iloc[0]


def test_load_asv_reads_product_order_and_keeps_skips_missing(asv_dir):
    frame = load_asv(asv_dir)
    assert set(frame["family"]) == {"conv", "inference"}          # peakmem, track_ and old param_names left out
    assert set(frame["commit"]) == {COMMIT_B} and set(frame["machine"]) == {"cpu-box", "gpu-box"}
    assert len(frame) == 12 + 12 + 8                              # every case once, per machine
    assert cell(frame, C2, "numba", "cpu")["seconds"] == 0.0025   # flat index 8 of the product
    assert cell(frame, C1, "triton", "cuda", "gpu-box")["seconds"] == 0.00025
    assert cell(frame, C1, "nn.Conv2d", "cpu")["seconds"] == 0.004    # the later environment's run
    skipped = cell(frame, C1, "numba", "cuda")["seconds"]
    assert math.isnan(skipped)                                    # null is missing, not zero
    inference = frame[frame["family"] == "inference"]
    assert list(inference["case"].unique()) == ["batch 1", "batch 1000"]    # repr quotes removed
    assert cell(inference, "batch 1000", "original nn.Module", "cpu")["seconds"] == 20.0
    assert (frame["threads"] == 2).all() and (frame["cpu"] == frame["machine"] + " CPU").all()


def test_two_benchmarks_of_one_family_get_separate_rows(asv_dir):
    write_result(asv_dir, "cpu-box", COMMIT_B, DATE_B, {CONV: conv_times(CPU_BOX_B), BACKWARD: [0.009, 0.003]},
                 started_at=1_795_500_000_000)
    conv = family_tables(load_asv(asv_dir), BASELINES)["conv"]
    assert list(conv.cells.index) == [f"ConvForward.time_forward: {C1}", f"ConvForward.time_forward: {C2}",
                                      f"ConvBackward.time_backward: {C1}"]
    assert conv.cells.loc[f"ConvBackward.time_backward: {C1}", "numba @ cpu (cpu-box)"] == "3.00 ms (3.00x)"


def test_commit_default_is_latest_and_prefix_selects(asv_dir):
    assert set(load_asv(asv_dir)["commit"]) == {COMMIT_B}
    older = load_asv(asv_dir, commit="abc1")
    assert set(older["commit"]) == {COMMIT_A} and set(older["machine"]) == {"cpu-box"}
    assert cell(older, C2, "numba", "cpu")["seconds"] == 0.005
    with pytest.raises(ValueError, match="unknown commit 'fff'.*abd21111.*abc10000"):
        load_asv(asv_dir, commit="fff")
    with pytest.raises(ValueError, match="ambiguous"):
        load_asv(asv_dir, commit="ab")


def test_each_machine_at_its_latest_commit_unless_one_is_asked_for(asv_dir):
    write_result(asv_dir, "old-gpu", COMMIT_A, DATE_A, {CONV: conv_times(GPU_BOX_B)})
    frame = load_asv(asv_dir)
    commits = frame.groupby("machine")["commit"].unique().map(list).to_dict()
    assert commits == {"cpu-box": [COMMIT_B], "gpu-box": [COMMIT_B], "old-gpu": [COMMIT_A]}
    assert frame.attrs["notes"] == ["machines are at different commits (each its latest): cpu-box at abd21111, "
                                    "gpu-box at abd21111, old-gpu at abc10000; --commit picks one for all"]
    conv = family_tables(frame, BASELINES)["conv"]
    assert conv.provenance == ["asv commit abd21111 (2026-11-21): cpu-box (cpu-box CPU, 2 threads), "
                               "gpu-box (gpu-box CPU, 2 threads)",
                               "asv commit abc10000 (2026-11-18): old-gpu (old-gpu CPU, 2 threads)"]
    at_b = load_asv(asv_dir, "abd2")
    assert "old-gpu" not in set(at_b["machine"])
    assert at_b.attrs["notes"] == ["old-gpu has no results at commit abd21111, so it is not in the tables; "
                                   "its latest are at abc10000 (--commit abc10000)"]
    assert load_asv(asv_dir, "abc1").attrs["notes"] == [
        "gpu-box has no results at commit abc10000, so it is not in the tables; its latest are at abd21111 "
        "(--commit abd21111)"]


def test_speedups_against_baseline_on_same_device_and_machine(asv_dir):
    tables = family_tables(load_asv(asv_dir), BASELINES)
    conv = tables["conv"]
    assert conv.baseline == "nn.Conv2d"
    assert cell(conv.numbers, C2, "numba", "cpu")["speedup"] == pytest.approx(0.010 / 0.0025)
    assert cell(conv.numbers, C2, "numba", "cpu", "gpu-box")["speedup"] == pytest.approx(0.008 / 0.004)
    triton = cell(conv.numbers, C1, "triton", "cuda", "gpu-box")
    assert triton["speedup"] == pytest.approx(0.0005 / 0.00025) and triton["baseline_device"] == "cuda"
    # conv2 has no nn.Conv2d CUDA time on gpu-box: Triton is compared with the CPU baseline, and says so.
    fallback = cell(conv.numbers, C2, "triton", "cuda", "gpu-box")
    assert fallback["speedup"] == pytest.approx(0.008 / 0.002) and fallback["baseline_device"] == "cpu"
    cells = conv.cells
    assert list(cells.index) == [C1, C2]
    assert cells.loc[C1, "nn.Conv2d @ cpu (cpu-box)"] == "4.00 ms (1.00x)"
    assert cells.loc[C1, "numba @ cpu (cpu-box)"] == "2.00 ms (2.00x)"
    assert cells.loc[C2, "numba @ cpu (cpu-box)"] == "2.50 ms (4.00x)"
    assert cells.loc[C1, "triton @ cuda (gpu-box)"] == "250 µs (2.00x)"
    assert cells.loc[C2, "triton @ cuda (gpu-box)"] == "2.00 ms (4.00x vs cpu)"
    assert cells.loc[C2, "nn.Conv2d @ cuda (gpu-box)"] == "n/a"


def test_gpu_cpu_column_with_both_devices(asv_dir):
    conv = family_tables(load_asv(asv_dir), BASELINES)["conv"]
    # Columns skipped everywhere (numba on cuda, triton on cpu) are left out; GPU/CPU follows its pair.
    assert list(conv.cells.columns) == [
        "nn.Conv2d @ cpu (cpu-box)", "numba @ cpu (cpu-box)",
        "nn.Conv2d @ cpu (gpu-box)", "nn.Conv2d @ cuda (gpu-box)", "nn.Conv2d GPU/CPU (gpu-box)",
        "numba @ cpu (gpu-box)", "triton @ cuda (gpu-box)"]
    assert conv.cells.loc[C1, "nn.Conv2d GPU/CPU (gpu-box)"] == "6.00x"          # 3 ms / 0.5 ms
    assert conv.cells.loc[C2, "nn.Conv2d GPU/CPU (gpu-box)"] == "n/a"
    assert cell(conv.numbers, C1, "nn.Conv2d", "cuda", "gpu-box")["gpu_over_cpu"] == pytest.approx(6.0)
    assert not any("GPU/CPU column is missing" in note for note in conv.notes)


def test_one_device_says_which_column_is_missing(asv_dir):
    inference = family_tables(load_asv(asv_dir), BASELINES)["inference"]
    assert list(inference.cells.columns) == ["original nn.Module @ cpu", "MatmulNet @ cpu"]   # one machine
    assert inference.cells.loc["batch 1000", "MatmulNet @ cpu"] == "4.00 s (5.00x)"
    assert inference.notes == [f"no cuda results: the GPU/CPU column is missing ({GPU_HINT})"]


def test_missing_baseline_falls_back_alphabetically_and_says_so(asv_dir):
    inference = family_tables(load_asv(asv_dir), {"conv": "nn.Conv2d"})["inference"]
    assert inference.baseline == "MatmulNet"
    assert "no baseline for 'inference'" in inference.notes[0] and "'MatmulNet'" in inference.notes[0]
    assert cell(inference.numbers, "batch 1", "original nn.Module", "cpu", "cpu-box")["speedup"] == 0.5


def test_compare_commits_ratios(asv_dir):
    conv = compare_commits(asv_dir, "abc1", "abd2")["conv"]
    assert conv.attrs == {"commit_a": COMMIT_A, "commit_b": COMMIT_B}
    slower = conv.loc[(C1, "nn.Conv2d", "cpu", "cpu-box")]
    assert (slower["time A"], slower["time B"]) == (0.003, 0.004)
    assert slower["B/A"] == pytest.approx(4 / 3) and slower["change"] == "slower"
    faster = conv.loc[(C2, "numba", "cpu", "cpu-box")]
    assert faster["B/A"] == pytest.approx(0.5) and faster["change"] == "faster"
    same = conv.loc[(C1, "numba", "cpu", "cpu-box")]
    assert same["B/A"] == pytest.approx(0.002 / 0.0019) and same["change"] == ""      # within 10%
    assert conv.loc[(C1, "triton", "cuda", "gpu-box"), "change"] == "no time at A"
    assert (C1, "numba", "cuda", "cpu-box") not in conv.index                         # skipped at both


def test_pytest_benchmark_entries(tmp_path):
    path = write_pytest_json(tmp_path / "bench.json", [
        ("test_conv_forward[conv1-nn]", {"family": "conv", "case": C1, "implementation": "nn.Conv2d",
                                         "device": "cpu", "threads": 8}, 0.004),
        ("test_conv_forward[conv1-numba]", {"family": "conv", "case": C1, "implementation": "numba",
                                            "device": "cpu", "threads": 8}, 0.001),
        ("test_old", {"threads": 8}, 1.0)])                      # no family: not part of a table
    frame = load_pytest_benchmark([path])
    assert list(frame["implementation"]) == ["nn.Conv2d", "numba"]
    assert set(frame["machine"]) == {"laptop"} and set(frame["source"]) == {"pytest-benchmark"}
    assert list(frame["seconds"]) == [0.004, 0.001] and (frame["threads"] == 8).all()
    conv = family_tables(frame, BASELINES)["conv"]
    assert conv.cells.loc[C1, "numba @ cpu"] == "1.00 ms (4.00x)"
    assert conv.provenance == ["pytest-benchmark commit f2943890: laptop (Intel Core i7, 8 threads)"]
    with pytest.raises(NoResultsError, match="no pytest-benchmark JSON at .*missing.json.*--benchmark-json"):
        load_pytest_benchmark([tmp_path / "missing.json"])


def test_write_outputs(asv_dir, tmp_path):
    tables = family_tables(load_asv(asv_dir), BASELINES)
    comparisons = compare_commits(asv_dir, COMMIT_A, COMMIT_B)
    written = write_outputs(tables, tmp_path / "out", comparisons)
    names = {p.name for p in written}
    assert names == {f"bench_{f}{kind}" for f in ("conv", "inference")
                     for kind in (".md", ".csv", ".png", "_vs.md", "_vs.csv")}
    import pandas as pd
    csv = pd.read_csv(tmp_path / "out" / "bench_conv.csv")
    assert cell(csv, C2, "numba", "cpu")["speedup"] == pytest.approx(4.0)
    md = (tmp_path / "out" / "bench_conv.md").read_text(encoding="utf-8")
    assert "2.00 ms (4.00x vs cpu)" in md and "asv commit abd21111" in md
    assert (tmp_path / "out" / "bench_conv.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_family_with_every_case_skipped_still_gets_its_chart(asv_dir, tmp_path):
    """A GPU family whose cases all failed or were skipped has no time to draw: the chart says so."""
    tables = family_tables(load_asv(asv_dir), BASELINES)
    table = tables["conv"]
    table.numbers = table.numbers.assign(seconds=math.nan)
    path = bench_table.plot(table, tmp_path / "empty.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_run_prints_tables_and_comparison(asv_dir, tmp_path, capsys):
    path = write_pytest_json(tmp_path / "bench.json", [
        ("t", {"family": "conv", "case": C1, "implementation": "nn.Conv2d", "device": "cpu"}, 0.006)])
    assert run(asv_dir, [path], vs="abc1", out_dir=tmp_path / "out", baselines=BASELINES) == 0
    out = capsys.readouterr().out
    assert "## conv: median time per call (speedup over nn.Conv2d" in out
    assert "asv commit abd21111 (2026-11-21): cpu-box (cpu-box CPU, 2 threads), gpu-box" in out
    assert "pytest-benchmark commit f2943890: laptop" in out and "note:" not in out and "nn.Conv2d @ cpu (laptop)" in out
    assert "no cuda results: the GPU/CPU column is missing" in out          # inference
    assert "## conv: commit abd21111 (B) against abc10000 (A)" in out
    assert "## conv: CPU vs GPU, median time per call" in out
    assert "## conv: percent of roofline" in out and "no work recorded" in out     # no *Work results here
    # 2 families x (3 + 3 CPU-vs-GPU + 2 roofline) + 2 x 2 --vs
    assert f"wrote 20 files to {tmp_path / 'out'}" in out
    assert "bench_conv_roofline.md, bench_conv_roofline.png" in out


def test_errors_name_the_path_and_what_to_run(tmp_path, asv_dir):
    with pytest.raises(NoResultsError, match=r"no asv results in .*nowhere.*asv run --python=same"):
        load_asv(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(NoResultsError, match="benchmarks.json is missing"):
        run(tmp_path / "empty", out_dir=tmp_path / "out")
    only_track = tmp_path / "track"
    write_benchmarks_json(only_track)
    write_result(only_track, "vm", COMMIT_A, DATE_A, {"bench_conv.ConvForwardRatios.track_ratio": [1.5, 2.5]})
    with pytest.raises(NoResultsError, match="results for 1 commit.*no time_\\* benchmark with param_names"):
        load_asv(only_track)
    with pytest.raises(ValueError, match="unknown commit '123'"):
        compare_commits(asv_dir, "123", COMMIT_B)


def test_pytest_json_alone_when_asv_has_nothing(tmp_path, capsys):
    path = write_pytest_json(tmp_path / "bench.json", [
        ("t", {"family": "conv", "case": C1, "implementation": "nn.Conv2d", "device": "cuda"}, 0.001)])
    assert run(tmp_path / "nowhere", [path], out_dir=tmp_path / "out") == 0
    out = capsys.readouterr().out
    assert "note: no asv results in" in out and "no cpu results: the GPU/CPU column is missing" in out


def test_add_arguments():
    parser = argparse.ArgumentParser()
    bench_table.add_arguments(parser)
    args = parser.parse_args(["--pytest-json", "a.json", "b.json", "--vs", "abc1", "--commit", "abd2"])
    assert (args.asv_dir, args.pytest_json, args.commit, args.vs, args.out_dir, args.gpu, args.ppp) == (
        None, ["a.json", "b.json"], "abd2", "abc1", "runs/bench_table", "H200", None)
    args = parser.parse_args(["--asv-dir", ".asv/results", "docs/results/h200/asv", "--gpu", "A100", "--ppp", "0.3"])
    assert (args.asv_dir, args.gpu, args.ppp) == ([".asv/results", "docs/results/h200/asv"], "A100", 0.3)
    for wrong in (["--ppp", "1.5"], ["--ppp", "0"], ["--gpu", "TPU"]):
        with pytest.raises(SystemExit):
            parser.parse_args(wrong)


def test_ratios_stay_readable_at_every_scale():
    from models.reports.bench_results import format_ratio
    assert [format_ratio(r) for r in (1466.2, 2.104, 0.0631, 0.0002, float("nan"))] == [
        "1,466x", "2.10x", "0.0631x", "5,000x slower", "n/a"]
