"""Hyperparameter sweeps of the Fashion-MNIST CNN: grids as data, one MLflow run per configuration,
resumable after any kill, parallel on one machine, sharded over many.

    sysdl sweep model                    # 72 network shapes with one fixed training setup
    sysdl sweep train                    # the best shape x 3 inits x 4 batch sizes x 4 (lr, momentum)
    sysdl sweep model --workers 2        # 2 processes, the cores split between them
    sysdl sweep model --shard 0/4        # a deterministic quarter of the grid (a job array's task 0)
    sysdl sweep model --dry-run          # the shard's configurations, their hashes, which are finished
    sysdl sweep model --quick            # tiny data, 4 configurations, 2 epochs: the whole path (CI)
    python -m models.sweeps.sweep model --quick # the same without the console script

The grids are the ``GRIDS`` below and nothing else: every axis lists its values; a value is one
field (``conv1_kernel: 3``) or several set together (``lr_momentum: {lr, momentum}``), each a
field of FashionCNNConfig or TrainConfig. A configuration (network, training, data, stop rule)
is identified by the SHA-256 of its canonical JSON (``RunSpec.hash``), stored in the tag
``sysdl.sweep.hash`` of its MLflow run, together with every hyperparameter as a param, the
per-epoch train / validation / test loss and accuracy, and the final numbers (test accuracy,
overfitting gap = training minus test accuracy, time to 90% training accuracy; absent and tagged
``time_to_90 = not reached`` when no epoch reaches it). Decisions use the validation split
(``--val-size``, carved from the training set); test accuracy is reported, never used to choose.

Stopping: each run trains at most ``--max-epochs`` epochs (the one-cycle schedule spans them) and
stops early when validation accuracy has not improved for ``--plateau`` epochs (0: never) or when
the training loss is no longer finite (diverged); the reason is the tag ``sysdl.sweep.stop``.

Resume, nothing lost (MLflow is the record, a checkpoint per running configuration the memory):
  * a configuration with a FINISHED run in the experiment is skipped;
  * every epoch writes ``OUT_DIR/EXPERIMENT/HASH.pt`` (atomically: weights, optimizer, epochs so
    far, MLflow run id) and only then logs that epoch's metrics in one batch; a restarted sweep
    reopens that run, logs any epoch the kill cut off, and continues from the last epoch, with the
    same data order, so the run ends as if never interrupted;
  * an unfinished run that cannot be continued (no checkpoint here) is deleted from the
    experiment (MLflow keeps it restorable: ``mlflow runs restore --run-id ID``) and the
    configuration starts afresh; an empty one (killed before its first epoch) is reused;
  * a run is marked FINISHED only after its last metrics are logged: a kill before that leaves it
    RUNNING (SIGKILL) or KILLED (Ctrl-C), never FINISHED. At the end each configuration holds
    exactly one FINISHED run and nothing else.
Never run the same shard twice at the same time: each would take the other's runs for dead ones.

Parallelism: ``--workers N`` trains N configurations at once in spawned processes, each with
``threads // N`` torch threads. The runs then share cores, memory bandwidth and caches, so their
training times (the Pareto plot's axis, time to 90%) are longer and noisier than alone: for clean
timings use ``--workers 1`` (the default). Every run records its workers and threads as tags.
``--shard I/N`` (I counted from 0) takes the configurations whose grid index is I modulo N; N
jobs of a cluster's job array, all logging to one tracking server ($MLFLOW_TRACKING_URI), cover
the grid once, and each resumes on its own; the train sweep needs the whole model sweep finished.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import re
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from models.nets.fashion_cnn import FashionCNNConfig
from models.training.loop import TrainConfig
from models.training.resumable import (TAG_HASH, TAG_LABEL, TAG_STOP, canonical_json,
                                      config_hash, epoch_points, is_finished, log_missing_epochs,
                                      resume_point, runs_by_hash)
from models.shared import command
from models.shared.artifacts import QUICK_SWEEP_DIR, SWEEP_DIR

TAG_GRID = "sysdl.sweep.grid"          # "model", "train" or "extra" (the report's extra runs)
TAG_SITUATION = "sysdl.sweep.situation"

# ----------------------------------------------------------------------------------------------
# The grids: the only place their values are written
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Grid:
    name: str
    axes: dict             # axis -> values; a value sets the field named like the axis, or a dict of fields
    quick: dict            # --quick: these axes replace the full ones (a handful of configurations)
    max_epochs: int = 10   # the epoch budget of every run (one-cycle over it), unless --max-epochs

    def axes_for(self, quick: bool = False) -> dict:
        return {**self.axes, **self.quick} if quick else dict(self.axes)

    def combinations(self, quick: bool = False) -> list[tuple[dict, dict]]:
        """(settings, factor labels) of every configuration, in grid order (the last axis fastest)."""
        axes = self.axes_for(quick)
        out = []
        for combo in itertools.product(*axes.values()):
            settings = {}
            for axis, value in zip(axes, combo):
                settings.update(value if isinstance(value, dict) else {axis: value})
            out.append((settings, {axis: value_label(value) for axis, value in zip(axes, combo)}))
        return out

    def size(self, quick: bool = False) -> int:
        return math.prod(len(values) for values in self.axes_for(quick).values())


def value_label(value) -> str:
    """How a value of an axis reads in params, tables and plots: ``5`` or ``lr=0.05, momentum=0.9``."""
    if isinstance(value, dict):
        return ", ".join(f"{key}={item}" for key, item in value.items())
    return str(value)


def _lr_momentum(lr: float, momentum: float) -> dict:
    return {"lr": lr, "momentum": momentum}


GRIDS = {
    # The network's shape; training is TrainConfig's defaults (SGD, one-cycle to lr 0.05, momentum
    # 0.9, batch 128, weight decay 5e-4, flips). 2 x 3 x 2 x 3 x 2 = 72 configurations.
    "model": Grid(
        name="model",
        axes={"conv1_kernel": (3, 5), "conv1_channels": (8, 16, 32),        # kernel: pixels
              "conv2_kernel": (3, 5), "conv2_channels": (8, 16, 32),
              "hidden_units": (64, 128)},                                    # fc1 neurons
        quick={"conv1_kernel": (3, 5), "conv1_channels": (4,), "conv2_kernel": (3,),
               "conv2_channels": (4, 8), "hidden_units": (16,)},
    ),
    # The training setup of the model sweep's best network (by validation accuracy). The (lr,
    # momentum) pairs hold the reference (0.05, 0.9) and one step away from it in each direction
    # the report's situations look for: lr / 25, lr x 10, momentum 0.99 (1 / (1 - momentum): 10x
    # the effective step). 3 x 4 x 4 = 48 configurations.
    "train": Grid(
        name="train",
        axes={"init": ("xavier_uniform", "kaiming_normal", "normal"),        # normal: std 0.01
              "batch_size": (16, 64, 128, 512),                              # images per step
              "lr_momentum": (_lr_momentum(0.002, 0.9), _lr_momentum(0.05, 0.9),
                              _lr_momentum(0.5, 0.9), _lr_momentum(0.05, 0.99))},
        quick={"init": ("xavier_uniform", "normal"), "batch_size": (32,),
               "lr_momentum": (_lr_momentum(0.05, 0.9), _lr_momentum(0.5, 0.9))},
    ),
}


def get_grid(name: str) -> Grid:
    if name not in GRIDS:
        raise ValueError(f"unknown grid {name!r}; the sweeps are {sorted(GRIDS)}")
    return GRIDS[name]


# ----------------------------------------------------------------------------------------------
# Configurations: what a run is, its hash, the grid's expansion, the shards
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataSpec:
    dataset: str = "fashion-mnist"   # "fashion-mnist" or "synthetic"
    val_size: int = 5000             # images carved (seeded) from the training set; decisions use them
    n_train: int = 0                 # keep the first n of the remaining training images (0: all)
    n_test: int = 0                  # keep the first n test images (0: all)
    seed: int = 0                    # seed of the validation carve

    def __post_init__(self):
        if self.val_size < 1:
            raise ValueError(f"a sweep decides on a validation split: val_size must be >= 1, got {self.val_size}")
        if self.n_train < 0 or self.n_test < 0:
            raise ValueError(f"n_train and n_test must be >= 0 (0: all), got {self.n_train}, {self.n_test}")


QUICK_DATA = {"n_train": 1500, "n_test": 500, "val_size": 500}   # --quick: a few seconds an epoch
QUICK_EPOCHS = 2


@dataclass(frozen=True)
class RunSpec:
    """Everything that decides a run's numbers (not its speed: workers and threads are not here)."""
    model: FashionCNNConfig
    train: TrainConfig               # train.epochs is the max-epoch budget
    data: DataSpec
    plateau: int = 3                 # epochs without a better validation accuracy before stopping; 0: off

    def to_dict(self) -> dict:
        return {"model": self.model.to_dict(), "train": asdict(self.train), "data": asdict(self.data),
                "plateau": self.plateau}

    @classmethod
    def from_dict(cls, values: dict) -> "RunSpec":
        return cls(FashionCNNConfig.from_dict(values["model"]), TrainConfig(**values["train"]),
                   DataSpec(**values["data"]), values["plateau"])

    def to_json(self) -> str:
        return canonical_json(self.to_dict())

    @property
    def hash(self) -> str:
        return config_hash(self.to_dict())

    def with_settings(self, settings: dict) -> "RunSpec":
        """A copy with fields of the network or of the training setup changed."""
        model_fields = {f.name for f in fields(FashionCNNConfig)}
        train_fields = {f.name for f in fields(TrainConfig)}
        unknown = set(settings) - model_fields - train_fields
        if unknown:
            raise ValueError(f"{sorted(unknown)} are fields of neither FashionCNNConfig nor TrainConfig")
        model = self.model.replace(**{k: v for k, v in settings.items() if k in model_fields})
        train = TrainConfig(**{**asdict(self.train), **{k: v for k, v in settings.items() if k in train_fields}})
        return RunSpec(model, train, self.data, self.plateau)


