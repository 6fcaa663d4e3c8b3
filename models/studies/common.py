"""What the training studies share: the multilayer perceptron, the optimizers by name, and
resumable MLflow runs keyed by a configuration hash (models/training/resumable.py, shared with the sweeps).

A study is a list of ``StudyJob``: plain data (network, training setup, optimizer, data, and the
batch augmentation of models/data/augment.py where there is one) whose
canonical JSON is hashed (``resumable.config_hash``) into the tag ``sysdl.sweep.hash``. ``run_jobs``
follows the sweeps' rules: a job with a FINISHED run in the experiment is skipped; every epoch
writes ``CHECKPOINT_DIR/HASH.pt`` (atomically) and only then logs its metrics; a restarted study
reopens the unfinished run, logs any epoch a kill cut off, and continues from the last epoch
with the same data order; the checkpoint is deleted once the run is FINISHED. Figures and tables
are made from the store (``finished_runs``), never from memory.

A job's network is any config with ``to_dict()`` and ``build()`` (a fresh module whose ``config``
is that config): MLPConfig here, CifarResNetConfig (models/nets/cifar_resnet.py), TransferConfig
(models/studies/transfer.py).

Not run by itself: ``sysdl study ...`` (models/studies/__init__.py).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from models.training.loop import CLASSIFICATION, Objective, TrainConfig
from models.shared import command
from models.shared.artifacts import STUDIES_DIR

TAG_STUDY = "sysdl.study"
QUICK_EPOCHS = 2
# Metrics that mean nothing for a regression (their values are NaN there): not logged then.
ACCURACY_KEYS = frozenset({"train_acc", "test_acc", "val_acc", "final_train_acc", "final_test_acc",
                           "final_val_acc", "overfit_gap"})


# ----------------------------------------------------------------------------------------------
# The network
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MLPConfig:
    in_features: int               # inputs per example (an image is flattened)
    hidden: tuple[int, ...]        # units of each hidden layer
    out_features: int              # classes, or 1 for a regression
    batch_norm: bool = False       # Linear -> BatchNorm1d -> ReLU in every hidden layer
    dropout_input: float = 0.0     # probability of zeroing an input feature (training only)
    dropout_hidden: float = 0.0    # probability of zeroing a hidden unit (training only)

    def __post_init__(self):
        object.__setattr__(self, "hidden", tuple(int(units) for units in self.hidden))
        if not self.hidden or min(self.hidden) < 1 or self.in_features < 1 or self.out_features < 1:
            raise ValueError(f"an MLP needs >= 1 hidden layer and positive widths, got {self.in_features} -> "
                             f"{self.hidden} -> {self.out_features}")
        for name in ("dropout_input", "dropout_hidden"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} is a probability in [0, 1), got {getattr(self, name)}")

    def to_dict(self) -> dict:
        return {**asdict(self), "hidden": list(self.hidden)}

    @classmethod
    def from_dict(cls, values: dict) -> "MLPConfig":
        return cls(**values)

    def build(self) -> "MLP":
        return MLP(self)


class MLP(nn.Module):
    """Flatten -> [Dropout] -> (Linear [-> BatchNorm1d] -> ReLU [-> Dropout]) per hidden layer -> Linear.

    nn.Dropout is *inverted* dropout: in training it zeroes each unit with probability p and
    multiplies the kept ones by 1 / (1 - p), so every unit's expected value is unchanged; in eval
    mode it is the identity. The weights therefore need no scaling by (1 - p) at test time
    (the scaling of Srivastava et al. 2014 is done during training instead); evaluation just
    puts the model in eval mode (models/training/loop.py evaluate does)."""

    def __init__(self, config: MLPConfig):
        super().__init__()
        self.config = config                     # save_checkpoint records config.to_dict()
        layers: list[nn.Module] = [nn.Flatten()]   # (N, C, H, W) -> (N, C*H*W); (N, F) stays
        if config.dropout_input:
            layers.append(nn.Dropout(config.dropout_input))
        width = config.in_features
        for units in config.hidden:
            # Batch norm's shift does the bias's job, so the Linear before it has none.
            layers.append(nn.Linear(width, units, bias=not config.batch_norm))
            if config.batch_norm:
                layers.append(nn.BatchNorm1d(units))
            layers.append(nn.ReLU())
            if config.dropout_hidden:
                layers.append(nn.Dropout(config.dropout_hidden))
            width = units
        layers.append(nn.Linear(width, config.out_features))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)                       # (N, out_features)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters (batch norm's running statistics are buffers, not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# ----------------------------------------------------------------------------------------------
# Optimizers by name: TrainConfig gives lr and weight_decay (L2), the job's spec the rest
# ----------------------------------------------------------------------------------------------


def _optimizer_classes() -> dict:
    from sysdl_kernels.torch_optim import RMSpropNesterov
    return {"sgd": torch.optim.SGD, "adagrad": torch.optim.Adagrad, "rmsprop": torch.optim.RMSprop,
            "rmsprop-nesterov": RMSpropNesterov, "adadelta": torch.optim.Adadelta, "adam": torch.optim.Adam}


SCHEDULE_KEYS = ("milestones", "gamma")    # a spec's multi-step schedule, not optimizer arguments


def optimizer_factory(spec: dict) -> Callable:
    """``fit``'s optimizer_factory for ``spec`` = {"name": ..., other keyword arguments}: the optimizer
    over the trainable parameters (frozen ones are left out) with TrainConfig's lr and weight_decay
    (coupled L2: weight_decay * param is added to the gradient), and TrainConfig's schedule; or,
    where the spec has "milestones" (epochs), the learning rate times "gamma" (default 0.1) at each."""
    from models.training.loop import make_scheduler
    classes = _optimizer_classes()
    name = spec["name"]
    kwargs = {k: v for k, v in spec.items() if k != "name" and k not in SCHEDULE_KEYS}
    if name not in classes:
        raise ValueError(f"unknown optimizer {name!r}; known: {sorted(classes)}")

    def make(model: nn.Module, cfg: TrainConfig, steps_per_epoch: int):
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = classes[name](trainable, lr=cfg.lr, weight_decay=cfg.weight_decay, **kwargs)
        if "milestones" not in spec:
            return optimizer, make_scheduler(optimizer, cfg, steps_per_epoch)
        # fit steps the scheduler once per SGD step: epoch milestones become step milestones.
        steps = [int(epoch) * steps_per_epoch for epoch in spec["milestones"]]
        return optimizer, torch.optim.lr_scheduler.MultiStepLR(optimizer, steps, gamma=spec.get("gamma", 0.1))

    return make


# ----------------------------------------------------------------------------------------------
# Jobs and their resumable runs
# ----------------------------------------------------------------------------------------------


@dataclass
class StudyJob:
    study: str                     # "optimizers" or "depth-width"
    index: int                     # position in the study's plan
    label: str                     # the configuration in words (tables, plots)
    factors: dict                  # the study's axes -> values, as the report groups runs
    model: MLPConfig               # or any network config with to_dict() and build() (module docstring)
    train: TrainConfig
    optimizer: dict                # {"name": ..., keyword arguments beyond lr and weight_decay}
    data: dict                     # what decides the data (its name, sizes, seed)
    objective: Objective = field(default=CLASSIFICATION, compare=False)   # follows from the study
    augment: dict | None = None    # BatchAugment's fields (models/data/augment.py); None: no augmentation

    def __post_init__(self):
        if self.train.hflip:       # fit's whole-image flip; images are flipped by ``augment`` instead
            raise ValueError("the studies' networks take flat inputs, and image studies flip in their "
                             "augmentation: TrainConfig.hflip must be False")

    def to_dict(self) -> dict:
        values = {"study": self.study, "factors": self.factors, "model": self.model.to_dict(),
                  "train": asdict(self.train), "optimizer": self.optimizer, "data": self.data}
        if self.augment is not None:      # only then: the hashes of jobs without it stay as they were
            values["augment"] = self.augment
        return values

    def batch_transform(self):
        from models.data.augment import BatchAugment
        return BatchAugment(**self.augment) if self.augment is not None else None

    @property
    def hash(self) -> str:
        from models.training.resumable import config_hash
        return config_hash(self.to_dict())


class _Metrics:
    """The run logger, minus the accuracy metrics of a regression (NaN: nothing to show)."""

    def __init__(self, run, skip: frozenset):
        self.run, self.run_id, self.skip = run, run.run_id, skip

    def log_points(self, points) -> None:
        self.run.log_points([(key, value, step) for key, value, step in points if key not in self.skip])

    def log_metrics(self, metrics: dict) -> None:
        self.run.log_metrics({k: v for k, v in metrics.items() if k not in self.skip and v is not None})


def _loader(job: StudyJob) -> Callable:
    """``resumable.resume_point``'s checkpoint reader for the job's network."""
    from models.training.checkpoint import CheckpointError, load_checkpoint

    def load(path: Path):
        payload = load_checkpoint(path)
        if payload["config"] != job.model.to_dict():
            raise CheckpointError(f"{path} holds {payload['config']}, not the job's {job.model.to_dict()}")
        model = job.model.build()
        try:
            model.load_state_dict(payload["state_dict"])
        except RuntimeError as err:
            raise CheckpointError(f"{path}: its weights do not fit its network: {err}") from err
        return model, payload

    return load


def run_job(job: StudyJob, data, experiment: str, checkpoint_dir: Path, candidates: list[dict],
            summarise: Callable | None = None, tags: dict | None = None, progress: bool = False) -> dict:
    """Train one job into its MLflow run, continuing from its checkpoint when there is one;
    ``summarise(model, data, result)`` adds the study's final metrics."""
    from models.training import resumable
    from models.training import tracking
    from models.training.checkpoint import save_checkpoint
    from models.training.loop import early_stop, fit

    path = Path(checkpoint_dir) / f"{job.hash}.pt"
    model, start, run_id = resumable.resume_point(path, job, candidates, load=_loader(job))
    tracking.delete_runs(c["run_id"] for c in candidates if c["run_id"] != run_id)
    if model is None:
        torch.manual_seed(job.train.seed)
        model = job.model.build()
    steps_per_epoch = math.ceil(len(data.train) / job.train.batch_size)
    stop = early_stop(0)           # only "diverged": a study runs every method its full budget
    params = {**job.to_dict(), "config_json": resumable.canonical_json(job.to_dict())}
    run_tags = {TAG_STUDY: job.study, resumable.TAG_HASH: job.hash, resumable.TAG_LABEL: job.label, **(tags or {})}
    skip = ACCURACY_KEYS if job.objective.correct is None else frozenset()
    with tracking.start_run(experiment, f"{job.study} {job.index:03d} {job.hash[:8]}", params,
                            tags=run_tags, run_id=run_id) as run:
        metrics = _Metrics(run, skip)
        run.set_tags({"sysdl.study.data_source": data.source,
                      "sysdl.study.resumed_at_epoch": len(start["epochs"]) if start else 0})
        if start:
            resumable.log_missing_epochs(metrics, start, steps_per_epoch)

        def on_epoch(record, step_losses, state):
            # Checkpoint first: a kill between the two leaves the epoch for _log_missing_epochs.
            save_checkpoint(path, model, {"config_hash": job.hash, "epochs": state["epochs"]},
                            resume={**state, "mlflow_run_id": run.run_id})
            metrics.log_points(resumable.epoch_points(asdict(record), step_losses, steps_per_epoch))

        result = fit(model, data, job.train, progress=progress, on_epoch=on_epoch, start=start, stop=stop,
                     objective=job.objective, optimizer_factory=optimizer_factory(job.optimizer),
                     batch_transform=job.batch_transform())
        summary = {**result.summary(), "epochs_run": len(result.epochs), "model_params": count_parameters(model),
                   **(summarise(model, data, result) if summarise else {})}
        metrics.log_metrics(summary)
        run.set_tags({resumable.TAG_STOP: stop(result.epochs) or "max_epochs"})
    path.unlink(missing_ok=True)   # the run is FINISHED: MLflow holds all that is needed
    return {"hash": job.hash, "run_id": run.run_id, **summary}


