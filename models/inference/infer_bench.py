"""Inference over the 10,000 test images: the original network, the pruned one, and the pruned one
lowered to matrix multiplications (MatmulNet on CPU and on Triton), at batch 1, 64 and 1000.

    sysdl infer-bench                               # runs/base.pt vs runs/pruned_selected.pt
    sysdl infer-bench --quick                       # 2,000 images, one repeat (smoke test)
    sysdl infer-bench --overwrite                   # replace an earlier run's runs/infer_bench.csv

An earlier run's table in --out-dir is never replaced without --overwrite (the refusal comes
before any timing).

A model path given on the command line must exist. Where the default pruned model is absent (no
`sysdl report prune` yet), the lowered implementations run the original's weights and say so in
their names ("(c) MatmulNet (original weights)"), and there is no (b).

Each implementation first predicts the whole test set once (warm-up; MatmulNet also picks its
per-layer lowering then), and its predictions are compared with the nn.Module of its weights. Then
every (implementation, batch size) is timed over the whole test set, batching loop included,
interleaved with the others, and the median over repeats is kept; CUDA is synchronised. The
speedup is against (a), the original unpruned nn.Module, on the same device; beside it each
implementation's GFLOP/s (its network's FLOPs, sysdl_kernels.flops) and, on the CPU, its percent
of this CPU's fp32 FMA peak on the threads used (`sysdl machine`'s theoretical peak). MatmulNet
runs twice: as it chooses (the fused kernel for an unpooled network) and as the layered program.
Triton under the CPU interpreter is checked for correctness on 512 images but not timed (its
times mean nothing).
"""

from __future__ import annotations

import statistics
from pathlib import Path

import torch

from models.shared import command
from models.shared.artifacts import MAIN
from sysdl_kernels.runtime import interleaved

BATCH_SIZES = (1, 64, 1000)
INTERPRETER_IMAGES = 512       # images the Triton interpreter checks (--quick: QUICK_INTERPRETER_IMAGES)
QUICK_INTERPRETER_IMAGES = 32


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


def implementations(original_path, pruned_path=None) -> dict:
    """name -> (callable on a CPU batch, device label, note). Without ``pruned_path`` there is no
    pruned model: no (b), and the MatmulNets, named "(original weights)", lower the original."""
    from models.training.checkpoint import load_model
    from sysdl_kernels import triton_ops
    from sysdl_kernels.matmul_net import MatmulNet

    lowered, suffix = (pruned_path, "") if pruned_path is not None else (original_path, " (original weights)")
    original = load_model(original_path)[0].eval()
    impls = {"(a) original nn.Module": (original, "cpu", "")}
    if pruned_path is not None:
        impls["(b) pruned nn.Module"] = (load_model(pruned_path)[0].eval(), "cpu", "")
    impls[f"(c) MatmulNet{suffix}"] = (MatmulNet.from_checkpoint(lowered), "cpu", "")
    impls[f"(c) MatmulNet layered{suffix}"] = (MatmulNet.from_checkpoint(lowered, program="layered"), "cpu", "")
    mode = triton_ops.mode()
    if mode != "unavailable":
        impls[f"(d) MatmulNet triton{suffix}"] = (MatmulNet.from_checkpoint(lowered, backend="triton"),
                                                  "cuda" if mode == "compiled" else "cpu (interpreter)",
                                                  "" if mode == "compiled" else "interpreter: checked, not timed")
    if torch.cuda.is_available():
        for label, path in (("(e) original nn.Module", original_path), ("(e) pruned nn.Module", pruned_path)):
            if path is not None:
                gpu = load_model(path, device="cuda")[0].eval()
                impls[f"{label} cuda"] = (lambda xb, m=gpu: m(xb.cuda(non_blocking=True)), "cuda", "")
    return impls


def flops_per_image(original_path, pruned_path=None) -> dict[str, float]:
    """'original' and 'pruned' -> FLOPs of one image's forward pass (sysdl_kernels.flops); the
    pruned entry is the original's where there is no pruned model (the MatmulNets lower it)."""
    from models.training.checkpoint import load_model
    from sysdl_kernels.flops import totals
    counts = {"original": totals(load_model(original_path)[0].config.cost())["flops"]}
    counts["pruned"] = (totals(load_model(pruned_path)[0].config.cost())["flops"] if pruned_path is not None
                        else counts["original"])
    return counts


def cpu_peak(threads: int) -> float:
    """This CPU's theoretical fp32 FMA peak on ``threads`` cores, FLOP/s (`sysdl machine`'s figure)."""
    from sysdl_kernels import peaks
    return peaks.theoretical_fma_peak(peaks.cpu_facts(), threads)


def run(original_path, pruned_path, x: torch.Tensor, y: torch.Tensor, repeats: int = 3,
        batch_sizes=BATCH_SIZES, peak: float | None = None, interpreter_images: int = INTERPRETER_IMAGES):
    """Returns (timing rows, accuracy/agreement rows, the latter saying what each MatmulNet ran);
    ``pruned_path`` None: no pruned model (``implementations``). Each timing row has its GFLOP/s
    and, on the CPU, its percent of ``peak`` (FLOP/s; default this CPU's FMA peak on torch's threads).
    An implementation under the Triton interpreter is checked on the first ``interpreter_images``
    images only (the interpreter runs ~0.1 s an image of the base network)."""
    impls = implementations(original_path, pruned_path)
    flops = flops_per_image(original_path, pruned_path)
    peak = peak or cpu_peak(torch.get_num_threads())
    checks = []
    with torch.inference_mode():
        references = {"original": _logits(impls["(a) original nn.Module"][0], x).argmax(1)}
        if "(b) pruned nn.Module" in impls:
            references["pruned"] = _logits(impls["(b) pruned nn.Module"][0], x).argmax(1)
        for name, (fn, device, note) in impls.items():
            sample = x[:interpreter_images] if "interpreter" in note else x
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
                rate = len(x) * flops["original" if "original" in name else "pruned"] / seconds
                rows.append({"implementation": name, "device": device, "batch": batch, "images": len(x),
                             "seconds": seconds,
                             "speedup vs (a)": baseline / seconds if baseline else float("nan"),
                             "GFLOP/s": rate / 1e9,
                             "% of CPU FMA peak": 100 * rate / peak if device == "cpu" else float("nan")})
    for check in checks:                     # which lowering and GEMM engine each MatmulNet ran
        describe = getattr(impls[check["implementation"]][0], "describe", None)
        check["what ran"] = describe() if describe else ""
    return rows, checks


