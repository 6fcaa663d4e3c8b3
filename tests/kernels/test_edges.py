"""Shapes at the edges, for every public kernel: 0-d arrays (relu takes any shape), empty batches
and other size-0 dimensions where the API takes them, batch 1; and a ValueError naming the
problem where it does not (a conv with no channels, an empty image, logits with no class).
Results are compared with torch where torch computes them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sysdl_kernels import conv, dense, pool, triton_ops
from sysdl_kernels import numba_gemm as ng
from sysdl_kernels import numba_layers as nb
from sysdl_kernels.matmul_net import MatmulNet
from tests.oracle import NET_CONFIG, NET_SHAPES, assert_close, check_conv, check_pool, matmul_net_oracle

LIBRARIES = {"numpy": lambda a: a, "torch": torch.from_numpy}
DTYPES = (np.float64, np.float32)
RELUS = {"dense-numpy": (dense, "numpy"), "dense-torch": (dense, "torch"), "numba": (nb, "numpy")}


def random(shape, dtype=np.float64, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# ----------------------------------------------------------------------------------------------
# relu: any shape, 0-d and size-0 included
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("relu", RELUS)
@pytest.mark.parametrize("shape", [(), (0,), (3, 0, 2), (1,), (1, 1, 1, 1)])
def test_relu_keeps_any_shape(relu, shape, dtype):
    """The issue's case: the Numba relu turned a 0-d array into shape (1,)."""
    module, library = RELUS[relu]
    to = LIBRARIES[library]
    for value in (-1.5, 2.0):
        x, g = np.full(shape, value, dtype), np.full(shape, 3.0, dtype)
        xt = torch.tensor(x, requires_grad=True)
        torch.relu(xt).backward(torch.tensor(g))
        out = module.relu(to(x))
        assert isinstance(out, type(to(x))) and tuple(out.shape) == shape and out.dtype == to(x).dtype
        assert_close(out, torch.relu(torch.tensor(x)), dtype, "relu")
        grad = module.relu_backward(to(g), to(x))
        assert isinstance(grad, type(to(x))) and tuple(grad.shape) == shape
        assert_close(grad, xt.grad, dtype, "relu_backward")


# ----------------------------------------------------------------------------------------------
# conv2d and the pools: batch 0 and batch 1, against torch (which takes both)
# ----------------------------------------------------------------------------------------------

CONVS = {"numpy": (conv.conv2d, conv.conv2d_backward, "numpy"), "torch": (conv.conv2d, conv.conv2d_backward, "torch"),
         "numba": (nb.conv2d, nb.conv2d_backward, "numpy"),
         **{f"torch-{layout}": (lambda *a, layout=layout, **k: conv.conv2d_torch(*a, **k, layout=layout),
                                conv.conv2d_backward, "torch") for layout in ("nhwc", "nchw", "rows")}}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("implementation", CONVS)
@pytest.mark.parametrize("n", [0, 1])
@pytest.mark.parametrize("stride", [1, 2])
def test_conv2d_batch_0_and_1(implementation, n, stride, dtype):
    forward, backward, library = CONVS[implementation]
    if implementation == "torch-rows" and stride != 1:
        pytest.skip("the rows layout is stride 1 only")
    case = {"x": random((n, 3, 7, 5), dtype), "w": random((4, 3, 3, 2), dtype, 1), "b": random(4, dtype, 2),
            "stride": (stride, stride), "padding": (1, 0, 2, 1), "dilation": (1, 1)}
    oh, ow = (7 + 1 - 3) // stride + 1, (5 + 3 - 2) // stride + 1
    case["grad_out"] = random((n, 4, oh, ow), dtype, 3)
    check_conv(case, forward, backward, LIBRARIES[library])


