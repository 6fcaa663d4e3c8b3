"""models.training.loop: a short real training run logged to a temporary MLflow store, reproducibility, resume."""

from __future__ import annotations

import math

import pytest
import torch

from models.training import loop as train_mod
from models.training.checkpoint import load_checkpoint, load_model
from models.data.datasets import synthetic_splits
from models.nets.fashion_cnn import FashionCNN, FashionCNNConfig
from tests.mlflow_runs import read_runs
from models.training.loop import TrainConfig, fit, train_job

SMALL = FashionCNNConfig(conv1_channels=4, conv2_channels=4, hidden_units=16)


def quick_config(**changes) -> TrainConfig:
    return TrainConfig(**{"epochs": 3, "batch_size": 32, "lr": 0.05, **changes})


def test_training_learns_and_is_reproducible():
    data = synthetic_splits(n_train=256, n_test=128)
    results = []
    for _ in range(2):
        torch.manual_seed(0)
        results.append(fit(FashionCNN(SMALL), data, quick_config(), progress=False))
    first, second = results
    assert first.step_losses == second.step_losses, "same seed must give the same run"
    assert len(first.step_losses) == 3 * math.ceil(256 / 32)
    assert first.epochs[-1].train_loss < first.epochs[0].train_loss
    assert first.epochs[-1].test_acc > 0.5   # 10 classes: chance is 0.1
    assert first.epochs[-1].train_time <= first.epochs[-1].wall_time


def test_training_accuracy_is_the_training_pass_accuracy(monkeypatch):
    """train_acc counts the logits of the training pass itself, each image once."""
    data = synthetic_splits(n_train=96, n_test=32)
    seen = {"correct": 0, "n": 0}
    real_forward = FashionCNN.forward

    def counting_forward(self, x):
        out = real_forward(self, x)
        if self.training:
            y = data_labels[seen["n"]:seen["n"] + len(x)]
            seen["correct"] += int((out.argmax(1) == y).sum())
            seen["n"] += len(x)
        return out

    cfg = quick_config(epochs=1, hflip=False)
    data_labels = train_mod.epoch_data(data.train, cfg, 0)[1]
    monkeypatch.setattr(FashionCNN, "forward", counting_forward)
    torch.manual_seed(0)
    result = fit(FashionCNN(SMALL), data, cfg, progress=False)
    assert seen["n"] == 96
    assert result.epochs[0].train_acc == pytest.approx(seen["correct"] / 96)


def test_resumed_run_continues_its_mlflow_run(tmp_path, mlflow_store, kill_training_after):
    data = synthetic_splits(n_train=128, n_test=32)
    cfg = quick_config(epochs=3)
    restore = kill_training_after(1)
    with pytest.raises(KeyboardInterrupt):
        train_job(SMALL, cfg, data, tmp_path / "c.pt", experiment="resume-exp", progress=False)
    restore()
    train_job(SMALL, cfg, data, tmp_path / "c.pt", experiment="resume-exp", progress=False, resume=True)
    runs = read_runs("resume-exp", mlflow_store)
    assert len(runs) == 1 and runs.iloc[0]["status"] == "FINISHED"
    from mlflow.tracking import MlflowClient
    history = MlflowClient(mlflow_store).get_metric_history(runs.iloc[0]["run_id"], "test_acc")
    assert sorted(m.step for m in history) == [1, 2, 3]


