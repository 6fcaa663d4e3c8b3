"""`sysdl scaling`: data-parallel training of a ResNet on Fashion-MNIST with 1, 2 and 4 workers,
strong and weak scaling, for each all-reduce strategy (DDP comm hooks from collectives.py).

    sysdl scaling                                  # ResNet-18; 1, 2, 4 workers; every strategy
    sysdl scaling --workers 1 2 --strategies ring backend --steps 5
    sysdl scaling --quick                          # tiny ResNet, synthetic data, 1 and 2 workers (CI)
    torchrun --nnodes 2 --nproc-per-node 4 ... --no-python sysdl scaling --workers 8   # see README

Strong scaling keeps the global batch (``--global-batch``) and gives each of n workers 1/n of it;
weak scaling keeps the per-worker batch (``--worker-batch``), so the global batch grows with n.
Each (workers, mode, strategy) trains ``--steps`` timed SGD steps after ``--warmup`` untimed
ones, from the same initial weights, on the shards a DistributedSampler gives each rank; a
step's time is the slowest rank's, the cell the median over steps. From it: throughput (images/s),
time per epoch (steps per epoch x step time: a projection from the timed steps, not a timed
epoch), cost per epoch (workers x ``--price`` per worker-hour x epoch time) and scaling
efficiency (throughput / (n x throughput with one worker); 1.0 is perfect). One worker has nothing
to all-reduce, so it is measured once and is every strategy's baseline.

Local workers share the machine's cores (``cores // n`` torch threads each): on a 2-core machine
4 workers time-slice 2 cores, so the numbers measure contention as much as communication (README).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from models.shared.command import at_least
from models.shared import command
from models.shared.artifacts import SCALING_DIR

DEFAULT_PRICE = 0.10        # $ per worker-hour (a small cloud VM); only scales the cost column


def _train_steps(rank: int, world: int, settings: dict) -> list[dict]:
    """On every rank: for each (mode, strategy) train and time; rank 0 returns the rows."""
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel
    from torch.utils.data import DistributedSampler

    from models.data.datasets import load_dataset
    from models.nets.fashion_resnet import fashion_resnet
    from sysdl_kernels.collectives import register_comm_hook

    data = load_dataset(settings["dataset"], settings["data_dir"]).train
    strategies = settings["strategies"] if world > 1 else ["none"]
    rows = []
    for mode in settings["modes"]:
        if mode == "strong":
            if settings["global_batch"] % world:
                raise ValueError(f"strong scaling: global batch {settings['global_batch']} does not "
                                 f"divide among {world} workers")
            batch = settings["global_batch"] // world
        else:
            batch = settings["worker_batch"]
        sampler = DistributedSampler(range(len(data)), num_replicas=world, rank=rank, shuffle=True, seed=0)
        indices = list(sampler)
        steps = settings["warmup"] + settings["steps"]
        if steps * batch > len(indices):
            raise ValueError(f"{steps} steps of {batch} images need more than this rank's "
                             f"{len(indices)} training images")
        for strategy in strategies:
            torch.manual_seed(0)
            model = DistributedDataParallel(fashion_resnet(settings["model"]))
            if strategy != "none":
                register_comm_hook(model, strategy, group_size=settings["group_size"])
            optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
            seconds = torch.zeros(settings["steps"], dtype=torch.float64)
            for step in range(steps):
                chunk = torch.tensor(indices[step * batch:(step + 1) * batch])
                images, labels = data.x[chunk], data.y[chunk]
                dist.barrier()
                start = time.perf_counter()
                optimizer.zero_grad(set_to_none=True)
                loss = torch.nn.functional.cross_entropy(model(images), labels)
                loss.backward()                       # the comm hook all-reduces the gradients here
                optimizer.step()
                if step >= settings["warmup"]:
                    seconds[step - settings["warmup"]] = time.perf_counter() - start
            dist.all_reduce(seconds, op=dist.ReduceOp.MAX)        # a step lasts its slowest rank
            rows.append({"workers": world, "mode": mode, "strategy": strategy, "worker_batch": batch,
                         "global_batch": batch * world, "step_s": seconds.median().item(),
                         "threads": torch.get_num_threads(), "final_loss": loss.item()})
    return rows if rank == 0 else []


def summarise(frame, train_images: int, price: float):
    """Throughput, epoch time, cost and efficiency; one worker is every strategy's baseline."""
    import pandas as pd
    frame = frame.copy()
    frame["images_per_s"] = frame["global_batch"] / frame["step_s"]
    frame["epoch_s"] = [math.ceil(train_images / g) * s for g, s in zip(frame["global_batch"], frame["step_s"])]
    frame["cost_per_epoch"] = frame["workers"] * price * frame["epoch_s"] / 3600
    single = frame[frame["workers"] == 1]
    expanded = []
    for strategy in sorted(set(frame["strategy"]) - {"none"}) or ["none"]:
        for _, row in single.iterrows():
            expanded.append({**row.to_dict(), "strategy": strategy})
    frame = pd.concat([pd.DataFrame(expanded), frame[frame["workers"] > 1]], ignore_index=True)
    base = {mode: rows["images_per_s"].iloc[0] for mode, rows in frame[frame["workers"] == 1].groupby("mode")}
    frame["efficiency"] = [thr / (n * base[mode]) if mode in base else float("nan")
                           for thr, n, mode in zip(frame["images_per_s"], frame["workers"], frame["mode"])]
    return frame.sort_values(["mode", "strategy", "workers"]).reset_index(drop=True)


