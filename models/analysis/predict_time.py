"""`sysdl predict-time`: PALEO-style time prediction from per-layer FLOPs and memory traffic,
against measurement for our own CNNs on this machine, and for classic CNNs on datasheet GPUs.

    sysdl predict-time                       # probes, our CNNs predicted vs measured, K80 table
    sysdl predict-time --ppp 0.3             # another platform percent of peak for the GPUs
    sysdl predict-time --quick               # small probes and batches (CI); given flags still count

1. Probes this machine: a float32 GEMM (torch.mm, FLOP/s) and a large copy (bytes read + written
   per second). These measured rates are "this machine"'s peaks, so PPP = 1 there means "every
   layer runs like a large GEMM and a large copy".
2. Our models (the base CNN of `sysdl train` and the selected pruned one, their shapes from
   runs/base.pt and runs/pruned_selected.pt when present, else the default config): the forward
   pass at ``--batch`` and a training step (forward, backward, SGD) at ``--train-batch``,
   predicted (sysdl_kernels.perf_model.predict_layers on the analytic per-layer costs) and
   measured (median after warm-up). It reports predicted / measured and the PPP that would make
   the prediction exact.
3. Datasheet devices (K80, P100, V100, A100, H100, H200): forward time per image at batch 1 and
   throughput at ``--gpu-batch`` for VGG16, GoogLeNet and ResNet-50, from their FLOPs and traffic.
Writes ``OUT/predict_time.md`` and ``.csv`` files and a predicted-vs-measured per-layer chart.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from models.shared import command
from models.shared.artifacts import MAIN, PREDICT_TIME_DIR

CLASSIC = ("vgg16", "googlenet", "resnet50")
# Batches and repeats left out on the command line: --quick's small ones (CI), else these.
FULL_SIZES = {"batch": 1000, "train_batch": 128, "gpu_batch": 64, "repeats": 10}
QUICK_SIZES = {"batch": 64, "train_batch": 32, "gpu_batch": 8, "repeats": 3}
OUR_CHECKPOINTS = {"base CNN": str(MAIN.base), "pruned CNN": str(MAIN.selected)}


def probe_machine(gemm_size: int = 2048, copy_mib: int = 256, repeats: int = 5):
    """(GEMM FLOP/s, copy bytes/s) of this machine, medians after warm-up."""
    import torch
    from sysdl_kernels.runtime import median_seconds
    a, b = torch.randn(gemm_size, gemm_size), torch.randn(gemm_size, gemm_size)
    out = torch.empty(gemm_size, gemm_size)
    gemm = median_seconds(lambda: torch.mm(a, b, out=out), repeats=repeats)
    source = torch.empty(copy_mib << 18)                   # float32: 4 bytes each
    target = torch.empty_like(source)
    copy = median_seconds(lambda: target.copy_(source), repeats=repeats)
    return 2 * gemm_size**3 / gemm, 2 * source.numel() * 4 / copy


def our_models() -> dict:
    """name -> FashionCNNConfig of the trained models here (the default config if none)."""
    from models.training.checkpoint import load_checkpoint
    from models.nets.fashion_cnn import FashionCNNConfig
    configs = {}
    for name, path in OUR_CHECKPOINTS.items():
        if Path(path).exists():
            configs[name] = FashionCNNConfig.from_dict(load_checkpoint(path)["config"])
    return configs or {"default CNN": FashionCNNConfig()}


def measure(config, batch: int, train_batch: int, repeats: int) -> dict:
    """Median seconds of a forward pass and of a training step of a randomly initialised model."""
    import torch
    from models.nets.fashion_cnn import FashionCNN
    from sysdl_kernels.runtime import median_seconds
    torch.manual_seed(0)
    model = FashionCNN(config)
    images = torch.randn(batch, config.in_channels, config.image_size, config.image_size)
    with torch.inference_mode():
        forward = median_seconds(lambda: model(images), repeats=repeats)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    train_images = images[:train_batch].clone()
    labels = torch.randint(0, config.num_classes, (train_batch,))

    def step():
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(train_images), labels).backward()
        optimizer.step()
    return {"forward": forward, "train_step": median_seconds(step, repeats=repeats)}


def compare_ours(device, args) -> list[dict]:
    from sysdl_kernels.perf_model import exact_ppp, predict_layers
    rows = []
    for name, config in our_models().items():
        measured = measure(config, args.batch, args.train_batch, args.repeats)
        costs = config.cost()
        for kind, batch, training in (("forward", args.batch, False), ("train_step", args.train_batch, True)):
            at_one = sum(r["seconds"] for r in predict_layers(costs, batch, device, 1.0, training=training))
            predicted = at_one / device.default_ppp
            rows.append({"model": name, "pass": kind, "batch": batch,
                         "predicted_ms": predicted * 1e3, "measured_ms": measured[kind] * 1e3,
                         "predicted/measured": predicted / measured[kind],
                         "exact_ppp": exact_ppp(at_one, measured[kind])})
    return rows


def classic_on_devices(ppp: float | None, gpu_batch: int) -> list[dict]:
    from sysdl_kernels.cnn_zoo import network_costs
    from sysdl_kernels.perf_model import DEVICES, predict_layers
    rows = []
    for net in CLASSIC:
        costs = network_costs(net)
        for key, device in DEVICES.items():
            single = sum(r["seconds"] for r in predict_layers(costs, 1, device, ppp))
            batched = sum(r["seconds"] for r in predict_layers(costs, gpu_batch, device, ppp))
            rows.append({"network": net, "device": key, "ppp": ppp or device.default_ppp,
                         "gflops_per_image": sum(c.flops for c in costs) / 1e9,
                         "batch1_ms": single * 1e3, f"images_per_s_at_{gpu_batch}": gpu_batch / batched})
    return rows


def plot_layers(config, device, batch: int, path: Path) -> Path:
    """Predicted time per layer of our CNN, split into compute and memory traffic."""
    from models.shared.figures import new_figure, save
    from sysdl_kernels.perf_model import predict_layers
    rows = [r for r in predict_layers(config.cost(), batch, device) if r["seconds"] > 0]
    fig, ax = new_figure((8, 3.8))
    names = [r["layer"] for r in rows]
    compute = [r["compute_s"] * 1e3 for r in rows]
    memory = [(r["seconds"] - r["compute_s"]) * 1e3 for r in rows]
    ax.bar(names, compute, label="compute (FLOPs / PPP x peak)")
    ax.bar(names, memory, bottom=compute, label="memory (bytes / PPP x bandwidth)")
    ax.set_ylabel(f"predicted ms, batch {batch}")
    ax.set_title(f"PALEO prediction per layer on {device.name}")
    ax.tick_params(axis="x", rotation=45)
    ax.legend(fontsize=8)
    return save(fig, path)


def resolve_sizes(args) -> None:
    """Fill in the batches and repeats the user left out (QUICK_SIZES with --quick, else
    FULL_SIZES); a value the user gave is kept, --quick or not, and must be >= 1."""
    defaults = QUICK_SIZES if args.quick else FULL_SIZES
    for name in defaults:
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if args.train_batch is None:
        args.train_batch = min(defaults["train_batch"], args.batch or defaults["batch"])
    for name, default in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    if args.train_batch > args.batch:
        raise ValueError(f"need --train-batch ({args.train_batch}) at most --batch ({args.batch}): "
                         f"the training step reuses the forward pass's images")


def main(args) -> int:
    import pandas as pd
    from models.training.provenance import provenance
    from sysdl_kernels.runtime import configure_cpu_runtime
    from sysdl_kernels.perf_model import probed_device
    resolve_sizes(args)
    configure_cpu_runtime()
    gemm, copy = probe_machine(1024 if args.quick else 2048, 32 if args.quick else 256, args.repeats)
    machine = probed_device(gemm, copy)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ours = pd.DataFrame(compare_ours(machine, args))
    classic = pd.DataFrame(classic_on_devices(args.ppp, args.gpu_batch))
    ours.to_csv(out_dir / "predict_time_ours.csv", index=False)
    classic.to_csv(out_dir / "predict_time_classic.csv", index=False)
    info = provenance()
    text = [f"# PALEO-style prediction ({info.get('cpu', '')}, {info.get('cores', '?')} cores, torch {info.get('torch', '')})",
            "", f"this machine's probes: GEMM {gemm / 1e9:.1f} GFLOP/s, copy {copy / 1e9:.1f} GB/s "
            "(PPP 1 = the probes' rates)", "", "## our models: predicted against measured", "",
            ours.round(3).to_markdown(index=False), "", "## classic CNNs on datasheet GPUs", "",
            classic.round(2).to_markdown(index=False)]
    (out_dir / "predict_time.md").write_text("\n".join(text) + "\n")
    print("\n".join(text))
    first = next(iter(our_models().values()))
    print(f"wrote {plot_layers(first, machine, args.batch, out_dir / 'predict_time_layers.png')}")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sizes = lambda name: f"(default {FULL_SIZES[name]}; {QUICK_SIZES[name]} with --quick)"  # noqa: E731
    parser.add_argument("--batch", type=int, default=None, help=f"forward-pass batch of our CNNs {sizes('batch')}")
    parser.add_argument("--train-batch", type=int, default=None,
                        help=f"training-step batch of our CNNs, at most --batch {sizes('train_batch')}")
    parser.add_argument("--gpu-batch", type=int, default=None,
                        help=f"batch for the GPU throughput column {sizes('gpu_batch')}")
    parser.add_argument("--ppp", type=float, default=None,
                        help="platform percent of peak for the datasheet GPUs (default: each device's)")
    parser.add_argument("--repeats", type=int, default=None,
                        help=f"timed calls per measurement (median) {sizes('repeats')}")
    parser.add_argument("--out-dir", default=str(PREDICT_TIME_DIR), help="where tables and figures go")
    command.add_quick_flag(parser, "small probes, and small batches and repeats where not given (CI)")


if __name__ == "__main__":
    from models.shared.command import run_module
    raise SystemExit(run_module("models.analysis.predict_time"))