def test_a_kill_between_checkpoint_and_metrics_loses_no_epoch(tmp_path, mlflow_store, monkeypatch):
    """The epoch checkpoint is written before the epoch's metrics reach MLflow; a kill in between
    must leave that epoch to be logged on resume, once."""
    import models.training.checkpoint as checkpoint_mod
    data = synthetic_splits(n_train=128, n_test=32)
    cfg = quick_config(epochs=3)
    real_save = checkpoint_mod.save_checkpoint

    def save_then_die(path, model, metrics=None, resume=None):
        real_save(path, model, metrics, resume=resume)
        if resume is not None and len(resume["epochs"]) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint_mod, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train_job(SMALL, cfg, data, tmp_path / "c.pt", experiment="gap-exp", progress=False)
    monkeypatch.setattr(checkpoint_mod, "save_checkpoint", real_save)
    train_job(SMALL, cfg, data, tmp_path / "c.pt", experiment="gap-exp", progress=False, resume=True)
    runs = read_runs("gap-exp", mlflow_store)
    from mlflow.tracking import MlflowClient
    client = MlflowClient(mlflow_store)
    assert len(runs) == 1 and runs.iloc[0]["status"] == "FINISHED"
    assert [m.step for m in sorted(client.get_metric_history(runs.iloc[0]["run_id"], "test_acc"),
                                   key=lambda m: m.step)] == [1, 2, 3]
    assert len(client.get_metric_history(runs.iloc[0]["run_id"], "step_loss")) == 3 * 4


def test_train_job_logs_to_mlflow(tmp_path, mlflow_store):
    data = synthetic_splits(n_train=256, n_test=64, val_size=64)
    ckpt = tmp_path / "ck.pt"
    result = train_job(SMALL, quick_config(), data, ckpt, experiment="test-exp", run_name="short",
                       progress=False)
    runs = read_runs("test-exp", mlflow_store)
    assert len(runs) == 1
    run = runs.iloc[0]
    assert run["status"] == "FINISHED"
    assert run["params.model.hidden_units"] == "16" and run["params.train.batch_size"] == "32"
    assert run["metrics.final_test_acc"] == pytest.approx(result.epochs[-1].test_acc)
    assert run["metrics.final_val_acc"] == pytest.approx(result.epochs[-1].val_acc)
    from mlflow.tracking import MlflowClient
    client = MlflowClient(mlflow_store)
    history = client.get_metric_history(run["run_id"], "test_acc")
    assert [m.step for m in history] == [1, 2, 3]
    assert [m.value for m in history] == pytest.approx([e.test_acc for e in result.epochs])
    steps = client.get_metric_history(run["run_id"], "step_loss")
    assert len(steps) == 3 * 8 and sorted(m.step for m in steps) == list(range(24))
    artifacts = {a.path for a in client.list_artifacts(run["run_id"])}
    assert artifacts == {"ck.pt", "ck_loss.png"}
    assert (tmp_path / "ck_loss.png").stat().st_size > 1000
    model, payload = load_model(ckpt, expected_config=SMALL)
    assert "resume" not in payload and payload["metrics"]["final_test_acc"] == result.epochs[-1].test_acc


def test_interrupted_run_resumes_to_the_same_weights(tmp_path, kill_training_after):
    data = synthetic_splits(n_train=128, n_test=32)
    cfg = quick_config(epochs=3)
    full = train_job(SMALL, cfg, data, tmp_path / "full.pt", track=False, progress=False)

    restore = kill_training_after(2)
    with pytest.raises(KeyboardInterrupt):
        train_job(SMALL, cfg, data, tmp_path / "cut.pt", track=False, progress=False)
    assert len(load_checkpoint(tmp_path / "cut.pt")["resume"]["epochs"]) == 2
    restore()
    resumed = train_job(SMALL, cfg, data, tmp_path / "cut.pt", track=False, progress=False, resume=True)
    assert resumed.step_losses == full.step_losses, "a resumed run must be bit-identical"
    a, b = load_checkpoint(tmp_path / "full.pt"), load_checkpoint(tmp_path / "cut.pt")
    for key, value in a["state_dict"].items():
        assert torch.equal(b["state_dict"][key], value), key


def test_bad_train_config():
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="schedule must be one of"):
        TrainConfig(schedule="step")


@pytest.mark.needs_data
def test_one_epoch_on_real_data(fashion_mnist):
    """A short real run: one epoch on the real images, far above chance."""
    torch.manual_seed(0)
    data = type(fashion_mnist)(fashion_mnist.train.head(6000), fashion_mnist.test.head(2000), None, "head")
    result = fit(FashionCNN(), data, TrainConfig(epochs=1), progress=False)
    assert result.epochs[0].test_acc > 0.7
