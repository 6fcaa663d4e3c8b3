"""asv benchmarks: every layer of the from-scratch CNN, forward and backward, on numpy and Numba
layers and in PyTorch (CPU, and CUDA when present); the family's baseline is torch.

Cases are "<layer> forward" and "<layer> backward" on batch 128 of Fashion-MNIST (real images
when installed, else seeded synthetic ones: the timings do not depend on pixel values). Each
layer sees its real input from one forward pass of the whole network; weights are the seeded
initial ones (timings do not depend on them either). A backward case repeats the layer's
backward on a fixed upstream gradient: the scratch layers keep what their forward cached, torch
differentiates one retained graph (torch.autograd.grad, input and parameter gradients).
Before timing, each case's output is compared with the torch twin's on the same weights (torch
in IEEE fp32 on CUDA too). ``LayerWork`` records each case's FLOPs and bytes (``layer_work``).
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from benchmarks.common import (BATCH, FLOAT32_BYTES, CaseWork, Family, TimedFamily, assert_matches, cpu_only,
                               fashion_batches, on_device, require_device, torch_precision)
from sysdl_kernels.flops import Conv, Flatten, Linear, Pool, ReLU, analyze, memory_bytes
from sysdl_kernels.scratch.net import ScratchCNN, ScratchConfig, torch_twin

LAYERS = ("conv", "relu1", "pool", "fc1", "relu2", "fc2")
CASES = tuple(f"{layer} {direction}" for layer in LAYERS for direction in ("forward", "backward"))
IMPLEMENTATIONS = ("torch", "numba", "numpy")


def _config() -> ScratchConfig:
    """The network for the benchmark images (real or synthetic Fashion-MNIST: 1 x 28 x 28)."""
    x, _ = fashion_batches(BATCH)
    return ScratchConfig(in_channels=x.shape[1], image_size=x.shape[-1])


@functools.lru_cache(maxsize=None)
def _network_inputs():
    """(config, params, {layer: its input}, {layer: upstream gradient}) for batch BATCH."""
    x, _ = fashion_batches(BATCH)
    config = _config()
    net = ScratchCNN(config, seed=0)
    rng = np.random.default_rng(0)
    inputs, upstream = {}, {}
    for name, layer in net.layers.items():
        inputs[name] = x
        x = layer.forward(x)
        upstream[name] = rng.standard_normal(x.shape).astype(x.dtype)
    return config, net.params, inputs, upstream


def _torch_layer(layer: str, device: str):
    """(module on device, its input tensor (requiring grad past the image), upstream gradient)."""
    config, params, inputs, upstream = _network_inputs()
    module = getattr(torch_twin(config, {k: v.copy() for k, v in params.items()}), layer).to(device)
    x = torch.from_numpy(inputs[layer]).to(device).requires_grad_(layer != "conv")
    return module, x, torch.from_numpy(upstream[layer]).to(device)


@functools.lru_cache(maxsize=None)
def _layer_costs() -> dict:
    """layer -> sysdl_kernels.flops LayerCost of one image, for the ScratchCNN's layers."""
    config = _config()
    k = config.kernel_size
    layers = [("conv", Conv(config.conv_channels, k, padding=k // 2)), ("relu1", ReLU()), ("pool", Pool("max", 2)),
              ("flatten", Flatten()), ("fc1", Linear(config.hidden_units)), ("relu2", ReLU()),
              ("fc2", Linear(config.num_classes))]
    return {cost.name: cost for cost in analyze(layers, (config.in_channels, config.image_size, config.image_size))}


def _backward_work(cost, batch: int, input_gradient: bool) -> tuple[float, float]:
    """(FLOPs, bytes) of a layer's backward. FLOPs: one GEMM of the forward's size for the
    weights' gradient, one more for the input's (when it needs one), and about the forward's
    other FLOPs (bias-gradient sums, ReLU selects, pooling's routing). Bytes: the upstream
    gradient, the input and the weights read once; the input's and the weights' gradients
    written once."""
    flops = cost.gemm_flops * (1 + input_gradient) + cost.other_flops
    inputs = batch * cost.input_activations
    read = batch * cost.activations + inputs + cost.params
    written = inputs * input_gradient + cost.params
    return batch * flops, FLOAT32_BYTES * (read + written)


def layer_work(case: str, implementation: str) -> tuple[float, float]:
    """(FLOPs, bytes) of one call of the case on BATCH images, the same for every implementation.
    The first layer's input is the image: its backward computes no input gradient (as timed)."""
    layer, direction = case.split()
    cost = _layer_costs()[layer]
    if direction == "forward":
        return BATCH * cost.flops, memory_bytes(cost, batch=BATCH)
    return _backward_work(cost, BATCH, input_gradient=layer != LAYERS[0])


def layer_case(case: str, implementation: str, device: str = "cpu"):
    """A zero-argument callable running one layer's forward or backward, checked against torch."""
    require_device(device)
    layer, direction = case.split()
    if layer not in LAYERS or direction not in ("forward", "backward"):
        raise ValueError(f"case must be '<layer> forward|backward' with a layer in {LAYERS}, got {case!r}")
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"implementation must be one of {IMPLEMENTATIONS}, got {implementation!r}")
    module, xt, gt = _torch_layer(layer, device)
    wrt = [t for t in (xt, *module.parameters()) if t.requires_grad]
    with torch_precision("ieee"):                           # the expected values in fp32 on CUDA too
        out = module(xt)
        expected = (out if direction == "forward" else torch.autograd.grad(out, wrt, gt, retain_graph=True)[0])
    if implementation == "torch":
        fn = on_device((lambda: module(xt)) if direction == "forward" else
                       (lambda: torch.autograd.grad(out, wrt, gt, retain_graph=True)), device)
        got = fn() if direction == "forward" else fn()[0]
    else:
        cpu_only(implementation, device)
        config, params, inputs, upstream = _network_inputs()
        scratch = ScratchCNN(config, implementation, {k: v.copy() for k, v in params.items()}).layers[layer]
        x, g = inputs[layer], upstream[layer]
        scratch.forward(x)
        fn = (lambda: scratch.forward(x)) if direction == "forward" else (lambda: scratch.backward(g))
        got = torch.from_numpy(np.asarray(fn()))
        if layer == "conv" and direction == "backward":      # the image needs no gradient: compare dW
            got, expected = torch.from_numpy(scratch.grads["weight"]), torch.autograd.grad(
                out, module.weight, gt, retain_graph=True)[0]
    assert_matches(got, expected)                          # float32 to 1e-4 of the array's scale
    return fn


LAYER_FAMILY = Family("layers", CASES, IMPLEMENTATIONS, layer_case, layer_work)


class ScratchLayers(TimedFamily):
    family = LAYER_FAMILY
    params = LAYER_FAMILY.params

    def time_layer(self, case, implementation, device):
        self.run()


class LayerWork(CaseWork):
    family = LAYER_FAMILY
    params = [list(LAYER_FAMILY.cases)]
