"""The configurable Fashion-MNIST CNN: conv -> conv -> dense -> dense, ReLU between.

The spec's network is Conv2d(16, 3x3) -> Conv2d(16, 3x3) -> Linear(100) -> Linear(10) with no
pooling; every size is a field of ``FashionCNNConfig`` because the sweeps and pruning vary them.

    x (N, C, H, W) -> relu(conv1) [-> pool] -> relu(conv2) [-> pool] -> flatten
      -> relu(fc1) -> fc2 -> logits (N, num_classes)

    python -m models.nets.fashion_cnn     # prints the default network and its parameter count
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

INIT_METHODS = ("xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal",
                "normal", "uniform")
POOL_KINDS = (None, "max", "avg")


@dataclass(frozen=True)
class FashionCNNConfig:
    in_channels: int = 1          # image channels
    image_size: int = 28          # H = W of the input, pixels
    conv1_channels: int = 16      # filters of the first conv
    conv1_kernel: int = 3         # its square kernel, pixels
    conv2_channels: int = 16      # filters of the second conv
    conv2_kernel: int = 3
    hidden_units: int = 100       # neurons of the hidden dense layer
    num_classes: int = 10
    pool: str | None = None       # None, "max" or "avg": a pool after each conv
    pool_kernel: int = 2          # pool window and stride, pixels
    init: str = "xavier_uniform"  # weight init (INIT_METHODS); biases always start at zero

    def __post_init__(self):
        self.layer_shapes()  # validates

    def layer_shapes(self) -> dict[str, tuple[int, ...]]:
        """Output shape (C, H, W) or (units,) of every layer; raises ValueError if one cannot work."""
        for name in ("in_channels", "image_size", "conv1_channels", "conv1_kernel", "conv2_channels",
                     "conv2_kernel", "hidden_units", "num_classes", "pool_kernel"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.pool not in POOL_KINDS:
            raise ValueError(f"pool must be one of {POOL_KINDS}, got {self.pool!r}")
        if self.init not in INIT_METHODS:
            raise ValueError(f"init must be one of {INIT_METHODS}, got {self.init!r}")
        shapes: dict[str, tuple[int, ...]] = {}
        size = self.image_size
        for layer, channels, kernel in (("conv1", self.conv1_channels, self.conv1_kernel),
                                        ("conv2", self.conv2_channels, self.conv2_kernel)):
            if kernel > size:
                raise ValueError(f"{layer}: kernel {kernel}x{kernel} is larger than its "
                                 f"{size}x{size} input; use a smaller kernel or a larger image")
            size = size - kernel + 1
            if self.pool:
                if self.pool_kernel > size:
                    raise ValueError(f"{layer} pool: window {self.pool_kernel} is larger than the "
                                     f"{size}x{size} feature map")
                size //= self.pool_kernel
            shapes[layer] = (channels, size, size)
        shapes["fc1"] = (self.hidden_units,)
        shapes["fc2"] = (self.num_classes,)
        return shapes

    def layer_specs(self) -> tuple[list, list[str]]:
        """The network as sysdl_kernels.flops layer descriptions, with names, for its cost model."""
        from sysdl_kernels import flops
        specs, names = [], []
        for layer, channels, kernel in (("conv1", self.conv1_channels, self.conv1_kernel),
                                        ("conv2", self.conv2_channels, self.conv2_kernel)):
            specs += [flops.Conv(channels, kernel), flops.ReLU()]
            names += [layer, f"{layer}.relu"]
            if self.pool:
                specs.append(flops.Pool(self.pool, self.pool_kernel))
                names.append(f"{layer}.pool")
        specs += [flops.Flatten(), flops.Linear(self.hidden_units), flops.ReLU(), flops.Linear(self.num_classes)]
        names += ["flatten", "fc1", "fc1.relu", "fc2"]
        return specs, names

    def cost(self) -> list:
        """Per-layer parameters, activations and FLOPs of one forward pass (sysdl_kernels.flops)."""
        from sysdl_kernels import flops
        specs, names = self.layer_specs()
        return flops.analyze(specs, (self.in_channels, self.image_size, self.image_size), names)

    @property
    def flat_features(self) -> int:
        c, h, w = self.layer_shapes()["conv2"]
        return c * h * w

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "FashionCNNConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown FashionCNNConfig fields: {sorted(unknown)}")
        return cls(**values)

    def replace(self, **changes) -> "FashionCNNConfig":
        return FashionCNNConfig(**{**self.to_dict(), **changes})


def init_weights(model: nn.Module, method: str) -> None:
    """Initialise every conv / linear weight by ``method`` and every bias to zero."""
    initialisers = {
        "xavier_uniform": nn.init.xavier_uniform_,
        "xavier_normal": nn.init.xavier_normal_,
        "kaiming_uniform": lambda w: nn.init.kaiming_uniform_(w, nonlinearity="relu"),
        "kaiming_normal": lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"),
        "normal": lambda w: nn.init.normal_(w, std=0.01),
        "uniform": lambda w: nn.init.uniform_(w, -0.05, 0.05),
    }
    if method not in initialisers:
        raise ValueError(f"unknown init {method!r}; expected one of {INIT_METHODS}")
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            initialisers[method](module.weight)
            nn.init.zeros_(module.bias)


class FashionCNN(nn.Module):
    def __init__(self, config: FashionCNNConfig = FashionCNNConfig()):
        super().__init__()
        self.config = config
        self.conv1 = nn.Conv2d(config.in_channels, config.conv1_channels, config.conv1_kernel)
        self.conv2 = nn.Conv2d(config.conv1_channels, config.conv2_channels, config.conv2_kernel)
        self.fc1 = nn.Linear(config.flat_features, config.hidden_units)
        self.fc2 = nn.Linear(config.hidden_units, config.num_classes)
        init_weights(self, config.init)

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        if self.config.pool == "max":
            return F.max_pool2d(x, self.config.pool_kernel)
        if self.config.pool == "avg":
            return F.avg_pool2d(x, self.config.pool_kernel)
        return x

    def forward(self, x: torch.Tensor, capture: dict | None = None) -> torch.Tensor:
        """Logits; ``capture``, when given, receives the pre-ReLU outputs of conv1, conv2 and fc1."""
        relu = F.relu if capture is not None else F.relu_   # in place unless the pre-ReLU maps are kept
        z1 = self.conv1(x)                                                   # (N, C1, H1, W1)
        z2 = self.conv2(self._pool(relu(z1)))                                # (N, C2, H2, W2)
        z3 = dense_on_feature_map(self._pool(relu(z2)), self.fc1.weight, self.fc1.bias)  # (N, hidden)
        if capture is not None:
            capture.update(conv1=z1, conv2=z2, fc1=z3)
        return self.fc2(F.relu(z3))                                          # (N, classes)


def dense_on_feature_map(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``linear(x.flatten(1), weight, bias)`` for a (N, C, H, W) feature map: the same sum.

    Where ``whole_map_conv_is_faster()``, it runs as a convolution whose kernel covers the whole
    map, weight viewed as (out, C, H, W), so that oneDNN computes it, forward and backward, with the
    widest vector instructions the CPU has; elsewhere (Intel CPUs, CUDA) it is the plain linear.
    """
    if x.device.type != "cpu" or not whole_map_conv_is_faster():
        return F.linear(x.flatten(1), weight, bias)
    n, c, h, w = x.shape
    return F.conv2d(x, weight.view(weight.shape[0], c, h, w), bias).flatten(1)  # (N, out)


def whole_map_conv_is_faster() -> bool:
    """Whether fc1 trains faster as a whole-map oneDNN convolution than as MKL's sgemm on this CPU.

    MKL's sgemm takes its widest (AVX-512) path on Intel CPUs only. Measured for fc1 (9216 -> 100,
    batch 128, forward + backward, 2 threads): on an AMD EPYC the convolution was 1.4x faster; on
    an Intel Xeon (Emerald Rapids) the linear was 2.9x faster. So: the convolution on every CPU
    but Intel's. The rule depends on the machine only, never on a timing, so a run's arithmetic
    is the same when it is resumed.
    """
    from sysdl_kernels.peaks import cpu_vendor
    return cpu_vendor() != "GenuineIntel"


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


if __name__ == "__main__":
    net = FashionCNN()
    print(net)
    print(f"parameters: {count_parameters(net):,}; layer shapes: {net.config.layer_shapes()}")
