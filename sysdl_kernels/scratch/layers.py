"""Layers of the from-scratch CNN: each a small class with ``forward`` and ``backward`` side by side.

A layer caches what its backward needs during ``forward``; ``backward(grad_out)`` returns the
gradient with respect to its input and stores the gradients of its parameters in ``grads``
(same keys as ``params``). Arrays are numpy, (N, C, H, W) for images.

The compute comes from a *backend*: ``"numpy"`` (the im2col kernels of sysdl_kernels.conv,
.pool and .dense) or ``"numba"`` (sysdl_kernels.numba_layers); both give the same numbers.
"""

from __future__ import annotations

import importlib
from types import SimpleNamespace

import numpy as np

from sysdl_kernels import dense

BACKENDS = ("numpy", "numba")


def load_backend(name: str) -> SimpleNamespace:
    """The kernel functions a backend provides: conv2d(+_backward), max_pool2d(+_backward), relu(+_backward)."""
    if name == "numpy":
        from sysdl_kernels import conv, pool
        module = SimpleNamespace(conv2d=conv.conv2d, conv2d_backward=conv.conv2d_backward,
                                 max_pool2d=pool.max_pool2d, max_pool2d_backward=pool.max_pool2d_backward)
    elif name == "numba":
        module = importlib.import_module("sysdl_kernels.numba_layers")
    else:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    return SimpleNamespace(
        name=name,
        conv2d=module.conv2d, conv2d_backward=module.conv2d_backward,
        max_pool2d=module.max_pool2d, max_pool2d_backward=module.max_pool2d_backward,
        relu=getattr(module, "relu", dense.relu),
        relu_backward=getattr(module, "relu_backward", dense.relu_backward),
    )


class Layer:
    """Base: no parameters. Subclasses set ``params`` and fill ``grads`` in backward."""

    def __init__(self):
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}

    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}={v.shape}" for k, v in self.params.items())
        return f"{type(self).__name__}({shapes})"


class Conv2D(Layer):
    def __init__(self, weight: np.ndarray, bias: np.ndarray, backend, stride=1, padding=0):
        super().__init__()
        self.params = {"weight": weight, "bias": bias}
        self.backend, self.stride, self.padding = backend, stride, padding

    def forward(self, x):
        self.x = x
        return self.backend.conv2d(x, self.params["weight"], self.params["bias"], self.stride, self.padding)

    def backward(self, grad_out):
        grad_x, self.grads["weight"], self.grads["bias"] = self.backend.conv2d_backward(
            grad_out, self.x, self.params["weight"], self.stride, self.padding)
        return grad_x


class ReLU(Layer):
    def __init__(self, backend):
        super().__init__()
        self.backend = backend

    def forward(self, x):
        self.x = x
        return self.backend.relu(x)

    def backward(self, grad_out):
        return self.backend.relu_backward(grad_out, self.x)


class MaxPool2D(Layer):
    def __init__(self, backend, kernel_size=2, stride=None):
        super().__init__()
        self.backend, self.kernel_size, self.stride = backend, kernel_size, stride

    def forward(self, x):
        self.x = x
        out, self.argmax = self.backend.max_pool2d(x, self.kernel_size, self.stride)
        return out

    def backward(self, grad_out):
        return self.backend.max_pool2d_backward(grad_out, self.argmax, self.x, self.kernel_size, self.stride)


class Flatten(Layer):
    def forward(self, x):
        self.shape = x.shape
        return x.reshape(x.shape[0], -1)                  # (N, C*H*W), C-major like torch

    def backward(self, grad_out):
        return grad_out.reshape(self.shape)


class Linear(Layer):
    def __init__(self, weight: np.ndarray, bias: np.ndarray):
        super().__init__()
        self.params = {"weight": weight, "bias": bias}

    def forward(self, x):
        self.x = x
        return dense.linear(x, self.params["weight"], self.params["bias"])

    def backward(self, grad_out):
        grad_x, self.grads["weight"], self.grads["bias"] = dense.linear_backward(
            grad_out, self.x, self.params["weight"])
        return grad_x


class SoftmaxCrossEntropy:
    """The loss layer: mean cross-entropy of softmax(logits) against integer labels."""

    def forward(self, logits: np.ndarray, labels: np.ndarray) -> float:
        loss, self.grad = dense.softmax_cross_entropy(logits, labels)
        return float(loss)

    def backward(self) -> np.ndarray:
        return self.grad
