"""`sysdl prune-control`: the scratch control and the final retraining of the pruning front (resumable).

Each architecture of the pruning front trained from scratch, and each pruned model retrained for
longer, with or without distillation, over seeds: one resumable MLflow run each.

    sysdl prune-control --dry-run            # the plan: runs/prune/*'s front in 1/80..1/20 of the base's FLOPs
    sysdl prune-control                      # every method, seeds 0 1 2, into runs/prune_control/
    sysdl prune-control --methods scratch scratch-distill --extra 1-2-24 1-2-16 --seeds 0 1
    sysdl prune-control --scratch-epochs matched       # base epochs + all the pruning retraining it had
    sysdl prune-control --quick              # CI: the quick sessions (runs/quick/), 1 epoch on a subset

Does pruning earn its place (Liu et al., "Rethinking the Value of Network Pruning", ICLR 2019)?
Each architecture pruning found is trained again by every method of ``METHODS``:
  * ``scratch``: a fresh initialisation, the base model's recipe (its TrainConfig: SGD with
    momentum, one-cycle schedule, flips) for --scratch-epochs: by default the base's epochs plus
    --retrain-epochs, the budget of the base plus the final retraining; ``matched``: the base's
    epochs plus every retraining epoch that pruned model received (5 per step it descends from);
  * ``retrain``: the pruned model itself, retrained for --retrain-epochs with the base recipe's
    schedule: the longer final retraining, reported apart from the course's 5-epoch steps;
  * ``scratch-distill``, ``retrain-distill``: the same against the base model's soft targets too
    (models/pruning/distill.py, --distill-temperature, --distill-weight).
Architectures (conv1-conv2-fc1 sizes): the Pareto front (test accuracy against FLOPs) of every
undistilled session under --prune-dir within [--min-fraction, --max-fraction] of the base's FLOPs,
the selected model (runs/pruned_selected.pt), and --extra sizes (scratch methods only: they have no
pruned model to retrain).

Every (method, architecture, seed) is one MLflow run of experiment ``prune-control`` tagged with a
hash of everything that decides its numbers; it checkpoints every epoch, a killed run resumes from
its last epoch, and finished runs are skipped (models/training/resumable.py). Runs train on the
training set less --val-size images (5,000), a held-out split on which `sysdl report prune` also
selects. Finished models stay in OUT_DIR/models/; OUT_DIR/runs.csv lists every finished run, what
`sysdl report prune` reads.
"""

from __future__ import annotations

import argparse
import hashlib
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from models.pruning.distill import DistillSettings
from models.shared import command
from models.shared.artifacts import MAIN, QUICK

METHODS = {                        # method -> where its weights start, whether it distils
    "scratch": {"init": "scratch", "distill": False},
    "scratch-distill": {"init": "scratch", "distill": True},
    "retrain": {"init": "pruned", "distill": False},
    "retrain-distill": {"init": "pruned", "distill": True},
}
EXPERIMENT, QUICK_EXPERIMENT = "prune-control", "prune-control-quick"
TAG_METHOD, TAG_SOURCE = "sysdl.control.method", "sysdl.control.source"
QUICK_DATA = {"n_train": 2000, "n_test": 1000, "val_size": 500}      # --quick: seconds an epoch
QUICK_EPOCHS = 1
WINDOW = (1 / 80, 1 / 20)         # front models taken by default, in FLOPs of the base's
RETRAIN_EPOCHS = 15                # the final retraining's default: the base recipe's 15 epochs again
COLLAPSED_BELOW = 0.12             # test accuracy: chance (ten classes) + 2 points, the network died


@dataclass(frozen=True)
class Candidate:
    """An architecture to train again, and where it came from."""
    sizes: tuple[int, int, int]    # conv1 channels, conv2 channels, fc1 units
    source: str                    # "l1-global step 97", "selected (...)", "extra"
    checkpoint: str | None = None  # the pruned model (None for --extra sizes)
    pruning_epochs: int | None = None   # retraining epochs the pruned model received, all steps together