def table(rows):
    """Rows implementation/device, columns batch size, cells 'time s (speedup x, GFLOP/s, % of peak)'."""
    import pandas as pd
    frame = pd.DataFrame(rows)
    frame["cell"] = frame.apply(lambda r: f"{r['seconds']:.3f} s ({r['speedup vs (a)']:.1f}x, "
                                          f"{r['GFLOP/s']:.1f} GFLOP/s" + (
                                              f", {r['% of CPU FMA peak']:.0f}%)" if r["device"] == "cpu" else ")"),
                                axis=1)
    return frame.pivot(index=["implementation", "device"], columns="batch", values="cell")


def plot(rows, path: str | Path) -> Path:
    import pandas as pd

    from models.shared.figures import new_figure, save

    frame = pd.DataFrame(rows)
    pivot = frame.pivot(index="implementation", columns="batch", values="seconds")
    fig, ax = new_figure((8, 4.5))
    pivot.plot.bar(ax=ax, logy=True, rot=15)
    ax.set(ylabel=f"seconds for the {int(frame['images'].iloc[0]):,} test images (log)", xlabel="",
           title="inference time by implementation and batch size")
    ax.grid(axis="y", alpha=0.3, which="both")
    ax.legend(title="batch")
    return save(fig, path)


def add_arguments(parser) -> None:
    command.add_data_flags(parser, val_size=None)
    parser.add_argument("--original", default=str(MAIN.base), help="the original model's checkpoint")
    parser.add_argument("--pruned", default=None,
                        help=f"the pruned model's checkpoint (default: {MAIN.selected}; where that is absent, the "
                             f"lowered implementations run the original's weights, labelled so)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes over the test set (median)")
    command.add_threads_flag(parser)
    parser.add_argument("--out-dir", default=str(MAIN.root), help="where infer_bench.csv and the chart go")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier run's infer_bench.csv and chart in --out-dir")
    command.add_quick_flag(parser, f"2,000 images, batch 64 and 1000, one repeat; the Triton interpreter checks "
                                   f"{QUICK_INTERPRETER_IMAGES} images")


def main(args) -> int:
    import pandas as pd
    from models.data.datasets import load_dataset
    from models.training.provenance import provenance
    from sysdl_kernels.runtime import configure_cpu_runtime, warn_if_busy

    configure_cpu_runtime(args.threads)
    original = Path(args.original)
    pruned = Path(args.pruned) if args.pruned is not None else MAIN.selected
    if not original.exists():
        raise ValueError(f"no original model at {original}: run `sysdl train` first")
    if not pruned.exists():
        if args.pruned is not None:                 # a path the user named: a typo is no substitute
            raise ValueError(f"no pruned model at {pruned}: run `sysdl prune` and `sysdl report prune`, "
                             f"or name an existing checkpoint")
        print(f"note: no pruned model at {pruned} (run `sysdl prune` and `sysdl report prune`); there is no "
              f"(b), and the MatmulNets lower the original network, labelled \"(original weights)\"")
        pruned = None
    out = Path(args.out_dir)
    if (out / "infer_bench.csv").exists() and not args.overwrite:
        raise ValueError(f"{out / 'infer_bench.csv'} holds an earlier run: pass --overwrite to replace it, "
                         f"or --out-dir DIR to keep both")
    data = load_dataset(args.dataset, args.data_dir, download=args.download)
    x, y = data.test.x, data.test.y
    repeats, batches, checked = args.repeats, BATCH_SIZES, INTERPRETER_IMAGES
    if args.quick:
        x, y, repeats, batches, checked = x[:2000], y[:2000], 1, (64, 1000), QUICK_INTERPRETER_IMAGES
    else:
        warn_if_busy("sysdl infer-bench")
    rows, checks = run(original, pruned, x, y, repeats=repeats, batch_sizes=batches, interpreter_images=checked)
    out.mkdir(parents=True, exist_ok=True)
    print(f"{len(x)} test images; time for all of them (speedup over (a) on the same device, GFLOP/s, percent of "
          f"this CPU's fp32 FMA peak on {torch.get_num_threads()} threads: {cpu_peak(torch.get_num_threads()) / 1e9:.1f} "
          f"GFLOP/s), median of {repeats}")
    print(table(rows).to_string())
    print("\n" + pd.DataFrame(checks).drop(columns="what ran").to_string(index=False))
    for check in checks:
        if check["what ran"]:
            print(f"{check['implementation']}: {check['what ran']}")
    pd.DataFrame(rows).to_csv(out / "infer_bench.csv", index=False)
    print(f"\ncsv: {out / 'infer_bench.csv'}\nchart: {plot(rows, out / 'infer_bench.png')}")
    print("provenance:", provenance())
    return 0


if __name__ == "__main__":
    raise SystemExit(command.run_module("models.inference.infer_bench"))
