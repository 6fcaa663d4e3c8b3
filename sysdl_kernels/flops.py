"""Analytic cost of one forward pass: parameters, activations and FLOPs, per layer and in total.

A network is a list of layer descriptions (Conv, Pool, ReLU, Flatten, Linear) applied to one
input of shape (C, H, W). Convention: a multiply-add (MAC) is 2 FLOPs; bias additions, ReLU
(one comparison per element) and pooling (KH*KW - 1 comparisons or additions, plus one
division for average pooling, per output) are counted separately, so the GEMM/convolution
FLOPs match torch.utils.flop_counter (which counts 2 * MACs and nothing else).

For a convolution with C_in -> C_out channels, a KH x KW kernel and an OH x OW output:
    MACs   = C_out * OH * OW * C_in * KH * KW          bias adds = C_out * OH * OW
For a dense layer with F inputs and U outputs:
    MACs   = U * F                                     bias adds = U
so the base Fashion-MNIST CNN (1x28x28 -> conv 16@3x3 -> conv 16@3x3 -> 100 -> 10) costs
    2 * (16*26*26*1*9 + 16*24*24*16*9 + 100*9216 + 10*100) = 4,694,096 FLOPs in its GEMMs,
plus 10,816 + 9,216 + 100 + 10 bias adds and 10,816 + 9,216 + 100 ReLU comparisons:
4,734,370 FLOPs in all.

    python -m sysdl_kernels.flops      # the base network's table
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Conv:
    out_channels: int
    kernel: int | tuple[int, int]
    stride: int = 1
    padding: int = 0
    bias: bool = True


@dataclass(frozen=True)
class Pool:
    kind: str                 # "max" or "avg"
    kernel: int
    stride: int | None = None


@dataclass(frozen=True)
class ReLU:
    pass


@dataclass(frozen=True)
class Flatten:
    pass


@dataclass(frozen=True)
class Linear:
    out_features: int
    bias: bool = True


@dataclass
class LayerCost:
    name: str
    output_shape: tuple[int, ...]
    activations: int          # output elements (multiply by the dtype size for bytes)
    weights: int
    biases: int
    macs: int
    gemm_flops: int           # 2 * macs
    other_flops: int          # bias adds, ReLU comparisons, pooling

    @property
    def params(self) -> int:
        return self.weights + self.biases

    @property
    def flops(self) -> int:
        return self.gemm_flops + self.other_flops


def _hw(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def analyze(layers: list, input_shape: tuple[int, int, int], names: list[str] | None = None) -> list[LayerCost]:
    """Cost of every layer of ``layers`` on one input of ``input_shape`` (C, H, W)."""
    shape = tuple(input_shape)
    costs = []
    for index, layer in enumerate(layers):
        name = names[index] if names else f"{index}:{type(layer).__name__.lower()}"
        weights = biases = macs = other = 0
        if isinstance(layer, Conv):
            if len(shape) != 3:
                raise ValueError(f"{name}: a conv needs a (C, H, W) input, got {shape}")
            (kh, kw), c, (h, w) = _hw(layer.kernel), shape[0], shape[1:]
            oh, ow = (h + 2 * layer.padding - kh) // layer.stride + 1, (w + 2 * layer.padding - kw) // layer.stride + 1
            if oh < 1 or ow < 1:
                raise ValueError(f"{name}: kernel {kh}x{kw} does not fit the {h}x{w} input")
            shape = (layer.out_channels, oh, ow)
            weights = layer.out_channels * c * kh * kw
            macs = layer.out_channels * oh * ow * c * kh * kw
            if layer.bias:
                biases, other = layer.out_channels, layer.out_channels * oh * ow
        elif isinstance(layer, Pool):
            stride = layer.stride or layer.kernel
            c, h, w = shape
            shape = (c, (h - layer.kernel) // stride + 1, (w - layer.kernel) // stride + 1)
            outputs = shape[0] * shape[1] * shape[2]
            other = outputs * (layer.kernel ** 2 - 1 + (layer.kind == "avg"))
        elif isinstance(layer, ReLU):
            other = _count(shape)
        elif isinstance(layer, Flatten):
            shape = (_count(shape),)
        elif isinstance(layer, Linear):
            if len(shape) != 1:
                raise ValueError(f"{name}: a dense layer needs a flat input, got {shape}; add Flatten()")
            weights, macs = layer.out_features * shape[0], layer.out_features * shape[0]
            if layer.bias:
                biases = other = layer.out_features
            shape = (layer.out_features,)
        else:
            raise TypeError(f"{name}: unknown layer description {layer!r}")
        costs.append(LayerCost(name, shape, _count(shape), weights, biases, macs, 2 * macs, other))
    return costs


def _count(shape) -> int:
    total = 1
    for dim in shape:
        total *= dim
    return total


def totals(costs: list[LayerCost]) -> dict[str, int]:
    return {"params": sum(c.params for c in costs), "macs": sum(c.macs for c in costs),
            "gemm_flops": sum(c.gemm_flops for c in costs), "flops": sum(c.flops for c in costs),
            "activations": sum(c.activations for c in costs)}


if __name__ == "__main__":
    base = [Conv(16, 3), ReLU(), Conv(16, 3), ReLU(), Flatten(), Linear(100), ReLU(), Linear(10)]
    for cost in analyze(base, (1, 28, 28)):
        print(f"{cost.name:12s} out {str(cost.output_shape):14s} params {cost.params:8,d} "
              f"MACs {cost.macs:10,d} FLOPs {cost.flops:10,d}")
    print(totals(analyze(base, (1, 28, 28))))
