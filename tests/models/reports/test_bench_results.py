"""models.reports.bench_results: several asv directories (this machine's and a GPU machine's
committed copy, at different commits) and the work (FLOPs, bytes) read from the results."""

from __future__ import annotations

import math
import shutil

import pytest

from models.reports.bench_results import NoResultsError, default_asv_dirs, load_asv, load_pytest_benchmark
from tests.models.reports.results_trees import (CPU_BOX_LOWERING, COMMIT_A, COMMIT_B, DATE_A, G1, G2,
                                                H200_NODE_LOWERING, INFERENCE, INFERENCE_FLOPS, LOWERING,
                                                write_benchmarks_json, write_cpu_and_gpu_dirs, write_pytest_json,
                                                write_result)


@pytest.fixture
def two_dirs(tmp_path):
    return write_cpu_and_gpu_dirs(tmp_path)


def row(frame, machine, implementation, device, case=G1):
    match = frame[(frame["machine"] == machine) & (frame["implementation"] == implementation)
                  & (frame["device"] == device) & (frame["case"] == case)]
    assert len(match) == 1, (machine, implementation, device, case)
    return match.iloc[0]


def test_each_directory_with_its_own_machine_and_commit(two_dirs):
    cpu, gpu = two_dirs
    frame = load_asv([cpu, gpu])
    assert dict(zip(frame["machine"], frame["commit"])) == {"cpu-box": COMMIT_B, "h200-node": COMMIT_A}
    assert dict(zip(frame["machine"], frame["results_dir"])) == {"cpu-box": str(cpu), "h200-node": str(gpu)}
    assert row(frame, "h200-node", "torch tf32", "cuda")["seconds"] == 10e-6
    assert math.isnan(row(frame, "cpu-box", "triton", "cuda")["seconds"])
    assert frame.attrs["notes"] == ["machines are at different commits (each its latest): cpu-box at abd21111, "
                                    "h200-node at abc10000; --commit picks one for all"]


def test_work_per_case_is_read_from_the_track_results_beside_each_timing(two_dirs):
    frame = load_asv(list(two_dirs))
    for machine, device in (("cpu-box", "cpu"), ("h200-node", "cuda")):
        for implementation in ("torch", "triton"):
            assert tuple(row(frame, machine, implementation, device)[["flops", "bytes"]]) == (1.3836e8, 5.12472e6)
        assert tuple(row(frame, machine, "torch", device, G2)[["flops", "bytes"]]) == (0.0, 3.7504e8)


def test_work_per_implementation_lands_on_its_implementation(tmp_path):
    root = tmp_path / "results"
    write_benchmarks_json(root)
    times = [0.5, None, 0.25, None, 20.0, None, 4.0, None]          # [batch 1, 1000] x [original, MatmulNet] x devices
    write_result(root, "cpu-box", COMMIT_A, DATE_A, {INFERENCE: times, INFERENCE_FLOPS: [4.7e9, 1.1e8, 4.7e9, 1.1e8]})
    frame = load_asv([root])
    assert row(frame, "cpu-box", "original nn.Module", "cpu", "batch 1000")["flops"] == 4.7e9
    assert row(frame, "cpu-box", "MatmulNet", "cuda", "batch 1")["flops"] == 1.1e8
    assert math.isnan(row(frame, "cpu-box", "MatmulNet", "cpu", "batch 1")["bytes"])    # not recorded


def test_timings_without_work_results_have_nan_work(two_dirs):
    cpu, _ = two_dirs
    write_result(cpu, "old-box", COMMIT_A, DATE_A, {LOWERING: CPU_BOX_LOWERING})     # before the *Work classes
    frame = load_asv([cpu])
    assert math.isnan(row(frame, "old-box", "torch", "cpu")["flops"])
    assert row(frame, "cpu-box", "torch", "cpu")["flops"] == 1.3836e8


def test_a_copy_counts_once_and_a_shared_name_is_told_apart_by_directory(two_dirs, tmp_path):
    cpu, gpu = two_dirs
    shutil.copytree(gpu / "h200-node", cpu / "h200-node")                   # the same results, copied
    frame = load_asv([cpu, gpu])
    assert sorted(set(frame["machine"])) == ["cpu-box", "h200-node"] and len(frame) == 24
    assert set(frame.loc[frame["machine"] == "h200-node", "results_dir"]) == {str(cpu)}
    other = tmp_path / "other"                                              # another host that is also "cpu-box"
    write_benchmarks_json(other)
    write_result(other, "cpu-box", COMMIT_A, DATE_A, {LOWERING: H200_NODE_LOWERING}, started_at=5)
    frame = load_asv([cpu, other])
    assert {f"cpu-box ({cpu})", f"cpu-box ({other})"} <= set(frame["machine"])


def test_directories_without_results_are_named_and_all_empty_is_an_error(two_dirs, tmp_path):
    cpu, _ = two_dirs
    frame = load_asv([tmp_path / "nowhere", cpu])
    assert set(frame["machine"]) == {"cpu-box"}
    assert frame.attrs["notes"][0].startswith(f"no asv results in {tmp_path / 'nowhere'} (no such directory)")
    with pytest.raises(NoResultsError, match="nowhere.*; no asv results in .*empty"):
        (tmp_path / "empty").mkdir()
        load_asv([tmp_path / "nowhere", tmp_path / "empty"])


def test_commit_selects_across_directories_and_names_the_machines_elsewhere(two_dirs):
    frame = load_asv(list(two_dirs), commit="abc1")
    assert set(frame["machine"]) == {"h200-node"}
    assert frame.attrs["notes"] == ["cpu-box has no results at commit abc10000, so it is not in the tables; its "
                                    "latest are at abd21111 (--commit abd21111)"]


def test_default_directories_are_this_machines_and_every_committed_gpu_copy(two_dirs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "docs" / "results" / "notes-only").mkdir()                 # no asv/ inside: not a results copy
    assert [str(p) for p in default_asv_dirs()] == [".asv/results", "docs/results/h200-node/asv"]


def test_pytest_benchmark_work_comes_from_extra_info(tmp_path):
    info = {"family": "lowering", "case": G1, "implementation": "torch", "device": "cpu"}
    path = write_pytest_json(tmp_path / "bench.json", [("a", {**info, "flops": 1.5e8, "bytes": 6e6}, 0.001),
                                                       ("b", {**info, "implementation": "numba"}, 0.002)])
    frame = load_pytest_benchmark([path])
    assert list(frame["flops"][:1]) == [1.5e8] and list(frame["bytes"][:1]) == [6e6]
    assert math.isnan(frame["flops"].iloc[1])                                # older JSON: no work recorded
