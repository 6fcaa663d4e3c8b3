"""asv benchmarks: inference of the original and the pruned Fashion-MNIST CNN, as nn.Modules and as
pure matrix multiplications (MatmulNet on CPU: the layered program and the fused kernel it picks
for unpooled networks; and on Triton with a GPU); baseline: the original.

Each case predicts the first 1,000 test images at batch 1, 64 or 1000 (batching loop included,
CUDA synchronised). The models are the checkpoints the main job wrote: ``$SYSDL_BASE_CHECKPOINT``
(default runs/base.pt, `sysdl train`) and ``$SYSDL_PRUNED_CHECKPOINT`` (default
runs/pruned_selected.pt, `sysdl report prune`). Where one is missing, the timings use seeded
random weights of the same family instead (the default network, and a 4-2-25 pruned one): a
forward pass's time does not depend on the weights' values, and a message says so. The
``PrunedModel.track_*`` figures (test accuracy, FLOPs) do depend on them and are skipped then.
``InferenceWork`` records each case's FLOPs and bytes (``inference_work``): they depend on which
network an implementation runs, the original or the pruned one.
"""

from __future__ import annotations

import functools
import inspect
import os
from pathlib import Path

import torch

from benchmarks.common import (Family, ImplementationWork, RatioFigures, TimedFamily, assert_matches, cpu_only,
                               on_device, require_compiled_triton, require_device, speed_ratio, torch_precision)

IMAGES = 1000
BATCHES = (1, 64, 1000)
CASES = tuple(f"batch {b}" for b in BATCHES)
IMPLEMENTATIONS = ("original nn.Module", "pruned nn.Module", "MatmulNet layered", "MatmulNet", "MatmulNet triton")
STAND_IN_PRUNED = {"conv1_channels": 4, "conv2_channels": 2, "hidden_units": 25}


def checkpoint_path(kind: str) -> Path:
    """Where the benchmarks read the 'base' or 'pruned' model: the environment variable, else the
    main job's path under this checkout's runs/ (asv runs benchmarks from a temporary directory)."""
    from models.shared.artifacts import MAIN
    variable, default = {"base": ("SYSDL_BASE_CHECKPOINT", MAIN.base),
                         "pruned": ("SYSDL_PRUNED_CHECKPOINT", MAIN.selected)}[kind]
    return Path(os.environ.get(variable) or Path(__file__).resolve().parents[1] / default)


@functools.lru_cache(maxsize=None)
def load(kind: str):
    """(model in eval mode, checkpoint payload or None when seeded random weights stand in)."""
    from models.training.checkpoint import load_model
    from models.nets.fashion_cnn import FashionCNN, FashionCNNConfig
    path = checkpoint_path(kind)
    if path.is_file():
        model, payload = load_model(path)
        return model.eval(), payload
    print(f"note: no {kind} model at {path}; timing seeded random weights of the same shapes")
    config = FashionCNNConfig() if kind == "base" else FashionCNNConfig().replace(**STAND_IN_PRUNED)
    torch.manual_seed(0)
    return FashionCNN(config).eval(), None


@functools.lru_cache(maxsize=None)
def test_images():
    """(x, y): the first IMAGES test images, real when installed, else seeded synthetic ones."""
    from models.data.datasets import DataNotFoundError, load_fashion_mnist, synthetic_splits
    try:
        split = load_fashion_mnist().test
    except DataNotFoundError:
        split = synthetic_splits(n_train=1, n_test=IMAGES).test
    return split.x[:IMAGES], split.y[:IMAGES]


def _network(implementation: str) -> str:
    """Which model an implementation runs: 'base' for the original nn.Module, else 'pruned'."""
    return "base" if implementation.startswith("original") else "pruned"


def _batch_sizes(case: str) -> list[int]:
    """The sizes of the batches one call predicts: IMAGES in batches of the case's size."""
    batch = int(case.split()[1])
    return [min(batch, IMAGES - start) for start in range(0, IMAGES, batch)]


def inference_work(case: str, implementation: str) -> tuple[float, float]:
    """(FLOPs, bytes) of one call: every layer of the implementation's network on IMAGES images
    (sysdl_kernels.flops); per batch, each layer reads its input and weights once and writes its
    output once (one kernel per layer, as the nn.Modules and MatmulNet run)."""
    from sysdl_kernels.flops import memory_bytes, totals
    costs = load(_network(implementation))[0].config.cost()
    moved = sum(memory_bytes(cost, batch=size) for size in _batch_sizes(case) for cost in costs)
    return IMAGES * totals(costs)["flops"], moved


def _predictor(model, batch: int, x: torch.Tensor):
    def run():
        with torch.inference_mode():
            return [model(x[start:start + batch]) for start in range(0, len(x), batch)]
    return run


