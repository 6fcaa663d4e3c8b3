"""Every kernel's forward and backward on inputs holding inf, -inf and NaN, against torch.

``oracle.with_specials`` puts 1..3 specials into the drawn arguments of each problem; the
comparison (oracle.assert_close) requires inf and NaN in exactly torch's places, and the finite
entries within the dtype's tolerance. The conv oracle zero-pads explicitly, as sysdl's kernels
do (an inf weight times padding is NaN; see sysdl_kernels/conv.py). Max-pool follows torch's
choice of tap (the last NaN of a window; the first pixel inside the input when every pixel is
-inf), so its backward is compared to torch's too; the cases are spelled out below.
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
from sysdl_kernels.scratch.net import ScratchCNN, ScratchConfig, torch_twin
from tests.oracle import (CONV_ARGS, NET_CONFIG, NET_SHAPES, assert_close, check_conv, check_pool, conv2d_oracle, conv_cases,
                          matmul_net_oracle, pool_cases, with_specials)

LIBRARIES = {"numpy": lambda a: a, "torch": torch.from_numpy}
DTYPES = (np.float64, np.float32)
EXAMPLES = settings(max_examples=15, deadline=None)
INF, NAN = float("inf"), float("nan")

# numpy warns where inf - inf or 0 * inf makes a NaN; here that is the point
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning",
                                        "ignore:overflow encountered:RuntimeWarning")


def inject(data, case: dict, names) -> dict:
    """``case`` with specials in a drawn, non-empty subset of its arrays ``names``."""
    names = [n for n in names if case.get(n) is not None]
    chosen = data.draw(st.lists(st.sampled_from(names), min_size=1, unique=True), label="with specials")
    return {**case, **{n: data.draw(with_specials(case[n]), label=f"{n} with specials") for n in chosen}}


def torch_grads(fn, *arrays, grad_out=None):
    leaves = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    out = fn(*leaves)
    out.backward(None if grad_out is None else torch.tensor(grad_out, dtype=torch.float64))
    return out.detach().numpy(), [leaf.grad.numpy() for leaf in leaves]


@st.composite
def arrays(draw, shape, dtype):
    return np.random.default_rng(draw(st.integers(0, 2**31 - 1))).standard_normal(shape).astype(dtype)


# ----------------------------------------------------------------------------------------------
# The cases, spelled out
# ----------------------------------------------------------------------------------------------

RELU_X = [-INF, -1.0, -0.0, 0.0, 2.0, INF, NAN]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("relu, relu_backward, library", [
    (dense.relu, dense.relu_backward, "numpy"), (dense.relu, dense.relu_backward, "torch"),
    (nb.relu, nb.relu_backward, "numpy")], ids=["dense-numpy", "dense-torch", "numba"])
@pytest.mark.parametrize("upstream", [INF, -INF, NAN, 1.5])
def test_relu_specials_are_torchs(relu, relu_backward, library, dtype, upstream):
    """relu(-inf) = 0 (x * (x > 0) made it NaN); the backward is exactly 0 where x <= 0 even for
    an infinite upstream gradient, and passes it where x is NaN (torch's threshold_backward)."""
    x = np.array(RELU_X, dtype=dtype)
    grad_out = np.full_like(x, upstream)
    out, (gx,) = torch_grads(torch.relu, x, grad_out=grad_out)
    to = LIBRARIES[library]
    assert_close(relu(to(x)), out, dtype, "relu")
    assert_close(relu_backward(to(grad_out), to(x)), gx, dtype, "relu_backward")


MAX_POOL = [(pool.max_pool2d, pool.max_pool2d_backward, "numpy"),
            (pool.max_pool2d, pool.max_pool2d_backward, "torch"),
            (nb.max_pool2d, nb.max_pool2d_backward, "numpy")]
MAX_POOL_IDS = ["numpy", "torch", "numba"]


@pytest.mark.parametrize("forward, backward, library", MAX_POOL, ids=MAX_POOL_IDS)
def test_max_pool_picks_torchs_nan(forward, backward, library):
    """A window with several NaNs gives NaN and sends its gradient to the last NaN, as torch's
    CPU kernel (numpy's and torch's argmax would pick the first)."""
    x = np.array([[[[NAN, 5.0, NAN, 1.0, 2.0, NAN],
                    [3.0, NAN, 0.0, 7.0, 4.0, NAN]]]])                 # 2x3 windows: 3 and 2 NaNs
    out, (gx,) = torch_grads(lambda t: F.max_pool2d(t, (2, 3)), x, grad_out=np.array([[[[1.0, 2.0]]]]))
    to = LIBRARIES[library]
    got, argmax = forward(to(x), (2, 3))
    assert_close(got, out, what="forward")
    assert [int(v) for v in np.asarray(argmax).ravel()] == [4, 5], "the last NaN tap of each window"
    assert_close(backward(to(np.array([[[[1.0, 2.0]]]])), argmax, to(x), (2, 3)), gx, what="backward")


@pytest.mark.parametrize("forward, backward, library", MAX_POOL, ids=MAX_POOL_IDS)
def test_max_pool_window_of_minus_inf_over_padding(forward, backward, library):
    """Every pixel -inf: the output is -inf and the gradient goes to the window's first pixel
    inside the input (torch's choice), not to a padding tap where it would be lost."""
    x = np.full((1, 2, 3, 4), -INF)
    x[0, 1, 2, 3] = 1.0
    grad_out = np.arange(1.0, 1.0 + 2 * 2 * 3).reshape(1, 2, 2, 3)
    geometry = ((3, 2), (2, 2), (1, 1))
    out, (gx,) = torch_grads(lambda t: F.max_pool2d(t, *geometry), x, grad_out=grad_out)
    to = LIBRARIES[library]
    got, argmax = forward(to(x), *geometry)
    assert_close(got, out, what="forward")
    assert_close(backward(to(grad_out), argmax, to(x), *geometry), gx, what="backward")
    assert np.asarray(gx).sum() == grad_out.sum(), "no gradient is lost in the padding"


CONVS = {"numpy": (conv.conv2d, "numpy"), "torch": (conv.conv2d, "torch"), "numba": (nb.conv2d, "numpy")}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("implementation", CONVS)
def test_inf_weight_times_padding_is_nan_as_in_torch_float64(implementation, dtype):
    """The documented difference (sysdl_kernels/conv.py): padding is multiplied as explicit zeros,
    so an inf weight makes the outputs whose window covers padding NaN, as torch's float64 conv;
    torch's float32 oneDNN conv skips padded taps and sums the others there."""
    forward, library = CONVS[implementation]
    x, w = np.ones((2, 16, 9, 8), dtype), np.ones((3, 16, 3, 3), dtype)
    w[:, 0, 0, 0] = INF
    expected = F.conv2d(torch.from_numpy(x).double(), torch.from_numpy(w).double(), padding=1)
    got = forward(LIBRARIES[library](x), LIBRARIES[library](w), padding=1)
    assert_close(got, expected, dtype)
    assert np.isnan(np.asarray(got)[0, 0, 0, 0]) and np.isinf(np.asarray(got)[0, 0, 1, 1])


# ----------------------------------------------------------------------------------------------
# Property tests: conv, pools, dense, Numba, Triton, MatmulNet
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("library", LIBRARIES)
@EXAMPLES
@given(data=st.data())
def test_conv2d_specials(library, dtype, data):
    case = inject(data, data.draw(conv_cases(dtype), label="case"), CONV_ARGS)
    check_conv(case, conv.conv2d, conv.conv2d_backward, LIBRARIES[library])


@settings(max_examples=8, deadline=None)          # Python loops
@given(data=st.data())
def test_conv2d_reference_specials(data):
    case = inject(data, data.draw(conv_cases(), label="case"), ("x", "w", "b"))
    geometry = {k: case[k] for k in ("stride", "padding", "dilation")}
    expected = conv2d_oracle(case["x"], case["w"], case["b"], **geometry)[0]
    assert_close(conv.conv2d_reference(case["x"], case["w"], case["b"], **geometry), expected)


@pytest.mark.parametrize("layout, max_stride", [("nhwc", 3), ("nchw", 3), ("rows", 1)])
@EXAMPLES
@given(data=st.data())
def test_conv2d_torch_layouts_specials(layout, max_stride, data):
    case = inject(data, data.draw(conv_cases(np.float32, max_stride=max_stride), label="case"), CONV_ARGS)
    check_conv(case, lambda *a, **k: conv.conv2d_torch(*a, **k, layout=layout), conv.conv2d_backward,
               torch.from_numpy)


@pytest.mark.parametrize("dtype", DTYPES)
@EXAMPLES
@given(data=st.data())
def test_numba_conv2d_specials(dtype, data):
    case = inject(data, data.draw(conv_cases(dtype), label="case"), CONV_ARGS)
    check_conv(case, nb.conv2d, nb.conv2d_backward)


def _max_pool(module):
    return module.max_pool2d, module.max_pool2d_backward


def _avg_pool(module):
    return module.avg_pool2d, lambda g, _state, x, *geometry: module.avg_pool2d_backward(g, x, *geometry)


@pytest.mark.parametrize("kind, module, library", [
    ("max", pool, "numpy"), ("max", pool, "torch"), ("max", nb, "numpy"),
    ("avg", pool, "numpy"), ("avg", pool, "torch")], ids=["max-numpy", "max-torch", "max-numba",
                                                          "avg-numpy", "avg-torch"])
@pytest.mark.parametrize("dtype", DTYPES)
@EXAMPLES
@given(data=st.data())
def test_pools_specials(kind, module, library, dtype, data):
    case = data.draw(pool_cases(dtype), label="case")
    if data.draw(st.booleans(), label="all -inf"):            # whole windows of -inf, over padding too
        case["x"] = np.full_like(case["x"], -INF)
    case = inject(data, case, ("x", "grad_out"))
    functions = _max_pool(module) if kind == "max" else _avg_pool(module)
    check_pool(kind, case, *functions, LIBRARIES[library])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("library", LIBRARIES)
@EXAMPLES
@given(data=st.data())
def test_dense_specials(library, dtype, data):
    """relu (dense and Numba), linear and softmax cross-entropy, forward and backward."""
    to = LIBRARIES[library]
    n, d_in, d_out = (data.draw(st.integers(1, 7)) for _ in range(3))
    case = {name: data.draw(arrays(shape, dtype)) for name, shape in
            (("x", (n, d_in)), ("w", (d_out, d_in)), ("b", (d_out,)), ("g", (n, d_out)))}
    case = inject(data, case, ("x", "w", "b", "g"))
    out, grads = torch_grads(F.linear, case["x"], case["w"], case["b"], grad_out=case["g"])
    assert_close(dense.linear(to(case["x"]), to(case["w"]), to(case["b"])), out, dtype, "linear")
    for name, got, expected in zip(("grad_x", "grad_weight", "grad_bias"),
                                   dense.linear_backward(to(case["g"]), to(case["x"]), to(case["w"])), grads):
        assert_close(got, expected, dtype, name)

    out, (gx,) = torch_grads(torch.relu, case["x"], grad_out=case["x"][::-1].copy())
    for module in (dense, nb) if library == "numpy" else (dense,):
        assert_close(module.relu(to(case["x"])), out, dtype, f"{module.__name__}.relu")
        assert_close(module.relu_backward(to(case["x"][::-1].copy()), to(case["x"])), gx, dtype,
                     f"{module.__name__}.relu_backward")

    labels = np.random.default_rng(n).integers(0, d_out, n)
    logits = case["g"]
    loss, (grad,) = torch_grads(lambda z: F.cross_entropy(z, torch.from_numpy(labels)), logits)
    got_loss, got_grad = dense.softmax_cross_entropy(to(logits), to(labels))
    assert_close(np.asarray(float(got_loss)), loss, dtype, "loss")
    assert_close(got_grad, grad, dtype, "grad of the loss")
    log_probs = F.log_softmax(torch.from_numpy(logits).double(), 1)
    assert_close(dense.log_softmax(to(logits)), log_probs, dtype, "log_softmax")
    assert_close(dense.softmax(to(logits)), log_probs.exp(), dtype, "softmax")


@pytest.mark.parametrize("dtype", DTYPES)
@EXAMPLES
@given(data=st.data())
def test_numba_gemm_specials(dtype, data):
    m, n, k = data.draw(st.integers(1, 9)), data.draw(st.integers(1, 9)), data.draw(st.integers(1, 20))
    case = inject(data, {"a": data.draw(arrays((m, k), dtype)), "w": data.draw(arrays((n, k), dtype)),
                         "b": data.draw(arrays((n,), dtype))}, ("a", "w", "b"))
    relu = data.draw(st.booleans())
    expected = F.linear(*(torch.from_numpy(case[name]).double() for name in ("a", "w", "b")))
    expected = expected.relu() if relu else expected
    assert_close(ng.gemm_bias_act(case["a"], case["w"], case["b"], relu=relu), expected, dtype)
    assert_close(ng.gemm_bias_act_reference(case["a"], case["w"], case["b"], relu), expected, dtype, "reference")


@pytest.mark.parametrize("dtype", DTYPES)
@EXAMPLES
@given(data=st.data())
def test_numba_im2col_gemm_specials(dtype, data):
    n, c, o = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)), data.draw(st.integers(1, 4))
    kh, kw = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    h, w = data.draw(st.integers(kh, 7)), data.draw(st.integers(kw, 7))
    case = inject(data, {"x": data.draw(arrays((n, c, h, w), dtype)), "w": data.draw(arrays((o, c, kh, kw), dtype)),
                         "b": data.draw(arrays((o,), dtype))}, ("x", "w", "b"))
    relu = data.draw(st.booleans())
    expected = F.conv2d(*(torch.from_numpy(case[name]).double() for name in ("x", "w", "b")))
    expected = expected.relu() if relu else expected
    assert_close(ng.im2col_gemm(case["x"], case["w"], case["b"], relu=relu), expected, dtype)
    assert_close(ng.im2col_gemm_reference(case["x"], case["w"], case["b"], relu), expected, dtype, "reference")


