"""Every public kernel on every memory layout of every argument, against the same oracle as the
contiguous tests (tests/oracle.py).

Each argument (inputs, weights, biases, grads, argmax, out= and scratch buffers) is drawn in a
layout from ``oracle.layouts``: contiguous, at a storage offset, every other element along an
axis, transposed / permuted / channels-last, expanded with stride 0, or (numpy) reversed; each a
view into a NaN-filled buffer, so a kernel that reads memory as if it were contiguous reads NaN
and fails. Both dtypes, numpy and torch where a kernel takes both. The layouts are drawn, not
listed, so hypothesis also finds the combinations (a transposed weight with an expanded bias...).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from sysdl_kernels import conv, dense, pool, triton_ops
from sysdl_kernels import numba_gemm as ng
from sysdl_kernels import numba_layers as nb
from sysdl_kernels.matmul_net import CONV_STRATEGIES, MatmulNet
from sysdl_kernels.scratch.net import ScratchCNN, ScratchConfig, init_params, torch_twin
from tests.oracle import (CONV_ARGS, NET_CONFIG, NET_SHAPES, assert_close, check_conv, check_pool, conv2d_oracle, conv_cases,
                          layouts, matmul_net_oracle, pool_cases, values_of, with_layout)

LIBRARIES = ("numpy", "torch")
DTYPES = (np.float64, np.float32)
EXAMPLES = settings(max_examples=15, deadline=None)
FEW = settings(max_examples=8, deadline=None)       # Triton's interpreter: seconds per example


def draw_views(data, arrays: dict, library: str = "numpy"):
    """(views, values): each array in a drawn layout (None stays None), and the values it holds."""
    views = {}
    for name, a in arrays.items():
        if a is None:
            views[name] = None
            continue
        layout = data.draw(layouts(np.ndim(a), library), label=f"layout of {name}")
        views[name] = with_layout(np.ascontiguousarray(a), layout, library)
    return views, {k: None if v is None else values_of(v) for k, v in views.items()}


def torch_grads(fn, *arrays, grad_out=None):
    """fn's output and the gradients of its array arguments, by float64 autograd."""
    leaves = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    out = fn(*leaves)
    out.backward(None if grad_out is None else torch.tensor(grad_out, dtype=torch.float64))
    return out.detach().numpy(), [leaf.grad.numpy() for leaf in leaves]


# ----------------------------------------------------------------------------------------------
# conv2d (numpy and torch), conv2d_torch's three layouts, im2col / col2im
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("library", LIBRARIES)
@EXAMPLES
@given(data=st.data())
def test_conv2d_any_layout(library, dtype, data):
    case = data.draw(conv_cases(dtype), label="case")
    views, values = draw_views(data, {k: case[k] for k in CONV_ARGS}, library)
    check_conv({**case, **values}, conv.conv2d, conv.conv2d_backward, views=views)


@pytest.mark.parametrize("layout, max_stride", [("nhwc", 3), ("nchw", 3), ("rows", 1)])
@pytest.mark.parametrize("dtype", DTYPES)
@EXAMPLES
@given(data=st.data())
def test_conv2d_torch_layouts_any_memory_layout(layout, max_stride, dtype, data):
    """The issue's case: 'nhwc' read a strided bias as contiguous, an expanded one past its end."""
    case = data.draw(conv_cases(dtype, max_stride=max_stride), label="case")
    views, values = draw_views(data, {k: case[k] for k in CONV_ARGS}, "torch")
    check_conv({**case, **values}, lambda *a, **k: conv.conv2d_torch(*a, **k, layout=layout),
               conv.conv2d_backward, views=views)


@settings(max_examples=8, deadline=None)          # Python loops
@given(data=st.data())
def test_conv2d_reference_any_layout(data):
    case = data.draw(conv_cases(), label="case")
    views, values = draw_views(data, {k: case[k] for k in ("x", "w", "b")})
    geometry = {k: case[k] for k in ("stride", "padding", "dilation")}
    expected = conv2d_oracle(values["x"], values["w"], values["b"], **geometry)[0]
    assert_close(conv.conv2d_reference(views["x"], views["w"], views["b"], **geometry), expected)