@dataclass(frozen=True)
class ControlJob:
    method: str                    # a key of METHODS
    candidate: Candidate
    model: object                  # FashionCNNConfig: the base's with the candidate's sizes
    train: object                  # TrainConfig: the base recipe with this run's epochs and seed
    data: dict                     # what decides the data: dataset, val_size, n_train, n_test, seed
    init_sha256: str | None        # the pruned checkpoint the run starts from (retrain methods)
    distill: dict | None           # {"temperature", "weight", "teacher_sha256"} (distilled methods)

    def to_dict(self) -> dict:
        """Everything that decides the run's numbers (not where its architecture came from)."""
        return {"method": self.method, "model": self.model.to_dict(), "train": asdict(self.train),
                "data": self.data, "init_sha256": self.init_sha256, "distill": self.distill}

    @property
    def hash(self) -> str:
        from models.training.resumable import config_hash
        return config_hash(self.to_dict())

    @property
    def recipe(self) -> str:
        return recipe(self.method, self.train.epochs, self.distill)

    @property
    def label(self) -> str:
        return f"{self.recipe}, {'-'.join(map(str, self.candidate.sizes))}, seed {self.train.seed}"


def recipe(method: str, epochs: int, distill: dict | None) -> str:
    """A method and its budget in words ("scratch-distill T4 w0.9, 30 ep"): what the report draws as one front."""
    settings = f" T{distill['temperature']:g} w{distill['weight']:g}" if distill else ""
    return f"{method}{settings}, {epochs} ep"


def parse_sizes(text: str) -> tuple[int, int, int]:
    """"1-2-24" -> (1, 2, 24): conv1 channels, conv2 channels, fc1 units."""
    parts = text.split("-")
    if len(parts) != 3 or not all(p.isdigit() and int(p) >= 1 for p in parts):
        raise ValueError(f"--extra {text!r}: expected CONV1-CONV2-FC1 sizes, whole numbers >= 1, e.g. 1-2-24")
    return tuple(int(p) for p in parts)


def _sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _sizes(row) -> tuple[int, int, int]:
    return int(row["conv1_channels"]), int(row["conv2_channels"]), int(row["hidden_units"])


# ----------------------------------------------------------------------------------------------
# The plan: which architectures, methods, seeds and budgets
# ----------------------------------------------------------------------------------------------


def front_candidates(prune_dir: str | Path, min_fraction: float, max_fraction: float) -> list[Candidate]:
    """The Pareto front of every undistilled session under ``prune_dir`` (kept and rejected
    models alike, as the report's), fewest FLOPs first, within the FLOPs window (fractions of
    the base's); [] when there is no session."""
    from models.pruning.prune import PruneConfig, recorded_config, read_state, session_steps, step_checkpoint
    from models.shared.tables import pareto_front
    if not any(Path(prune_dir).glob("*/state.json")):
        return []
    frame = session_steps(prune_dir)
    frame = frame[~frame["distilled"].astype(bool)]
    if frame.empty:
        return []
    base_flops = float(frame.loc[frame["layer"] == "base", "flops"].max())
    front = pareto_front(frame).sort_values("flops")
    found = []
    for _, row in front.iterrows():
        fraction = row["flops"] / base_flops
        if row["layer"] == "base" or not min_fraction <= fraction <= max_fraction:
            continue
        session_dir = Path(row["session_dir"])
        steps = frame[frame["session_dir"] == row["session_dir"]]
        retrain_epochs = PruneConfig(**recorded_config(read_state(session_dir / "state.json"))).retrain_epochs
        # A step's model descends from every accepted step before it, each retrained, and was retrained itself.
        ancestors = int(((steps["step"] > 0) & (steps["step"] < row["step"]) & steps["accepted"].astype(bool)).sum())
        found.append(Candidate(_sizes(row), f"{row['session']} step {row['step']}",
                               str(step_checkpoint(session_dir, row["checkpoint"])), retrain_epochs * (ancestors + 1)))
    return found


def selected_candidate(selected: str | Path, front: list[Candidate]) -> Candidate | None:
    """The selected pruned model: the front's candidate of the same sizes (named as selected), or
    one of its own where the front lacks it; None when no model was selected."""
    from models.training.checkpoint import load_checkpoint
    if not Path(selected).is_file():
        return None
    payload = load_checkpoint(selected)
    config = payload["config"]
    sizes = (config["conv1_channels"], config["conv2_channels"], config["hidden_units"])
    same = next((c for c in front if c.sizes == sizes), None)
    if same is not None:
        return replace(same, source=f"selected ({same.source})")
    record = payload["metrics"]
    where = f"{record.get('heuristic', '?')}-{record.get('schedule', '?')} step {record.get('step', '?')}"
    return Candidate(sizes, f"selected ({where})", str(selected))


