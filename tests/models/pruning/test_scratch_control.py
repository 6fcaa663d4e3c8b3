"""models.pruning.scratch_control: which architectures and budgets the control plans, and the
quick mode end to end in a private MLflow store, killed part-way and resumed."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from models.data.datasets import synthetic_splits
from models.nets.fashion_cnn import FashionCNN, FashionCNNConfig
from models.pruning import prune
from models.pruning import scratch_control as control
from models.pruning.distill import DistillSettings
from models.shared.artifacts import QUICK
from models.training import resumable, tracking
from models.training.checkpoint import load_checkpoint, save_checkpoint
from models.training.loop import TrainConfig, fit

SESSION = prune.PruneConfig(retrain_epochs=2, max_steps_per_layer=1, importance_batch=32, max_drop=0.5)
RECIPE = TrainConfig(epochs=3, batch_size=64)


def quick_base(root: Path) -> FashionCNN:
    """A base recording RECIPE as its training, where `sysdl train --quick` puts it."""
    torch.manual_seed(0)
    model = FashionCNN(FashionCNNConfig(conv1_channels=4, conv2_channels=4, hidden_units=12))
    (root / QUICK.base).parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(root / QUICK.base, model, {"train_config": RECIPE.__dict__})
    return model


def quick_session(root: Path) -> Path:
    """A base and a finished 3-step session where `sysdl prune --quick` puts them."""
    quick_base(root)
    data = synthetic_splits(n_train=128, n_test=64, val_size=32)
    prune.run_session(root / QUICK.base, data, SESSION, root / QUICK.prune_dir, track=False, progress=False,
                      log=lambda m: None)
    return root / QUICK.base


def test_the_plan_takes_the_front_the_selected_model_and_extras(tmp_path):
    base = quick_session(tmp_path)
    steps = prune.session_steps(tmp_path / QUICK.prune_dir)
    front = control.front_candidates(tmp_path / QUICK.prune_dir, 0.0, 1.0)
    assert front and all(c.checkpoint and Path(c.checkpoint).is_file() for c in front)
    assert [c.sizes for c in front] == sorted({c.sizes for c in front}, key=lambda s: [c.sizes for c in front].index(s))
    for candidate in front:
        step = int(candidate.source.rsplit(" ", 1)[1])
        row = steps[steps["step"] == step].iloc[0]
        assert candidate.sizes == (row["conv1_channels"], row["conv2_channels"], row["hidden_units"])
        ancestors = int(((steps["step"] > 0) & (steps["step"] < step) & steps["accepted"]).sum())
        assert candidate.pruning_epochs == SESSION.retrain_epochs * (ancestors + 1)
    assert control.front_candidates(tmp_path / QUICK.prune_dir, 0.0, 1e-9) == []

    selected = tmp_path / "selected.pt"
    selected.write_bytes(Path(front[0].checkpoint).read_bytes())
    found = control.candidates(tmp_path / QUICK.prune_dir, selected, 0.0, 1.0, [(1, 1, 4), front[0].sizes])
    assert found[0].source.startswith("selected (") and found[0].checkpoint == front[0].checkpoint
    assert [c.sizes for c in found] == [c.sizes for c in front] + [(1, 1, 4)]     # each architecture once

    jobs = control.plan(found, base, list(control.METHODS), [0, 1], {"dataset": "synthetic"}, "matched", 5,
                        DistillSettings(3.0, 0.5))
    per_seed = len(found) * 4 - 2                      # the extra has no pruned model to retrain
    assert len(jobs) == 2 * per_seed and [j.train.seed for j in jobs] == [0] * per_seed + [1] * per_seed
    assert len({j.hash for j in jobs}) == len(jobs)
    for job in jobs:
        assert (job.model.conv1_channels, job.model.conv2_channels, job.model.hidden_units) == job.candidate.sizes
        assert job.train.lr == RECIPE.lr and job.train.batch_size == RECIPE.batch_size
        if job.method.startswith("retrain"):
            assert job.train.epochs == 5 and job.init_sha256
        else:
            assert job.init_sha256 is None
            assert job.train.epochs == RECIPE.epochs + (job.candidate.pruning_epochs or 5)
        assert (job.distill is not None) == job.method.endswith("distill")
    assert jobs[1].distill == {"temperature": 3.0, "weight": 0.5,
                               "teacher_sha256": control._sha256(base)}
    with pytest.raises(ValueError, match="CONV1-CONV2-FC1"):
        control.parse_sizes("1-2")


class SimulatedKill(BaseException):
    """Like a kill, nothing catches it."""


def test_quick_control_resumes_after_a_kill(mlflow_store, tmp_path, monkeypatch):
    from models.cli.main import main
    base = quick_base(tmp_path)                            # mlflow_store made tmp_path the working directory
    save_checkpoint(QUICK.selected, prune.keep_units(base, "fc1", torch.arange(6)), {"step": 3})

    def run(experiment: str) -> int:                       # no sessions: the selected model alone
        return main(["prune-control", "--quick", "--dataset", "synthetic", "--methods", "scratch", "retrain-distill",
                     "--scratch-epochs", "2", "--retrain-epochs", "2", "--no-progress", "--threads", "1",
                     "--experiment", experiment, "--out-dir", f"out-{experiment}"])

    assert run("reference") == 0
    real_points, calls = resumable.epoch_points, {"n": 0}

    def dies_on_third_epoch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:               # the second run's first epoch is checkpointed, not yet logged
            raise SimulatedKill
        return real_points(*args, **kwargs)

    monkeypatch.setattr(resumable, "epoch_points", dies_on_third_epoch)
    with pytest.raises(SimulatedKill):
        run("cut")
    cut = {r["tags"][resumable.TAG_HASH]: r for r in tracking.find_runs("cut")}
    monkeypatch.setattr(resumable, "epoch_points", real_points)
    assert run("cut") == 0

    reference = {r["tags"][resumable.TAG_HASH]: r for r in tracking.find_runs("reference")}
    resumed = {r["tags"][resumable.TAG_HASH]: r for r in tracking.find_runs("cut")}
    assert resumed.keys() == reference.keys() and len(resumed) == 2
    for key, run_ in resumed.items():
        assert run_["status"] == "FINISHED"
        assert [s for s, _ in tracking.metric_history(run_["run_id"], ["test_acc"])["test_acc"]] == [1, 2]
        assert run_["metrics"]["final_test_acc"] == pytest.approx(reference[key]["metrics"]["final_test_acc"], abs=1e-9)
    killed = [key for key, r in cut.items() if r["status"] != "FINISHED"]
    assert len(killed) == 1 and resumed[killed[0]]["run_id"] == cut[killed[0]]["run_id"]
    assert resumed[killed[0]]["params"]["method"] == "retrain-distill"

    table = pd.read_csv(tmp_path / "out-cut" / "runs.csv")
    assert sorted(table["method"]) == ["retrain-distill", "scratch"]
    for _, row in table.iterrows():
        payload = load_checkpoint(row["checkpoint"])
        assert "resume" not in payload and payload["metrics"]["final_test_acc"] == row["final_test_acc"]
    assert list((tmp_path / "out-cut" / "soft_targets").glob("soft_targets_*.pt"))


def test_without_a_base_the_control_says_what_to_do(tmp_path, monkeypatch, capsys):
    from models.cli.main import main
    monkeypatch.chdir(tmp_path)
    assert main(["prune-control", "--quick", "--dry-run"]) == 2
    assert "no base model at runs/quick/base.pt" in capsys.readouterr().err