def test_conv2d_torch_strided_and_expanded_bias():
    """The issue's two examples, spelled out: a bias of every other element, and one expanded."""
    x, w = torch.randn(3, 16, 9, 8), torch.randn(2, 16, 3, 3)
    for bias in (torch.tensor([1.0, 0.0, 2.0, 0.0])[::2], torch.tensor([0.5]).expand(2)):
        for layout in ("nhwc", "nchw"):
            got = conv.conv2d_torch(x, w, bias, stride=2, layout=layout)
            assert_close(got, F.conv2d(x.double(), w.double(), bias.double(), stride=2), np.float32, layout)
        assert_close(conv.conv2d_torch(x, w, bias, layout="rows"),
                     F.conv2d(x.double(), w.double(), bias.double()), np.float32, "rows")


@pytest.mark.parametrize("library", LIBRARIES)
@EXAMPLES
@given(data=st.data())
def test_im2col_and_col2im_any_layout(library, data):
    case = data.draw(conv_cases(), label="case")
    geometry = dict(stride=case["stride"], padding=case["padding"], dilation=case["dilation"])
    kernel = case["w"].shape[2:]
    views, values = draw_views(data, {"x": case["x"]}, library)
    expected = conv.im2col(values["x"], kernel, **geometry)
    np.testing.assert_array_equal(values_of(conv.im2col(views["x"], kernel, **geometry)), expected)
    cols, cols_values = draw_views(data, {"cols": np.random.default_rng(0).standard_normal(expected.shape)},
                                   library)
    np.testing.assert_array_equal(
        values_of(conv.col2im(cols["cols"], values["x"].shape, kernel, **geometry)),
        conv.col2im(cols_values["cols"], values["x"].shape, kernel, **geometry))


# ----------------------------------------------------------------------------------------------
# pools (numpy and torch; the argmax is an argument of the backward too)
# ----------------------------------------------------------------------------------------------

def pool_functions(kind: str, module, data, library: str):
    """(forward, backward) of ``module``'s pool in check_pool's form; the max-pool backward gets
    its argmax in a drawn layout."""
    if kind == "avg":
        return module.avg_pool2d, lambda g, _state, x, *geometry: module.avg_pool2d_backward(g, x, *geometry)

    def backward(grad_out, argmax, x, *geometry):
        layout = data.draw(layouts(4, library, expanded=False), label="layout of argmax")
        return module.max_pool2d_backward(grad_out, with_layout(values_of(argmax), layout, library), x, *geometry)
    return module.max_pool2d, backward


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("library", LIBRARIES)
@EXAMPLES
@given(data=st.data())
def test_pools_any_layout(kind, library, dtype, data):
    case = data.draw(pool_cases(dtype), label="case")
    views, values = draw_views(data, {"x": case["x"], "grad_out": case["grad_out"]}, library)
    check_pool(kind, {**case, **values}, *pool_functions(kind, pool, data, library), views=views)


# ----------------------------------------------------------------------------------------------
# dense: relu (any shape), linear, softmax cross-entropy
# ----------------------------------------------------------------------------------------------

@st.composite
def arrays(draw, shape, dtype):
    return np.random.default_rng(draw(st.integers(0, 2**31 - 1))).standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("library", LIBRARIES)
@EXAMPLES
@given(data=st.data())
def test_relu_any_layout(library, dtype, data):
    shape = data.draw(st.lists(st.integers(1, 5), min_size=0, max_size=4).map(tuple), label="shape")
    views, values = draw_views(data, {"x": data.draw(arrays(shape, dtype)), "g": data.draw(arrays(shape, dtype))},
                               library)
    out, (gx,) = torch_grads(torch.relu, values["x"], grad_out=values["g"])
    for module in (dense, nb) if library == "numpy" else (dense,):
        assert_close(module.relu(views["x"]), out, dtype, f"{module.__name__}.relu")
        assert_close(module.relu_backward(views["g"], views["x"]), gx, dtype, f"{module.__name__}.relu_backward")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("library", LIBRARIES)
