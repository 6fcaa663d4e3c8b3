"""Batch augmentation (Hoffer et al. 2019): a CIFAR ResNet trained with each image M times in its
batch, every copy with its own crop, flip and cutout, against the standard augmentation.

    sysdl study batch-augment                         # the reduced scale (~8 min on 1 thread here)
    sysdl study batch-augment --dataset cifar10 --n 7 --epochs 100 --copies 2 4 8 16 32 \\
        --n-train 0 --n-test 0                        # the paper's scale: ResNet-44, all of CIFAR-10
    sysdl study batch-augment --quick                 # CI: ResNet-8, 256 synthetic images, 2 epochs
    sysdl study batch-augment --report-only           # figure and table from the store only
    python -m models.studies.augmentation --quick     # the same without the console script

Runs: the baseline (standard augmentation: pad 4, random crop, horizontal flip; M = 1, no cutout)
and one run per M in --copies, each with cutout (side --cutout, default half the image side: 16 on
CIFAR-10's 32 pixels, DeVries and Taylor's choice) on every copy. All share batch 64 images (so M
= 32 steps on 2,048 examples), the number of steps per epoch, SGD with momentum 0.9, weight decay
1e-4, learning rate 0.1 divided by 10 at 50% and 75% of the epochs (He et al. 2016's schedule),
the same initial weights and data order. Evaluation is on the original test images; the
"validation error" is 1 - test accuracy, as in Hoffer et al.

Data: --dataset auto (default) is CIFAR-10 where it is found, else Fashion-MNIST, said in a line
printed before training, in the run's parameters and in the figure's title. --dataset cifar10
requires CIFAR-10.

Target: the first epoch whose test accuracy reaches --target (default 94% on CIFAR-10, 92% on
Fashion-MNIST), with its training time (seconds of training passes, no evaluation) and wall time;
a run that never reaches it is reported as "not reached" with its final accuracy and times.
Every run is an MLflow run (experiment ``study-batch-augment``), resumable (models/studies/common.py);
``val_error.png`` and ``batch_augment.md`` / ``.csv`` go to ``OUT_DIR/EXPERIMENT``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from models.shared.tables import write_table
from models.studies import common
from models.training.loop import TrainConfig
from models.shared import command

STUDY = "batch-augment"
BATCH_SIZE = 64                    # images per step, before augmentation multiplies them by M
LR = 0.1                           # initial learning rate, divided by 10 at MILESTONES of the epochs
MILESTONES = (0.5, 0.75)           # fractions of the epochs (He et al.: 32k and 48k of 64k steps)
MOMENTUM = 0.9
WEIGHT_DECAY = 1e-4                # He et al. 2016, CIFAR-10
PAD = 4                            # pixels of padding before the random crop
EVAL_BATCH = 500
TARGETS = {"cifar10": 0.94, "fashion-mnist": 0.92, "synthetic": 0.9}   # default target test accuracy
# Scales: (n, epochs, copies, n_train, n_test); 0 images = all.
PAPER = {"n": 7, "epochs": 100, "copies": (2, 4, 8, 16, 32), "n_train": 0, "n_test": 0}
REDUCED = {"n": 3, "epochs": 4, "copies": (2, 4, 8), "n_train": 5000, "n_test": 2000}
QUICK = {"n": 1, "epochs": 2, "copies": (2, 4), "n_train": 256, "n_test": 128}


def resolve_dataset(name: str, data_dir, download: bool):
    """(data set name, data): --dataset auto falls back to Fashion-MNIST, saying so."""
    from models.data.datasets import DataNotFoundError
    from models.studies.common import load_data
    if name != "auto" or data_dir:        # a folder given is a folder required: no fallback
        return (name if name != "auto" else "cifar10"), load_data(name if name != "auto" else "cifar10",
                                                                  data_dir, download)
    try:
        return "cifar10", load_data("cifar10", data_dir, download)
    except DataNotFoundError as err:
        print(f"{str(err).split('. ')[0]}: this study uses Fashion-MNIST "
              f"instead. Pass --dataset cifar10 to require CIFAR-10, --dataset fashion-mnist to silence this.")
        return "fashion-mnist", load_data("fashion-mnist", None, download)


def cut(data, n_train: int, n_test: int):
    from models.data.datasets import DataSplits
    return DataSplits(data.train.head(n_train) if n_train else data.train,
                      data.test.head(n_test) if n_test else data.test, None, data.source, data.num_classes)


def plan(data, scale: dict, data_spec: dict, cutout_size: int, seed: int = 0) -> list[common.StudyJob]:
    """The baseline, then one job per M; they differ only in ``augment``."""
    from models.nets.cifar_resnet import CifarResNetConfig
    model = CifarResNetConfig(n=scale["n"], num_classes=data.num_classes, in_channels=data.train.x.shape[1])
    epochs = scale["epochs"]
    train = TrainConfig(epochs=epochs, batch_size=BATCH_SIZE, lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY,
                        schedule="constant", hflip=False, seed=seed, eval_batch_size=EVAL_BATCH)
    # Milestones in whole epochs, at least 1 apart from the start: a 2-epoch run drops once, at epoch 1.
    milestones = sorted({max(1, round(f * epochs)) for f in MILESTONES if round(f * epochs) < epochs})
    optimizer = {"name": "sgd", "momentum": MOMENTUM, "milestones": milestones, "gamma": 0.1}
    settings = [("baseline (crop + flip)", 1, 0)] + [(f"M = {m}, cutout {cutout_size}", m, cutout_size)
                                                      for m in scale["copies"]]
    return [common.StudyJob(STUDY, i, label, {"copies": m, "cutout": c}, model, train, optimizer, data_spec,
                            augment={"copies": m, "pad": PAD, "flip": True, "cutout": c})
            for i, (label, m, c) in enumerate(settings)]


# ----------------------------------------------------------------------------------------------
# Report, from the store
# ----------------------------------------------------------------------------------------------


def time_to_target(run_id: str, target: float) -> dict:
    """Epoch, training and wall seconds at the first epoch with test accuracy >= target (None: never)."""
    epochs, accuracy = common.epoch_history(run_id, "test_acc")
    train_time = dict(zip(*common.epoch_history(run_id, "train_time")))
    wall_time = dict(zip(*common.epoch_history(run_id, "wall_time")))
    hit = next((e for e, a in zip(epochs, accuracy) if a >= target), None)
    return {"epoch": hit, "train_s": train_time.get(hit), "wall_s": wall_time.get(hit)}


def results_table(pairs, target: float):
    import pandas as pd
    rows = []
    for job, run in pairs:
        metrics, reached = run["metrics"], time_to_target(run["run_id"], target)
        rows.append({"run": job.label, "M": job.factors["copies"], "examples per step": BATCH_SIZE * job.factors["copies"],
                     f"epochs to {target:.1%}": reached["epoch"] if reached["epoch"] else "not reached",
                     "training s to target": reached["train_s"] if reached["epoch"] else "not reached",
                     "wall s to target": reached["wall_s"] if reached["epoch"] else "not reached",
                     "final test accuracy": metrics["final_test_acc"], "epochs run": int(metrics["epochs_run"]),
                     "training s": metrics["train_time_s"], "wall s": metrics["wall_time_s"]})
    return pd.DataFrame(rows)


def plot_val_error(pairs, path: Path, title: str, target: float) -> Path:
    from models.shared.figures import new_figure, save
    fig, ax = new_figure((7, 4.5))
    for job, run in pairs:
        epochs, accuracy = common.epoch_history(run["run_id"], "test_acc")
        ax.plot(epochs, [1 - a for a in accuracy], marker="o" if len(epochs) < 20 else None, ms=3, label=job.label)
    ax.axhline(1 - target, color="grey", ls="--", lw=1, label=f"target {target:.1%} accuracy")
    ax.set(xlabel="epoch", ylabel="validation error (1 - test accuracy)", yscale="log", title=title)
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    return save(fig, path)


def report(experiment: str, jobs: list[common.StudyJob], out: Path, title: str, target: float) -> dict:
    pairs = common.finished_runs(experiment, jobs)
    table = results_table(pairs, target)
    write_table(table, out, "batch_augment", title)
    return {"table": table, "plot": plot_val_error(pairs, out / "val_error.png", title, target)}


# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    common.add_common_arguments(parser, STUDY, REDUCED["epochs"], scale="the reduced scale; the paper's: "
                                f"{PAPER['epochs']}")
    command.add_dataset_flag(parser, ["auto", "cifar10", "fashion-mnist", "synthetic"], None,
                             "default auto: CIFAR-10 where found, else Fashion-MNIST, with a message "
                             "(--quick: synthetic)")
    command.add_data_dir_flag(parser, "CIFAR-10's extracted cifar-10-batches-py/ "
                              "(or Fashion-MNIST's IDX files with --dataset fashion-mnist)")
    command.add_download_flag(parser, "allow a one-time torchvision download")
    parser.add_argument("--n", type=int, default=None, help=f"blocks per stage of the ResNet (depth 6n+2; "
                        f"default {REDUCED['n']}; the paper's ResNet-44: {PAPER['n']}; --quick: {QUICK['n']})")
    parser.add_argument("--copies", type=int, nargs="+", default=None, metavar="M",
                        help=f"copies per image (default {' '.join(map(str, REDUCED['copies']))}; "
                        f"the paper's: {' '.join(map(str, PAPER['copies']))})")
    parser.add_argument("--cutout", type=int, default=None, help="side of the cutout square in pixels "
                        "(default: half the image side, 16 on CIFAR-10)")
    parser.add_argument("--target", type=float, default=None, help="target test accuracy in (0, 1] (default "
                        + ", ".join(f"{k} {v:.0%}" for k, v in TARGETS.items()) + ")")
    parser.add_argument("--n-train", type=int, default=None, help=f"first N training images (0: all; "
                        f"default {REDUCED['n_train']}; --quick: {QUICK['n_train']})")
    parser.add_argument("--n-test", type=int, default=None, help=f"first N test images (0: all; "
                        f"default {REDUCED['n_test']}; --quick: {QUICK['n_test']})")


def scale_from(args) -> dict:
    base = QUICK if args.quick else REDUCED
    scale = {key: getattr(args, key) if getattr(args, key, None) is not None else value
             for key, value in base.items() if key != "epochs"}
    scale["epochs"] = common.epochs_from(args, REDUCED["epochs"])
    if scale["n"] < 1 or min(scale["copies"]) < 1 or scale["n_train"] < 0 or scale["n_test"] < 0:
        raise ValueError(f"--n and --copies must be >= 1, --n-train and --n-test >= 0 (0: all); got {scale}")
    scale["copies"] = tuple(scale["copies"])
    return scale


def main(args) -> int:
    """`sysdl study batch-augment`."""
    scale = scale_from(args)
    dataset, data = resolve_dataset(args.dataset or ("synthetic" if args.quick else "auto"), args.data_dir,
                                    args.download)
    data = cut(data, scale["n_train"], scale["n_test"])
    target = args.target if args.target is not None else TARGETS[dataset]
    if not 0 < target <= 1:
        raise ValueError(f"--target is a test accuracy in (0, 1], got {target}")
    cutout_size = args.cutout if args.cutout is not None else data.train.x.shape[-1] // 2
    spec = {"dataset": dataset, "n_train": scale["n_train"], "n_test": scale["n_test"]}
    jobs = plan(data, scale, spec, cutout_size, args.seed)
    print(f"study batch-augment: {len(jobs)} runs of {scale['epochs']} epochs; ResNet-{jobs[0].model.depth}; "
          f"data {data.source} ({len(data.train)} training, {len(data.test)} test images); M in "
          f"{(1, *scale['copies'])}")
    experiment, out = common.execute(args, STUDY, jobs, data, None)
    title = (f"ResNet-{jobs[0].model.depth}, batch {BATCH_SIZE} x M, {dataset} "
             f"({len(data.train)} training images), {scale['epochs']} epochs")
    result = report(experiment, jobs, out, title, target)
    print(result["table"].to_markdown(index=False, floatfmt=".4g"))
    print(f"table: {out / 'batch_augment.md'}\nfigure: {result['plot']}")
    return 0


if __name__ == "__main__":
    import sys

    from models.shared.command import run_module
    sys.exit(run_module("models.studies.augmentation"))
