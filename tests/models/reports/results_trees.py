"""Small asv result trees and pytest-benchmark JSON files, in the formats asv 0.6.6 and
pytest-benchmark 5.3.1 write (see .asv/results for a real tree), for the bench-table tests."""

from __future__ import annotations

import itertools
import json

COMMIT_A = "abc1" + "0" * 36          # older
COMMIT_B = "abd2" + "1" * 36          # newer: the default
DATE_A, DATE_B = 1_795_000_000_000, 1_795_300_000_000     # commit dates, ms since the epoch
C1, C2 = "conv1 1->16 28x28", "conv2 16->16 26x26"
CONV = "bench_conv.ConvForward.time_forward"
INFERENCE = "bench_inference.Inference.time_predict"
BACKWARD = "bench_conv.ConvBackward.time_backward"
G1, G2 = "gemm+bias+relu 1000x1152x60", "im2col 1000x16x26x26 3x3"
LOWERING = "bench_lowering.LoweringKernels.time_kernel"
LOWERING_FLOPS, LOWERING_BYTES = "bench_lowering.LoweringWork.track_flops", "bench_lowering.LoweringWork.track_bytes"
PARAMS = {CONV: [[C1, C2], ["nn.Conv2d", "numba", "triton"], ["cpu", "cuda"]],
          BACKWARD: [[C1], ["nn.Conv2d", "numba"], ["cpu"]],
          INFERENCE: [["batch 1", "batch 1000"], ["original nn.Module", "MatmulNet"], ["cpu", "cuda"]],
          LOWERING: [[G1, G2], ["torch", "torch tf32", "triton"], ["cpu", "cuda"]]}
INFERENCE_FLOPS = "bench_inference.InferenceWork.track_flops"
WORK_PARAMS = {LOWERING_FLOPS: PARAMS[LOWERING][:1], LOWERING_BYTES: PARAMS[LOWERING][:1],     # per case
               INFERENCE_FLOPS: PARAMS[INFERENCE][:2]}                                        # per implementation
# benchmarks/bench_machine.py: the theoretical peak (no params), GEMM rates per path (GFLOP/s),
# triad bandwidth per level (GB/s)
FMA_PEAK = "bench_machine.MachineCompute.track_fma_peak"
GEMM = "bench_machine.MachineCompute.track_gemm"
TRIAD = "bench_machine.MachineBandwidth.track_triad"
GEMM_PATHS, LEVELS = ["torch.mm", "F.linear", "numpy @", "sysdl numba"], ["L1", "L2", "L3", "memory"]
MACHINE_PARAMS = {FMA_PEAK: ([], []), GEMM: (["path"], [GEMM_PATHS]), TRIAD: (["level"], [LEVELS])}
COLUMNS = ["result", "params", "version", "started_at", "duration", "stats_ci_99_a", "stats_ci_99_b",
           "stats_q_25", "stats_q_75", "stats_number", "stats_repeat", "samples", "profile"]
ENV = "existing-py_work_main_.venv_bin_python3.11-OPENBLAS_THREAD_TIMEOUT4"


def flat_times(benchmark: str, times: dict) -> list:
    """asv's flat result list for a benchmark of PARAMS: times maps (case, implementation, device)
    -> seconds; in itertools.product order, None where skipped."""
    return [times.get(key) for key in itertools.product(*PARAMS[benchmark])]


def conv_times(times: dict) -> list:
    """asv's flat result list for CONV (see flat_times)."""
    return flat_times(CONV, times)


def write_benchmarks_json(root):
    def spec(name, kind, param_names, params):
        return {"name": name, "type": kind, "param_names": param_names, "unit": "seconds",
                "params": [[repr(v) for v in p] for p in params], "version": "v1", "timeout": 300}
    index = {name: spec(name, "time", ["case", "implementation", "device"], params) for name, params in PARAMS.items()}
    index.update({name: {**spec(name, "track", ["case", "implementation"][:len(params)], params),
                         "unit": "FLOP" if name.endswith("flops") else "B"} for name, params in WORK_PARAMS.items()})
    index.update({name: {**spec(name, "track", param_names, params), "unit": "GB/s" if name == TRIAD else "GFLOP/s"}
                  for name, (param_names, params) in MACHINE_PARAMS.items()})
    index["bench_conv.ConvForward.peakmem_forward"] = spec("bench_conv.ConvForward.peakmem_forward", "peakmem",
                                                           ["case", "implementation", "device"], PARAMS[CONV])
    index["bench_conv.ConvForwardRatios.track_ratio"] = spec("bench_conv.ConvForwardRatios.track_ratio", "track",
                                                             ["shape"], [[C1, C2]])
    index["bench_old.Old.time_forward"] = spec("bench_old.Old.time_forward", "time", ["shape", "implementation"],
                                               [[C1], ["numba"]])
    root.mkdir(parents=True, exist_ok=True)
    (root / "benchmarks.json").write_text(json.dumps({**index, "version": 2}))


