"""Training the from-scratch numpy CNN (sysdl_kernels.scratch): the loop, the overfit check and
the optimizer convergence comparison.

    sysdl scratch overfit                      # fit 100 images to >= 99% training accuracy
    sysdl scratch converge --epochs 5          # SGD-momentum vs AdaGrad vs Adam, one figure

The data are Fashion-MNIST as numpy float32 arrays (normalised like the PyTorch runs). Errors
are 1 - accuracy; the training error of an epoch is measured on the training pass itself, as
``models.training.loop`` defines training accuracy.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from sysdl_kernels.scratch import optim
from sysdl_kernels.scratch.net import ScratchCNN, ScratchConfig

# Default hyperparameters per optimizer (the torch.optim names and meanings).
OPTIMIZERS = {
    "sgd": (optim.SGD, {"lr": 0.05}),
    "sgd-momentum": (optim.SGD, {"lr": 0.01, "momentum": 0.9}),
    "nesterov": (optim.SGD, {"lr": 0.01, "momentum": 0.9, "nesterov": True}),
    "adagrad": (optim.Adagrad, {"lr": 0.01}),
    "rmsprop": (optim.RMSprop, {"lr": 1e-3}),
    "rmsprop-nesterov": (optim.RMSpropNesterov, {"lr": 1e-3, "momentum": 0.9}),
    "adadelta": (optim.Adadelta, {"lr": 1.0}),
    "adam": (optim.Adam, {"lr": 1e-3}),
}


def make_optimizer(name: str, params: list[np.ndarray], **overrides):
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {sorted(OPTIMIZERS)}")
    cls, defaults = OPTIMIZERS[name]
    return cls(params, **{**defaults, **overrides})


def error_rate(net: ScratchCNN, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(net.predict(x) != y))


def train_scratch(net: ScratchCNN, optimizer, x: np.ndarray, y: np.ndarray, epochs: int,
                  batch_size: int = 128, seed: int = 0, eval_sets: dict | None = None,
                  progress: bool = True, target_train_acc: float | None = None,
                  on_epoch=None) -> list[dict]:
    """Minibatch training; per epoch: mean loss, training-pass error, error on each eval set, time.
    Stops early once an epoch's training accuracy reaches ``target_train_acc``."""
    from tqdm.auto import tqdm

    rng = np.random.default_rng(seed)
    history = []
    steps = -(-len(y) // batch_size)
    bar = tqdm(total=epochs * steps, disable=not progress, unit="step", dynamic_ncols=True)
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(y))
        losses, wrong = [], 0
        start = time.perf_counter()
        for i in range(0, len(y), batch_size):
            idx = order[i:i + batch_size]
            xb, yb = x[idx], y[idx]
            loss, grads = net.loss(xb, yb)
            wrong += int(np.sum(net.logits.argmax(1) != yb))
            optimizer.step(list(grads.values()))
            losses.append(loss)
            bar.update(1)
        record = {"epoch": epoch, "loss": float(np.mean(losses)), "train_error": wrong / len(y),
                  "epoch_time": time.perf_counter() - start}
        for name, (ex, ey) in (eval_sets or {}).items():
            record[f"{name}_error"] = error_rate(net, ex, ey)
        history.append(record)
        bar.set_postfix(loss=f"{record['loss']:.3f}", train_err=f"{record['train_error']:.3f}")
        if on_epoch is not None:
            on_epoch(record)
        if target_train_acc is not None and 1 - record["train_error"] >= target_train_acc:
            break
    bar.close()
    return history


def numpy_splits(data) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """DataSplits (torch tensors) -> {"train"|"val"|"test": (x float32 NCHW, y int64)}."""
    splits = {"train": data.train, "test": data.test}
    if data.val is not None:
        splits["val"] = data.val
    return {k: (v.x.numpy(), v.y.numpy()) for k, v in splits.items()}


def overfit(data, samples: int = 100, backend: str = "numba", optimizer: str = "adam", lr: float = 1e-3,
            max_epochs: int = 300, batch_size: int = 25, target: float = 0.99, seed: int = 0,
            progress: bool = True) -> dict:
    """Fit the first ``samples`` training images until training accuracy >= target; report the test gap."""
    arrays = numpy_splits(data)
    x, y = arrays["train"][0][:samples], arrays["train"][1][:samples]
    net = ScratchCNN(ScratchConfig(image_size=x.shape[-1], in_channels=x.shape[1]), backend=backend, seed=seed)
    opt = make_optimizer(optimizer, list(net.params.values()), lr=lr)
    history = train_scratch(net, opt, x, y, max_epochs, batch_size, seed, progress=progress,
                            target_train_acc=target)
    train_acc = 1 - error_rate(net, x, y)
    test_acc = 1 - error_rate(net, *arrays["test"])
    return {"samples": samples, "epochs": len(history), "train_acc": train_acc, "test_acc": test_acc,
            "gap": train_acc - test_acc, "reached": train_acc >= target, "history": history}


def converge(data, optimizers=("sgd-momentum", "adagrad", "adam"), epochs: int = 5, train_images: int = 10_000,
             backend: str = "numba", batch_size: int = 128, seed: int = 0, track: bool = True,
             progress: bool = True) -> dict[str, list[dict]]:
    """Train one scratch CNN per optimizer from the same initial weights; per-epoch loss and errors.
    Each optimizer is one MLflow run in the experiment ``scratch-optimizers``."""
    from models.training import tracking

    arrays = numpy_splits(data)
    x, y = arrays["train"][0][:train_images], arrays["train"][1][:train_images]
    eval_sets = {k: v for k, v in arrays.items() if k != "train"}
    results = {}
    for name in optimizers:
        net = ScratchCNN(ScratchConfig(image_size=x.shape[-1], in_channels=x.shape[1]), backend=backend, seed=seed)
        opt = make_optimizer(name, list(net.params.values()))
        params = {"optimizer": name, **OPTIMIZERS[name][1], "epochs": epochs, "train_images": len(y),
                  "batch_size": batch_size, "backend": backend}
        with tracking.start_run("scratch-optimizers", name, params, enabled=track) as run:
            results[name] = train_scratch(
                net, opt, x, y, epochs, batch_size, seed, eval_sets, progress,
                on_epoch=lambda r: run.log_metrics({k: v for k, v in r.items() if k != "epoch"}, step=r["epoch"]))
    return results


def plot_convergence(results: dict[str, list[dict]], path: str | Path) -> Path:
    """Loss (left) and train / validation / test error (right) per epoch, one colour per optimizer."""
    import matplotlib
    from matplotlib.ticker import MaxNLocator

    from models.shared.figures import new_figure, save

    fig, (ax_loss, ax_err) = new_figure((11, 4), 1, 2)
    styles = {"train_error": "-", "val_error": "--", "test_error": ":"}
    for colour, (name, history) in zip(matplotlib.rcParams["axes.prop_cycle"].by_key()["color"], results.items()):
        epochs = [r["epoch"] for r in history]
        ax_loss.plot(epochs, [r["loss"] for r in history], "o-", color=colour, label=name)
        for key, style in styles.items():
            if key in history[0]:
                ax_err.plot(epochs, [r[key] for r in history], style, marker="o", color=colour,
                            label=f"{name}, {key.removesuffix('_error')}")
    ax_loss.set(xlabel="epoch", ylabel="training loss (epoch mean)", title="loss", yscale="log")
    ax_err.set(xlabel="epoch", ylabel="error (1 - accuracy)", title="train (solid), validation (dashed), test (dotted)")
    for ax in (ax_loss, ax_err):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("from-scratch CNN: optimizer convergence")
    return save(fig, path)