@settings(max_examples=8, deadline=None)
@given(data=st.data())
def test_triton_specials(data):
    """The fused epilogue keeps NaN through the ReLU (tl.maximum would drop it on a GPU)."""
    m, n, k = data.draw(st.integers(1, 30)), data.draw(st.integers(1, 30)), data.draw(st.integers(1, 70))
    case = inject(data, {"a": data.draw(arrays((m, k), np.float32)), "b": data.draw(arrays((k, n), np.float32)),
                         "bias": data.draw(arrays((n,), np.float32))}, ("a", "b", "bias"))
    relu = data.draw(st.booleans())
    a, b, bias = (torch.from_numpy(case[name]) for name in ("a", "b", "bias"))
    expected = a.double() @ b.double() + bias.double()
    assert_close(triton_ops.gemm_bias_relu(a, b, bias, relu=relu), expected.relu() if relu else expected,
                 np.float32, "gemm")
    x = torch.from_numpy(data.draw(with_specials(data.draw(arrays((2, 2, 5, 4), np.float32)))))
    weight = torch.randn(3, 2, 2, 3)
    expected = F.conv2d(x.double(), weight.double(), bias[:1].expand(3).double())
    assert_close(triton_ops.conv2d(x, weight, bias[:1].expand(3), relu=True), expected.relu(), np.float32, "conv2d")


