"""Resumable MLflow runs keyed by a configuration hash: the machinery the sweeps and the
studies share.

A configuration is a dict of every value that defines a run; its canonical JSON is hashed
(``config_hash``) into the tag ``TAG_HASH`` of its MLflow run. A job that trains it checkpoints
every epoch and then logs that epoch's metrics (``epoch_points``); after a kill,
``resume_point`` finds the checkpoint and the run to reopen, and ``log_missing_epochs`` logs
what the kill cut off. ``runs_by_hash`` and ``is_finished`` tell which configurations are done.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

TAG_HASH = "sysdl.sweep.hash"          # RunSpec.hash: what resume and the report match on
TAG_LABEL = "sysdl.sweep.label"        # the configuration in words
TAG_STOP = "sysdl.sweep.stop"          # "max_epochs", "plateau" or "diverged"
EPOCH_METRICS = ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc",
                 "epoch_time", "train_time", "wall_time")
WINDOWS_PER_EPOCH = 50                 # step losses are logged as at most this many means per epoch


def canonical_json(values: dict) -> str:
    """One text per configuration: sorted keys, no spaces."""
    return json.dumps(values, sort_keys=True, separators=(",", ":"))


def config_hash(values: dict) -> str:
    """The first 16 hex digits of the SHA-256 of ``values``' canonical JSON: what resume matches
    runs on (the sweeps' RunSpec and the studies' jobs alike)."""
    return hashlib.sha256(canonical_json(values).encode()).hexdigest()[:16]


def epoch_points(record: dict, step_losses: list[float], steps_per_epoch: int) -> list[tuple[str, float, int]]:
    """An epoch's metrics at step = epoch, and its step losses as window means at step = the
    number of SGD steps done (epochs of progress = step / steps_per_epoch)."""
    points = [(key, record[key], record["epoch"]) for key in EPOCH_METRICS if record.get(key) is not None]
    first = (record["epoch"] - 1) * steps_per_epoch
    width = max(1, math.ceil(len(step_losses) / WINDOWS_PER_EPOCH))
    for start in range(0, len(step_losses), width):
        window = step_losses[start:start + width]
        points.append(("step_loss", sum(window) / len(window), first + start + len(window)))
    return points


def log_missing_epochs(run, start: dict, steps_per_epoch: int) -> None:
    """Log the checkpointed epochs a kill cut off before their metrics reached MLflow."""
    from models.training import tracking
    logged = {step for step, _ in tracking.metric_history(run.run_id, ["epoch_time"])["epoch_time"]}
    losses = start["step_losses"]
    for record in start["epochs"]:
        epoch = record["epoch"]
        if epoch not in logged:
            run.log_points(epoch_points(record, losses[(epoch - 1) * steps_per_epoch:epoch * steps_per_epoch],
                                        steps_per_epoch))


def resume_point(path: Path, job, candidates: list[dict], load=None):
    """(model, resume state, run id to reopen) from the checkpoint, when its MLflow run is among
    this configuration's unfinished runs; else (None, None, an empty unfinished run or None).
    ``load(path) -> (model, payload)`` reads the checkpoint (default: the job's FashionCNN; the
    studies pass their own network's loader)."""
    from models.training.checkpoint import CheckpointError, load_model
    ids = {c["run_id"] for c in candidates}
    if path.exists():
        try:
            model, payload = (load or (lambda p: load_model(p, expected_config=job.spec.model)))(path)
        except CheckpointError:
            model, payload = None, {}
        start = payload.get("resume")
        if (start and payload["metrics"].get("config_hash") == job.hash
                and start.get("mlflow_run_id") in ids):
            return model, start, start["mlflow_run_id"]
    empty = next((c["run_id"] for c in candidates if not c["metrics"]), None)
    return None, None, empty


def runs_by_hash(experiment: str) -> dict[str, list[dict]]:
    """The experiment's sweep runs (not deleted), grouped by configuration hash."""
    from models.training import tracking
    grouped: dict[str, list[dict]] = {}
    for run in tracking.find_runs(experiment):
        if TAG_HASH in run["tags"]:
            grouped.setdefault(run["tags"][TAG_HASH], []).append(run)
    return grouped


def is_finished(runs: list[dict]) -> bool:
    return any(r["status"] == "FINISHED" for r in runs)