@pytest.mark.parametrize("forward, library", [(conv.conv2d, "numpy"), (conv.conv2d, "torch"), (nb.conv2d, "numpy")])
@pytest.mark.parametrize("x_shape, w_shape, message", [
    ((2, 0, 5, 5), (3, 0, 3, 3), r"at least one input and one output channel"),
    ((2, 3, 5, 5), (0, 3, 3, 3), r"at least one input and one output channel"),
    ((2, 3, 0, 5), (4, 3, 1, 1), r"height and width >= 1"),
    ((2, 3, 5, 0), (4, 3, 1, 1), r"height and width >= 1"),
])
def test_conv2d_refuses_empty_channels_and_images(forward, library, x_shape, w_shape, message):
    """torch refuses O = 0 and returns a tensor of the wrong shape for C = 0: refused here."""
    to = LIBRARIES[library]
    with pytest.raises(ValueError, match=message):
        forward(to(np.zeros(x_shape)), to(np.zeros(w_shape)), padding=1)


POOLS = {"max-numpy": ("max", pool, "numpy"), "max-torch": ("max", pool, "torch"), "max-numba": ("max", nb, "numpy"),
         "avg-numpy": ("avg", pool, "numpy"), "avg-torch": ("avg", pool, "torch")}


def pool_functions(kind, module):
    if kind == "max":
        return module.max_pool2d, module.max_pool2d_backward
    return module.avg_pool2d, lambda g, _state, x, *geometry: module.avg_pool2d_backward(g, x, *geometry)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("implementation", POOLS)
@pytest.mark.parametrize("n", [0, 1])
def test_pools_batch_0_and_1(implementation, n, dtype):
    kind, module, library = POOLS[implementation]
    case = {"x": random((n, 3, 7, 5), dtype), "kernel": (3, 2), "stride": (2, 1), "padding": (1, 1),
            "grad_out": random((n, 3, 4, 6), dtype, 1)}
    check_pool(kind, case, *pool_functions(kind, module), LIBRARIES[library])


@pytest.mark.parametrize("implementation", POOLS)
def test_pools_of_no_channels_are_empty(implementation):
    """torch refuses C = 0; here it is an empty result of the right shape."""
    kind, module, library = POOLS[implementation]
    forward, backward = pool_functions(kind, module)
    x = LIBRARIES[library](np.zeros((2, 0, 6, 5)))
    result = forward(x, 2)
    out, state = result if kind == "max" else (result, None)
    assert tuple(out.shape) == (2, 0, 3, 2)
    assert tuple(backward(out, state, x, 2).shape) == (2, 0, 6, 5)


@pytest.mark.parametrize("implementation", POOLS)
def test_pools_refuse_an_empty_image(implementation):
    kind, module, library = POOLS[implementation]
    with pytest.raises(ValueError, match=r"height and width >= 1"):
        pool_functions(kind, module)[0](LIBRARIES[library](np.zeros((2, 3, 0, 4))), 1)


# ----------------------------------------------------------------------------------------------
# dense: linear and softmax cross-entropy with size-0 dimensions
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("n, d_in, d_out", [(0, 3, 2), (1, 3, 2), (4, 0, 2), (4, 3, 0), (1, 1, 1)])
def test_linear_size_0_and_batch_1(library, n, d_in, d_out):
    to = LIBRARIES[library]
    x, w, b, g = random((n, d_in)), random((d_out, d_in), seed=1), random(d_out, seed=2), random((n, d_out), seed=3)
    leaves = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
    out = F.linear(*leaves)
    out.backward(torch.tensor(g))
    assert_close(dense.linear(to(x), to(w), to(b)), out)
    for got, leaf in zip(dense.linear_backward(to(g), to(x), to(w)), leaves):
        assert_close(got, leaf.grad)


@pytest.mark.parametrize("library", LIBRARIES)
def test_softmax_cross_entropy_of_an_empty_batch_is_nan_as_torch(library):
    to = LIBRARIES[library]
    expected = F.cross_entropy(torch.zeros(0, 3, dtype=torch.float64), torch.zeros(0, dtype=torch.long))
    loss, grad = dense.softmax_cross_entropy(to(np.zeros((0, 3))), to(np.zeros(0, np.int64)))
    assert np.isnan(float(loss)) and np.isnan(expected.item())
    assert tuple(grad.shape) == (0, 3)
    assert tuple(dense.log_softmax(to(np.zeros((0, 3)))).shape) == (0, 3)


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("call", [dense.log_softmax, dense.softmax,
                                  lambda z: dense.softmax_cross_entropy(z, z[:, :0].sum(1).long()
                                                                       if isinstance(z, torch.Tensor)
                                                                       else np.zeros(len(z), np.int64))])
