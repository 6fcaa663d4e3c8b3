"""The implicit-GEMM convolution kernel (triton_ops.conv2d) against F.conv2d in float64.

Under TRITON_INTERPRET=1 here (tests/conftest.py), compiled on a CUDA GPU (`sysdl gpu-check`).
Problems come from the oracle's conv strategy (H != W, non-square kernels, stride up to 3,
asymmetric padding, dilation, batch 1, non-contiguous input, with and without bias: 100 of them),
plus named shapes that cross the kernel's tile edges (C = 1, O not a multiple of the tile, more
output pixels than one tile, K over several K steps) and every input layout.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from sysdl_kernels import triton_ops
from tests.oracle import TF32_TOLERANCE, assert_close, conv2d_oracle, conv_cases

DEVICE = triton_ops.device()


def _oracle(x, w, b, relu, **geometry):
    out = torch.from_numpy(conv2d_oracle(x, w, b, **geometry)[0])
    return out.relu() if relu else out


def _tensor(a):
    return None if a is None else torch.from_numpy(np.ascontiguousarray(a)).float().to(DEVICE)


@settings(max_examples=100, deadline=None)
@given(case=conv_cases(dtype=np.float32), relu=st.booleans(), channels_last=st.booleans())
def test_matches_f_conv2d_on_random_awkward_problems(case, relu, channels_last):
    geometry = {k: case[k] for k in ("stride", "padding", "dilation")}
    x = torch.from_numpy(case["x"]).to(DEVICE)                     # Fortran-ordered half of the time
    x = x.permute(0, 2, 3, 1) if channels_last else x              # the same values, NHWC indexing
    got = triton_ops.conv2d(x, _tensor(case["w"]), _tensor(case["b"]), relu=relu, channels_last=channels_last,
                            **geometry)
    assert_close(got, _oracle(case["x"], case["w"], case["b"], relu, **geometry), np.float32)


# (N, C, H, W, O, KH, KW, stride, padding, dilation): each crosses a tile edge or is a named case
NAMED = {
    "C=1, stride 2, padding 1": (2, 1, 28, 28, 16, 3, 3, 2, 1, 1),
    "O=17 (not a tile multiple), non-square": (3, 4, 10, 13, 17, 3, 5, (2, 1), (1, 2), 1),
    "O=70 (two N tiles), K=144 (five K steps)": (1, 16, 9, 11, 70, 3, 3, 1, 0, 1),
    "M=650 (three M tiles), 1x1 kernel": (2, 5, 15, 22, 3, 1, 1, 1, 0, 1),
    "dilation 2, padding 2 (same size)": (2, 3, 12, 7, 5, 3, 3, 1, 2, 2),
    "kernel = padded input (1x1 output)": (2, 2, 3, 4, 3, 5, 6, 1, 1, 1),
}


@pytest.mark.parametrize("name", NAMED)
@pytest.mark.parametrize("layout", ["nchw", "nhwc", "channels_last_memory", "sliced"])
def test_named_shapes_in_every_layout(name, layout):
    n, c, h, w, o, kh, kw, stride, padding, dilation = NAMED[name]
    g = torch.Generator().manual_seed(len(name))
    x, weight, bias = torch.randn(n, c, h, w, generator=g), torch.randn(o, c, kh, kw, generator=g), torch.randn(o, generator=g)
    geometry = {"stride": stride, "padding": padding, "dilation": dilation}
    expected = F.conv2d(x.double(), weight.double(), bias.double(), **geometry).relu()
    if layout == "nhwc":
        source, channels_last = x.permute(0, 2, 3, 1).contiguous(), True
    elif layout == "channels_last_memory":
        source, channels_last = x.contiguous(memory_format=torch.channels_last), False
    elif layout == "sliced":                                       # every second column of a wider tensor
        wide = torch.zeros(n, c, h, 2 * w)
        wide[..., ::2] = x
        source, channels_last = wide[..., ::2], False
    else:
        source, channels_last = x, False
    got = triton_ops.conv2d(source.to(DEVICE), weight.to(DEVICE), bias.to(DEVICE), relu=True,
                            channels_last=channels_last, **geometry)
    assert got.shape == expected.shape
    assert_close(got, expected, np.float32, f"{name}, {layout}")


def test_output_is_channels_last_and_weight_layouts_do_not_matter():
    g = torch.Generator().manual_seed(3)
    x, weight = torch.randn(2, 3, 8, 9, generator=g), torch.randn(4, 3, 2, 3, generator=g)
    got = triton_ops.conv2d(x.to(DEVICE), weight.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2).to(DEVICE))
    assert got.is_contiguous(memory_format=torch.channels_last)
    assert_close(got, F.conv2d(x.double(), weight.double()), np.float32)


@pytest.mark.parametrize("precision", triton_ops.PRECISIONS)
def test_precision_is_a_parameter_checked_at_its_tolerance(precision):
    """tf32 rounds the inputs to 10 mantissa bits on a GPU's tensor cores: checked at the TF32
    tolerance there. The interpreter multiplies in fp32 whatever the setting."""
    g = torch.Generator().manual_seed(5)
    x, weight, bias = torch.randn(2, 16, 12, 12, generator=g), torch.randn(24, 16, 3, 3, generator=g), torch.randn(24, generator=g)
    expected = F.conv2d(x.double(), weight.double(), bias.double(), padding=1)
    got = triton_ops.conv2d(x.to(DEVICE), weight.to(DEVICE), bias.to(DEVICE), padding=1, precision=precision)
    if precision == "ieee":
        assert_close(got, expected, np.float32)
    else:
        depth = 16 * 3 * 3
        scale = float(expected.abs().max())
        torch.testing.assert_close(got.cpu().double(), expected, rtol=TF32_TOLERANCE["rtol"],
                                   atol=TF32_TOLERANCE["rtol"] * scale * depth ** 0.5)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")   # the interpreter's numpy, on NaN
def test_specials_propagate_as_in_torch():
    x = torch.randn(1, 2, 6, 5)
    x[0, 0, 2, 3], x[0, 1, 4, 0], x[0, 1, 0, 0] = float("nan"), float("inf"), -float("inf")
    weight, bias = torch.rand(3, 2, 2, 2) + 0.1, torch.randn(3)     # positive: no inf - inf beyond torch's own
    expected = F.conv2d(x.double(), weight.double(), bias.double()).relu()
    assert_close(triton_ops.conv2d(x.to(DEVICE), weight.to(DEVICE), bias.to(DEVICE), relu=True), expected, np.float32)


def test_edges_empty_batch_no_channels_and_no_bias():
    weight = torch.randn(3, 2, 2, 2)
    assert triton_ops.conv2d(torch.randn(0, 2, 5, 5).to(DEVICE), weight.to(DEVICE)).shape == (0, 3, 4, 4)
    empty = triton_ops.conv2d(torch.randn(2, 0, 5, 5).to(DEVICE), torch.randn(3, 0, 2, 2).to(DEVICE),
                              torch.tensor([1.0, -2.0, 0.5]).to(DEVICE), relu=True)
    assert torch.equal(empty.cpu(), torch.tensor([1.0, 0.0, 0.5]).view(1, 3, 1, 1).expand(2, 3, 4, 4))
    x = torch.randn(1, 2, 5, 5)
    assert_close(triton_ops.conv2d(x.to(DEVICE), weight.to(DEVICE)), F.conv2d(x.double(), weight.double()), np.float32)


@pytest.mark.parametrize("kwargs, message", [
    ({"stride": 0}, "stride must be >= 1"),
    ({"padding": -1}, "padding must be >= 0"),
    ({"precision": "fp16"}, "precision must be one of"),
    ({"padding": 0, "dilation": 5}, "the kernel spans"),
])
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        triton_ops.conv2d(torch.randn(1, 2, 5, 5).to(DEVICE), torch.randn(3, 2, 2, 2).to(DEVICE), **kwargs)


def test_a_channel_or_bias_mismatch_is_refused():
    with pytest.raises(ValueError, match="channels"):
        triton_ops.conv2d(torch.randn(1, 3, 5, 5), torch.randn(4, 2, 3, 3))
    with pytest.raises(ValueError, match="bias has 2 entries"):
        triton_ops.conv2d(torch.randn(1, 2, 5, 5), torch.randn(4, 2, 3, 3), torch.randn(2))


def test_the_reference_beside_the_kernel_agrees_with_it():
    """conv2d_reference (what the benchmarks check against) pads asymmetrically as the kernel does."""
    g = torch.Generator().manual_seed(9)
    x, weight, bias = torch.randn(2, 3, 7, 9, generator=g), torch.randn(5, 3, 3, 2, generator=g), torch.randn(5, generator=g)
    geometry = {"stride": (2, 1), "padding": (0, 2, 1, 0), "dilation": (1, 2)}
    assert_close(triton_ops.conv2d(x.to(DEVICE), weight.to(DEVICE), bias.to(DEVICE), relu=True, **geometry),
                 triton_ops.conv2d_reference(x.double(), weight.double(), bias.double(), relu=True, **geometry),
                 np.float32)
