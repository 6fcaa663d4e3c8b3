"""The from-scratch CNN: conv -> ReLU -> max-pool -> linear -> ReLU -> linear -> softmax.

    x (N, C, H, W) -> conv (F filters KxK, 'same' padding) -> relu -> maxpool 2x2
      -> flatten (N, F*H/2*W/2) -> fc1 (hidden) -> relu -> fc2 (classes) -> softmax

``ScratchCNN.loss(x, y)`` is the oracle that drives training: it returns the loss and the
gradient of every parameter, by one forward and one backward pass through the layers.
Parameters are named like the PyTorch twin's state_dict (``torch_twin``), so tests and the
profiler can compare the two on the same weights.

    python -m sysdl_kernels.scratch.net     # one loss/gradient evaluation on random data
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from sysdl_kernels.scratch.layers import (Conv2D, Flatten, Linear, MaxPool2D, ReLU, SoftmaxCrossEntropy,
                                          load_backend)


@dataclass(frozen=True)
class ScratchConfig:
    in_channels: int = 1
    image_size: int = 28       # H = W, pixels; must be even (2x2 pool)
    conv_channels: int = 16    # filters of the conv layer
    kernel_size: int = 3       # odd, so 'same' padding keeps H and W
    hidden_units: int = 100
    num_classes: int = 10

    def __post_init__(self):
        for name in ("in_channels", "image_size", "conv_channels", "kernel_size", "hidden_units", "num_classes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd for 'same' padding, got {self.kernel_size}")
        if self.image_size % 2:
            raise ValueError(f"image_size must be even for the 2x2 pool, got {self.image_size}")

    @property
    def flat_features(self) -> int:
        return self.conv_channels * (self.image_size // 2) ** 2


def init_params(config: ScratchConfig, seed: int = 0, dtype=np.float32) -> "OrderedDict[str, np.ndarray]":
    """Weights uniform in +-1/sqrt(fan_in) (PyTorch's default bound for Conv2d/Linear), zero biases."""
    rng = np.random.default_rng(seed)
    k = config.kernel_size
    shapes = OrderedDict([
        ("conv.weight", (config.conv_channels, config.in_channels, k, k)), ("conv.bias", (config.conv_channels,)),
        ("fc1.weight", (config.hidden_units, config.flat_features)), ("fc1.bias", (config.hidden_units,)),
        ("fc2.weight", (config.num_classes, config.hidden_units)), ("fc2.bias", (config.num_classes,)),
    ])
    params = OrderedDict()
    for name, shape in shapes.items():
        if name.endswith("bias"):
            params[name] = np.zeros(shape, dtype=dtype)
        else:
            bound = 1.0 / np.sqrt(np.prod(shape[1:]))
            params[name] = rng.uniform(-bound, bound, shape).astype(dtype)
    return params


class ScratchCNN:
    def __init__(self, config: ScratchConfig = ScratchConfig(), backend: str = "numpy",
                 params: dict | None = None, seed: int = 0, dtype=np.float32):
        self.config = config
        self.backend = load_backend(backend)
        self.params = OrderedDict(params) if params is not None else init_params(config, seed, dtype)
        p = self.params
        self.layers = OrderedDict([
            ("conv", Conv2D(p["conv.weight"], p["conv.bias"], self.backend, padding=config.kernel_size // 2)),
            ("relu1", ReLU(self.backend)),
            ("pool", MaxPool2D(self.backend, 2)),
            ("flatten", Flatten()),
            ("fc1", Linear(p["fc1.weight"], p["fc1.bias"])),
            ("relu2", ReLU(self.backend)),
            ("fc2", Linear(p["fc2.weight"], p["fc2.bias"])),
        ])
        self.loss_layer = SoftmaxCrossEntropy()

    def scores(self, x: np.ndarray) -> np.ndarray:
        """Logits (N, classes)."""
        for layer in self.layers.values():
            x = layer.forward(x)
        return x

    def loss(self, x: np.ndarray, y: np.ndarray) -> tuple[float, "OrderedDict[str, np.ndarray]"]:
        """(mean cross-entropy, gradient of every parameter), from one forward and one backward pass.
        The logits stay in ``self.logits`` (for the training-pass accuracy)."""
        self.logits = self.scores(x)
        loss = self.loss_layer.forward(self.logits, y)
        grad = self.loss_layer.backward()
        for layer in reversed(self.layers.values()):
            grad = layer.backward(grad)
        grads = OrderedDict()
        for name in self.params:
            layer, key = name.split(".")
            grads[name] = self.layers[layer].grads[key]
        return loss, grads

    def predict(self, x: np.ndarray, batch_size: int = 1000) -> np.ndarray:
        return np.concatenate([self.scores(x[i:i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)])


def torch_twin(config: ScratchConfig, params: dict | None = None):
    """The same network in PyTorch (nn.Sequential), with ``params`` copied in when given."""
    import torch
    from torch import nn
    k = config.kernel_size
    net = nn.Sequential(OrderedDict([
        ("conv", nn.Conv2d(config.in_channels, config.conv_channels, k, padding=k // 2)),
        ("relu1", nn.ReLU()), ("pool", nn.MaxPool2d(2)), ("flatten", nn.Flatten()),
        ("fc1", nn.Linear(config.flat_features, config.hidden_units)), ("relu2", nn.ReLU()),
        ("fc2", nn.Linear(config.hidden_units, config.num_classes)),
    ]))
    if params is not None:
        dtype = torch.float64 if next(iter(params.values())).dtype == np.float64 else torch.float32
        net.to(dtype)                           # before loading, so float64 weights are not rounded
        net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in params.items()})
    return net


if __name__ == "__main__":
    net = ScratchCNN()
    rng = np.random.default_rng(0)
    value, gradients = net.loss(rng.standard_normal((8, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, 8))
    print(f"loss {value:.4f} (log 10 = {np.log(10):.4f}); gradient norms:",
          {k: round(float(np.linalg.norm(v)), 4) for k, v in gradients.items()})