def write_result(root, machine, commit, date, results: dict, env=ENV, started_at=1_795_400_000_000):
    """One asv result file: results maps benchmark name -> flat list of values (its PARAMS)."""
    info = {"arch": "x86_64", "cpu": f"{machine} CPU", "machine": machine, "num_cpu": "2", "os": "Linux",
            "ram": "25276514304"}
    (root / machine).mkdir(parents=True, exist_ok=True)
    (root / machine / "machine.json").write_text(json.dumps({**info, "version": 1}))
    rows = {}
    for name, values in results.items():
        all_params = {**PARAMS, **WORK_PARAMS, **{n: params for n, (_, params) in MACHINE_PARAMS.items()}}
        params = [[repr(v) for v in p] for p in all_params.get(name, [[C1, C2]])]
        stats = [None if v is None else v * 0.9 for v in values]
        rows[name] = [values, params, "v1", started_at, 3.5, stats, stats, stats, stats,
                      [None if v is None else 10 for v in values], [None if v is None else 5 for v in values]]
    data = {"commit_hash": commit, "env_name": env, "date": date,
            "params": {**info, "python": "/work/main/.venv/bin/python3.11"},
            "python": "/work/main/.venv/bin/python3.11", "requirements": {},
            "env_vars": {"OPENBLAS_THREAD_TIMEOUT": "4"}, "result_columns": COLUMNS, "results": rows,
            "durations": {"<build>": 4e-05}, "version": 2}
    (root / machine / f"{commit[:8]}-{env}.json").write_text(json.dumps(data))


def write_pytest_json(path, entries, node="laptop"):
    """A --benchmark-json file: entries are (name, extra_info, median seconds)."""
    benchmarks = [{"group": "conv forward", "name": name, "fullname": f"tests/benchmarks/test_benchmarks.py::{name}",
                   "params": None, "param": None, "extra_info": extra, "options": {"min_rounds": 5},
                   "stats": {"min": median * 0.9, "max": median * 1.2, "mean": median * 1.01, "median": median,
                             "rounds": 20, "iterations": 1}}
                  for name, extra, median in entries]
    path.write_text(json.dumps({
        "machine_info": {"node": node, "processor": "x86_64", "python_version": "3.11.2",
                         "cpu": {"brand_raw": "Intel Core i7", "count": 8}},
        "commit_info": {"id": "f294389" + "0" * 33, "dirty": True, "project": "sysdl", "branch": "main"},
        "benchmarks": benchmarks, "datetime": "2026-11-20T10:00:00+00:00", "version": "5.3.1"}))
    return path


# LOWERING's flat results: [G1, G2] x [torch, torch tf32, triton] x [cpu, cuda]; None: skipped
CPU_BOX_LOWERING = [974e-6, None, None, None, None, None,
                    8.03, None, None, None, None, None]
H200_NODE_LOWERING = [500e-6, 20e-6, None, 10e-6, None, 25e-6,
                      4.0, 100e-6, None, None, None, 120e-6]
LOWERING_WORK = {LOWERING_FLOPS: [1.3836e8, 0.0], LOWERING_BYTES: [5.12472e6, 3.7504e8]}   # per case


def write_cpu_and_gpu_dirs(root):
    """(cpu, gpu): root/.asv/results with cpu-box's CPU times at COMMIT_B, and a GPU machine's
    committed copy root/docs/results/h200-node/asv with its CUDA times at the older COMMIT_A."""
    cpu, gpu = root / ".asv" / "results", root / "docs" / "results" / "h200-node" / "asv"
    for results in (cpu, gpu):
        write_benchmarks_json(results)
    write_result(cpu, "cpu-box", COMMIT_B, DATE_B, {LOWERING: CPU_BOX_LOWERING, **LOWERING_WORK})
    write_result(gpu, "h200-node", COMMIT_A, DATE_A, {LOWERING: H200_NODE_LOWERING, **LOWERING_WORK})
    return cpu, gpu


def machine_figures(fma_peak: float | None, gemm: dict, triad: dict) -> dict:
    """bench_machine's results for write_result: GFLOP/s and GB/s as asv records them; a path or
    level missing from gemm or triad is skipped (None), fma_peak None leaves the peak out."""
    figures = {GEMM: [gemm.get(path) for path in GEMM_PATHS], TRIAD: [triad.get(level) for level in LEVELS]}
    return figures if fma_peak is None else {FMA_PEAK: [fma_peak], **figures}