def run_jobs(jobs: list[StudyJob], experiment: str, data, checkpoint_dir: Path, summarise: Callable | None = None,
             progress: bool = True) -> dict:
    """Run, in order, every job without a FINISHED run in ``experiment``; (counts, results)."""
    from models.training import resumable
    from models.training import tracking
    from models.training.provenance import provenance
    checkpoint_dir = Path(checkpoint_dir)
    tracking.ensure_experiment(experiment)
    store = resumable.runs_by_hash(experiment)
    tags, results, skipped = provenance(), [], 0
    for job in jobs:
        if resumable.is_finished(store.get(job.hash, [])):
            (checkpoint_dir / f"{job.hash}.pt").unlink(missing_ok=True)   # a kill after FINISHED may leave it
            skipped += 1
            continue
        print(f"[{job.index + 1}/{len(jobs)}] {job.label}", flush=True)
        result = run_job(job, data, experiment, checkpoint_dir, store.get(job.hash, []), summarise, tags, progress)
        results.append(result)
        print(f"    final training loss {result['final_train_loss']:.4f}, training time "
              f"{result['train_time_s']:.1f} s", flush=True)
    return {"total": len(jobs), "skipped": skipped, "ran": len(results), "results": results}


def finished_runs(experiment: str, jobs: list[StudyJob]) -> list[tuple[StudyJob, dict]]:
    """(job, its FINISHED run) for every job, read from the store; an error if any is missing."""
    from models.training import resumable
    store = resumable.runs_by_hash(experiment)
    pairs = [(job, next((r for r in store.get(job.hash, []) if r["status"] == "FINISHED"), None)) for job in jobs]
    missing = [job.label for job, run in pairs if run is None]
    if missing:
        raise ValueError(f"{len(missing)} of {len(jobs)} runs of experiment {experiment!r} are not finished "
                         f"(e.g. {missing[0]}); run the study again without --report-only: it resumes them")
    return pairs