def candidates(prune_dir, selected, min_fraction: float, max_fraction: float, extra=()) -> list[Candidate]:
    """Front, selected and extra architectures, each once (the first source of its sizes wins)."""
    front = front_candidates(prune_dir, min_fraction, max_fraction)
    chosen = selected_candidate(selected, front)
    found: dict[tuple, Candidate] = {}
    for candidate in ([chosen] if chosen else []) + front + [Candidate(s, "extra") for s in extra]:
        found.setdefault(candidate.sizes, candidate)
    return list(found.values())


def base_recipe(base: str | Path):
    """(FashionCNNConfig, TrainConfig) of the base model: its network and how it was trained."""
    from models.nets.fashion_cnn import FashionCNNConfig
    from models.training.checkpoint import load_checkpoint
    from models.training.loop import TrainConfig
    payload = load_checkpoint(base)
    return FashionCNNConfig.from_dict(payload["config"]), TrainConfig(**payload["metrics"].get("train_config", {}))


def budget(init: str, candidate: Candidate, base_epochs: int, scratch_epochs: int | str | None,
           retrain_epochs: int) -> int:
    """Epochs of one run: ``retrain_epochs`` from a pruned model; from scratch, ``scratch_epochs``,
    or the base's epochs plus ``retrain_epochs`` (None), or plus every retraining epoch the pruned
    model received ("matched"; ``retrain_epochs`` where the candidate has no pruning history)."""
    if init == "pruned":
        return retrain_epochs
    if scratch_epochs == "matched":
        return base_epochs + (candidate.pruning_epochs if candidate.pruning_epochs is not None else retrain_epochs)
    return int(scratch_epochs) if scratch_epochs is not None else base_epochs + retrain_epochs


def plan(found: list[Candidate], base: str | Path, methods, seeds, data: dict, scratch_epochs: int | str | None,
         retrain_epochs: int, distill: DistillSettings) -> list[ControlJob]:
    """One job per (seed, candidate, method), seed by seed, so that a study cut short has every
    architecture and method once; retrain methods only where there is a pruned model.
    ``scratch_epochs``: a number, "matched" (base + the candidate's pruning epochs) or None (base +
    ``retrain_epochs``)."""
    model_cfg, recipe = base_recipe(base)
    teacher = _sha256(base) if any(METHODS[m]["distill"] for m in methods) else None
    jobs = []
    for seed, candidate in ((seed, candidate) for seed in seeds for candidate in found):
        sizes = dict(zip(("conv1_channels", "conv2_channels", "hidden_units"), candidate.sizes))
        for method in methods:
            init = METHODS[method]["init"]
            if init == "pruned" and candidate.checkpoint is None:
                continue
            epochs = budget(init, candidate, recipe.epochs, scratch_epochs, retrain_epochs)
            distilled = ({"temperature": distill.distill_temperature, "weight": distill.distill_weight,
                          "teacher_sha256": teacher} if METHODS[method]["distill"] else None)
            init_sha256 = _sha256(candidate.checkpoint) if init == "pruned" else None
            jobs.append(ControlJob(method, candidate, model_cfg.replace(**sizes),
                                   replace(recipe, epochs=epochs, seed=seed), data, init_sha256, distilled))
    return jobs


# ----------------------------------------------------------------------------------------------
# Running: one resumable MLflow run per job
# ----------------------------------------------------------------------------------------------


