"""The asv benchmark cases under pytest-benchmark: one list of cases per family, two harnesses.

    pytest tests/benchmarks/test_benchmarks.py --benchmark-only --benchmark-json=runs/bench.json   # timings
    sysdl bench-table --pytest-json runs/bench.json                                    # the tables
In the normal test run (``--benchmark-disable``) each case runs once, as a correctness smoke
test: every family's factory checks its output against the reference before returning. Cases
that cannot run here (no CUDA; Triton without a GPU; TF32 on a CPU) are skipped, as asv skips
them. Each entry's extra_info carries the case's work (``flops``, ``bytes``), as asv's
``*Work`` classes record it, for `sysdl bench-table`.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch

from benchmarks import bench_classic, bench_conv, bench_inference, bench_layers, bench_lowering
from benchmarks.common import (PARAM_NAMES, CaseWork, ImplementationWork, TimedFamily, assert_matches, on_device,
                               threads, torch_precision)

FAMILIES = [bench_conv.CONV, bench_layers.LAYER_FAMILY, bench_inference.INFERENCE, bench_lowering.LOWERING,
            bench_classic.CLASSIC]
CASES = [pytest.param(family, *case, id=f"{family.name}-{'-'.join(case)}")
         for family in FAMILIES for case in family.all_cases()]


@pytest.mark.parametrize("family, case, implementation, device", CASES)
def test_benchmark_case(benchmark, family, case, implementation, device):
    count = threads()
    try:
        fn = family.factory(case, implementation, device)
    except NotImplementedError as why:
        pytest.skip(str(why))
    if not benchmark.disabled:                            # disabled (the smoke run): one call below is enough
        fn()                                              # warm-up: JIT compile, first oneDNN call
    flops, moved = family.work_of(case, implementation)
    benchmark.group = f"{family.name}: {case}"
    benchmark.extra_info.update(family=family.name, baseline=family.baseline, case=case, implementation=implementation,
                                device=device, threads=count, flops=flops, bytes=moved)
    benchmark(fn)


def test_every_asv_time_class_uses_a_family_and_the_shared_parameter_names():
    classes = [bench_conv.ConvForward, bench_conv.ConvThroughput, bench_layers.ScratchLayers,
               bench_inference.Inference, bench_lowering.LoweringKernels, bench_classic.ClassicConv]
    for cls in classes:
        assert issubclass(cls, TimedFamily) and cls.param_names == PARAM_NAMES
        assert cls.params == cls.family.params and cls.family in FAMILIES


C1 = "conv1 1->16 28x28"
WORK_CLASSES = [bench_conv.ConvWork, bench_lowering.LoweringWork, bench_layers.LayerWork, bench_inference.InferenceWork,
                bench_classic.ClassicWork]


def test_classic_layers_cover_three_networks_at_two_batches():
    layers = bench_classic.layers()
    assert len(layers) >= 20
    assert {label.split()[0] for label in layers} == {"alexnet", "vgg19", "resnet50"}
    assert len(bench_classic.CLASSIC.cases) == 2 * len(layers)
    # a layer's work is its batch times one image's: VGG19's 64->64 224x224 3x3, 2 x 64 x 64 x 9 x 224^2 MACs
    flops, moved = bench_classic.classic_work("vgg19 features.2 64->64 224x224 k3 p1, batch 4", "nn.Conv2d")
    assert flops == 4 * (2 * 64 * 64 * 9 * 224 * 224 + 64 * 224 * 224)
    assert moved == 4 * (4 * 2 * 64 * 224 * 224) + 4 * (64 * 64 * 9 + 64)


def test_a_slow_classic_case_is_skipped_saying_why(monkeypatch):
    monkeypatch.setattr(bench_classic, "SKIP_RATES", {"numba": 1e6})
    with pytest.raises(NotImplementedError, match=r"numba would take about \d+ s a call"):
        bench_classic.classic_forward("vgg19 features.2 64->64 224x224 k3 p1, batch 4", "numba")


def test_every_family_records_its_work_in_asv():
    assert [cls.family for cls in WORK_CLASSES] == [bench_conv.CONV, bench_lowering.LOWERING,
                                                    bench_layers.LAYER_FAMILY, bench_inference.INFERENCE,
                                                    bench_classic.CLASSIC]
    assert {cls.family.name for cls in WORK_CLASSES} == {family.name for family in FAMILIES}
    for cls in WORK_CLASSES:
        assert issubclass(cls, CaseWork) and not inspect.isabstract(cls)
        assert (cls.track_flops.unit, cls.track_bytes.unit) == ("FLOP", "B")
        per_implementation = issubclass(cls, ImplementationWork)     # inference: two networks
        assert cls.param_names == (["case", "implementation"] if per_implementation else ["case"])
        assert cls.params == [list(cls.family.cases), list(cls.family.implementations)][:len(cls.param_names)]
    assert inspect.isabstract(CaseWork) and inspect.isabstract(ImplementationWork)   # never run by asv
    work = bench_conv.ConvWork()
    work.setup(C1)
    assert (work.track_flops(C1), work.track_bytes(C1)) == bench_conv.CONV.work_of(C1, "nn.Conv2d")


@pytest.mark.parametrize("family, case, flops, moved", [
    # batch 128 x (2 * 16*26*26*9 multiply-adds + 16*26*26 bias adds); x, weights + bias, output: fp32
    (bench_conv.CONV, C1, 128 * (2 * 16 * 676 * 9 + 16 * 676), 4 * (128 * 784 + 16 * 9 + 16 + 128 * 16 * 676)),
    # 1000 rows x (2 * 1152 * 60 + 60 bias adds + 60 ReLUs); A, B, bias read, the output written
    (bench_lowering.LOWERING, "gemm+bias+relu 1000x1152x60", 1000 * (2 * 1152 * 60 + 120),
     4 * (1000 * 1152 + 1152 * 60 + 60 + 1000 * 60)),
    # no arithmetic: the input read, 1000*24*24 rows of 3*3*16 written
    (bench_lowering.LOWERING, "im2col 1000x16x26x26 3x3", 0, 4 * (1000 * 16 * 26 * 26 + 1000 * 576 * 144)),
    # backward of a dense layer 100 -> 10: dW and dX (2 GEMMs) + bias-gradient sums; reads g, x, W+b; writes dX, dW+db
    (bench_layers.LAYER_FAMILY, "fc2 backward", 128 * (2 * 2 * 100 * 10 + 10),
     4 * (128 * 10 + 128 * 100 + 1010 + 128 * 100 + 1010)),
    # the first layer's input is the image: dW only (one GEMM) + the bias gradient, no dX written
    (bench_layers.LAYER_FAMILY, "conv backward", 128 * (2 * 16 * 784 * 9 + 16 * 784),
     4 * (128 * 16 * 784 + 128 * 784 + 160 + 160)),
])
def test_work_per_case_counts_flops_and_compulsory_bytes(family, case, flops, moved):
    works = {}
    for implementation in family.implementations:       # the operation's minimum: the same for every one
        try:
            works[implementation] = family.work_of(case, implementation)
        except NotImplementedError:                      # no such case anywhere (TF32 im2col)
            continue
    assert family.baseline in works and set(works.values()) == {(flops, moved)}
    with pytest.raises(ValueError, match="implementation"):
        family.work_of(case, "cudnn")


def test_inference_work_depends_on_the_network_each_implementation_runs(monkeypatch, tmp_path):
    from sysdl_kernels.flops import memory_bytes, totals
    monkeypatch.setenv("SYSDL_BASE_CHECKPOINT", str(tmp_path / "missing-base.pt"))
    monkeypatch.setenv("SYSDL_PRUNED_CHECKPOINT", str(tmp_path / "missing-pruned.pt"))
    bench_inference.load.cache_clear()
    try:
        base, pruned = (bench_inference.load(kind)[0].config.cost() for kind in ("base", "pruned"))
        flops, moved = bench_inference.inference_work("batch 1000", "original nn.Module")
        assert flops == 1000 * 4_734_370                       # sysdl_kernels.flops' base-network figure
        assert moved == sum(memory_bytes(cost, batch=1000) for cost in base)
        assert bench_inference.inference_work("batch 1000", "MatmulNet")[0] == 1000 * totals(pruned)["flops"]
        per_image = bench_inference.inference_work("batch 1", "MatmulNet")[1]   # weights read once per batch
        assert per_image == sum(memory_bytes(cost, batch=1) for cost in pruned) * 1000 > moved / 100
    finally:
        bench_inference.load.cache_clear()


def test_tf32_is_cuda_only_and_im2col_has_none():
    with pytest.raises(NotImplementedError, match="TF32 is a tensor-core setting, CUDA only"):
        bench_conv.conv_forward(C1, "nn.Conv2d tf32", "cpu")
    with pytest.raises(NotImplementedError, match="TF32 is a tensor-core setting, CUDA only"):
        bench_lowering.lowering_case("gemm+bias+relu 1000x1152x60", "torch tf32", "cpu")
    with pytest.raises(NotImplementedError, match="no arithmetic"):
        bench_lowering.lowering_case("im2col 1000x16x26x26 3x3", "triton tf32", "cpu")
    with pytest.raises(NotImplementedError, match="no arithmetic"):     # no such case anywhere: no work
        bench_lowering.LOWERING.work_of("im2col 1000x16x26x26 3x3", "torch tf32")


def test_torch_precision_sets_both_switches_and_restores_them():
    cudnn, cublas = lambda: torch.backends.cudnn.allow_tf32, lambda: torch.backends.cuda.matmul.allow_tf32
    before = cudnn(), cublas()
    try:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = True, False
        with torch_precision("ieee"):
            assert (cudnn(), cublas()) == (False, False)
            with torch_precision("tf32"):
                assert (cudnn(), cublas()) == (True, True)
            assert (cudnn(), cublas()) == (False, False)
        assert (cudnn(), cublas()) == (True, False)
        with pytest.raises(ValueError, match="precision"):
            torch_precision("bf16")
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


def test_on_device_leaves_cpu_callables_alone():
    fn = lambda: 1           # noqa: E731
    assert on_device(fn, "cpu", "ieee") is fn


def test_tf32_tolerance_is_looser_and_grows_with_the_sum_length():
    expected = np.linspace(-1.0, 1.0, 101)
    off = expected + 2e-3                                   # 2e-3 of the scale: TF32 rounding, not fp32's
    with pytest.raises(AssertionError):
        assert_matches(off, expected, "ieee")
    assert_matches(off, expected, "tf32", depth=1)
    with pytest.raises(AssertionError):
        assert_matches(expected + 0.02, expected, "tf32", depth=1)
    assert_matches(expected + 0.02, expected, "tf32", depth=64)     # 5e-3 * sqrt(64) = 0.04 of the scale


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


@pytest.mark.parametrize("implementation", ["triton", "triton-im2col"])
def test_triton_conv_cases_check_against_torch_under_the_interpreter(monkeypatch, implementation):
    """The implicit-GEMM and the explicit im2col Triton convolutions, on a small shape."""
    from benchmarks import common
    from sysdl_kernels import triton_ops
    if triton_ops.mode() != "interpreter":
        pytest.skip("runs under TRITON_INTERPRET=1 (tests/conftest.py) on a CPU")
    monkeypatch.setitem(common.CONV_SHAPES, "small 3->5 9x9", (3, 5, 9, 3))
    monkeypatch.setattr(bench_conv, "BATCH", 2)
    monkeypatch.setattr(bench_conv, "require_compiled_triton", lambda: None)
    assert bench_conv.conv_forward("small 3->5 9x9", implementation, "cpu")().shape == (2, 5, 7, 7)


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
