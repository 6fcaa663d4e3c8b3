"""Analytic cost of one forward pass: parameters, activations, FLOPs and memory traffic, per layer.

A network is a list of layer descriptions applied to one input of shape (C, H, W):

    leaves      Conv, Linear, BatchNorm, Pool (max/avg, padding, ceil_mode), AdaptiveAvgPool,
                ReLU, Dropout, Flatten
    composites  Sequential (layers in order), Concat (parallel branches on one input, outputs
                joined along channels: Inception), Residual (body + shortcut, then an add: ResNet)

Anywhere a list of layers is expected an entry may be a ``(name, layer)`` pair; nested names are
joined with dots ("inception3a.branch2.0.conv"), so a zoo network can reuse torchvision's module
names. Unnamed entries are called "index:kind". ``analyze`` flattens a network into one
``LayerCost`` row per leaf, plus one row per Concat ("NAME.concat": the joined output) and per
Residual ("NAME.add": body + shortcut, followed by the Residual's ``after`` layers, e.g. a ReLU).

Convention: a multiply-add (MAC) is 2 FLOPs; bias additions, ReLU (one comparison per element),
pooling (KH*KW - 1 comparisons or additions, plus one division for average pooling, per output),
inference BatchNorm (a folded scale and shift: 2 per element) and residual adds (1 per element)
are counted separately as ``other_flops``, so ``gemm_flops`` matches torch.utils.flop_counter
(which counts 2 * MACs of convolutions and matrix products and nothing else). Dropout (identity
at inference), Flatten (a view) and Concat cost no FLOPs.

For a convolution with C_in -> C_out channels, G groups, a KH x KW kernel and an OH x OW output:
    MACs   = C_out * OH * OW * (C_in / G) * KH * KW     bias adds = C_out * OH * OW
For a dense layer with F inputs and U outputs:
    MACs   = U * F                                     bias adds = U
so the base Fashion-MNIST CNN (1x28x28 -> conv 16@3x3 -> conv 16@3x3 -> 100 -> 10) costs
    2 * (16*26*26*1*9 + 16*24*24*16*9 + 100*9216 + 10*100) = 4,694,096 FLOPs in its GEMMs,
plus 10,816 + 9,216 + 100 + 10 bias adds and 10,816 + 9,216 + 100 ReLU comparisons:
4,734,370 FLOPs in all.

Memory traffic for a roofline / PALEO time model (``bytes_read``, ``bytes_written``,
``memory_bytes``): a layer reads its input activations and its parameters once and writes its
output once, at ``dtype_bytes`` per element; Dropout and Flatten run no kernel at inference and
move nothing. (BatchNorm's running mean and variance are buffers, not parameters, and are left out.)

The receptive field of a stack of convolutions (``receptive_field``) is
    r = 1 + sum_i (k_i - 1) * prod_{j<i} s_j,
which for N stride-1 FxF convolutions is N*F - N + 1 (``receptive_field_closed_form``).

    python -m sysdl_kernels.flops      # the base network's table
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# ---- layer descriptions: leaves --------------------------------------------------------------


@dataclass(frozen=True)
class Conv:
    out_channels: int
    kernel: int | tuple[int, int]             # KH x KW, pixels
    stride: int | tuple[int, int] = 1
    padding: int | tuple[int, int] = 0        # zeros added on each side
    bias: bool = True
    groups: int = 1                           # C_in and C_out split into this many independent convs


@dataclass(frozen=True)
class Pool:
    kind: str                                 # "max" or "avg"
    kernel: int | tuple[int, int]
    stride: int | tuple[int, int] | None = None   # default: the kernel (non-overlapping windows)
    padding: int | tuple[int, int] = 0
    ceil_mode: bool = False                   # round the output size up, as nn.MaxPool2d(ceil_mode=True)


@dataclass(frozen=True)
class AdaptiveAvgPool:
    output_size: int | tuple[int, int]        # OH x OW, whatever the input size


@dataclass(frozen=True)
class BatchNorm:
    """Per-channel scale gamma and shift beta (counted as weight and bias, as torchvision does)."""


@dataclass(frozen=True)
class ReLU:
    pass


@dataclass(frozen=True)
class Dropout:
    p: float = 0.5                            # identity at inference: no FLOPs, no traffic


@dataclass(frozen=True)
class Flatten:
    pass


@dataclass(frozen=True)
class Linear:
    out_features: int
    bias: bool = True

# ---- layer descriptions: composites ----------------------------------------------------------


@dataclass(frozen=True)
class Sequential:
    layers: tuple                             # layers or (name, layer) pairs, applied in order


@dataclass(frozen=True)
class Concat:
    branches: tuple                           # each applied to the same input; outputs joined on C


@dataclass(frozen=True)
class Residual:
    body: tuple                               # layers or (name, layer) pairs, named under the block
    shortcut: tuple | None = None             # None: identity; else e.g. a strided 1x1 conv + BatchNorm
    after: tuple = ()                         # layers applied to the sum (ResNet: a ReLU)


@dataclass
class LayerCost:
    name: str
    output_shape: tuple[int, ...]
    activations: int          # output elements (multiply by the dtype size for bytes)
    weights: int
    biases: int
    macs: int
    gemm_flops: int           # 2 * macs
    other_flops: int          # bias adds, ReLU comparisons, pooling, BatchNorm, residual adds
    input_activations: int = 0   # elements read from the inputs (all of them for Concat / add)
    kind: str = ""               # "conv", "linear", "batchnorm", "maxpool", "concat", "add", ...
    input_shape: tuple = ()      # the leaf layer's input (C, H, W) or (features,)
    layer: object = None         # the leaf layer's description (Conv, Linear, ...), None for concat / add

    @property
    def params(self) -> int:
        return self.weights + self.biases

    @property
    def flops(self) -> int:
        return self.gemm_flops + self.other_flops


FREE_KINDS = ("dropout", "flatten")          # no kernel runs at inference, so no memory traffic


def bytes_read(cost: LayerCost, dtype_bytes: int = 4, batch: int = 1) -> int:
    """Bytes a layer reads for a batch: its input activations per image and its parameters once."""
    if cost.kind in FREE_KINDS:
        return 0
    return (batch * cost.input_activations + cost.params) * dtype_bytes


def bytes_written(cost: LayerCost, dtype_bytes: int = 4, batch: int = 1) -> int:
    """Bytes a layer writes for a batch: its output activations, once per image."""
    return 0 if cost.kind in FREE_KINDS else batch * cost.activations * dtype_bytes


def memory_bytes(cost: LayerCost, dtype_bytes: int = 4, batch: int = 1) -> int:
    """Bytes moved to and from memory by one layer (read + written): a roofline model's traffic."""
    return bytes_read(cost, dtype_bytes, batch) + bytes_written(cost, dtype_bytes, batch)