def epoch_history(run_id: str, key: str) -> tuple[list[int], list[float]]:
    """(epochs, values) of a per-epoch metric, from the store."""
    from models.training import tracking
    points = tracking.metric_history(run_id, [key])[key]
    return [step for step, _ in points], [value for _, value in points]


def eval_train_loss(model: nn.Module, data, objective: Objective, batch_size: int) -> float:
    """The training set's mean loss in eval mode (no dropout; batch norm's running statistics):
    the loss of the network as it is tested, unlike the epoch mean of the training pass."""
    from models.training.loop import evaluate
    return evaluate(model, data.train, batch_size, "cpu", objective)[0]


# ----------------------------------------------------------------------------------------------
# Command line: the flags both studies take
# ----------------------------------------------------------------------------------------------


def add_common_arguments(parser: argparse.ArgumentParser, study: str, seed_epochs: int,
                         scale: str = "the seed scale") -> None:
    parser.add_argument("--epochs", type=int, default=None, help=f"epochs per run (default {seed_epochs}, "
                        f"{scale}; --quick: {QUICK_EPOCHS})")
    command.add_quick_flag(parser, f"tiny data and networks, {QUICK_EPOCHS} epochs: the whole path in seconds (CI)")
    parser.add_argument("--seed", type=int, default=0, help="weights, data order (and generated data)")
    command.add_threads_flag(parser)
    parser.add_argument("--experiment", default=None, help=f"MLflow experiment (default {experiment_name(study)}, "
                        f"{experiment_name(study, True)} with --quick)")
    parser.add_argument("--out-dir", default=str(STUDIES_DIR), help="figures and tables go to OUT_DIR/EXPERIMENT, "
                        "checkpoints of unfinished runs to OUT_DIR/EXPERIMENT/checkpoints (default %(default)s)")
    parser.add_argument("--report-only", action="store_true",
                        help="train nothing: make the figures and tables from the finished runs in the store")
    parser.add_argument("--progress", action="store_true", help="a progress bar per run")