@EXAMPLES
@given(data=st.data())
def test_linear_any_layout(library, dtype, data):
    n, d_in, d_out = (data.draw(st.integers(1, 9)) for _ in range(3))
    given_arrays = {name: data.draw(arrays(shape, dtype)) for name, shape in
                    (("x", (n, d_in)), ("w", (d_out, d_in)), ("b", (d_out,)), ("g", (n, d_out)))}
    views, v = draw_views(data, given_arrays, library)
    out, grads = torch_grads(F.linear, v["x"], v["w"], v["b"], grad_out=v["g"])
    assert_close(dense.linear(views["x"], views["w"], views["b"]), out, dtype, "linear")
    for name, got, expected in zip(("grad_x", "grad_weight", "grad_bias"),
                                   dense.linear_backward(views["g"], views["x"], views["w"]), grads):
        assert_close(got, expected, dtype, name)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("library", LIBRARIES)
@EXAMPLES
@given(data=st.data())
def test_softmax_cross_entropy_any_layout(library, dtype, data):
    n, classes = data.draw(st.integers(1, 9)), data.draw(st.integers(1, 7))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31 - 1)))
    given_arrays = {"logits": (rng.standard_normal((n, classes)) * 5).astype(dtype),
                    "labels": rng.integers(0, classes, n)}
    views, v = draw_views(data, given_arrays, library)
    labels = torch.from_numpy(v["labels"])
    loss, (grad,) = torch_grads(lambda z: F.cross_entropy(z, labels), v["logits"])
    got_loss, got_grad = dense.softmax_cross_entropy(views["logits"], views["labels"])
    assert_close(np.asarray(float(got_loss)), loss, dtype, "loss")
    assert_close(got_grad, grad, dtype, "grad")
    log_probs = F.log_softmax(torch.from_numpy(v["logits"]).double(), 1)
    assert_close(dense.log_softmax(views["logits"]), log_probs, dtype, "log_softmax")
    assert_close(dense.softmax(views["logits"]), log_probs.exp(), dtype, "softmax")


# ----------------------------------------------------------------------------------------------
# Numba layers and Numba GEMM (numpy only; out= and scratch buffers too)
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@EXAMPLES
@given(data=st.data())
def test_numba_conv2d_any_layout(dtype, data):
    case = data.draw(conv_cases(dtype), label="case")
    views, values = draw_views(data, {k: case[k] for k in CONV_ARGS})
    check_conv({**case, **values}, nb.conv2d, nb.conv2d_backward, views=views)


@pytest.mark.parametrize("dtype", DTYPES)
@EXAMPLES
@given(data=st.data())
def test_numba_max_pool2d_any_layout(dtype, data):
    case = data.draw(pool_cases(dtype), label="case")
    views, values = draw_views(data, {"x": case["x"], "grad_out": case["grad_out"]})
    check_pool("max", {**case, **values}, *pool_functions("max", nb, data, "numpy"), views=views)


def buffer_accepted(buffer: np.ndarray) -> bool:
    return buffer.flags.c_contiguous and buffer.flags.writeable


@pytest.mark.parametrize("dtype", DTYPES)
@EXAMPLES
@given(data=st.data())
def test_numba_gemm_any_layout(dtype, data):
    m, n, k = data.draw(st.integers(1, 9)), data.draw(st.integers(1, 9)), data.draw(st.integers(1, 20))
    relu = data.draw(st.booleans())
    views, v = draw_views(data, {"a": data.draw(arrays((m, k), dtype)), "w": data.draw(arrays((n, k), dtype)),
                                 "b": data.draw(arrays((n,), dtype)), "out": np.zeros((m, n), dtype)})
    expected = F.linear(*(torch.from_numpy(v[name]).double() for name in ("a", "w", "b")))
    expected = expected.relu() if relu else expected
    assert_close(ng.gemm_bias_act(views["a"], views["w"], views["b"], relu=relu), expected, dtype, "allocated out")
    assert_close(ng.gemm_bias_act_reference(views["a"], views["w"], views["b"], relu), expected, dtype, "reference")
    if not buffer_accepted(views["out"]):
        with pytest.raises(ValueError, match=r"out must be C-contiguous|out is read-only"):
            ng.gemm_bias_act(views["a"], views["w"], views["b"], relu=relu, out=views["out"])
        return
    assert ng.gemm_bias_act(views["a"], views["w"], views["b"], relu=relu, out=views["out"]) is views["out"]
    assert_close(views["out"], expected, dtype, "given out")