def run_job(job: ControlJob, data, experiment: str, model_dir: Path, candidates_: list[dict], soft_targets=None,
            progress: bool = False) -> dict:
    """Train one job into its MLflow run, continuing from its checkpoint when there is one; the
    finished model stays at MODEL_DIR/HASH.pt."""
    import torch

    from models.nets.fashion_cnn import FashionCNN
    from models.pruning.prune import model_summary
    from models.training import resumable, tracking
    from models.training.checkpoint import load_model, save_checkpoint
    from models.training.loop import early_stop, fit
    from models.training.provenance import provenance

    path = Path(model_dir) / f"{job.hash}.pt"
    model, start, run_id = resumable.resume_point(path, job, candidates_,
                                                  load=lambda p: load_model(p, expected_config=job.model))
    tracking.delete_runs(c["run_id"] for c in candidates_ if c["run_id"] != run_id)
    if model is None and job.init_sha256:
        model = load_model(job.candidate.checkpoint, expected_config=job.model)[0]
    elif model is None:
        torch.manual_seed(job.train.seed)
        model = FashionCNN(job.model)
    hook = (soft_targets.loss_hook(job.train, job.distill["temperature"], job.distill["weight"])
            if job.distill else None)
    steps_per_epoch = math.ceil(len(data.train) / job.train.batch_size)
    stop = early_stop(0)           # only "diverged": every method gets its whole budget
    params = {**job.to_dict(), "config_json": resumable.canonical_json(job.to_dict())}
    tags = {**provenance(), resumable.TAG_HASH: job.hash, resumable.TAG_LABEL: job.label, TAG_METHOD: job.method,
            TAG_SOURCE: job.candidate.source}
    with tracking.start_run(experiment, job.label, params, tags=tags, run_id=run_id) as run:
        run.set_tags({"sysdl.control.resumed_at_epoch": len(start["epochs"]) if start else 0})
        if start:
            resumable.log_missing_epochs(run, start, steps_per_epoch)

        def on_epoch(record, step_losses, state):
            # Checkpoint first: a kill between the two leaves the epoch for log_missing_epochs.
            save_checkpoint(path, model, {"config_hash": job.hash, "epochs": state["epochs"]},
                            resume={**state, "mlflow_run_id": run.run_id})
            run.log_points(resumable.epoch_points(asdict(record), step_losses, steps_per_epoch))

        result = fit(model, data, job.train, progress=progress, on_epoch=on_epoch, start=start, stop=stop,
                     loss_hook=hook)
        cost = model_summary(model)
        summary = {**result.summary(), "epochs_run": len(result.epochs), "flops": cost["flops"],
                   "model_params": cost["params"]}
        run.log_metrics(summary)
        run.set_tags({resumable.TAG_STOP: stop(result.epochs) or "max_epochs"})
        save_checkpoint(path, model, {"config_hash": job.hash, "job": job.to_dict(), "source": job.candidate.source,
                                      **summary, "epochs": [asdict(e) for e in result.epochs]})
    return {"hash": job.hash, "run_id": run.run_id, **summary}


def run_jobs(jobs: list[ControlJob], data, experiment: str, out_dir: Path, base: str | Path,
             progress: bool = True) -> dict:
    """Run, in order, every job without a FINISHED run in ``experiment``; then write runs.csv."""
    from tqdm.auto import tqdm

    from models.pruning.distill import SoftTargets
    from models.training import resumable, tracking
    out_dir = Path(out_dir)
    tracking.ensure_experiment(experiment)
    store = resumable.runs_by_hash(experiment)
    todo = [job for job in jobs if not resumable.is_finished(store.get(job.hash, []))]
    soft_targets = (SoftTargets.for_teacher(base, data, out_dir / "soft_targets")
                    if any(job.distill for job in todo) else None)
    bar = tqdm(total=len(jobs), initial=len(jobs) - len(todo), unit="run", disable=not progress)
    results = []
    for job in todo:
        bar.set_description(job.label)
        results.append(run_job(job, data, experiment, out_dir / "models", store.get(job.hash, []), soft_targets))
        bar.update(1)
        accuracy = results[-1]["final_test_acc"]
        bar.write(f"{job.label}: test accuracy {accuracy:.4f}"
                  + (f", validation {results[-1]['final_val_acc']:.4f}" if "final_val_acc" in results[-1] else "")
                  + (" (collapsed to chance: the network died; kept, and counted as such by `sysdl report prune`)"
                     if accuracy < COLLAPSED_BELOW else ""))
        write_runs(experiment, out_dir)           # after every run: the report can read a study in progress
    bar.close()
    table = write_runs(experiment, out_dir)
    return {"total": len(jobs), "skipped": len(jobs) - len(todo), "ran": len(results), "runs": table}


RUN_COLUMNS = ("recipe", "method", "source", "conv1_channels", "conv2_channels", "hidden_units", "flops",
               "model_params", "seed", "epochs", "distill_temperature", "distill_weight", "final_test_acc",
               "final_val_acc", "checkpoint", "run_id")


