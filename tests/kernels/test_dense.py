"""sysdl_kernels.dense against torch autograd: ReLU, linear, softmax cross-entropy, both libraries."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sysdl_kernels import dense
from tests.oracle import assert_close

LIBRARIES = {"numpy": lambda a: a, "torch": torch.from_numpy}


def torch_grads(fn, *arrays, grad_out=None):
    leaves = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    out = fn(*leaves)
    out.backward(torch.tensor(grad_out) if grad_out is not None else None)
    return out.detach().numpy(), [leaf.grad.numpy() for leaf in leaves]


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n, d_in, d_out", [(1, 1, 1), (7, 13, 3), (129, 50, 10)])
def test_linear(library, dtype, n, d_in, d_out):
    rng = np.random.default_rng(n)
    x, w, b, g = (rng.standard_normal(s).astype(dtype) for s in ((n, d_in), (d_out, d_in), (d_out,), (n, d_out)))
    out, (gx, gw, gb) = torch_grads(F.linear, x, w, b, grad_out=g.astype(np.float64))
    to = LIBRARIES[library]
    assert_close(dense.linear(to(x), to(w), to(b)), out, dtype)
    for got, want in zip(dense.linear_backward(to(g), to(x), to(w)), (gx, gw, gb)):
        assert_close(got, want, dtype)


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("shape", [(5,), (3, 4, 2, 7)])
def test_relu(library, shape):
    x = np.random.default_rng(0).standard_normal(shape)
    g = np.random.default_rng(1).standard_normal(shape)
    out, (gx,) = torch_grads(torch.relu, x, grad_out=g)
    to = LIBRARIES[library]
    assert_close(dense.relu(to(x)), out)
    assert_close(dense.relu_backward(to(g), to(x)), gx)


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n, classes", [(1, 2), (9, 10), (64, 3)])
def test_softmax_cross_entropy(library, dtype, n, classes):
    rng = np.random.default_rng(classes)
    logits = (rng.standard_normal((n, classes)) * 20).astype(dtype)    # large: exercises stability
    labels = rng.integers(0, classes, n)
    out, (grad,) = torch_grads(lambda z: F.cross_entropy(z, torch.from_numpy(labels)), logits)
    to = LIBRARIES[library]
    loss, got = dense.softmax_cross_entropy(to(logits), to(labels))
    assert_close(np.asarray(float(loss), dtype=dtype), out, dtype)
    assert_close(got, grad, dtype)
    probabilities = dense.softmax(to(logits))
    assert_close(probabilities.sum(1), np.ones(n, dtype=dtype), dtype)


@pytest.mark.parametrize("call, error, message", [
    (lambda: dense.linear(np.zeros((2, 3)), np.zeros((4, 5))), ValueError, r"weight expects 5 input features"),
    (lambda: dense.linear(np.zeros((2, 3)), np.zeros((4, 3)), np.zeros(5)), ValueError, r"bias must have shape \(4,\)"),
    (lambda: dense.linear_backward(np.zeros((2, 5)), np.zeros((2, 3)), np.zeros((4, 3))), ValueError,
     r"grad_out must have shape \(2, 4\)"),
    (lambda: dense.relu(np.zeros(3, dtype=np.int32)), TypeError, r"x must be float32 or float64"),
    (lambda: dense.softmax_cross_entropy(np.zeros((2, 3)), np.array([0, 3])), ValueError, r"labels must lie in \[0, 2\]"),
    (lambda: dense.softmax_cross_entropy(np.zeros((2, 3)), np.array([0.0, 1.0])), TypeError, r"labels must be integers"),
    (lambda: dense.softmax_cross_entropy(np.zeros((2, 3)), np.array([0])), ValueError, r"labels must have shape \(2,\)"),
])
def test_bad_input_is_named(call, error, message):
    with pytest.raises(error, match=message):
        call()
