"""One timed training epoch of the from-scratch CNN (Numba layers) and of its PyTorch twin.

    from sysdl_kernels.scratch.epoch import epoch_times
    epoch_times(x, y, ScratchConfig(image_size=28))   # {"numba scratch": s, "pytorch cpu": s}

Shared by `sysdl scratch profile` and the asv benchmark benchmarks/bench_scratch.py, so both
time the same thing.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from sysdl_kernels.scratch.net import ScratchCNN, ScratchConfig, torch_twin


def epoch_times(x: np.ndarray, y: np.ndarray, config: ScratchConfig, batch_size: int = 128) -> dict[str, float]:
    """Seconds for one SGD-momentum epoch of the Numba scratch CNN and of its PyTorch twin (CPU).
    Each runs one warm-up step first; both see the same batches."""
    from sysdl_kernels.scratch.optim import SGD

    order = np.random.default_rng(0).permutation(len(y))
    batches = [order[i:i + batch_size] for i in range(0, len(y), batch_size)]

    net = ScratchCNN(config, backend="numba", seed=0)
    opt = SGD(list(net.params.values()), lr=0.01, momentum=0.9)
    net.loss(x[batches[0]], y[batches[0]])
    start = time.perf_counter()
    for idx in batches:
        _, grads = net.loss(x[idx], y[idx])
        opt.step(list(grads.values()))
    scratch = time.perf_counter() - start

    twin = torch_twin(config, {k: v.copy() for k, v in ScratchCNN(config, seed=0).params.items()})
    topt = torch.optim.SGD(twin.parameters(), lr=0.01, momentum=0.9)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    twin(xt[:2]).sum().backward()
    start = time.perf_counter()
    for idx in batches:
        idx = torch.from_numpy(idx)
        loss = torch.nn.functional.cross_entropy(twin(xt[idx]), yt[idx])
        topt.zero_grad()
        loss.backward()
        topt.step()
    return {"numba scratch": scratch, "pytorch cpu": time.perf_counter() - start}
