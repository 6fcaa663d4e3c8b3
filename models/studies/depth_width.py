"""Depth versus width: feed-forward regressors of the Eggholder function with 1, 2 and 3 hidden
layers and at most 512 hidden units in all, compared at equal size.

    sysdl study depth-width                         # 143 networks x 2000 epochs (the seed scale)
    sysdl study depth-width --epochs 2 --threads 1  # a reduced scale (see the README for times)
    sysdl study depth-width --quick                 # CI: 2,000 samples, 6 small networks, 2 epochs
    sysdl study depth-width --report-only           # figures and table from the store only
    python -m models.studies.depth_width --quick    # the same without the console script

Data: f(x1, x2) = -(x2 + 47) sin(sqrt(|x1/2 + x2 + 47|)) - x1 sin(sqrt(|x1 - (x2 + 47)|)) at
100,000 points drawn uniformly from [-512, 512]^2, plus Gaussian noise of standard deviation 0.3
(seeded), split 80/20 (the samples are i.i.d., so the first 80% are a random split).
Standardisation: inputs are divided by 512, the domain's half-width, which maps the square onto
[-1, 1]^2 for train and test alike (a fixed, known scale: no statistic is fitted); targets are
z-scored with the training split's mean and standard deviation. Losses are MSE in those
standardised units; RMSEs are reported in f's units (times the training targets' std).

Networks: every tuple of 1 to 3 hidden widths from {16, 32, 64, 128, 256, 512} whose sum is at most
512 (6 + 25 + 112 = 143); Linear -> ReLU, with batch normalisation (Linear -> BatchNorm1d -> ReLU)
in the 2- and 3-layer networks; one linear output. SGD with Nesterov momentum 0.9, batch 1000,
one-cycle learning rate to 0.01, no weight decay.

Runs are MLflow runs (experiment ``study-depth-width``), resumable after a kill like the sweeps
(models/studies/common.py). From the store, in ``OUT_DIR/EXPERIMENT``: ``rmse_vs_units.png``
(test RMSE against total hidden units, one curve per depth, networks of equal total averaged),
``rmse_vs_params.png``, ``time_vs_params.png`` and ``depth_width.md`` / ``.csv`` (every run).
"""

from __future__ import annotations

import argparse
import itertools
import math
from pathlib import Path

import torch
import torch.nn.functional as F

from models.shared.tables import write_table
from models.studies import common
from models.training.loop import Objective, TrainConfig

STUDY = "depth-width"
SEED_EPOCHS = 2000
UNITS = (16, 32, 64, 128, 256, 512)    # hidden units a layer may have
MAX_TOTAL = 512                        # hidden units of a network, all layers together
DEPTHS = (1, 2, 3)                     # hidden layers
QUICK_GRID = {"units": (16, 32), "max_total": 48}   # 2 + 3 + 1 = 6 networks
DOMAIN = 512.0                         # inputs lie in [-DOMAIN, DOMAIN]^2
N_SAMPLES = 100_000
QUICK_SAMPLES = 2_000
NOISE_STD = 0.3                        # standard deviation of the Gaussian noise added to f
TEST_FRACTION = 0.2
BATCH_SIZE = 1000                      # samples per SGD step
# One-cycle peak learning rate. SGD with momentum m is stable on a quadratic while lr * curvature
# < 2 (1 + m); the output layer's curvature is about the mean square of its inputs summed, ~0.5 per
# batch-normalised ReLU unit, so 256-512 units allow lr < ~0.015-0.03: 0.05 spiked the loss to
# ~1000 in the first epoch of a 256-256 network, 0.01 trains every shape smoothly.
LR = 0.01
MOMENTUM = 0.9                         # Nesterov momentum


