"""Per-layer time of the from-scratch CNN on numpy and Numba layers and of the same network in
PyTorch (CPU, and CUDA when present), plus one training epoch of each.

    sysdl scratch profile                     # batch 128, the table, a bar chart, the epoch times
    sysdl scratch profile --quick             # small batch and epoch (CI smoke test)

Method, the same for every implementation: one forward pass records every layer's real input;
then each layer alone runs forward and backward (on a fixed random upstream gradient) several
times, after a warm-up (Numba's JIT compile, oneDNN's first call), and the median of each is
kept. PyTorch layers run with autograd as in training and are timed with CUDA synchronised.
The epoch times train on the same images, in the same order, with SGD with momentum.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np
import torch

from sysdl_kernels.runtime import median_seconds
from sysdl_kernels.scratch.net import ScratchCNN, ScratchConfig, torch_twin


def _median_ms(fn, repeats: int, sync=None) -> float:
    return 1e3 * median_seconds(fn, repeats, warmup=2, sync=sync)


def profile_scratch(net: ScratchCNN, x: np.ndarray, repeats: int) -> dict[str, tuple[float, float]]:
    """{layer: (forward ms, backward ms)} for a scratch network."""
    rng = np.random.default_rng(0)
    timings = {}
    for name, layer in net.layers.items():
        out = layer.forward(x)
        upstream = rng.standard_normal(out.shape).astype(out.dtype)
        forward = _median_ms(lambda: layer.forward(x), repeats)
        layer.forward(x)
        backward = _median_ms(lambda: layer.backward(upstream), repeats)
        timings[name] = (forward, backward)
        x = out
    return timings


def profile_torch(net: torch.nn.Sequential, x: torch.Tensor, repeats: int) -> dict[str, tuple[float, float]]:
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    gen = torch.Generator(device=x.device).manual_seed(0)
    timings = {}
    for index, (name, module) in enumerate(net.named_children()):
        inp = x.detach().requires_grad_(index > 0)      # the image input needs no gradient
        out = module(inp)
        upstream = torch.randn(out.shape, generator=gen, device=x.device, dtype=out.dtype)
        forward = _median_ms(lambda: module(inp), repeats, sync=sync)

        def run_backward() -> float:
            out = module(inp)                     # a fresh graph, built outside the timed region
            sync()
            start = time.perf_counter()
            out.backward(upstream)
            sync()
            return time.perf_counter() - start

        for _ in range(2):
            run_backward()
        backward = 1e3 * statistics.median(run_backward() for _ in range(repeats))
        timings[name] = (forward, backward)
        x = out.detach()
    return timings


def layer_table(results: dict[str, dict[str, tuple[float, float]]]):
    """pandas table: rows layer (+ total), columns (implementation, forward/backward ms)."""
    import pandas as pd
    frame = pd.DataFrame({(impl, phase): {layer: t[i] for layer, t in timings.items()}
                          for impl, timings in results.items() for i, phase in enumerate(("forward", "backward"))})
    frame.loc["total"] = frame.sum()
    frame.columns = pd.MultiIndex.from_tuples(frame.columns, names=["implementation", "ms"])
    if "numpy" in results and "numba" in results:
        both = lambda impl: frame[(impl, "forward")] + frame[(impl, "backward")]
        frame[("numba speedup", "fwd+bwd")] = both("numpy") / both("numba")
    return frame


def plot_layers(frame, path: str | Path) -> Path:
    """Grouped bars: forward + backward ms per layer and implementation, log scale."""
    from models.shared.figures import new_figure, save

    impls = [c for c in frame.columns.get_level_values(0).unique() if c != "numba speedup"]
    layers = [name for name in frame.index if name != "total"]
    fig, ax = new_figure((9, 4.5))
    width = 0.8 / len(impls)
    positions = np.arange(len(layers))
    for k, impl in enumerate(impls):
        fwd = frame.loc[layers, (impl, "forward")].to_numpy()
        bwd = frame.loc[layers, (impl, "backward")].to_numpy()
        ax.bar(positions + k * width, fwd, width, label=f"{impl} forward")
        ax.bar(positions + k * width, bwd, width, bottom=fwd, alpha=0.5, label=f"{impl} backward")
    ax.set_xticks(positions + width * (len(impls) - 1) / 2, layers)
    ax.set(ylabel="ms per batch (forward, backward stacked)", yscale="log",
           title="from-scratch CNN: time per layer")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, ncols=2)
    return save(fig, path)


def run_profile(x: np.ndarray, repeats: int = 10) -> dict[str, dict[str, tuple[float, float]]]:
    """Per-layer timings of numpy, numba and torch (cpu, and cuda when available) on the batch x."""
    config = ScratchConfig(in_channels=x.shape[1], image_size=x.shape[-1])
    params = ScratchCNN(config, seed=0).params
    results = {backend: profile_scratch(ScratchCNN(config, backend, {k: v.copy() for k, v in params.items()}),
                                        x, repeats) for backend in ("numpy", "numba")}
    twin = torch_twin(config, params)
    results["pytorch cpu"] = profile_torch(twin, torch.from_numpy(x), repeats)
    if torch.cuda.is_available():
        results["pytorch cuda"] = profile_torch(twin.cuda(), torch.from_numpy(x).cuda(), repeats)
    return results