def inference_case(case: str, implementation: str, device: str = "cpu"):
    """A callable predicting IMAGES test images at the case's batch size, checked before timing:
    MatmulNet's logits against the pruned nn.Module's (1e-4, same predictions)."""
    from sysdl_kernels.matmul_net import MatmulNet
    require_device(device)
    if case not in CASES:
        raise ValueError(f"case must be one of {CASES}, got {case!r}")
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"implementation must be one of {IMPLEMENTATIONS}, got {implementation!r}")
    batch = int(case.split()[1])
    x = test_images()[0]
    pruned = load("pruned")[0]
    if implementation.endswith("nn.Module"):
        module = load(_network(implementation))[0]
        module = module.to(device) if device == "cuda" else module
        return on_device(_predictor(module, batch, x.to(device)), device)
    state, config = pruned.state_dict(), pruned.config.to_dict()
    if implementation == "MatmulNet":
        cpu_only(implementation, device)           # the fused kernel where the network has no pooling
        net = MatmulNet(state, config)
    elif implementation == "MatmulNet layered":
        cpu_only(implementation, device)
        if "program" not in inspect.signature(MatmulNet).parameters:     # asv: a commit before the fused program
            raise NotImplementedError("this commit's MatmulNet has only the layered program: see 'MatmulNet'")
        net = MatmulNet(state, config, program="layered")
    else:
        require_compiled_triton()
        if device != "cuda":
            raise NotImplementedError("MatmulNet triton is timed on CUDA only")
        net = MatmulNet(state, config, backend="triton")
    with torch.inference_mode(), torch_precision("ieee"):
        got, expected = net(x), pruned(x)
    assert_matches(got, expected)
    if not torch.equal(got.cpu().argmax(1), expected.argmax(1)):
        raise AssertionError(f"{implementation} predicts differently from the pruned nn.Module")
    return on_device(_predictor(net, batch, x), device)


INFERENCE = Family("inference", CASES, IMPLEMENTATIONS, inference_case, inference_work)


class Inference(TimedFamily):
    family = INFERENCE
    params = INFERENCE.params
    timeout = 600

    def time_predict(self, case, implementation, device):
        self.run()

    def peakmem_predict(self, case, implementation, device):
        self.run()


class InferenceWork(ImplementationWork):
    family = INFERENCE
    params = [list(INFERENCE.cases), list(INFERENCE.implementations)]


class InferenceRatios(RatioFigures):
    """The inference issue's figures on the CPU, ratios of medians interleaved in one process."""
    params = list(CASES)

    def track_matmulnet_speedup_vs_original(self, case):
        """original nn.Module time / MatmulNet time: issue 22 asks >= 20 at batch 1000, >= 15 at batch 1."""
        return speed_ratio(INFERENCE, "original nn.Module", "MatmulNet", case, repeats=7)

    def track_matmulnet_time_vs_pruned_module(self, case):
        """MatmulNet time / pruned nn.Module time: the issue asks <= 1.7 at batch 1000."""
        return 1 / speed_ratio(INFERENCE, "pruned nn.Module", "MatmulNet", case, repeats=7)

    def track_matmulnet_fused_speedup_vs_layered(self, case):
        """MatmulNet layered time / MatmulNet (fused) time: what one kernel for the network buys."""
        return speed_ratio(INFERENCE, "MatmulNet layered", "MatmulNet", case, repeats=7)


class PrunedModel:
    """Figures of the selected pruned model (skipped when no trained checkpoints exist)."""
    timeout = 300

    def setup(self):
        if load("pruned")[1] is None or load("base")[1] is None:
            raise NotImplementedError("needs runs/base.pt and runs/pruned_selected.pt (sysdl pipeline)")

    def track_test_accuracy(self):
        """Test accuracy of the selected pruned model over the whole test set."""
        from models.data.datasets import DataNotFoundError, load_fashion_mnist
        try:
            test = load_fashion_mnist().test
        except DataNotFoundError as err:
            raise NotImplementedError(str(err)) from err
        with torch.inference_mode():
            predictions = torch.cat([load("pruned")[0](test.x[i:i + 1000]).argmax(1)
                                     for i in range(0, len(test.x), 1000)])
        return float((predictions == test.y).float().mean())
    track_test_accuracy.unit = "accuracy"

    def track_flops(self):
        """FLOPs of one forward pass of the selected model (sysdl_kernels.flops convention)."""
        from sysdl_kernels.flops import totals
        return totals(load("pruned")[0].config.cost())["flops"]
    track_flops.unit = "FLOPs"

    def track_flops_reduction(self):
        """Base model FLOPs / selected model FLOPs: the pruning issue asks >= 20."""
        from sysdl_kernels.flops import totals
        return (totals(load("base")[0].config.cost())["flops"]
                / totals(load("pruned")[0].config.cost())["flops"])
    track_flops_reduction.unit = "x"