def eggholder(x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
    """The Eggholder function (global minimum -959.6407 at (512, 404.2319))."""
    return (-(x2 + 47) * torch.sin(torch.sqrt(torch.abs(x1 / 2 + x2 + 47)))
            - x1 * torch.sin(torch.sqrt(torch.abs(x1 - (x2 + 47)))))


def eggholder_samples(n: int, noise_std: float = NOISE_STD, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(x (n, 2), y (n,)) in float64: x uniform on [-512, 512]^2, y = f(x) + N(0, noise_std^2)."""
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, 2, generator=g, dtype=torch.float64) * 2 - 1) * DOMAIN
    noise = noise_std * torch.randn(n, generator=g, dtype=torch.float64)
    return x, eggholder(x[:, 0], x[:, 1]) + noise


def eggholder_data(n: int = N_SAMPLES, noise_std: float = NOISE_STD, seed: int = 0,
                   test_fraction: float = TEST_FRACTION):
    """(DataSplits of standardised float32 tensors, training targets' std): x / 512, targets z-scored
    with the training split's mean and std (see the module docstring)."""
    from models.data.datasets import DataSplits, Split
    n_test = round(n * test_fraction)
    if not 0 < n_test < n:
        raise ValueError(f"need training and test samples: n={n}, test_fraction={test_fraction}")
    x, y = eggholder_samples(n, noise_std, seed)
    mean, std = y[:-n_test].mean(), y[:-n_test].std()

    def split(rows: slice) -> Split:
        return Split((x[rows] / DOMAIN).float(), ((y[rows] - mean) / std).float())

    data = DataSplits(split(slice(None, -n_test)), split(slice(-n_test, None)), None,
                      f"eggholder(n={n}, noise_std={noise_std}, seed={seed})", num_classes=0)
    return data, float(std)


def _mse(output: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    return F.mse_loss(output.squeeze(-1), target, reduction=reduction)     # (N, 1) -> (N,)


REGRESSION = Objective(loss=_mse, correct=None)


def architectures(units=UNITS, max_total: int = MAX_TOTAL, depths=DEPTHS) -> list[tuple[int, ...]]:
    """Every tuple of hidden widths, ``depth`` of them drawn from ``units``, summing to <= max_total."""
    return [arch for depth in depths for arch in itertools.product(units, repeat=depth) if sum(arch) <= max_total]


def plan(epochs: int, data_spec: dict, quick: bool = False, seed: int = 0) -> list[common.StudyJob]:
    grid = architectures(**QUICK_GRID) if quick else architectures()
    jobs = []
    for arch in grid:
        model = common.MLPConfig(2, arch, 1, batch_norm=len(arch) >= 2)
        train = TrainConfig(epochs=epochs, batch_size=BATCH_SIZE, lr=LR, momentum=MOMENTUM, weight_decay=0.0,
                            schedule="onecycle", hflip=False, seed=seed, eval_batch_size=20_000)
        jobs.append(common.StudyJob(STUDY, len(jobs), f"{'-'.join(map(str, arch))} ({len(arch)} layer"
                                    f"{'s' if len(arch) > 1 else ''})", {"hidden": list(arch)}, model, train,
                                    {"name": "sgd", "momentum": MOMENTUM, "nesterov": True}, data_spec, REGRESSION))
    return jobs


def summariser(target_std: float):
    """The study's final metrics: RMSEs in f's units, and the network's size."""
    def summarise(model, data, result) -> dict:
        train_mse = common.eval_train_loss(model, data, REGRESSION, 20_000)
        hidden = model.config.hidden
        return {"test_rmse": math.sqrt(result.epochs[-1].test_loss) * target_std,
                "train_rmse": math.sqrt(train_mse) * target_std,
                "depth": len(hidden), "hidden_units": sum(hidden)}
    return summarise


# ----------------------------------------------------------------------------------------------
# Report, from the store
# ----------------------------------------------------------------------------------------------


def runs_table(pairs):
    import pandas as pd
    rows = [{"hidden layers": "-".join(map(str, job.model.hidden)), "depth": len(job.model.hidden),
             "hidden units": sum(job.model.hidden), "parameters": int(run["metrics"]["model_params"]),
             "test RMSE": run["metrics"]["test_rmse"], "train RMSE": run["metrics"]["train_rmse"],
             "training time s": run["metrics"]["train_time_s"], "epochs": int(run["metrics"]["epochs_run"])}
            for job, run in pairs]
    return pd.DataFrame(rows).sort_values(["depth", "hidden units", "hidden layers"]).reset_index(drop=True)


def _by_depth(table, x: str, y: str, path: Path, title: str, mean_curve: bool = False, logy: bool = False) -> Path:
    from models.shared.figures import new_figure, save
    fig, ax = new_figure((7, 4.5))
    for depth, group in table.groupby("depth"):
        label = f"{depth} hidden layer{'s' if depth > 1 else ''}"
        if mean_curve:     # networks with the same total averaged: one point per total
            means = group.groupby(x)[y].mean()
            line, = ax.plot(means.index, means.values, "o-", label=f"{label} (mean)")
            ax.scatter(group[x], group[y], s=10, alpha=0.35, color=line.get_color())
        else:
            ax.scatter(group[x], group[y], s=16, alpha=0.8, label=label)
    ax.set(xscale="log", xlabel=x, ylabel=y, title=title)
    if x == "hidden units":    # the totals are sums of powers of two: plain numbers on a base-2 axis
        from matplotlib.ticker import ScalarFormatter
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(ScalarFormatter())
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    return save(fig, path)


def report(experiment: str, jobs: list[common.StudyJob], out: Path, note: str) -> dict:
    table = runs_table(common.finished_runs(experiment, jobs))
    write_table(table, out, "depth_width")
    plots = [_by_depth(table, "hidden units", "test RMSE", out / "rmse_vs_units.png",
                       f"test RMSE vs total hidden units ({note})", mean_curve=True),
             _by_depth(table, "parameters", "test RMSE", out / "rmse_vs_params.png",
                       f"test RMSE vs parameters ({note})"),
             _by_depth(table, "parameters", "training time s", out / "time_vs_params.png",
                       f"training wall time vs parameters ({note})", logy=True)]
    return {"table": table, "plots": plots}


# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    common.add_common_arguments(parser, STUDY, SEED_EPOCHS)
    parser.add_argument("--n-samples", type=int, default=None, help=f"Eggholder samples, 80%% for training "
                        f"(default {N_SAMPLES:,}; --quick: {QUICK_SAMPLES:,})")


def main(args) -> int:
    """`sysdl study depth-width`."""
    epochs = common.epochs_from(args, SEED_EPOCHS)
    n = args.n_samples if args.n_samples is not None else (QUICK_SAMPLES if args.quick else N_SAMPLES)
    data, target_std = eggholder_data(n, NOISE_STD, args.seed)
    spec = {"function": "eggholder", "n_samples": n, "noise_std": NOISE_STD, "seed": args.seed,
            "test_fraction": TEST_FRACTION, "standardise": "x / 512; y z-scored with the training split"}
    jobs = plan(epochs, spec, args.quick, args.seed)
    print(f"study depth-width: {len(jobs)} networks x {epochs} epochs; {len(data.train)} training / "
          f"{len(data.test)} test samples; targets' std {target_std:.1f}")
    experiment, out = common.execute(args, STUDY, jobs, data, summariser(target_std))
    result = report(experiment, jobs, out, f"{epochs} epochs, {len(data.train):,} samples")
    print(result["table"].to_markdown(index=False, floatfmt=".4g"))
    print(f"table: {out / 'depth_width.md'}\nfigures: {', '.join(str(p) for p in result['plots'])}")
    return 0


if __name__ == "__main__":
    import sys

    from models.shared.command import run_module
    sys.exit(run_module("models.studies.depth_width"))
