"""Training of the Fashion-MNIST CNN on the CPU (default): SGD with momentum, tracked in MLflow.

    sysdl train                         # the default run: 15 epochs, ~2 minutes on 2 cores
    sysdl train --epochs 3 --no-track   # a short run that logs nothing
    python -m models.training.loop --help

Definitions used everywhere in sysdl:
  * **training accuracy** of an epoch: the fraction of that epoch's training images that the
    model classified correctly in the training pass itself (model in train mode, each image
    counted once, with the weights as they were when its batch was processed, augmentation
    applied). It costs no extra pass, and it lags the end-of-epoch weights slightly.
  * **time to 90%**: training wall time, in seconds from the start of the first epoch and
    excluding evaluation passes, at the end of the first epoch whose training accuracy is at
    least 90%; absent when no epoch reaches it.
  * test (and validation) loss / accuracy: one pass over the whole split after each epoch,
    model in eval mode, under ``torch.inference_mode``.

The data are whole in-memory tensors; each epoch gathers its shuffled order once and slices
batches from it. Order and flips come from a generator seeded by (seed, epoch), so a run is
reproducible and a resumed run continues the same sequence.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from models.data.datasets import DataSplits, Split
from models.shared.errors import UserError

SCHEDULES = ("onecycle", "constant")
# The augmentation generator of epoch e is seeded with seed * 100_003 + e + this: a stream apart
# from epoch_data's (seed * 100_003 + e) for any run shorter than 50,000 epochs.
AUGMENT_SEED_OFFSET = 50_000


def _count_correct(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (logits.argmax(1) == y).sum()


@dataclass(frozen=True)
class Objective:
    """What the model is trained for: ``loss(output, target, reduction=...)`` (a torch.nn.functional
    loss) and ``correct(output, target)``, the batch's count of right answers, or None where
    accuracy means nothing (regression: accuracies are then NaN)."""
    loss: Callable = F.cross_entropy
    correct: Callable | None = _count_correct


CLASSIFICATION = Objective()


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 15               # passes over the training set
    batch_size: int = 128          # images per SGD step
    lr: float = 0.05               # peak learning rate (onecycle) or the constant one
    momentum: float = 0.9          # SGD momentum (heavy ball)
    weight_decay: float = 5e-4     # L2 penalty coefficient, applied by the optimizer
    schedule: str = "onecycle"     # "onecycle": linear warm-up then cosine decay; "constant"
    warmup_fraction: float = 0.15  # share of all steps spent warming up (onecycle)
    hflip: bool = True             # flip half the training images left-right each epoch
    seed: int = 0                  # weights, data order and flips
    device: str = "cpu"            # "cpu", "cuda", "cuda:N" or "mps"
    eval_batch_size: int = 256     # images per forward pass when evaluating (fastest here)

    def __post_init__(self):
        for name in ("lr", "momentum", "weight_decay", "warmup_fraction"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        try:
            torch.device(self.device)
        except (RuntimeError, TypeError):
            raise ValueError(f"device must be a torch device such as 'cpu', 'cuda' or 'cuda:0', "
                             f"got {self.device!r}") from None
        for name in ("epochs", "batch_size", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")


class DivergedError(RuntimeError, UserError):
    """The training loss stopped being finite: the run stops, and its epoch is not checkpointed."""


def check_device(device: str) -> None:
    """Refuse a device this machine does not have, before any data are loaded."""
    kind = torch.device(device)
    if kind.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r}: no CUDA GPU is available here (torch {torch.__version__}); "
                             f"use --device cpu")
        if kind.index is not None and kind.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                             f"numbered from 0")
    elif kind.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"device {device!r}: MPS is not available here; use --device cpu")
    elif kind.type != "cpu":
        raise ValueError(f"device {device!r}: sysdl trains on cpu, cuda or mps")


def check_fits(model_cfg, data: DataSplits) -> None:
    """Refuse a network whose input or class count does not fit the data, before training: the
    images must be (in_channels, image_size, image_size) and every label below num_classes."""
    found = tuple(data.train.x.shape[1:])                      # (C, H, W)
    wanted = (model_cfg.in_channels, model_cfg.image_size, model_cfg.image_size)
    if found != wanted:
        raise ValueError(f"the network takes in_channels={wanted[0]} x image_size={wanted[1]}x{wanted[2]}, but "
                         f"the images of {data.source} are {found[0]} channel(s) of {found[1]}x{found[2]} pixels; "
                         f"set --in-channels {found[0]} and --image-size {found[1]}")
    labels = 1 + max(int(split.y.max()) for split in (data.train, data.test, data.val)
                     if split is not None and len(split))
    if labels > model_cfg.num_classes:
        raise ValueError(f"the network has num_classes={model_cfg.num_classes}, but the labels of {data.source} "
                         f"go up to {labels - 1}; set --num-classes {max(labels, data.num_classes)}")


@dataclass
class EpochResult:
    epoch: int
    train_loss: float
    train_acc: float
    test_loss: float
    test_acc: float
    epoch_time: float              # seconds, training pass only
    train_time: float              # cumulative training seconds (no evaluation)
    wall_time: float               # cumulative seconds including evaluation
    val_loss: float | None = None
    val_acc: float | None = None


@dataclass
class TrainResult:
    epochs: list[EpochResult] = field(default_factory=list)
    step_losses: list[float] = field(default_factory=list)

    @property
    def time_to_90(self) -> float | None:
        return next((e.train_time for e in self.epochs if e.train_acc >= 0.9), None)

    def summary(self) -> dict:
        last = self.epochs[-1]
        out = {"final_train_acc": last.train_acc, "final_test_acc": last.test_acc,
               "final_train_loss": last.train_loss, "final_test_loss": last.test_loss,
               "train_time_s": last.train_time, "wall_time_s": last.wall_time,
               "overfit_gap": last.train_acc - last.test_acc}
        if last.val_acc is not None:
            out["final_val_acc"] = last.val_acc
        if self.time_to_90 is not None:
            out["time_to_90_train_acc_s"] = self.time_to_90
        return out


def make_optimizer(model: nn.Module, cfg: TrainConfig, steps_per_epoch: int):
    """SGD with momentum (fused kernel on CPU/CUDA) and the learning-rate schedule."""
    fused = torch.device(cfg.device).type in ("cpu", "cuda")
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                weight_decay=cfg.weight_decay, fused=fused)
    return optimizer, make_scheduler(optimizer, cfg, steps_per_epoch)


def make_scheduler(optimizer, cfg: TrainConfig, steps_per_epoch: int):
    """The learning-rate schedule of ``cfg``, stepped once per SGD step."""
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch,
            pct_start=cfg.warmup_fraction, anneal_strategy="cos", cycle_momentum=False)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)


def epoch_order(n: int, cfg: TrainConfig, epoch: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The epoch's shuffled order of n training images and which of its positions are flipped
    (None without hflip): what ``epoch_data`` applies, for whoever must line data up with it."""
    g = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
    order = torch.randperm(n, generator=g)
    flip = torch.rand(n, generator=g) < 0.5 if cfg.hflip else None
    return order, flip