def test_logits_without_classes_are_refused(library, call):
    with pytest.raises(ValueError, match=r"at least one class"):
        call(LIBRARIES[library](np.zeros((2, 0))))


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("call, message", [
    (lambda a: conv.conv2d(a, a), r"x must have 4 dimensions, got 0"),
    (lambda a: pool.max_pool2d(a, 2), r"x must have 4 dimensions, got 0"),
    (lambda a: pool.avg_pool2d(a, 2), r"x must have 4 dimensions, got 0"),
    (lambda a: dense.linear(a, a), r"x must have 2 dimensions, got 0"),
    (lambda a: dense.log_softmax(a), r"logits must have 2 dimensions, got 0"),
])
def test_0d_inputs_are_refused_where_a_shape_is_needed(library, call, message):
    with pytest.raises(ValueError, match=message):
        call(LIBRARIES[library](np.array(1.0)))


# ----------------------------------------------------------------------------------------------
# Numba GEMM, Triton, MatmulNet
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m, n, k", [(0, 3, 4), (3, 0, 4), (3, 4, 0), (1, 1, 1), (1, 5, 7)])
def test_numba_gemm_size_0_and_one_row(m, n, k, dtype):
    a, w, b = random((m, k), dtype), random((n, k), dtype, 1), random(n, dtype, 2)
    expected = F.linear(*(torch.from_numpy(v).double() for v in (a, w, b))).relu()
    assert_close(ng.gemm_bias_act(a, w, b, relu=True), expected, dtype)
    out = np.full((m, n), np.nan, dtype)
    assert ng.gemm_bias_act(a, w, b, relu=True, out=out) is out
    assert_close(out, expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [0, 1])
def test_numba_im2col_gemm_batch_0_and_1(n, dtype):
    x, w, b = random((n, 2, 6, 5), dtype), random((3, 2, 3, 2), dtype, 1), random(3, dtype, 2)
    expected = F.conv2d(*(torch.from_numpy(v).double() for v in (x, w, b)))
    assert_close(ng.im2col_gemm(x, w, b), expected, dtype)


@pytest.mark.parametrize("x_shape, w_shape", [((2, 0, 5, 5), (3, 0, 3, 3)), ((2, 3, 5, 5), (0, 3, 3, 3)),
                                              ((2, 3, 5, 5), (4, 3, 0, 2))])
def test_numba_im2col_gemm_refuses_an_empty_weight(x_shape, w_shape):
    with pytest.raises(ValueError, match=r"at least one input channel, output channel and kernel tap"):
        ng.im2col_gemm(np.zeros(x_shape), np.zeros(w_shape))


@pytest.mark.parametrize("m, n, k", [(0, 3, 4), (3, 0, 4), (3, 4, 0), (1, 1, 1)])
def test_triton_gemm_size_0_and_one_row(m, n, k):
    a, b, bias = torch.randn(m, k), torch.randn(k, n), torch.randn(n)
    got = triton_ops.gemm_bias_relu(a, b, bias, relu=False)
    assert_close(got, a.double() @ b.double() + bias.double(), np.float32)


@pytest.mark.parametrize("n", [0, 1])
def test_triton_conv2d_batch_0_and_1(n):
    x, w, b = torch.randn(n, 2, 6, 5), torch.randn(3, 2, 3, 2), torch.randn(3)
    cols, oh, ow = triton_ops.im2col(x, 3, 2)
    assert tuple(cols.shape) == (n * 4 * 4, 12) and (oh, ow) == (4, 4)
    assert_close(triton_ops.conv2d(x, w, b), F.conv2d(x.double(), w.double(), b.double()), np.float32)


@pytest.mark.parametrize("backend", ["cpu", "triton"])
@pytest.mark.parametrize("n", [0, 1])
def test_matmul_net_batch_0_and_1(backend, n):
    state = {k: torch.randn(s) for k, s in NET_SHAPES.items()}
    x = torch.randn(n, 2, 10, 10)
    got = MatmulNet(state, NET_CONFIG, backend=backend, strategy="nhwc", dense_engine="torch")(x)
    assert tuple(got.shape) == (n, 3)
    assert_close(got, matmul_net_oracle(state, x), np.float32)
