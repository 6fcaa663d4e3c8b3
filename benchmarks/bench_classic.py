"""asv benchmarks: the distinct conv layers of AlexNet, VGG19 and ResNet-50, at batch 1 and 4.

    nn.Conv2d (oneDNN / cuDNN) | torch-im2col (sysdl conv2d_torch) | numba | triton (implicit GEMM, CUDA)

The layers come from sysdl's own network tables (sysdl_kernels.cnn_zoo.distinct_conv_layers):
every AlexNet layer, every distinct VGG19 layer and ten ResNet-50 layers covering its 7x7 stem,
1x1 reductions and expansions, 3x3 bottlenecks, stride-2 3x3 and stride-2 1x1 downsampling:
24 layers, 48 cases. ``ClassicConv.time_forward`` times each, after a check against F.conv2d;
``ClassicWork`` records FLOPs and bytes, from which `sysdl bench-table` computes GFLOP/s, percent
of the roofline and the PALEO prediction of each layer (so the table shows the measured PPP per
layer). An implementation is skipped, saying why, where one call would take more than
``SLOW_CALL_SECONDS`` at a rate it reaches here (``SKIP_RATES``): none of the four does on these
layers at these batches (the slowest call, Numba on VGG19's 64->64 224x224 layer at batch 4, is
about 1 s); the reference loops and numpy-im2col of the conv family are left out (the loops would
take minutes a layer).

A full asv run of this family starts about 380 processes (asv starts one per case,
implementation and device): about 25 minutes here. `asv run -b bench_classic` runs it alone;
`sysdl pipeline` leaves it out of its timings; the tests run each case once.
"""

from __future__ import annotations

import functools
import zlib

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.bench_conv import _numpy_conv, _torch_conv
from benchmarks.common import (CaseWork, Family, TimedFamily, assert_matches, cpu_only, on_device, require_device,
                               split_precision)
from sysdl_kernels.cnn_zoo import distinct_conv_layers
from sysdl_kernels.flops import Conv, analyze, memory_bytes

BATCHES = (1, 4)
RESNET50_LAYERS = ("conv1 ", "layer1.0.conv1 ", "layer1.0.conv2 ", "layer1.0.conv3 ", "layer2.0.conv2 ",
                   "layer2.1.conv2 ", "layer3.0.downsample.0 ", "layer3.1.conv2 ", "layer4.0.conv3 ",
                   "layer4.1.conv2 ")
IMPLEMENTATIONS = ("nn.Conv2d", "torch-im2col", "numba", "triton")
# A GFLOP/s each reaches on these layers here at least (Numba: 13 on VGG19's largest); a call
# estimated above SLOW_CALL_SECONDS at that rate is skipped (it would make the family unrunnable).
SKIP_RATES = {"numba": 10e9}
SLOW_CALL_SECONDS = 5.0


@functools.lru_cache(maxsize=None)
def layers() -> dict[str, dict]:
    """label -> geometry of the 24 layers (see the module docstring for which)."""
    every = distinct_conv_layers(("alexnet", "vgg19", "resnet50"))
    return {label: g for label, g in every.items()
            if not label.startswith("resnet50") or any(f" {name}" in label for name in RESNET50_LAYERS)}


def _case_label(layer: str, batch: int) -> str:
    return f"{layer}, batch {batch}"


@functools.lru_cache(maxsize=None)
def cases() -> dict[str, tuple[str, int]]:
    """case label -> (layer label, batch)."""
    return {_case_label(layer, batch): (layer, batch) for layer in layers() for batch in BATCHES}


def geometry(case: str) -> tuple[dict, int]:
    if case not in cases():
        raise ValueError(f"unknown classic-layer case {case!r}")
    layer, batch = cases()[case]
    return layers()[layer], batch


@functools.lru_cache(maxsize=None)
def layer_cost(case: str):
    """sysdl_kernels.flops' LayerCost of one image through the case's layer."""
    g, _ = geometry(case)
    conv = Conv(g["out_channels"], g["kernel"], g["stride"], g["padding"])
    return analyze([conv], (g["in_channels"], g["height"], g["width"]))[0]


def classic_work(case: str, implementation: str) -> tuple[float, float]:
    """(FLOPs, bytes) of one batch, the same for every implementation (the operation's minimum)."""
    _, batch = geometry(case)
    cost = layer_cost(case)
    return batch * cost.flops, memory_bytes(cost, batch=batch)


@functools.lru_cache(maxsize=2)
def _inputs(case: str):
    """(x, weight, bias) float32 numpy arrays, seeded by the case label; weights scaled 1/sqrt(fan-in)."""
    g, batch = geometry(case)
    kh, kw = g["kernel"]
    rng = np.random.default_rng(zlib.crc32(case.encode()))
    x = rng.standard_normal((batch, g["in_channels"], g["height"], g["width"]), dtype=np.float32)
    w = rng.standard_normal((g["out_channels"], g["in_channels"], kh, kw), dtype=np.float32)
    w /= np.float32(np.sqrt(g["in_channels"] * kh * kw))
    return x, w, rng.standard_normal(g["out_channels"], dtype=np.float32)


def _skip_if_slow(case: str, implementation: str) -> None:
    rate = SKIP_RATES.get(implementation)
    if rate is None:
        return
    seconds = classic_work(case, implementation)[0] / rate
    if seconds > SLOW_CALL_SECONDS:
        raise NotImplementedError(f"{implementation} would take about {seconds:.0f} s a call here (at "
                                  f"~{rate / 1e9:.0f} GFLOP/s), over the {SLOW_CALL_SECONDS:.0f} s limit")


def classic_forward(case: str, implementation: str, device: str = "cpu"):
    """A zero-argument callable running the case's layer on ``implementation`` and ``device``,
    checked against F.conv2d (fp32, CPU) first."""
    require_device(device)
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"implementation must be one of {IMPLEMENTATIONS}, got {implementation!r}")
    g, _ = geometry(case)
    name, precision = split_precision(implementation)
    _skip_if_slow(case, name)
    x, w, b = _inputs(case)
    geometry_kwargs = {"stride": g["stride"], "padding": g["padding"]}
    if name == "numba":
        cpu_only(implementation, device)
        kernel = _numpy_conv(name)
        fn = lambda: kernel(x, w, b, **geometry_kwargs)
    else:
        run = _torch_conv(name, precision)
        xt, wt, bt = (torch.from_numpy(a).to(device) for a in (x, w, b))
        fn = on_device(lambda: run(xt, wt, bt, **geometry_kwargs), device, precision)
    expected = F.conv2d(*(torch.from_numpy(a) for a in (x, w, b)), **geometry_kwargs)
    assert_matches(fn(), expected, precision, depth=w[0].size)
    return fn


CLASSIC = Family("classic", tuple(cases()), IMPLEMENTATIONS, classic_forward, classic_work)


class ClassicConv(TimedFamily):
    family = CLASSIC
    params = CLASSIC.params
    timeout = 600

    def time_forward(self, case, implementation, device):
        self.run()


class ClassicWork(CaseWork):
    family = CLASSIC
    params = [list(CLASSIC.cases)]
