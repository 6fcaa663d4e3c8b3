"""The asv benchmark cases under pytest-benchmark: one list of cases per family, two harnesses.

    pytest tests/benchmarks/test_benchmarks.py --benchmark-only --benchmark-json=runs/bench.json   # timings
    sysdl bench-table --pytest-json runs/bench.json                                    # the tables
In the normal test run (``--benchmark-disable``) each case runs once, as a correctness smoke
test: every family's factory checks its output against the reference before returning. Cases
that cannot run here (no CUDA; Triton without a GPU) are skipped, as asv skips them.
"""

from __future__ import annotations

import pytest
import torch

from benchmarks import bench_conv, bench_inference, bench_layers, bench_lowering
from benchmarks.common import PARAM_NAMES, TimedFamily, threads

FAMILIES = [bench_conv.CONV, bench_layers.LAYER_FAMILY, bench_inference.INFERENCE, bench_lowering.LOWERING]
CASES = [pytest.param(family, *case, id=f"{family.name}-{'-'.join(case)}")
         for family in FAMILIES for case in family.all_cases()]


@pytest.mark.parametrize("family, case, implementation, device", CASES)
def test_benchmark_case(benchmark, family, case, implementation, device):
    count = threads()
    try:
        fn = family.factory(case, implementation, device)
    except NotImplementedError as why:
        pytest.skip(str(why))
    fn()                                                  # warm-up: JIT compile, first oneDNN call
    benchmark.group = f"{family.name}: {case}"
    benchmark.extra_info.update(family=family.name, baseline=family.baseline, case=case, implementation=implementation,
                                device=device, threads=count)
    benchmark(fn)


def test_every_asv_time_class_uses_a_family_and_the_shared_parameter_names():
    classes = [bench_conv.ConvForward, bench_conv.ConvThroughput, bench_layers.ScratchLayers,
               bench_inference.Inference, bench_lowering.LoweringKernels]
    for cls in classes:
        assert issubclass(cls, TimedFamily) and cls.param_names == PARAM_NAMES
        assert cls.params == cls.family.params and cls.family in FAMILIES


def test_a_missing_cuda_device_is_a_skip_not_a_zero():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(NotImplementedError, match="CUDA"):
        bench_conv.conv_forward("conv2 16->16 26x26", "nn.Conv2d", "cuda")
    with pytest.raises(NotImplementedError):
        bench_conv.conv_forward("conv2 16->16 26x26", "triton", "cpu")


def test_unknown_names_are_errors_not_skips():
    with pytest.raises(ValueError, match="implementation"):
        bench_conv.conv_forward("conv2 16->16 26x26", "cudnn", "cpu")
    with pytest.raises(ValueError, match="device"):
        bench_layers.layer_case("pool forward", "numba", "tpu")
    with pytest.raises(ValueError, match="case"):
        bench_inference.inference_case("batch 3", "MatmulNet", "cpu")


@pytest.mark.parametrize("case", list(bench_lowering.SHAPES))
def test_triton_cases_check_against_torch_under_the_interpreter(monkeypatch, case):
    """On a GPU the triton cases compare their kernels to torch before timing; here the same
    comparison runs under the interpreter on a small version of each shape."""
    from sysdl_kernels import triton_ops
    if triton_ops.mode() != "interpreter":
        pytest.skip("runs under TRITON_INTERPRET=1 (tests/conftest.py) on a CPU")
    kind, shape = bench_lowering.SHAPES[case]
    small = (37, 45, 9) if kind == "gemm" else (2, 3, 9, 7, 3)
    monkeypatch.setitem(bench_lowering.SHAPES, case, (kind, small))
    monkeypatch.setattr(bench_lowering, "require_compiled_triton", lambda: None)
    fn = bench_lowering.lowering_case(case, "triton", "cpu")
    assert fn().shape[0] == (37 if kind == "gemm" else 2 * 7 * 5)


def test_inference_stands_in_seeded_weights_when_no_checkpoint(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("SYSDL_BASE_CHECKPOINT", str(tmp_path / "missing-base.pt"))
    monkeypatch.setenv("SYSDL_PRUNED_CHECKPOINT", str(tmp_path / "missing-pruned.pt"))
    bench_inference.load.cache_clear()
    try:
        model, payload = bench_inference.load("pruned")
        assert payload is None and model.config.hidden_units == bench_inference.STAND_IN_PRUNED["hidden_units"]
        assert "seeded random weights" in capsys.readouterr().out
        with pytest.raises(NotImplementedError, match="base.pt"):
            bench_inference.PrunedModel().setup()
    finally:
        bench_inference.load.cache_clear()