@pytest.mark.parametrize("dtype", DTYPES)
@EXAMPLES
@given(data=st.data())
def test_numba_im2col_gemm_any_layout(dtype, data):
    n, c, o = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)), data.draw(st.integers(1, 4))
    kh, kw = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    h, w = data.draw(st.integers(kh, 7)), data.draw(st.integers(kw, 7))
    out_shape = (n, o, h - kh + 1, w - kw + 1)
    views, v = draw_views(data, {"x": data.draw(arrays((n, c, h, w), dtype)),
                                 "w": data.draw(arrays((o, c, kh, kw), dtype)),
                                 "b": data.draw(arrays((o,), dtype)), "out": np.zeros(out_shape, dtype),
                                 "scratch": np.zeros(ng.scratch_shape((n, c, h, w), (o, c, kh, kw)), dtype)})
    expected = F.conv2d(*(torch.from_numpy(v[name]).double() for name in ("x", "w", "b"))).relu()
    assert_close(ng.im2col_gemm(views["x"], views["w"], views["b"], relu=True), expected, dtype, "allocated")
    assert_close(ng.im2col_gemm_reference(views["x"], views["w"], views["b"], True), expected, dtype, "reference")
    buffers = {"out": views["out"], "scratch": views["scratch"]}
    refused = [name for name, buffer in buffers.items() if not buffer_accepted(buffer)]
    if refused:
        with pytest.raises(ValueError, match=f"{refused[0]} must be C-contiguous|{refused[0]} is read-only"):
            ng.im2col_gemm(views["x"], views["w"], views["b"], relu=True, **buffers)
        return
    assert ng.im2col_gemm(views["x"], views["w"], views["b"], relu=True, **buffers) is views["out"]
    assert_close(views["out"], expected, dtype, "given out")


def test_numba_gemm_refuses_an_out_that_overlaps_an_input():
    a = np.random.default_rng(0).standard_normal((4, 4))
    with pytest.raises(ValueError, match="out overlaps a"):
        ng.gemm_bias_act(a, np.eye(4), out=a)


# ----------------------------------------------------------------------------------------------
# Triton launchers (interpreted here: small problems, few examples)
# ----------------------------------------------------------------------------------------------

@FEW
@given(data=st.data())
def test_triton_gemm_any_layout(data):
    m, n, k = data.draw(st.integers(1, 40)), data.draw(st.integers(1, 40)), data.draw(st.integers(1, 70))
    views, v = draw_views(data, {"a": data.draw(arrays((m, k), np.float32)),
                                 "b": data.draw(arrays((k, n), np.float32)),
                                 "bias": data.draw(arrays((n,), np.float32))}, "torch")
    relu = data.draw(st.booleans())
    expected = torch.from_numpy(v["a"]).double() @ torch.from_numpy(v["b"]).double() + torch.from_numpy(v["bias"])
    got = triton_ops.gemm_bias_relu(views["a"], views["b"], views["bias"], relu=relu)
    assert_close(got, expected.relu() if relu else expected, np.float32)