@pytest.mark.parametrize("strategy", CONV_STRATEGIES)
@settings(max_examples=5, deadline=None)
@given(data=st.data())
def test_matmul_net_specials(strategy, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31 - 1)))
    state = {k: torch.from_numpy(rng.standard_normal(s).astype(np.float32)) for k, s in NET_SHAPES.items()}
    x = data.draw(with_specials(rng.standard_normal((3, 2, 10, 10)).astype(np.float32), max_count=6))
    expected = matmul_net_oracle(state, torch.from_numpy(x))
    for engine in ("torch", "numba"):
        net = MatmulNet(state, NET_CONFIG, strategy=strategy, dense_engine=engine)
        assert_close(net(torch.from_numpy(x)), expected, np.float32, f"{strategy}, {engine}")


SCRATCH_CONFIG = ScratchConfig(in_channels=2, image_size=6, conv_channels=3, kernel_size=3, hidden_units=5,
                               num_classes=4)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@settings(max_examples=5, deadline=None)
@given(data=st.data())
def test_scratch_cnn_specials(backend, data):
    """Specials in the images: the scratch layers' loss and gradients are torch autograd's."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31 - 1)))
    x = data.draw(with_specials(rng.standard_normal((3, 2, 6, 6))), label="x")
    y = rng.integers(0, SCRATCH_CONFIG.num_classes, 3)
    net = ScratchCNN(SCRATCH_CONFIG, backend=backend, dtype=np.float64)
    loss, grads = net.loss(x, y)
    twin = torch_twin(SCRATCH_CONFIG, net.params)
    expected = F.cross_entropy(twin(torch.from_numpy(x)), torch.from_numpy(y))
    expected.backward()
    assert_close(np.asarray(loss), expected.detach(), what="loss")
    for name, param in twin.named_parameters():
        assert_close(grads[name], param.grad, what=name)
