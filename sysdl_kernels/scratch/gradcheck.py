"""Gradient checker: analytic backward passes against centred finite differences.

    numeric d f / d a[i]  =  (f(a + eps e_i) - f(a - eps e_i)) / (2 eps)       error O(eps^2)
    relative error        =  max_i |analytic_i - numeric_i| / max(|analytic_i| + |numeric_i|, tiny)

A layer is checked through the scalar f = sum(layer.forward(x) * g) for a fixed random g, so
its backward(g) must equal d f / d x and its ``grads`` d f / d params. The whole network is
checked through its loss. Everything runs in float64 (with float32, rounding swamps eps^2);
entries are sampled (``samples`` per array) to keep big layers quick. Errors below ~1e-7
mean the backward is right; ReLU kinks and max-pool ties can rarely cost a few digits.

    sysdl gradcheck [--backend numba]       # prints the table
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from sysdl_kernels.scratch.net import ScratchCNN, ScratchConfig

GRADCHECK_CONFIG = ScratchConfig(in_channels=2, image_size=8, conv_channels=3, kernel_size=3,
                                 hidden_units=7, num_classes=5)


def relative_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    scale = np.maximum(np.abs(analytic) + np.abs(numeric), 1e-12)
    return float(np.max(np.abs(analytic - numeric) / scale))


def numerical_gradient(f: Callable[[], float], array: np.ndarray, indices, eps: float = 1e-6) -> np.ndarray:
    """Centred differences of f() with respect to ``array`` at ``indices``, perturbing in place."""
    values = []
    for index in indices:
        original = array[index]
        array[index] = original + eps
        plus = f()
        array[index] = original - eps
        minus = f()
        array[index] = original
        values.append((plus - minus) / (2 * eps))
    return np.array(values)


def _sample(shape, samples: int, rng) -> list[tuple[int, ...]]:
    flat = rng.choice(int(np.prod(shape)), size=min(samples, int(np.prod(shape))), replace=False)
    return [tuple(int(v) for v in np.unravel_index(i, shape)) for i in flat]


def check_layer(layer, x: np.ndarray, rng, samples: int = 20) -> dict[str, float]:
    """Max relative error of the layer's input gradient and of each parameter gradient."""
    out = layer.forward(x)
    upstream = rng.standard_normal(out.shape)
    analytic = {"input": layer.backward(upstream)}
    analytic.update({name: grad.copy() for name, grad in layer.grads.items()})
    f = lambda: float(np.sum(layer.forward(x) * upstream))
    errors = {}
    for name, array in [("input", x), *layer.params.items()]:
        indices = _sample(array.shape, samples, rng)
        numeric = numerical_gradient(f, array, indices)
        errors[name] = relative_error(np.array([analytic[name][i] for i in indices]), numeric)
    return errors


def check_network(net: ScratchCNN, x: np.ndarray, y: np.ndarray, rng, samples: int = 20) -> dict[str, float]:
    """Max relative error of every parameter's gradient of the network's loss."""
    _, grads = net.loss(x, y)
    grads = {k: v.copy() for k, v in grads.items()}
    f = lambda: net.loss(x, y)[0]
    errors = {}
    for name, array in net.params.items():
        indices = _sample(array.shape, samples, rng)
        errors[name] = relative_error(np.array([grads[name][i] for i in indices]),
                                      numerical_gradient(f, array, indices))
    return errors


def gradcheck(backend: str = "numpy", seed: int = 0, samples: int = 20, batch: int = 3) -> list[dict]:
    """Rows (scope, layer, tensor, max_rel_error) for every layer and the whole network, float64."""
    rng = np.random.default_rng(seed)
    config = GRADCHECK_CONFIG
    net = ScratchCNN(config, backend=backend, seed=seed, dtype=np.float64)
    x = rng.standard_normal((batch, config.in_channels, config.image_size, config.image_size))
    y = rng.integers(0, config.num_classes, batch)
    rows = []
    activation = x
    for name, layer in net.layers.items():
        # Each layer gets a random input of its real input's shape: the real one after a ReLU
        # is full of exact zeros, whose ties make max-pool's finite differences meaningless.
        layer_input = rng.standard_normal(activation.shape)
        activation = layer.forward(activation)
        for tensor, error in check_layer(layer, layer_input, rng, samples).items():
            rows.append({"scope": "layer", "layer": name, "tensor": tensor, "max_rel_error": error})
    for tensor, error in check_network(net, x, y, rng, samples).items():
        rows.append({"scope": "network loss", "layer": tensor.split(".")[0], "tensor": tensor,
                     "max_rel_error": error})
    return rows
