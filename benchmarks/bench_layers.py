"""asv benchmarks: every layer of the from-scratch CNN, forward and backward, on numpy and Numba
layers and in PyTorch (CPU, and CUDA when present); the family's baseline is torch.

Cases are "<layer> forward" and "<layer> backward" on batch 128 of Fashion-MNIST (real images
when installed, else seeded synthetic ones: the timings do not depend on pixel values). Each
layer sees its real input from one forward pass of the whole network; weights are the seeded
initial ones (timings do not depend on them either). A backward case repeats the layer's
backward on a fixed upstream gradient: the scratch layers keep what their forward cached, torch
differentiates one retained graph (torch.autograd.grad, input and parameter gradients).
Before timing, each case's output is compared with the torch twin's on the same weights.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from benchmarks.common import BATCH, Family, TimedFamily, cpu_only, fashion_batches, require_device, synchronised
from sysdl_kernels.scratch.net import ScratchCNN, ScratchConfig, torch_twin

LAYERS = ("conv", "relu1", "pool", "fc1", "relu2", "fc2")
CASES = tuple(f"{layer} {direction}" for layer in LAYERS for direction in ("forward", "backward"))
IMPLEMENTATIONS = ("torch", "numba", "numpy")


@functools.lru_cache(maxsize=None)
def _network_inputs():
    """(config, params, {layer: its input}, {layer: upstream gradient}) for batch BATCH."""
    x, _ = fashion_batches(BATCH)
    config = ScratchConfig(in_channels=x.shape[1], image_size=x.shape[-1])
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


def layer_case(case: str, implementation: str, device: str = "cpu"):
    """A zero-argument callable running one layer's forward or backward, checked against torch."""
    require_device(device)
    layer, direction = case.split()
    if layer not in LAYERS or direction not in ("forward", "backward"):
        raise ValueError(f"case must be '<layer> forward|backward' with a layer in {LAYERS}, got {case!r}")
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"implementation must be one of {IMPLEMENTATIONS}, got {implementation!r}")
    module, xt, gt = _torch_layer(layer, device)
    out = module(xt)
    wrt = [t for t in (xt, *module.parameters()) if t.requires_grad]
    expected = (out if direction == "forward" else torch.autograd.grad(out, wrt, gt, retain_graph=True)[0])
    if implementation == "torch":
        fn = synchronised((lambda: module(xt)) if direction == "forward" else
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
    expected = expected.detach().cpu().float()             # float32 to 1e-4 of the array's scale
    torch.testing.assert_close(got.cpu().float(), expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max()))
    return fn


LAYER_FAMILY = Family("layers", CASES, IMPLEMENTATIONS, layer_case)


class ScratchLayers(TimedFamily):
    family = LAYER_FAMILY
    params = LAYER_FAMILY.params

    def time_layer(self, case, implementation, device):
        self.run()