def epoch_data(split: Split, cfg: TrainConfig, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The epoch's training images in shuffled order (flipped where drawn), gathered once."""
    order, flip = epoch_order(len(split), cfg, epoch)
    x, y = split.x[order], split.y[order]            # (N, C, H, W), (N,)
    if flip is not None:
        x[flip] = x[flip].flip(-1)
    return x, y


def train_epoch(model: nn.Module, optimizer, scheduler, x: torch.Tensor, y: torch.Tensor,
                batch_size: int, on_step: Callable[[], None] | None = None,
                objective: Objective = CLASSIFICATION, batch_transform: Callable | None = None,
                generator: torch.Generator | None = None,
                loss_hook: Callable | None = None) -> tuple[torch.Tensor, float]:
    """One pass over (x, y) in order; returns (per-step losses, correctly classified count; NaN
    when the objective has no notion of correct). ``batch_transform(xb, yb, generator) -> (xb, yb)``
    augments each batch before the step (models/data/augment.py); when it returns k examples per image
    (batch augmentation), the count is that of correct predictions divided by k, so count / len(y)
    stays the fraction of correct training predictions. ``loss_hook(step, logits, yb, loss) -> loss``
    replaces the objective's loss of each batch by the one to minimise (distillation)."""
    model.train()
    steps = math.ceil(len(y) / batch_size)
    losses = torch.empty(steps, device=x.device)          # on the data's device: no sync per step
    correct = torch.zeros((), dtype=torch.int64, device=x.device)
    seen = 0                                              # predictions made: len(y) without a transform
    for step in range(steps):
        xb, yb = x[step * batch_size:(step + 1) * batch_size], y[step * batch_size:(step + 1) * batch_size]
        if batch_transform is not None:
            xb, yb = batch_transform(xb, yb, generator)
        seen += len(yb)
        logits = model(xb)
        loss = objective.loss(logits, yb)
        if loss_hook is not None:
            loss = loss_hook(step, logits, yb, loss)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        with torch.no_grad():
            losses[step] = loss.detach()
            if objective.correct is not None:
                correct += objective.correct(logits, yb)
        if on_step is not None:
            on_step()
    if objective.correct is None:
        return losses.cpu(), math.nan
    return losses.cpu(), int(correct) if seen == len(y) else int(correct) * len(y) / seen


@torch.inference_mode()
def evaluate(model: nn.Module, split: Split, batch_size: int = 256, device="cpu",
             objective: Objective = CLASSIFICATION) -> tuple[float, float]:
    """(mean loss, accuracy) over a whole split, model in eval mode (cross-entropy by default;
    accuracy NaN when the objective has no notion of correct)."""
    model.eval()
    total_loss, correct = 0.0, 0
    for start in range(0, len(split), batch_size):
        xb = split.x[start:start + batch_size].to(device)
        yb = split.y[start:start + batch_size].to(device)
        logits = model(xb)
        total_loss += float(objective.loss(logits, yb, reduction="sum"))
        if objective.correct is not None:
            correct += int(objective.correct(logits, yb))
    accuracy = correct / len(split) if objective.correct is not None else math.nan
    return total_loss / len(split), accuracy


def fit(model: nn.Module, data: DataSplits, cfg: TrainConfig, progress: bool = True,
        on_epoch: Callable[[EpochResult, list[float], dict], None] | None = None,
        start: dict | None = None,
        stop: Callable[[list[EpochResult]], str | None] | None = None,
        objective: Objective = CLASSIFICATION, optimizer_factory: Callable | None = None,
        batch_transform: Callable | None = None, loss_hook: Callable | None = None) -> TrainResult:
    """Train ``model`` for ``cfg.epochs``; ``on_epoch(record, step_losses, resume_state)`` sees every
    finished epoch (for logging and checkpoints); ``start`` resumes from a ``resume_state``.
    ``stop(epochs so far)``, when it returns a reason, ends training before the next epoch; it is
    asked before every epoch, so a resumed run that had stopped stays stopped (``early_stop``).
    ``objective`` sets the loss (cross-entropy by default); ``optimizer_factory(model, cfg,
    steps_per_epoch) -> (optimizer, scheduler)`` replaces ``make_optimizer``'s SGD (the studies).
    ``batch_transform(xb, yb, generator)`` augments every training batch (``train_epoch``); its
    generator is seeded by (seed, epoch), so a resumed run draws the same augmentations.
    ``loss_hook(epoch, step, logits, yb, loss) -> loss`` (epoch counted from 0, step within it)
    replaces each batch's loss by the one to minimise (models/pruning/distill.py); the logged
    training loss is then that one."""
    from tqdm.auto import tqdm

    device = torch.device(cfg.device)
    model.to(device)
    train = Split(data.train.x.to(device), data.train.y.to(device))
    steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
    optimizer, scheduler = (optimizer_factory or make_optimizer)(model, cfg, steps_per_epoch)
    result, first_epoch, time_offset = TrainResult(), 0, (0.0, 0.0)
    if start:
        optimizer.load_state_dict(start["optimizer"])
        scheduler.load_state_dict(start["scheduler"])
        result = TrainResult([EpochResult(**e) for e in start["epochs"]], list(start["step_losses"]))
        first_epoch = len(result.epochs)
        time_offset = (result.epochs[-1].train_time, result.epochs[-1].wall_time)
    train_time, wall_start = time_offset[0], time.perf_counter() - time_offset[1]
    bar = tqdm(total=cfg.epochs * steps_per_epoch, initial=first_epoch * steps_per_epoch,
               disable=not progress, unit="step", dynamic_ncols=True)
    for epoch in range(first_epoch, cfg.epochs):
        if stop is not None and stop(result.epochs):
            break
        bar.set_description(f"epoch {epoch + 1}/{cfg.epochs}")
        x, y = epoch_data(train, cfg, epoch)
        t0 = time.perf_counter()
        augment_g = torch.Generator(device).manual_seed(cfg.seed * 100_003 + epoch + AUGMENT_SEED_OFFSET)
        losses, correct = train_epoch(model, optimizer, scheduler, x, y, cfg.batch_size,
                                      on_step=lambda: bar.update(1), objective=objective,
                                      batch_transform=batch_transform, generator=augment_g,
                                      loss_hook=None if loss_hook is None else partial(loss_hook, epoch))
        epoch_time = time.perf_counter() - t0
        train_time += epoch_time
        test_loss, test_acc = evaluate(model, data.test, cfg.eval_batch_size, device, objective)
        val_loss = val_acc = None
        if data.val is not None:
            val_loss, val_acc = evaluate(model, data.val, cfg.eval_batch_size, device, objective)
        record = EpochResult(epoch=epoch + 1, train_loss=float(losses.mean()), train_acc=correct / len(y),
                             test_loss=test_loss, test_acc=test_acc, epoch_time=epoch_time,
                             train_time=train_time, wall_time=time.perf_counter() - wall_start,
                             val_loss=val_loss, val_acc=val_acc)
        result.epochs.append(record)
        result.step_losses.extend(losses.tolist())
        bar.set_postfix(loss=f"{record.train_loss:.3f}", train=f"{record.train_acc:.3f}",
                        test=f"{record.test_acc:.3f}")
        if on_epoch is not None:
            on_epoch(record, losses.tolist(), resume_state(optimizer, scheduler, result))
    bar.close()
    return result


def early_stop(patience: int = 0, key: str = "val_acc") -> Callable[[list[EpochResult]], str | None]:
    """A ``stop`` rule for ``fit``: "diverged" as soon as an epoch's training loss is not finite
    (NaN weights learn nothing more), and "plateau" once ``key`` (validation accuracy) has not
    improved on its best for ``patience`` epochs (0: never). A pure function of the epochs, so
    it gives the same answer when a checkpointed run is resumed."""
    if patience < 0:
        raise ValueError(f"plateau patience must be >= 0 epochs (0: off), got {patience}")

    def stop(epochs: list[EpochResult]) -> str | None:
        if epochs and not math.isfinite(epochs[-1].train_loss):
            return "diverged"
        if patience == 0 or len(epochs) <= patience:
            return None
        values = [getattr(e, key) for e in epochs]
        if any(v is None for v in values):
            raise ValueError(f"a plateau stop on {key} needs a validation split (val_size > 0)")
        best = values.index(max(values))            # the first epoch that reached the best
        return "plateau" if len(values) - 1 - best >= patience else None

    return stop


def resume_state(optimizer, scheduler, result: TrainResult) -> dict:
    """What a checkpoint needs to continue training after the last finished epoch."""
    return {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "epochs": [asdict(e) for e in result.epochs], "step_losses": list(result.step_losses)}


def plot_losses(result: TrainResult, steps_per_epoch: int, path: str | Path, title: str = "") -> Path:
    """Per-step training loss and per-epoch train/test loss against epochs of progress (PNG)."""
    from models.shared.figures import new_figure, save

    fig, ax = new_figure((7, 4))
    steps = torch.arange(len(result.step_losses)) / steps_per_epoch
    ax.plot(steps, result.step_losses, lw=0.5, alpha=0.5, label="training loss (per step)")
    epochs = [e.epoch for e in result.epochs]
    ax.plot(epochs, [e.train_loss for e in result.epochs], "o-", label="training loss (epoch mean)")
    ax.plot(epochs, [e.test_loss for e in result.epochs], "s-", label="test loss")
    if result.epochs and result.epochs[0].val_loss is not None:
        ax.plot(epochs, [e.val_loss for e in result.epochs], "^-", label="validation loss")
    ax.set(xlabel="epochs of training", ylabel="cross-entropy", title=title or "training progress")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    return save(fig, path)


def train_job(model_cfg, cfg: TrainConfig, data: DataSplits, checkpoint: str | Path,
              experiment: str = "fashion-cnn", run_name: str = "train", track: bool = True,
              resume: bool = False, progress: bool = True, runtime: dict | None = None,
              overwrite: bool = False) -> TrainResult:
    """The `sysdl train` job: fit, checkpoint every epoch, log to MLflow, plot, print a summary.

    An existing ``checkpoint`` is continued (``resume``) or replaced (``overwrite``), never
    replaced silently; replacing an unfinished one marks its MLflow run KILLED (when tracking),
    since nothing will resume it. An epoch whose training loss or weights are not finite ends the run (DivergedError,
    the MLflow run FAILED with the stop tag "diverged") before it is checkpointed."""
    from models.training import tracking
    from models.training.checkpoint import CheckpointError, load_model, save_checkpoint
    from models.nets.fashion_cnn import FashionCNN
    from models.training.provenance import provenance
    from models.training.resumable import TAG_STOP

    if resume and overwrite:
        raise ValueError("--resume continues the checkpoint and --overwrite replaces it: pass one of them")
    checkpoint = Path(checkpoint)
    check_device(cfg.device)
    check_fits(model_cfg, data)
    torch.manual_seed(cfg.seed)
    model, start = FashionCNN(model_cfg), None
    if resume and checkpoint.exists():
        model, payload = load_model(checkpoint, expected_config=model_cfg)
        if payload["metrics"].get("train_config") != asdict(cfg) or payload["metrics"].get("data") != data.source:
            raise CheckpointError(f"{checkpoint} was trained with {payload['metrics'].get('train_config')} on "
                                  f"{payload['metrics'].get('data')}, not {asdict(cfg)} on {data.source}; "
                                  f"resume needs the same training settings and data (or --overwrite to "
                                  f"start afresh in its place)")
        start = payload.get("resume")
        if start is None:
            print(f"{checkpoint} is a finished run; nothing to resume")
            return TrainResult([EpochResult(**e) for e in payload["metrics"]["epochs"]])
    elif checkpoint.exists():
        replaced = _replace_or_refuse(checkpoint, overwrite)
        if track and replaced.get("mlflow_run_id"):
            _kill_abandoned_run(replaced["mlflow_run_id"], replaced.get("mlflow_experiment", experiment))
    steps_per_epoch = math.ceil(len(data.train) / cfg.batch_size)
    plot_path = checkpoint.with_name(checkpoint.stem + "_loss.png")
    params = {"model": model_cfg.to_dict(), "train": asdict(cfg), "data": {
        "source": data.source, "n_train": len(data.train), "n_test": len(data.test),
        "n_val": len(data.val) if data.val is not None else 0}, "runtime": runtime or {}}
    run_id = start.get("mlflow_run_id") if start else None     # a resumed run continues its MLflow run
    with tracking.start_run(experiment, run_name, params, tags=provenance(), enabled=track, run_id=run_id) as run:
        def log_epoch(record: dict, step_losses: list[float]) -> None:
            run.log_metrics({k: v for k, v in record.items() if v is not None and k != "epoch"}, step=record["epoch"])
            run.log_series("step_loss", step_losses, first_step=(record["epoch"] - 1) * steps_per_epoch)

        if start and track:
            # A kill between an epoch's checkpoint and its metrics left the epoch unlogged: log it now.
            logged = {step for step, _ in tracking.metric_history(run.run_id, ["epoch_time"])["epoch_time"]}
            for record in start["epochs"]:
                if record["epoch"] not in logged:
                    first = (record["epoch"] - 1) * steps_per_epoch
                    log_epoch(record, start["step_losses"][first:first + steps_per_epoch])

        def on_epoch(record: EpochResult, step_losses: list[float], state: dict) -> None:
            if not math.isfinite(record.train_loss) or not all(bool(p.isfinite().all())
                                                               for p in model.parameters()):
                run.set_tags({TAG_STOP: "diverged"})
                raise DivergedError(f"training diverged in epoch {record.epoch}: training loss {record.train_loss} "
                                    f"(lr {cfg.lr}); that epoch was not checkpointed; lower --lr and train again")
            # Checkpoint first; a kill before the metrics are logged is caught up on resume (above).
            save_checkpoint(checkpoint, model, {"train_config": asdict(cfg), "data": data.source,
                                                "epochs": state["epochs"]},
                            resume={**state, "mlflow_run_id": run.run_id, "mlflow_experiment": experiment})
            log_epoch(asdict(record), step_losses)

        result = fit(model, data, cfg, progress=progress, on_epoch=on_epoch, start=start)
        summary = result.summary()
        run.log_metrics(summary)
        if result.time_to_90 is None:
            run.set_tags({"time_to_90": "not reached"})
        save_checkpoint(checkpoint, model, {"train_config": asdict(cfg), "data": data.source, **summary,
                                            "epochs": [asdict(e) for e in result.epochs]})
        plot_losses(result, steps_per_epoch, plot_path, title=f"{run_name}: {model_cfg.conv1_channels}-"
                    f"{model_cfg.conv2_channels}-{model_cfg.hidden_units} CNN, {data.source}")
        run.log_artifact(plot_path)
        run.log_artifact(checkpoint)
    t90 = f"{result.time_to_90:.1f} s" if result.time_to_90 is not None else "not reached"
    print(f"final train accuracy {summary['final_train_acc']:.4f}, test accuracy "
          f"{summary['final_test_acc']:.4f}; time to 90% training accuracy: {t90}; "
          f"training time {summary['train_time_s']:.1f} s")
    print(f"checkpoint: {checkpoint}\nloss plot:  {plot_path}")
    if track:
        print(f"MLflow run {run.run_id}: {tracking.artifact_dir_note()}")
    return result


def _replace_or_refuse(checkpoint: Path, overwrite: bool) -> dict:
    """The resume state of the run ``checkpoint`` holds ({} for a finished run or an unreadable
    file); unless ``overwrite``, a CheckpointError that says how to continue or replace it."""
    from models.training.checkpoint import CheckpointError, load_checkpoint
    try:
        payload = load_checkpoint(checkpoint)
    except CheckpointError as err:
        if overwrite:
            return {}
        raise CheckpointError(f"{err}; pass --overwrite to replace it or --checkpoint PATH to train elsewhere") from err
    state = payload.get("resume") or {}
    if overwrite:
        return state
    if state:
        raise CheckpointError(f"{checkpoint} holds an unfinished run (stopped after epoch "
                              f"{len(state.get('epochs', []))}); pass --resume to continue it or --overwrite "
                              f"to start afresh in its place")
    epochs = len(payload.get("metrics", {}).get("epochs", []))
    raise CheckpointError(f"{checkpoint} holds a finished run ({epochs} epochs); pass --overwrite to replace it "
                          f"or --checkpoint PATH to train elsewhere (--resume leaves it as it is)")


def _kill_abandoned_run(run_id: str, experiment: str) -> None:
    """Mark KILLED the MLflow run of an unfinished checkpoint a fresh run replaces: it was killed
    (a SIGKILL leaves it RUNNING), and nothing will resume it now."""
    from models.training import tracking
    running = [r["run_id"] for r in tracking.find_runs(experiment)
               if r["run_id"] == run_id and r["status"] == "RUNNING"]
    tracking.end_runs(running, status="KILLED")
    if running:
        print(f"MLflow run {run_id} of the replaced checkpoint: marked KILLED")