def finished_runs(experiment: str, model_dir: Path):
    """Every FINISHED run of ``experiment`` as a DataFrame with RUN_COLUMNS (``checkpoint``: the
    finished model's file, where it is still there)."""
    import json

    import pandas as pd

    from models.training import resumable, tracking
    rows = []
    for run in tracking.find_runs(experiment):
        if run["status"] != "FINISHED" or "config_json" not in run["params"]:
            continue
        values, metrics = json.loads(run["params"]["config_json"]), run["metrics"]
        model, train, distill = values["model"], values["train"], values["distill"] or {}
        checkpoint = Path(model_dir) / f"{run['tags'][resumable.TAG_HASH]}.pt"
        rows.append({
            "recipe": recipe(values["method"], train["epochs"], values["distill"]), "method": values["method"],
            "source": run["tags"].get(TAG_SOURCE, ""), "conv1_channels": model["conv1_channels"],
            "conv2_channels": model["conv2_channels"], "hidden_units": model["hidden_units"],
            "flops": int(metrics["flops"]), "model_params": int(metrics["model_params"]), "seed": train["seed"],
            "epochs": train["epochs"], "distill_temperature": distill.get("temperature", 0.0),
            "distill_weight": distill.get("weight", 0.0), "final_test_acc": metrics["final_test_acc"],
            "final_val_acc": metrics.get("final_val_acc", math.nan),
            "checkpoint": str(checkpoint) if checkpoint.is_file() else "", "run_id": run["run_id"]})
    frame = pd.DataFrame(rows, columns=list(RUN_COLUMNS))
    return frame.sort_values(["recipe", "flops", "seed"]).reset_index(drop=True)


def write_runs(experiment: str, out_dir: Path):
    """OUT_DIR/runs.csv (and .md): every finished run of the experiment; returns the table."""
    from models.shared.tables import write_table
    table = finished_runs(experiment, Path(out_dir) / "models")
    write_table(table, Path(out_dir), "runs", floatfmt=".4f")
    return table


# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------


def _epochs(text: str) -> int | str:
    if text == "matched":
        return text
    return command.at_least(1)(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS),
                        help="what to train each architecture with")
    parser.add_argument("--seeds", nargs="+", type=int, default=None,
                        help="weights, data order and flips of each run (default 0 1 2; --quick: 0)")
    parser.add_argument("--scratch-epochs", type=_epochs, default=None,
                        help="epochs of the scratch methods: a number, or 'matched' (the base's epochs plus "
                             "every retraining epoch the pruned model had) (default: the base's epochs plus "
                             f"--retrain-epochs; --quick: {QUICK_EPOCHS})")
    parser.add_argument("--retrain-epochs", type=command.at_least(1), default=None,
                        help=f"epochs of the retrain methods, the longer final retraining (default {RETRAIN_EPOCHS}; "
                             f"--quick: {QUICK_EPOCHS})")
    command.add_config_flags(parser, DistillSettings)
    parser.add_argument("--min-fraction", type=float, default=None,
                        help=f"smallest front model taken, in FLOPs of the base's (default 1/{1 / WINDOW[0]:g}; "
                             f"--quick: 0)")
    parser.add_argument("--max-fraction", type=float, default=None,
                        help=f"largest front model taken, in FLOPs of the base's (default 1/{1 / WINDOW[1]:g}; "
                             f"--quick: 1)")
    parser.add_argument("--extra", nargs="*", type=parse_sizes, default=[],
                        help="more architectures CONV1-CONV2-FC1 (e.g. 1-2-24) for the scratch methods")
    parser.add_argument("--prune-dir", default=None, help=f"the pruning sessions (default {MAIN.prune_dir}; "
                        f"--quick: {QUICK.prune_dir})")
    parser.add_argument("--selected", default=None, help=f"the selected pruned model (default {MAIN.selected}; "
                        f"--quick: {QUICK.selected})")
    parser.add_argument("--base", default=None, help=f"the base model: recipe, network and teacher (default "
                        f"{MAIN.base}; --quick: {QUICK.base})")
    parser.add_argument("--out-dir", default=None, help=f"models, soft targets and runs.csv (default "
                        f"{MAIN.prune_control}; --quick: {QUICK.prune_control})")
    parser.add_argument("--experiment", default=None,
                        help=f"MLflow experiment (default {EXPERIMENT}; --quick: {QUICK_EXPERIMENT})")
    command.add_dataset_flag(parser)
    command.add_data_dir_flag(parser)
    command.add_download_flag(parser)
    command.add_val_size_flag(parser, 5000, "images carved (seed 0) from train as the held-out validation "
                                            f"split (--quick: {QUICK_DATA['val_size']})")
    command.add_threads_flag(parser)
    command.add_run_flags(parser, track=False)
    parser.add_argument("--dry-run", action="store_true", help="print the plan (runs, epochs, what is finished); "
                        "train nothing")
    command.add_quick_flag(parser, f"the quick sessions under {QUICK.root}/, {QUICK_EPOCHS} epoch per run on "
                                   f"{QUICK_DATA['n_train']:,} images, seed 0")