def plot(frame, path: Path) -> Path:
    from models.shared.figures import new_figure, save
    metrics = [("images_per_s", "throughput (images/s)"), ("epoch_s", "time per epoch (s)"),
               ("cost_per_epoch", "cost per epoch ($)"), ("efficiency", "scaling efficiency")]
    modes = list(dict.fromkeys(frame["mode"]))
    fig, axes = new_figure((15, 3.6 * len(modes)), len(modes), len(metrics))
    axes = axes.reshape(len(modes), len(metrics)) if hasattr(axes, "reshape") else [[axes]]
    for row, mode in enumerate(modes):
        for col, (column, label) in enumerate(metrics):
            ax = axes[row][col]
            for strategy, group in frame[frame["mode"] == mode].groupby("strategy"):
                ax.plot(group["workers"], group[column], marker="o", label=strategy)
            ax.set_xlabel("workers")
            ax.set_ylabel(label)
            ax.set_xticks(sorted(set(frame["workers"])))
            ax.set_title(f"{mode} scaling")
            ax.grid(alpha=0.3)
        axes[row][0].legend(fontsize=7)
    return save(fig, path)


# The settings a flag left unset takes, for a full run and for --quick.
FULL_SETTINGS = {"model": "resnet18", "dataset": "fashion-mnist", "workers": [1, 2, 4], "global_batch": 64,
                 "worker_batch": 16, "steps": 8, "warmup": 2}
QUICK_SETTINGS = {**FULL_SETTINGS, "model": "tiny", "dataset": "synthetic", "workers": [1, 2], "global_batch": 32,
                  "steps": 2, "warmup": 1}


SETTINGS = command.QuickSettings(FULL_SETTINGS, QUICK_SETTINGS)


def resolve_settings(args) -> None:
    """Fill in every setting the user left unset: --quick's small ones or the full run's."""
    SETTINGS.resolve(args)


def main(args) -> int:
    import pandas as pd
    from models.data.datasets import load_dataset
    from models.distributed.launch import launch, launched_by_torchrun
    from models.training.provenance import provenance
    from sysdl_kernels.collectives import STRATEGIES
    resolve_settings(args)
    workers = args.workers
    settings = {"model": args.model, "dataset": args.dataset, "data_dir": args.data_dir,
                "modes": args.modes, "strategies": list(args.strategies or STRATEGIES),
                "global_batch": args.global_batch, "worker_batch": args.worker_batch,
                "steps": args.steps, "warmup": args.warmup, "group_size": args.group_size}
    if launched_by_torchrun():
        workers = [None]                      # torchrun fixed the world size
    rows = []
    for world in workers:
        print(f"{args.model}: {world or 'torchrun'} worker(s), modes {args.modes}", flush=True)
        rows += [row for result in launch(_train_steps, world or 0, (settings,), backend=args.backend)
                 for row in result]
    if not rows:
        return 0                              # a torchrun rank other than 0
    train_images = len(load_dataset(args.dataset, args.data_dir).train)
    frame = summarise(pd.DataFrame(rows), train_images, args.price)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out_dir / "scaling.csv", index=False)
    shown = frame[["mode", "strategy", "workers", "worker_batch", "global_batch", "threads",
                   "step_s", "images_per_s", "epoch_s", "cost_per_epoch", "efficiency"]]
    info = provenance()
    text = (f"# {args.model} data-parallel scaling on {info.get('cpu', '')} ({info.get('cores', '?')} cores), "
            f"torch {info.get('torch', '')}, ${args.price}/worker-hour\n\n"
            + shown.round(3).to_markdown(index=False) + "\n")
    (out_dir / "scaling.md").write_text(text)
    print(text)
    print(f"wrote {plot(frame, out_dir / 'scaling.png')}")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from models.nets.fashion_resnet import ARCHITECTURES
    from sysdl_kernels.collectives import DEFAULT_GROUP_SIZE, STRATEGIES
    parser.add_argument("--workers", type=at_least(1), nargs="+", default=None,
                        help=SETTINGS.help("workers", "local worker counts"))
    parser.add_argument("--modes", nargs="+", default=["strong", "weak"], choices=["strong", "weak"],
                        help="strong: fixed global batch; weak: fixed batch per worker")
    parser.add_argument("--strategies", nargs="+", default=None, choices=STRATEGIES,
                        help="the all-reduce strategies to train with (default: all)")
    parser.add_argument("--model", default=None, choices=ARCHITECTURES, help=SETTINGS.help("model", "the network trained"))
    parser.add_argument("--global-batch", type=at_least(1), default=None,
                        help=SETTINGS.help("global_batch", "strong scaling: images per step, all workers"))
    parser.add_argument("--worker-batch", type=at_least(1), default=None,
                        help=SETTINGS.help("worker_batch", "weak scaling: images per step per worker"))
    parser.add_argument("--steps", type=at_least(1), default=None, help=SETTINGS.help("steps", "timed steps per configuration"))
    parser.add_argument("--warmup", type=at_least(0), default=None, help=SETTINGS.help("warmup", "untimed steps first"))
    parser.add_argument("--group-size", type=at_least(1), default=DEFAULT_GROUP_SIZE,
                        help="hierarchical: ranks per node")
    parser.add_argument("--price", type=float, default=DEFAULT_PRICE, help="$ per worker-hour")
    command.add_dataset_flag(parser, default=None, what=SETTINGS.help("dataset", "the images to train on"))
    command.add_data_dir_flag(parser)
    parser.add_argument("--backend", default=None, choices=["gloo", "nccl"],
                        help="torch.distributed backend (default: nccl with CUDA, else gloo)")
    parser.add_argument("--out-dir", default=str(SCALING_DIR), help="where tables and figures go")
    command.add_quick_flag(parser, "tiny ResNet, synthetic data, 1 and 2 workers")


if __name__ == "__main__":
    from models.shared.command import run_module
    raise SystemExit(run_module("models.distributed.scaling"))