def experiment_name(study: str, quick: bool = False) -> str:
    return f"study-{study}{'-quick' if quick else ''}"


def epochs_from(args, seed_epochs: int) -> int:
    epochs = args.epochs if args.epochs is not None else (QUICK_EPOCHS if args.quick else seed_epochs)
    if epochs < 1:
        raise ValueError(f"--epochs must be >= 1, got {epochs}")
    return epochs


def execute(args, study: str, jobs: list[StudyJob], data, summarise: Callable | None) -> tuple[str, Path]:
    """Train what is not finished (unless --report-only); returns (experiment, output folder)."""
    from sysdl_kernels.runtime import configure_cpu_runtime
    experiment = args.experiment or experiment_name(study, args.quick)
    out = Path(args.out_dir) / experiment
    if not args.report_only:
        configure_cpu_runtime(args.threads)
        outcome = run_jobs(jobs, experiment, data, out / "checkpoints", summarise, progress=args.progress)
        print(f"{outcome['ran']} runs trained, {outcome['skipped']} were finished before "
              f"(experiment {experiment!r})")
    return experiment, out


def load_data(dataset: str, data_dir=None, download: bool = False, n_train: int = 0, n_test: int = 0):
    """The data set by name (cifar10, fashion-mnist, synthetic), cut to its first n_train / n_test
    examples when those are > 0."""
    from models.data.datasets import DataSplits, load_dataset
    if dataset == "cifar10":
        from models.data.cifar10 import load_cifar10
        data = load_cifar10(data_dir, download=download)
    else:
        data = load_dataset(dataset, data_dir, download=download)
    train = data.train.head(n_train) if n_train else data.train
    test = data.test.head(n_test) if n_test else data.test
    return DataSplits(train, test, None, data.source, data.num_classes)