def describe(spec: RunSpec) -> str:
    """The configuration in words, as plots and tables label a run."""
    m, t = spec.model, spec.train
    text = (f"conv {m.conv1_kernel}x{m.conv1_kernel}x{m.conv1_channels} -> {m.conv2_kernel}x{m.conv2_kernel}x"
            f"{m.conv2_channels}, fc {m.hidden_units}, init {m.init}; batch {t.batch_size}, lr {t.lr:g}, "
            f"momentum {t.momentum:g}")
    default = TrainConfig()
    others = [f"{f.name}={getattr(t, f.name)}" for f in fields(TrainConfig)
              if f.name not in ("epochs", "batch_size", "lr", "momentum", "seed")
              and getattr(t, f.name) != getattr(default, f.name)]
    return text + "".join(f", {item}" for item in others)


@dataclass
class Job:
    """One configuration to run: its spec, where it sits in its grid and the tags it carries."""
    spec: RunSpec
    grid: str                               # "model", "train" or "extra"
    index: int                              # position in the grid's expansion (what shards split)
    factors: dict[str, str]                 # axis -> value label, as the report groups runs
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def hash(self) -> str:
        return self.spec.hash


def expand(grid: Grid, base: RunSpec, quick: bool = False) -> list[Job]:
    """The grid's configurations on top of ``base``, in grid order."""
    return [Job(base.with_settings(settings), grid.name, index, factors)
            for index, (settings, factors) in enumerate(grid.combinations(quick))]


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` -> (I, N), I in [0, N): shard I of N, counted from 0 like Slurm's --array=0-(N-1)."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not match:
        raise ValueError(f"--shard {text!r}: expected I/N, e.g. 0/4 (shard I of N, I counted from 0)")
    index, count = int(match[1]), int(match[2])
    if count < 1:
        raise ValueError(f"--shard {text}: the number of shards must be >= 1")
    if index >= count:
        raise ValueError(f"--shard {text}: shard {index} does not exist among {count}; I runs from 0 to "
                         f"{count - 1} (a job array --array=0-{count - 1} passes its task id)")
    return index, count


def shard(jobs: list[Job], index: int, count: int) -> list[Job]:
    """The jobs whose grid index is ``index`` modulo ``count``: every shard gets big and small
    networks alike, and the N shards together hold every job exactly once."""
    return [job for job in jobs if job.index % count == index]


# ----------------------------------------------------------------------------------------------
# Running one configuration (in this process or a worker)
# ----------------------------------------------------------------------------------------------


def load_data(spec: DataSpec, data_dir=None, download: bool = False):
    """The splits a DataSpec describes."""
    from models.data.datasets import DataSplits, load_dataset
    data = load_dataset(spec.dataset, data_dir, download=download, val_size=spec.val_size, seed=spec.seed)
    train = data.train.head(spec.n_train) if spec.n_train else data.train
    test = data.test.head(spec.n_test) if spec.n_test else data.test
    return DataSplits(train, test, data.val, data.source, data.num_classes)


def run_job(job: Job, data, experiment: str, checkpoint_dir: Path, candidates: list[dict],
            tags: dict | None = None) -> dict:
    """Train one configuration into its MLflow run (continuing it from its checkpoint when there
    is one); ``candidates`` are the configuration's unfinished runs found in the store."""
    import torch

    from models.training import tracking
    from models.training.checkpoint import save_checkpoint
    from models.nets.fashion_cnn import FashionCNN, count_parameters
    from models.training.loop import early_stop, fit

    spec, path = job.spec, Path(checkpoint_dir) / f"{job.hash}.pt"
    model, start, run_id = resume_point(path, job, candidates)
    tracking.delete_runs(c["run_id"] for c in candidates if c["run_id"] != run_id)
    if model is None:
        torch.manual_seed(spec.train.seed)
        model = FashionCNN(spec.model)
    steps_per_epoch = math.ceil(len(data.train) / spec.train.batch_size)
    stop = early_stop(spec.plateau)
    params = {**spec.to_dict(), "factor": job.factors, "config_json": spec.to_json()}
    run_tags = {TAG_GRID: job.grid, TAG_HASH: job.hash, TAG_LABEL: describe(spec), **job.tags}
    with tracking.start_run(experiment, f"{job.grid} {job.index:03d} {job.hash[:8]}", params,
                            tags=run_tags, run_id=run_id) as run:
        run.set_tags({**(tags or {}), "sysdl.sweep.data_source": data.source,
                      "sysdl.sweep.resumed_at_epoch": len(start["epochs"]) if start else 0})
        if start:
            log_missing_epochs(run, start, steps_per_epoch)

        def on_epoch(record, step_losses, state):
            # Checkpoint first: a kill between the two leaves the epoch for _log_missing_epochs.
            save_checkpoint(path, model, {"config_hash": job.hash, "epochs": state["epochs"]},
                            resume={**state, "mlflow_run_id": run.run_id})
            run.log_points(epoch_points(asdict(record), step_losses, steps_per_epoch))

        result = fit(model, data, spec.train, progress=False, on_epoch=on_epoch, start=start, stop=stop)
        reason = stop(result.epochs) or "max_epochs"
        summary = {**result.summary(), "epochs_run": len(result.epochs), "steps_per_epoch": steps_per_epoch,
                   "best_val_acc": max(e.val_acc for e in result.epochs),
                   "final_val_loss": result.epochs[-1].val_loss, "model_params": count_parameters(model)}
        run.log_metrics(summary)
        run.set_tags({TAG_STOP: reason, "time_to_90": "reached" if result.time_to_90 is not None else "not reached"})
    path.unlink(missing_ok=True)          # the run is FINISHED: MLflow holds all that is needed
    return {"hash": job.hash, "index": job.index, "run_id": run.run_id, "stop": reason, **summary}


# ----------------------------------------------------------------------------------------------
# Running many: skip the finished, in this process or in spawned workers
# ----------------------------------------------------------------------------------------------

_WORKER: dict = {}    # per worker process: its data, set once by _init_worker


def _init_worker(threads: int, data_spec: dict, data_dir, download: bool) -> None:
    import signal

    from sysdl_kernels.runtime import configure_cpu_runtime
    signal.signal(signal.SIGINT, signal.SIG_IGN)     # Ctrl-C is the parent's to handle: it stops us
    configure_cpu_runtime(threads)
    _WORKER["data"] = load_data(DataSpec(**data_spec), data_dir, download)


def _work(task: tuple) -> dict:
    import traceback
    job, experiment, checkpoint_dir, candidates, tags = task
    try:
        return run_job(job, _WORKER["data"], experiment, checkpoint_dir, candidates, tags)
    except Exception:            # one broken configuration must not stop the others
        return {"hash": job.hash, "index": job.index, "error": traceback.format_exc()}


def split_threads(workers: int, threads: int | None = None) -> int:
    """Torch threads per worker: the machine's (or ``threads``) cores shared out evenly."""
    if workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    total = threads if threads is not None else (os.cpu_count() or 1)
    if total < 1:
        raise ValueError(f"--threads must be >= 1, got {total}")
    return max(1, total // workers)


def run_jobs(jobs: list[Job], experiment: str, data_spec: DataSpec, checkpoint_dir: str | Path,
             workers: int = 1, threads: int | None = None, data_dir=None, download: bool = False,
             progress: bool = True, tags: dict | None = None) -> dict:
    """Run every job that has no FINISHED run in ``experiment``; returns counts and results."""
    from tqdm.auto import tqdm

    from models.training import tracking
    per_worker = split_threads(workers, threads)
    checkpoint_dir = Path(checkpoint_dir)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    tracking.ensure_experiment(experiment)           # once, here: workers must not race to create it
    store = runs_by_hash(experiment)
    todo = [job for job in jobs if not is_finished(store.get(job.hash, []))]
    for job in jobs:                                   # a kill after FINISHED may leave its checkpoint
        if is_finished(store.get(job.hash, [])):
            (checkpoint_dir / f"{job.hash}.pt").unlink(missing_ok=True)
    tags = {**(tags or {}), "sysdl.sweep.workers": workers, "sysdl.sweep.threads_per_worker": per_worker}
    tasks = [(job, experiment, checkpoint_dir, store.get(job.hash, []), tags) for job in todo]
    bar = tqdm(total=len(jobs), initial=len(jobs) - len(todo), unit="config", disable=not progress,
               dynamic_ncols=True, desc=experiment)
    results = []

    def done(result: dict) -> None:
        results.append(result)
        bar.update(1)
        bar.write(_result_line(result, jobs))

    try:
        if workers == 1 or len(tasks) <= 1:
            _run_here(tasks, data_spec, per_worker, data_dir, download, done, bar)
        else:
            _run_pool(tasks, data_spec, workers, per_worker, data_dir, download, done, experiment)
    finally:
        bar.close()
    failed = [r for r in results if "error" in r]
    return {"total": len(jobs), "skipped": len(jobs) - len(todo), "ran": len(results) - len(failed),
            "failed": failed, "results": results}


def _run_here(tasks, data_spec, threads, data_dir, download, done, bar) -> None:
    from sysdl_kernels.runtime import configure_cpu_runtime
    if not tasks:
        return
    configure_cpu_runtime(threads)
    data = load_data(data_spec, data_dir, download)
    for job, experiment, checkpoint_dir, candidates, tags in tasks:
        bar.set_postfix_str(f"{job.grid} {job.index}: {describe(job.spec)}")
        try:
            done(run_job(job, data, experiment, checkpoint_dir, candidates, tags))
        except Exception:
            import traceback
            done({"hash": job.hash, "index": job.index, "error": traceback.format_exc()})


def _run_pool(tasks, data_spec, workers, threads, data_dir, download, done, experiment) -> None:
    import multiprocessing
    context = multiprocessing.get_context("spawn")     # fresh interpreters: no forked torch threads
    pool = context.Pool(min(workers, len(tasks)), initializer=_init_worker,
                        initargs=(threads, asdict(data_spec), data_dir, download))
    try:
        for result in pool.imap_unordered(_work, tasks):
            done(result)
        pool.close()
    except BaseException:
        pool.terminate()            # the workers die mid-epoch; their checkpoints resume them
        _mark_killed(experiment, {task[0].hash for task in tasks})
        raise
    finally:
        pool.join()


def _mark_killed(experiment: str, hashes: set[str]) -> None:
    """Runs left RUNNING by stopped workers are KILLED (a resume reopens them)."""
    from models.training import tracking
    running = [r["run_id"] for key, runs in runs_by_hash(experiment).items() if key in hashes
               for r in runs if r["status"] == "RUNNING"]
    tracking.end_runs(running, "KILLED")


def _result_line(result: dict, jobs: list[Job]) -> str:
    job = next(j for j in jobs if j.hash == result["hash"])
    if "error" in result:
        return f"FAILED {job.grid} {job.index} ({describe(job.spec)}):\n{result['error']}"
    t90 = result.get("time_to_90_train_acc_s")
    return (f"{job.grid} {job.index:3d} {job.hash[:8]}  val {result['final_val_acc']:.4f}  test "
            f"{result['final_test_acc']:.4f}  gap {result['overfit_gap']:+.4f}  {result['epochs_run']} epochs "
            f"({result['stop']})  {result['train_time_s']:.0f} s  90%: "
            f"{f'{t90:.0f} s' if t90 is not None else 'not reached'}  | {describe(job.spec)}")


# ----------------------------------------------------------------------------------------------
# The train sweep's network: the model sweep's best, read from MLflow
# ----------------------------------------------------------------------------------------------


def rank_key(run: dict) -> tuple:
    """Best first: higher validation accuracy, then less overfitting, then the hash (determinism)."""
    metrics = run["metrics"]
    return (-metrics.get("final_val_acc", -1.0), metrics.get("overfit_gap", math.inf), run["tags"][TAG_HASH])


def best_model(experiment: str, quick: bool = False, allow_partial: bool = False) -> tuple[RunSpec, dict]:
    """The best network of the model sweep in ``experiment`` (validation accuracy, ties broken by
    the smaller overfitting gap) and its run; the sweep must be complete unless ``allow_partial``."""
    from models.training import tracking
    runs = [r for r in tracking.find_runs(experiment, {TAG_GRID: "model"}) if r["status"] == "FINISHED"]
    wanted = {tuple(sorted(factors.items())) for _, factors in get_grid("model").combinations(quick)}
    have = {tuple(sorted((k.removeprefix("factor."), v) for k, v in r["params"].items() if k.startswith("factor.")))
            for r in runs}
    missing = wanted - have
    if not runs or (missing and not allow_partial):
        raise ValueError(f"the model sweep in experiment {experiment!r} has {len(wanted) - len(missing)} of "
                         f"{len(wanted)} configurations finished; run `sysdl sweep model{' --quick' if quick else ''}`"
                         f" (every shard of it) first{', or pass --allow-partial' if runs else ''}")
    best = min(runs, key=rank_key)
    return RunSpec.from_dict(json.loads(best["params"]["config_json"])), best


# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------


def experiment_name(grid: str, quick: bool = False) -> str:
    return f"sweep-{grid}{'-quick' if quick else ''}"


def default_out_dir(quick: bool = False) -> Path:
    return (QUICK_SWEEP_DIR if quick else SWEEP_DIR)


def data_spec_from(args) -> DataSpec:
    quick = QUICK_DATA if args.quick else {}
    val_size = args.val_size if args.val_size is not None else quick.get("val_size", DataSpec.val_size)
    return DataSpec(dataset=args.dataset, val_size=val_size, n_train=quick.get("n_train", 0),
                    n_test=quick.get("n_test", 0), seed=args.seed)


def plan(args) -> tuple[list[Job], list[Job], dict]:
    """(the grid's jobs, this shard's jobs, what the header says) for `sysdl sweep GRID`."""
    grid = get_grid(args.sweep_command)
    index, count = parse_shard(args.shard)
    split_threads(args.workers, args.threads)          # bad --workers / --threads fail before any work
    epochs = args.max_epochs if args.max_epochs is not None else (QUICK_EPOCHS if args.quick else grid.max_epochs)
    if epochs < 1 or args.plateau < 0:
        raise ValueError(f"--max-epochs must be >= 1 and --plateau >= 0, got {epochs} and {args.plateau}")
    info = {}
    base = RunSpec(FashionCNNConfig(), TrainConfig(epochs=epochs, seed=args.seed), data_spec_from(args), args.plateau)
    if grid.name == "train":
        source = args.model_experiment or experiment_name("model", args.quick)
        chosen, run = best_model(source, args.quick, args.allow_partial)
        base = RunSpec(chosen.model, base.train, base.data, base.plateau)
        info["base"] = (f"network: the best of {source!r} ({describe(chosen)}; validation accuracy "
                        f"{run['metrics']['final_val_acc']:.4f}, run {run['run_id']})")
    jobs = expand(grid, base, args.quick)
    return jobs, shard(jobs, index, count), info


def main(args) -> int:
    """`sysdl sweep model|train`."""
    jobs, mine, info = plan(args)
    experiment = args.experiment or experiment_name(args.sweep_command, args.quick)
    spec = mine[0].spec if mine else jobs[0].spec
    print(f"sweep {args.sweep_command}: {len(jobs)} configurations; shard {args.shard} holds {len(mine)}; "
          f"experiment {experiment!r}; at most {spec.train.epochs} epochs, plateau patience {spec.plateau} "
          f"(validation accuracy); data {spec.data.dataset} (validation {spec.data.val_size}"
          f"{f', first {spec.data.n_train} training / {spec.data.n_test} test images' if spec.data.n_train else ''})")
    if "base" in info:
        print(info["base"])
    if args.dry_run:
        return _print_plan(mine, experiment)
    out = Path(args.out_dir) if args.out_dir else default_out_dir(args.quick)
    print(f"{args.workers} worker(s) x {split_threads(args.workers, args.threads)} thread(s); "
          f"checkpoints in {out / experiment}")
    started = time.perf_counter()
    try:
        outcome = run_jobs(mine, experiment, spec.data, out / experiment, workers=args.workers,
                           threads=args.threads, data_dir=args.data_dir, download=args.download,
                           progress=not args.no_progress, tags={"sysdl.sweep.shard": args.shard})
    except KeyboardInterrupt:
        print("\ninterrupted: the runs in flight are KILLED in MLflow, their checkpoints kept; the same "
              "command resumes them", file=sys.stderr)
        return 130
    finished = sum(is_finished(runs) for key, runs in runs_by_hash(experiment).items()
                   if key in {job.hash for job in mine})
    print(f"done in {(time.perf_counter() - started) / 60:.1f} min: {outcome['ran']} ran, {outcome['skipped']} "
          f"were finished before, {len(outcome['failed'])} failed; {finished}/{len(mine)} of the shard finished "
          f"in MLflow")
    return 0 if finished == len(mine) else 1


def _print_plan(jobs: list[Job], experiment: str) -> int:
    store = runs_by_hash(experiment)
    for job in jobs:
        status = "finished" if is_finished(store.get(job.hash, [])) else "to run"
        print(f"  {job.index:3d} {job.hash}  {status:<8}  {describe(job.spec)}")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add `model` and `train` subcommands to the `sweep` parser; both run ``main(args)``."""
    sweeps = parser.add_subparsers(dest="sweep_command", required=True, metavar="SWEEP")
    for name, text in (("model", "the network's shape: kernel sizes, channels, hidden units (72)"),
                       ("train", "init x batch size x (lr, momentum) for the model sweep's best network (48)")):
        p = sweeps.add_parser(name, help=text, description=text)
        p.add_argument("--max-epochs", type=int, default=None,
                       help=f"epoch budget of each run (default {GRIDS[name].max_epochs}; --quick: {QUICK_EPOCHS})")
        p.add_argument("--plateau", type=int, default=3, metavar="PATIENCE",
                       help="stop a run after PATIENCE epochs without a better validation accuracy (0: off)")
        p.add_argument("--workers", type=int, default=1, help="configurations trained at once, in processes "
                       "(timings are clean only with 1)")
        command.add_threads_flag(p, "torch threads in all (default: all cores), split between the workers")
        p.add_argument("--shard", default="0/1", metavar="I/N", help="run shard I of N (I from 0): configurations "
                       "whose grid index is I mod N")
        command.add_quick_flag(p, f"{GRIDS[name].size(True)} configurations, {QUICK_EPOCHS} epochs, "
                                  f"{QUICK_DATA['n_train']} training images (smoke test)")
        p.add_argument("--experiment", default=None, help=f"MLflow experiment (default {experiment_name(name)}, "
                       f"{experiment_name(name, True)} with --quick)")
        p.add_argument("--out-dir", default=None, help="checkpoints of unfinished runs go to OUT_DIR/EXPERIMENT "
                       f"(default {default_out_dir()}, {default_out_dir(True)} with --quick)")
        command.add_dataset_flag(p)
        command.add_data_dir_flag(p)
        command.add_download_flag(p)
        command.add_val_size_flag(p, None, f"validation images carved from train (default {DataSpec.val_size}; "
                                           f"--quick: {QUICK_DATA['val_size']})")
        p.add_argument("--seed", type=int, default=0, help="weights, data order and the validation carve")
        p.add_argument("--dry-run", action="store_true", help="list the shard's configurations and stop")
        command.add_run_flags(p, track=False)
        if name == "train":
            p.add_argument("--model-experiment", default=None, help="where the model sweep's runs are (default "
                           f"{experiment_name('model')}, {experiment_name('model', True)} with --quick)")
            p.add_argument("--allow-partial", action="store_true",
                           help="take the best network of an unfinished model sweep")


if __name__ == "__main__":
    # run_module imports models.sweeps.sweep by name, so spawned workers unpickle its classes from there
    sys.exit(command.run_module("models.sweeps.sweep"))
