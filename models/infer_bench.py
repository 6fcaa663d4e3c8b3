"""Inference over the 10,000 test images: the original network, the pruned one, and the pruned one
lowered to matrix multiplications (MatmulNet on CPU and on Triton), at batch 1, 64 and 1000.

    sysdl infer-bench                               # runs/base.pt vs runs/pruned_selected.pt
    sysdl infer-bench --quick                       # 2,000 images, one repeat (smoke test)

Each implementation first predicts the whole test set once (warm-up; MatmulNet also picks its
per-layer lowering then), and its predictions are compared with the pruned nn.Module's. Then
every (implementation, batch size) is timed over the whole test set, batching loop included,
interleaved with the others, and the median over repeats is kept; CUDA is synchronised. The
speedup is against (a), the original unpruned nn.Module, on the same device. Triton under the
CPU interpreter is checked for correctness on 512 images but not timed (its times mean nothing).
"""

from __future__ import annotations

import statistics
from pathlib import Path

import torch

from models.runtime import interleaved

BATCH_SIZES = (1, 64, 1000)


def _predictor(fn, batch_size: int, x: torch.Tensor, sync=None):
    """A callable predicting every image of x in batches of batch_size (what the user waits for)."""
    def run():
        for start in range(0, len(x), batch_size):
            fn(x[start:start + batch_size])
        if sync is not None:
            sync()
    return run


def _logits(fn, x: torch.Tensor, batch: int = 1000) -> torch.Tensor:
    return torch.cat([fn(x[i:i + batch]).float().cpu() for i in range(0, len(x), batch)])


def implementations(original_path, pruned_path) -> dict:
    """name -> (callable on a CPU batch, device label, note)."""
    from models.checkpoint import load_model
    from sysdl_kernels import triton_ops
    from sysdl_kernels.matmul_net import MatmulNet

    original = load_model(original_path)[0].eval()
    pruned = load_model(pruned_path)[0].eval()
    impls = {
        "(a) original nn.Module": (original, "cpu", ""),
        "(b) pruned nn.Module": (pruned, "cpu", ""),
        "(c) MatmulNet": (MatmulNet.from_checkpoint(pruned_path), "cpu", ""),
    }
    mode = triton_ops.mode()
    if mode != "unavailable":
        impls["(d) MatmulNet triton"] = (MatmulNet.from_checkpoint(pruned_path, backend="triton"),
                                         "cuda" if mode == "compiled" else "cpu (interpreter)",
                                         "" if mode == "compiled" else "interpreter: checked, not timed")
    if torch.cuda.is_available():
        for label, model in (("(e) original nn.Module", original), ("(e) pruned nn.Module", pruned)):
            gpu = load_model(original_path if model is original else pruned_path, device="cuda")[0].eval()
            impls[f"{label} cuda"] = (lambda xb, m=gpu: m(xb.cuda(non_blocking=True)), "cuda", "")
    return impls


def run(original_path, pruned_path, x: torch.Tensor, y: torch.Tensor, repeats: int = 3,
        batch_sizes=BATCH_SIZES):
    """Returns (timing rows, accuracy/agreement rows, the latter saying what each MatmulNet ran)."""
    impls = implementations(original_path, pruned_path)
    checks = []
    with torch.inference_mode():
        references = {"original": _logits(impls["(a) original nn.Module"][0], x).argmax(1),
                      "pruned": _logits(impls["(b) pruned nn.Module"][0], x).argmax(1)}
        for name, (fn, device, note) in impls.items():
            sample = x[:512] if "interpreter" in note else x
            predictions = _logits(fn, sample).argmax(1)
            weights = "original" if "original" in name else "pruned"
            reference = references[weights][:len(sample)]
            checks.append({"implementation": name, "device": device, "weights": weights,
                           "images checked": len(sample),
                           "test accuracy": float((predictions == y[:len(sample)]).float().mean()),
                           "same predictions as the nn.Module": bool(torch.equal(predictions, reference))})
        rows = []
        timed = {name: spec for name, spec in impls.items() if not spec[2]}
        for batch in batch_sizes:
            sync = torch.cuda.synchronize if torch.cuda.is_available() else None
            fns = {name: _predictor(fn, batch, x, sync) for name, (fn, _, _) in timed.items()}
            times = interleaved(fns, repeats=repeats, warmup=1)
            medians = {name: statistics.median(t) for name, t in times.items()}
            for name, seconds in medians.items():
                device = timed[name][1]
                baseline = medians["(a) original nn.Module"] if device == "cpu" else medians.get(
                    "(e) original nn.Module cuda")
                rows.append({"implementation": name, "device": device, "batch": batch, "images": len(x),
                             "seconds": seconds,
                             "speedup vs (a)": baseline / seconds if baseline else float("nan")})
    for check in checks:                     # which lowering and GEMM engine each MatmulNet ran
        describe = getattr(impls[check["implementation"]][0], "describe", None)
        check["what ran"] = describe() if describe else ""
    return rows, checks


def table(rows):
    """Rows implementation/device, columns batch size, cells 'time s (speedup x)'."""
    import pandas as pd
    frame = pd.DataFrame(rows)
    frame["cell"] = frame.apply(lambda r: f"{r['seconds']:.3f} s ({r['speedup vs (a)']:.1f}x)", axis=1)
    return frame.pivot(index=["implementation", "device"], columns="batch", values="cell")


def plot(rows, path: str | Path) -> Path:
    import pandas as pd

    from models.figures import new_figure, save

    frame = pd.DataFrame(rows)
    pivot = frame.pivot(index="implementation", columns="batch", values="seconds")
    fig, ax = new_figure((8, 4.5))
    pivot.plot.bar(ax=ax, logy=True, rot=15)
    ax.set(ylabel=f"seconds for the {int(frame['images'].iloc[0]):,} test images (log)", xlabel="",
           title="inference time by implementation and batch size")
    ax.grid(axis="y", alpha=0.3, which="both")
    ax.legend(title="batch")
    return save(fig, path)
