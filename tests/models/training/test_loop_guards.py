"""models.training.loop's guards: no silent overwrite of a checkpoint, no abandoned RUNNING run, no
non-finite hyperparameter, and a diverged run stops without replacing a good checkpoint."""

from __future__ import annotations

import math

import pytest

from models.data.datasets import synthetic_splits
from models.nets.fashion_cnn import FashionCNNConfig
from models.shared.errors import UserError
from models.training.checkpoint import load_checkpoint
from models.training.loop import TrainConfig, train_job
from models.training.resumable import TAG_STOP
from tests.mlflow_runs import read_runs

SMALL = FashionCNNConfig(conv1_channels=2, conv2_channels=2, hidden_units=8)


def quick_config(**changes) -> TrainConfig:
    return TrainConfig(**{"epochs": 2, "batch_size": 32, **changes})


@pytest.mark.parametrize("field", ["lr", "momentum", "weight_decay", "warmup_fraction"])
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_train_hyperparameters_are_refused(field, value):
    with pytest.raises(ValueError, match=f"^{field} must be a finite number"):
        TrainConfig(**{field: value})


def test_a_killed_run_is_neither_replaced_silently_nor_left_running(tmp_path, mlflow_store, kill_training_after):
    """A fresh start over a resumable checkpoint needs --overwrite, and it marks the killed run KILLED."""
    from mlflow.tracking import MlflowClient
    data = synthetic_splits(n_train=64, n_test=32)
    checkpoint = tmp_path / "c.pt"
    restore = kill_training_after(1)
    with pytest.raises(KeyboardInterrupt):
        train_job(SMALL, quick_config(), data, checkpoint, experiment="kill-exp", progress=False)
    restore()
    killed = load_checkpoint(checkpoint)["resume"]["mlflow_run_id"]
    MlflowClient(mlflow_store).update_run(killed, status="RUNNING")     # as a SIGKILL leaves it
    before = checkpoint.read_bytes()

    with pytest.raises(UserError, match="--resume.*--overwrite"):
        train_job(SMALL, quick_config(), data, checkpoint, experiment="kill-exp", progress=False)
    assert checkpoint.read_bytes() == before
    train_job(SMALL, quick_config(), data, checkpoint, experiment="kill-exp", progress=False, overwrite=True)
    runs = read_runs("kill-exp", mlflow_store).set_index("run_id")["status"].to_dict()
    assert runs.pop(killed) == "KILLED"
    assert list(runs.values()) == ["FINISHED"]
    assert "resume" not in load_checkpoint(checkpoint)


def test_a_diverged_run_fails_and_keeps_the_good_checkpoint(tmp_path, mlflow_store):
    data = synthetic_splits(n_train=64, n_test=32)
    checkpoint = tmp_path / "c.pt"
    train_job(SMALL, quick_config(), data, checkpoint, experiment="nan-exp", progress=False)
    good = checkpoint.read_bytes()
    with pytest.raises(UserError, match="diverged"):
        train_job(SMALL, quick_config(lr=1e30, schedule="constant"), data, checkpoint, experiment="nan-exp",
                  progress=False, overwrite=True)
    assert checkpoint.read_bytes() == good
    runs = read_runs("nan-exp", mlflow_store).sort_values("start_time")
    assert list(runs["status"]) == ["FINISHED", "FAILED"]
    assert runs.iloc[1][f"tags.{TAG_STOP}"] == "diverged"