# ---- shape arithmetic ------------------------------------------------------------------------


def _hw(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def _count(shape) -> int:
    total = 1
    for dim in shape:
        total *= dim
    return total


def _chw(shape, name: str, what: str) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise ValueError(f"{name}: {what} needs a (C, H, W) input, got {shape}; put it before Flatten()")
    return shape


def _pool_size(size: int, kernel: int, stride: int, padding: int, ceil_mode: bool) -> int:
    """Output length of a pooling window along one axis, exactly as PyTorch computes it."""
    out = (size + 2 * padding - kernel + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1    # PyTorch drops a last window that would start entirely in the right padding
    return out

# ---- per-kind cost: each returns (output shape, weights, biases, macs, other_flops) ----------


def _conv(layer: Conv, shape, name):
    c, h, w = _chw(shape, name, "a conv")
    (kh, kw), (sh, sw), (ph, pw) = _hw(layer.kernel), _hw(layer.stride), _hw(layer.padding)
    if c % layer.groups or layer.out_channels % layer.groups:
        raise ValueError(f"{name}: groups={layer.groups} must divide both {c} input and "
                         f"{layer.out_channels} output channels")
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    if oh < 1 or ow < 1:
        raise ValueError(f"{name}: kernel {kh}x{kw} does not fit the {h}x{w} input (padding {ph}x{pw})")
    weights = layer.out_channels * (c // layer.groups) * kh * kw
    biases, bias_adds = (layer.out_channels, layer.out_channels * oh * ow) if layer.bias else (0, 0)
    return (layer.out_channels, oh, ow), weights, biases, weights * oh * ow, bias_adds


def _pool(layer: Pool, shape, name):
    c, h, w = _chw(shape, name, "a pool")
    if layer.kind not in ("max", "avg"):
        raise ValueError(f"{name}: pool kind must be 'max' or 'avg', got {layer.kind!r}")
    (kh, kw), (ph, pw) = _hw(layer.kernel), _hw(layer.padding)
    sh, sw = _hw(layer.stride if layer.stride is not None else layer.kernel)
    oh, ow = _pool_size(h, kh, sh, ph, layer.ceil_mode), _pool_size(w, kw, sw, pw, layer.ceil_mode)
    if oh < 1 or ow < 1:
        raise ValueError(f"{name}: pool window {kh}x{kw} does not fit the {h}x{w} input")
    # Every output costs a full window (padding included): exact without padding, an upper bound with it.
    return (c, oh, ow), 0, 0, 0, c * oh * ow * (kh * kw - 1 + (layer.kind == "avg"))


def _adaptive_windows(size: int, out: int) -> int:
    """Sum of the window lengths nn.AdaptiveAvgPool2d uses along one axis."""
    return sum(math.ceil((i + 1) * size / out) - (i * size) // out for i in range(out))


def _adaptive_avg_pool(layer: AdaptiveAvgPool, shape, name):
    c, h, w = _chw(shape, name, "an adaptive pool")
    oh, ow = _hw(layer.output_size)
    # A window of n elements costs n - 1 additions and one division: n FLOPs.
    return (c, oh, ow), 0, 0, 0, c * _adaptive_windows(h, oh) * _adaptive_windows(w, ow)


def _batch_norm(layer: BatchNorm, shape, name):
    c, _, _ = _chw(shape, name, "a BatchNorm")
    return shape, c, c, 0, 2 * _count(shape)


def _linear(layer: Linear, shape, name):
    if len(shape) != 1:
        raise ValueError(f"{name}: a dense layer needs a flat input, got {shape}; add Flatten()")
    weights = layer.out_features * shape[0]
    biases = layer.out_features if layer.bias else 0
    return (layer.out_features,), weights, biases, weights, biases


_LEAVES = {  # description type -> (kind, cost function)
    Conv: ("conv", _conv),
    Linear: ("linear", _linear),
    BatchNorm: ("batchnorm", _batch_norm),
    Pool: (None, _pool),                      # kind "maxpool" or "avgpool", from layer.kind
    AdaptiveAvgPool: ("adaptive_avgpool", _adaptive_avg_pool),
    ReLU: ("relu", lambda layer, shape, name: (shape, 0, 0, 0, _count(shape))),
    Dropout: ("dropout", lambda layer, shape, name: (shape, 0, 0, 0, 0)),
    Flatten: ("flatten", lambda layer, shape, name: ((_count(shape),), 0, 0, 0, 0)),
}

# ---- walking a network -----------------------------------------------------------------------


def _entry(entry, index: int, prefix: str) -> tuple[str, object]:
    """(full name, layer) of one list entry: a layer or a (name, layer) pair."""
    if isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[0], str):
        return prefix + entry[0], entry[1]
    return f"{prefix}{index}:{type(entry).__name__.lower()}", entry


def _walk(entries, shape, prefix: str, costs: list, names=None):
    """Append the rows of ``entries`` applied in order to ``shape``; return the output shape."""
    for index, entry in enumerate(entries):
        name, layer = _entry(entry, index, prefix)
        if names:
            name = names[index]
        shape = _visit(layer, shape, name, costs)
    return shape


def _visit(layer, shape, name: str, costs: list):
    if isinstance(layer, Sequential):
        return _walk(layer.layers, shape, name + ".", costs)
    if isinstance(layer, Concat):
        return _concat(layer, shape, name, costs)
    if isinstance(layer, Residual):
        return _residual(layer, shape, name, costs)
    if type(layer) not in _LEAVES:
        raise TypeError(f"{name}: unknown layer description {layer!r}; expected one of "
                        f"{', '.join(t.__name__ for t in (*_LEAVES, Sequential, Concat, Residual))}")
    kind, cost = _LEAVES[type(layer)]
    out, weights, biases, macs, other = cost(layer, shape, name)
    kind = kind or f"{layer.kind}pool"
    costs.append(LayerCost(name, out, _count(out), weights, biases, macs, 2 * macs, other, _count(shape), kind,
                           tuple(shape), layer))
    return out


def _concat(layer: Concat, shape, name: str, costs: list):
    outputs = [_walk([branch], shape, name + ".", costs) for branch in _numbered(layer.branches)]
    if not outputs:
        raise ValueError(f"{name}: a Concat needs at least one branch")
    if any(len(out) != 3 or out[1:] != outputs[0][1:] for out in outputs):
        raise ValueError(f"{name}: branches must all give (C, H, W) outputs of one H x W to be "
                         f"concatenated, got {outputs}")
    out = (sum(o[0] for o in outputs), *outputs[0][1:])
    costs.append(LayerCost(f"{name}.concat", out, _count(out), 0, 0, 0, 0, 0, sum(map(_count, outputs)),
                           "concat"))
    return out


def _residual(layer: Residual, shape, name: str, costs: list):
    body = _walk(layer.body, shape, name + ".", costs)
    shortcut = shape if layer.shortcut is None else _walk(layer.shortcut, shape, name + ".", costs)
    if body != shortcut:
        raise ValueError(f"{name}: the body gives {body} but the shortcut gives {shortcut}; a projection "
                         f"shortcut (1x1 conv with the body's stride and channels) makes them agree")
    costs.append(LayerCost(f"{name}.add", body, _count(body), 0, 0, 0, 0, _count(body), 2 * _count(body), "add"))
    return _walk(layer.after, body, name + ".", costs)


def _numbered(branches):
    """Unnamed branches are named by position, so their rows stay apart ("0:sequential", ...)."""
    return [entry if isinstance(entry, tuple) else (f"{i}:{type(entry).__name__.lower()}", entry)
            for i, entry in enumerate(branches)]


def analyze(layers: list, input_shape: tuple[int, ...], names: list[str] | None = None) -> list[LayerCost]:
    """Cost of every layer of ``layers`` on one input of ``input_shape`` (C, H, W), one row per leaf.

    ``names``, if given, names the top-level entries (one per entry); otherwise entries may be
    ``(name, layer)`` pairs.
    """
    if names is not None and len(names) != len(layers):
        raise ValueError(f"got {len(names)} names for {len(layers)} layers; give one name per layer")
    costs: list[LayerCost] = []
    _walk(layers, tuple(input_shape), "", costs, names)
    return costs


def totals(costs: list[LayerCost]) -> dict:
    """Network sums; ``conv_flops_share`` is the fraction of all FLOPs spent in conv layers.

    ``activations`` adds every row's output, ReLU and concat rows included (torchvision's in-place
    ReLUs reuse their input's memory), so it is the traffic-side count, not peak memory.
    """
    flops = sum(c.flops for c in costs)
    conv_flops = sum(c.flops for c in costs if c.kind == "conv")
    return {"params": sum(c.params for c in costs), "weights": sum(c.weights for c in costs),
            "macs": sum(c.macs for c in costs), "gemm_flops": sum(c.gemm_flops for c in costs),
            "flops": flops, "activations": sum(c.activations for c in costs),
            "conv_flops": conv_flops, "conv_flops_share": conv_flops / flops if flops else 0.0}

# ---- receptive field -------------------------------------------------------------------------


def receptive_field(kernels: list[int], strides: list[int] | None = None) -> int:
    """Input pixels (along one axis) seen by one output of a stack of convolutions / pools.

    r = 1 + sum_i (k_i - 1) * prod_{j<i} s_j: layer i widens the field by k_i - 1 of its own
    input pixels, each of which is prod_{j<i} s_j pixels apart in the network's input.
    """
    strides = [1] * len(kernels) if strides is None else list(strides)
    if len(strides) != len(kernels):
        raise ValueError(f"got {len(kernels)} kernels but {len(strides)} strides; give one stride per kernel")
    if any(k < 1 for k in kernels) or any(s < 1 for s in strides):
        raise ValueError(f"kernels and strides must be >= 1, got kernels {kernels}, strides {strides}")
    field, jump = 1, 1
    for kernel, stride in zip(kernels, strides):
        field += (kernel - 1) * jump
        jump *= stride
    return field


def receptive_field_closed_form(n: int, f: int, stride: int = 1) -> int:
    """Receptive field of n FxF convolutions of one stride: n*f - n + 1 at stride 1, else the
    geometric sum 1 + (f - 1) * (s^n - 1) / (s - 1)."""
    if n < 0 or f < 1 or stride < 1:
        raise ValueError(f"need n >= 0 layers, kernel f >= 1 and stride >= 1, got n={n}, f={f}, stride={stride}")
    if stride == 1:
        return n * f - n + 1
    return 1 + (f - 1) * (stride ** n - 1) // (stride - 1)


if __name__ == "__main__":
    base = [Conv(16, 3), ReLU(), Conv(16, 3), ReLU(), Flatten(), Linear(100), ReLU(), Linear(10)]
    for cost in analyze(base, (1, 28, 28)):
        print(f"{cost.name:12s} out {str(cost.output_shape):14s} params {cost.params:8,d} "
              f"MACs {cost.macs:10,d} FLOPs {cost.flops:10,d}")
    print(totals(analyze(base, (1, 28, 28))))