def load_data(spec: dict, data_dir=None, download: bool = False):
    """The splits a job's data dict describes: the validation carve, then the first n_train / n_test."""
    from models.data.datasets import DataSplits, load_dataset
    data = load_dataset(spec["dataset"], data_dir, download=download, val_size=spec["val_size"], seed=spec["seed"])
    train = data.train.head(spec["n_train"]) if spec["n_train"] else data.train
    test = data.test.head(spec["n_test"]) if spec["n_test"] else data.test
    return DataSplits(train, test, data.val, data.source, data.num_classes)


def main(args) -> int:
    from sysdl_kernels.runtime import configure_cpu_runtime

    paths = QUICK if args.quick else MAIN
    base = Path(args.base or paths.base)
    if not base.is_file():
        raise ValueError(f"no base model at {base}: the control trains with its recipe (and distils from it); "
                         f"train it with `sysdl {'pipeline --quick' if args.quick else 'train'}` or pass --base")
    default_window = (0.0, 1.0) if args.quick else WINDOW
    window = tuple(given if given is not None else default
                   for given, default in zip((args.min_fraction, args.max_fraction), default_window))
    if not 0 <= window[0] <= window[1]:
        raise ValueError(f"--min-fraction {window[0]:g} and --max-fraction {window[1]:g}: expected 0 <= min <= max")
    found = candidates(args.prune_dir or paths.prune_dir, args.selected or paths.selected, *window, args.extra)
    if not found:
        raise ValueError(f"no architecture to train: no front model of {args.prune_dir or paths.prune_dir} in "
                         f"{window[0]:.4g}..{window[1]:.4g} of the base's FLOPs, no selected model, no --extra; "
                         f"finish a pruning session (sysdl prune), widen --min-fraction/--max-fraction or name "
                         f"sizes with --extra")
    seeds = args.seeds if args.seeds is not None else ([0] if args.quick else [0, 1, 2])
    data_spec = {"dataset": args.dataset, "val_size": args.val_size, "n_train": 0, "n_test": 0, "seed": 0}
    retrain_epochs = args.retrain_epochs or (QUICK_EPOCHS if args.quick else RETRAIN_EPOCHS)
    scratch_epochs = args.scratch_epochs or (QUICK_EPOCHS if args.quick else None)
    if args.quick:
        data_spec.update(QUICK_DATA)
    jobs = plan(found, base, args.methods, seeds, data_spec, scratch_epochs, retrain_epochs,
                command.config_from(args, DistillSettings))
    experiment = args.experiment or (QUICK_EXPERIMENT if args.quick else EXPERIMENT)
    out_dir = Path(args.out_dir or paths.prune_control)
    print(f"{len(found)} architectures x {len(args.methods)} methods x {len(seeds)} seeds: {len(jobs)} runs "
          f"({sum(j.train.epochs for j in jobs)} epochs), experiment {experiment!r}")
    for candidate in found:
        print(f"  {'-'.join(map(str, candidate.sizes)):>10}  {candidate.source}")
    if args.dry_run:
        from models.training import resumable
        store = resumable.runs_by_hash(experiment)
        for job in jobs:
            done = "finished" if resumable.is_finished(store.get(job.hash, [])) else "to run"
            print(f"  {done:<9} {job.label}  ({job.hash})")
        return 0
    configure_cpu_runtime(args.threads)
    outcome = run_jobs(jobs, load_data(data_spec, args.data_dir, args.download), experiment, out_dir, base,
                       progress=not args.no_progress)
    print(f"{outcome['ran']} runs trained, {outcome['skipped']} were finished before; every finished run: "
          f"{out_dir / 'runs.csv'} (sysdl report prune draws them)")
    return 0


if __name__ == "__main__":
    raise SystemExit(command.run_module("models.pruning.scratch_control"))