@FEW
@given(data=st.data())
def test_triton_im2col_and_conv2d_any_layout(data):
    n, c, o = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)), data.draw(st.integers(1, 4))
    kh, kw = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    h, w = data.draw(st.integers(kh, 8)), data.draw(st.integers(kw, 8))
    channels_last = data.draw(st.booleans())
    views, v = draw_views(data, {"x": data.draw(arrays((n, c, h, w), np.float32)),
                                 "w": data.draw(arrays((o, c, kh, kw), np.float32)),
                                 "b": data.draw(arrays((o,), np.float32))}, "torch")
    x = torch.from_numpy(v["x"])
    expected_cols = x.unfold(2, kh, 1).unfold(3, kw, 1).permute(0, 2, 3, 4, 5, 1).reshape(-1, kh * kw * c)
    cols, _, _ = triton_ops.im2col(views["x"].permute(0, 2, 3, 1) if channels_last else views["x"], kh, kw,
                                   channels_last=channels_last)
    assert torch.equal(cols, expected_cols)
    expected = F.conv2d(x.double(), torch.from_numpy(v["w"]).double(), torch.from_numpy(v["b"]).double())
    assert_close(triton_ops.conv2d(views["x"], views["w"], views["b"], relu=True), expected.relu(), np.float32)


# ----------------------------------------------------------------------------------------------
# MatmulNet and the from-scratch CNN: their inputs and their parameters in any layout
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("strategy", CONV_STRATEGIES)
@settings(max_examples=5, deadline=None)
@given(data=st.data())
def test_matmul_net_any_layout(strategy, data):
    """Images and every state-dict tensor in drawn layouts; on a fixed strategy, both engines."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31 - 1)))
    batch = data.draw(st.integers(1, 5))
    state, state_values = draw_views(data, {k: rng.standard_normal(s).astype(np.float32)
                                            for k, s in NET_SHAPES.items()}, "torch")
    x, x_values = draw_views(data, {"x": rng.standard_normal((batch, 2, 10, 10)).astype(np.float32)}, "torch")
    expected = matmul_net_oracle(state_values, torch.from_numpy(x_values["x"]))
    for engine in ("torch", "numba"):
        net = MatmulNet(state, NET_CONFIG, strategy=strategy, dense_engine=engine)
        assert_close(net(x["x"]), expected, np.float32, f"{strategy}, {engine}")


@pytest.mark.slow
@settings(max_examples=3, deadline=None)
@given(data=st.data())
def test_matmul_net_on_triton_any_layout(data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31 - 1)))
    state, state_values = draw_views(data, {k: rng.standard_normal(s).astype(np.float32)
                                            for k, s in NET_SHAPES.items()}, "torch")
    x, x_values = draw_views(data, {"x": rng.standard_normal((3, 2, 10, 10)).astype(np.float32)}, "torch")
    expected = matmul_net_oracle(state_values, torch.from_numpy(x_values["x"]))
    assert_close(MatmulNet(state, NET_CONFIG, backend="triton")(x["x"]), expected, np.float32)


SCRATCH_CONFIG = ScratchConfig(in_channels=2, image_size=6, conv_channels=3, kernel_size=3, hidden_units=5,
                               num_classes=4)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=5, deadline=None)
@given(data=st.data())
def test_scratch_cnn_any_layout(backend, dtype, data):
    """The scratch layers on parameters and images in drawn layouts: loss and every gradient
    equal torch autograd's on the same values."""
    seed = data.draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    start = {k: v + rng.standard_normal(v.shape).astype(dtype) * 0.1   # non-zero biases too
             for k, v in init_params(SCRATCH_CONFIG, seed, dtype).items()}
    params, param_values = draw_views(data, start)
    x, x_values = draw_views(data, {"x": rng.standard_normal((3, 2, 6, 6)).astype(dtype)})
    y = rng.integers(0, SCRATCH_CONFIG.num_classes, 3)
    net = ScratchCNN(SCRATCH_CONFIG, backend=backend, params=params)
    loss, grads = net.loss(x["x"], y)
    twin = torch_twin(SCRATCH_CONFIG, {k: v.astype(np.float64) for k, v in param_values.items()})
    expected = F.cross_entropy(twin(torch.from_numpy(x_values["x"]).double()), torch.from_numpy(y))
    expected.backward()
    assert_close(np.asarray(loss), expected.detach(), dtype, "loss")
    for name, param in twin.named_parameters():
        assert_close(grads[name], param.grad, dtype, name)
