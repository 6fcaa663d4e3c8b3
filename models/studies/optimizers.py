"""Optimizer study: a 2 x 1000 ReLU multilayer perceptron trained with AdaGrad, RMSProp,
RMSProp with Nesterov momentum, AdaDelta and Adam, without and with dropout.

    sysdl study optimizers                              # CIFAR-10 (where available), 200 epochs a run
    sysdl study optimizers --dataset fashion-mnist      # the data set used on machines without CIFAR-10
    sysdl study optimizers --dataset fashion-mnist --epochs 3 --n-train 10000 --threads 1   # reduced
    sysdl study optimizers --quick                      # CI: 1,000 Fashion-MNIST images, 32-unit layers, 2 epochs
    sysdl study optimizers --report-only                # figures and table from the store only
    python -m models.studies.optimizers --quick         # the same without the console script

Every run: minibatch 128, L2 regularisation (weight_decay 1e-4 * param added to the gradient, by
every optimizer alike), constant learning rate, no augmentation, the same initial weights and data
order for every method (seed). With dropout: p = 0.2 on the input, 0.5 after each hidden layer.
nn.Dropout is inverted dropout (kept units scaled by 1 / (1 - p) while training, identity in eval
mode), so the test-time network needs no weight scaling; evaluation runs in eval mode.

Ten MLflow runs (experiment ``study-optimizers``), resumable after a kill (models/studies/common.py).
From the store: ``loss_curves.png`` (training loss against epoch, five methods, two panels) and
``optimizers.md`` / ``.csv`` (final training loss, test accuracy, training time per method without
and with dropout, and the time ratio dropout / no dropout) in ``OUT_DIR/EXPERIMENT``.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

from models.shared.tables import write_table
from models.studies import common
from models.training.loop import CLASSIFICATION, TrainConfig
from models.shared import command

STUDY = "optimizers"
SEED_EPOCHS = 200
BATCH_SIZE = 128                   # examples per update
WEIGHT_DECAY = 1e-4                # L2 coefficient: the gradient gets weight_decay * param added
HIDDEN = (1000, 1000)              # ReLU units of the two hidden layers
QUICK_HIDDEN = (32, 32)
QUICK_DATA = {"n_train": 1000, "n_test": 500}
DROPOUT = {"dropout_input": 0.2, "dropout_hidden": 0.5}   # probabilities of dropping a unit
EVAL_BATCH = 1000


@dataclass(frozen=True)
class Method:
    label: str
    lr: float                      # step size (the adaptive methods' step per coordinate is ~lr)
    options: dict                  # the optimizer's other hyperparameters, by torch's names


# Literature defaults, not tuned here. RMSProp + Nesterov's lr is RMSProp's divided by
# 1 / (1 - momentum) = 10: its steady-state step (lr / (1 - momentum)) then equals RMSProp's.
METHODS = {
    "adagrad": Method("AdaGrad", 0.01, {"eps": 1e-10}),
    "rmsprop": Method("RMSProp", 1e-3, {"alpha": 0.99, "eps": 1e-8}),
    "rmsprop-nesterov": Method("RMSProp + Nesterov", 1e-4, {"alpha": 0.99, "eps": 1e-8, "momentum": 0.9}),
    "adadelta": Method("AdaDelta", 1.0, {"rho": 0.95, "eps": 1e-6}),          # Zeiler 2012; lr 1 = his rule
    "adam": Method("Adam", 1e-3, {"betas": [0.9, 0.999], "eps": 1e-8}),
}


def plan(data, epochs: int, data_spec: dict, quick: bool = False, seed: int = 0) -> list[common.StudyJob]:
    """The ten jobs: every method without dropout, then every method with it."""
    in_features = math.prod(data.train.x.shape[1:])           # (N, C, H, W) -> C*H*W inputs
    hidden = QUICK_HIDDEN if quick else HIDDEN
    jobs = []
    for dropout in (False, True):
        model = common.MLPConfig(in_features, hidden, data.num_classes, **(DROPOUT if dropout else {}))
        for name, method in METHODS.items():
            train = TrainConfig(epochs=epochs, batch_size=BATCH_SIZE, lr=method.lr, momentum=0.0,
                                weight_decay=WEIGHT_DECAY, schedule="constant", hflip=False, seed=seed,
                                eval_batch_size=EVAL_BATCH)
            jobs.append(common.StudyJob(STUDY, len(jobs), f"{method.label}{', dropout' if dropout else ''}",
                                        {"method": name, "dropout": dropout}, model, train,
                                        {"name": name, **method.options}, data_spec, CLASSIFICATION))
    return jobs


def summarise(model, data, result) -> dict:
    return {"final_train_loss_eval": common.eval_train_loss(model, data, CLASSIFICATION, EVAL_BATCH)}


# ----------------------------------------------------------------------------------------------
# Report, from the store
# ----------------------------------------------------------------------------------------------


def results_table(pairs):
    """One row per method: final training loss, test accuracy and training time, without and
    with dropout, and the time ratio dropout / no dropout."""
    import pandas as pd
    rows = {}
    for job, run in pairs:
        suffix = ", dropout" if job.factors["dropout"] else ""
        row = rows.setdefault(job.factors["method"], {"method": METHODS[job.factors["method"]].label})
        metrics = run["metrics"]
        row[f"train loss{suffix}"] = metrics["final_train_loss"]
        row[f"train loss (eval mode){suffix}"] = metrics["final_train_loss_eval"]
        row[f"test accuracy{suffix}"] = metrics["final_test_acc"]
        row[f"training time s{suffix}"] = metrics["train_time_s"]
    frame = pd.DataFrame(list(rows.values()))
    frame["time ratio dropout / none"] = frame["training time s, dropout"] / frame["training time s"]
    return frame


def plot_losses(pairs, path: Path, title: str) -> Path:
    from models.shared.figures import new_figure, save
    fig, axes = new_figure((12, 4.5), 1, 2)
    for ax, dropout in zip(axes, (False, True)):
        for job, run in pairs:
            if job.factors["dropout"] == dropout:
                epochs, losses = common.epoch_history(run["run_id"], "train_loss")
                ax.plot(epochs, losses, marker="o" if len(epochs) < 20 else None, ms=3,
                        label=METHODS[job.factors["method"]].label)
        ax.set(xlabel="epoch", ylabel="training loss (cross-entropy, epoch mean)", yscale="log",
               title="with dropout (input 0.2, hidden 0.5)" if dropout else "without dropout")
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    fig.suptitle(title)
    return save(fig, path)


def report(experiment: str, jobs: list[common.StudyJob], out: Path, title: str) -> dict:
    pairs = common.finished_runs(experiment, jobs)
    table = results_table(pairs)
    write_table(table, out, "optimizers", floatfmt=".4f")
    plot = plot_losses(pairs, out / "loss_curves.png", title)
    return {"table": table, "plot": plot}


# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    common.add_common_arguments(parser, STUDY, SEED_EPOCHS)
    command.add_dataset_flag(parser, ["cifar10", "fashion-mnist", "synthetic"], None,
                             "default cifar10 (--quick: fashion-mnist); where CIFAR-10 cannot be had, "
                             "--dataset fashion-mnist")
    command.add_data_dir_flag(parser, "the data set's folder (CIFAR-10: the extracted "
                              "cifar-10-batches-py/; Fashion-MNIST: the four IDX files)")
    command.add_download_flag(parser, "allow a one-time torchvision download")
    parser.add_argument("--n-train", type=int, default=None, help="use the first N training examples "
                        f"(default: all; --quick: {QUICK_DATA['n_train']})")
    parser.add_argument("--n-test", type=int, default=None, help="use the first N test examples "
                        f"(default: all; --quick: {QUICK_DATA['n_test']})")


def main(args) -> int:
    """`sysdl study optimizers`."""
    epochs = common.epochs_from(args, SEED_EPOCHS)
    quick = QUICK_DATA if args.quick else {}
    n_train = args.n_train if args.n_train is not None else quick.get("n_train", 0)
    n_test = args.n_test if args.n_test is not None else quick.get("n_test", 0)
    if n_train < 0 or n_test < 0:
        raise ValueError(f"--n-train and --n-test must be >= 0 (0: all), got {n_train} and {n_test}")
    dataset = args.dataset or ("fashion-mnist" if args.quick else "cifar10")
    data = common.load_data(dataset, args.data_dir, args.download, n_train, n_test)
    spec = {"dataset": dataset, "n_train": n_train, "n_test": n_test}
    jobs = plan(data, epochs, spec, args.quick, args.seed)
    print(f"study optimizers: {len(jobs)} runs of {epochs} epochs; MLP {jobs[0].model.in_features}-"
          f"{'-'.join(map(str, jobs[0].model.hidden))}-{jobs[0].model.out_features}; data {data.source} "
          f"({len(data.train)} training, {len(data.test)} test examples)")
    experiment, out = common.execute(args, STUDY, jobs, data, summarise)
    title = (f"MLP {'-'.join(map(str, jobs[0].model.hidden))} ReLU, batch {BATCH_SIZE}, L2 {WEIGHT_DECAY:g}; "
             f"{dataset}, {len(data.train)} training examples")
    result = report(experiment, jobs, out, title)
    print(result["table"].to_markdown(index=False, floatfmt=".4f"))
    print(f"table: {out / 'optimizers.md'}\nfigure: {result['plot']}")
    return 0


if __name__ == "__main__":
    import sys

    from models.shared.command import run_module
    sys.exit(run_module("models.studies.optimizers"))
