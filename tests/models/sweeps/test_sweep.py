"""models.sweeps.sweep and models.reports.sweep_report: the grids, hashing and shards; resume after a kill (in
process, and a real SIGKILL of a running quick sweep); the report's files from the MLflow store."""

from __future__ import annotations

import argparse
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from models.sweeps import sweep
from models.training import resumable, tracking
from models.nets.fashion_cnn import FashionCNNConfig
from models.training.loop import EpochResult, TrainConfig, early_stop

ROOT = Path(__file__).resolve().parents[3]
# One thread: these networks are tiny, and on a shared machine a second torch thread that waits
# for a busy core makes every step 100x slower.
QUICK_SYNTHETIC = ["--quick", "--dataset", "synthetic", "--no-progress", "--threads", "1"]


def sweep_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    sweep.add_arguments(parser)
    return parser.parse_args(list(argv))


def base_spec(**data) -> sweep.RunSpec:
    return sweep.RunSpec(FashionCNNConfig(), TrainConfig(epochs=10), sweep.DataSpec(**data))


# ----------------------------------------------------------------------------------------------
# Grids, hashes, shards, input errors
# ----------------------------------------------------------------------------------------------

def test_grid_sizes_meet_the_spec():
    model, train = sweep.GRIDS["model"], sweep.GRIDS["train"]
    assert model.size() >= 72 and train.size() >= 48
    for layer in ("conv1", "conv2"):
        assert len(model.axes[f"{layer}_kernel"]) >= 2 and len(model.axes[f"{layer}_channels"]) >= 3
    assert len(model.axes["hidden_units"]) >= 2
    assert len(train.axes["init"]) >= 3 and len(train.axes["batch_size"]) >= 4
    assert len(train.axes["lr_momentum"]) >= 4
    assert model.size(quick=True) <= 4 and train.size(quick=True) <= 4
    jobs = sweep.expand(model, base_spec())
    assert len(jobs) == model.size() and [j.index for j in jobs] == list(range(len(jobs)))


def test_hashes_are_stable_and_distinct():
    spec = base_spec()
    # Pinned: changing how a configuration hashes would orphan every finished run of a sweep.
    assert spec.hash == "f7b0ceaea20a0fe8"
    assert sweep.RunSpec.from_dict(spec.to_dict()).hash == spec.hash
    assert spec.with_settings({"lr": 0.05}).hash == spec.hash
    assert spec.with_settings({"lr": 0.051}).hash != spec.hash
    assert base_spec(val_size=4999).hash != spec.hash
    for name, grid in sweep.GRIDS.items():
        hashes = [job.hash for job in sweep.expand(grid, spec)]
        assert len(set(hashes)) == len(hashes), name
        assert hashes == [job.hash for job in sweep.expand(grid, spec)]


@pytest.mark.parametrize("count", [1, 2, 3, 5, 7, 72])
def test_shards_cover_the_grid_exactly_once(count):
    jobs = sweep.expand(sweep.GRIDS["model"], base_spec())
    shards = [sweep.shard(jobs, i, count) for i in range(count)]
    indices = sorted(job.index for part in shards for job in part)
    assert indices == list(range(len(jobs)))
    assert shards == [sweep.shard(jobs, i, count) for i in range(count)]     # deterministic
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


def test_bad_input_is_refused_with_a_reason():
    with pytest.raises(ValueError, match="unknown grid 'depth'"):
        sweep.get_grid("depth")
    for bad, message in (("3/2", "shard 3 does not exist among 2"), ("2/2", "I runs from 0 to 1"),
                         ("1/0", "must be >= 1"), ("one/two", "expected I/N")):
        with pytest.raises(ValueError, match=message):
            sweep.parse_shard(bad)
    assert sweep.parse_shard("3/4") == (3, 4)
    with pytest.raises(ValueError, match="--workers must be >= 1"):
        sweep.split_threads(0)
    assert sweep.split_threads(2, 2) == 1 and sweep.split_threads(3, 2) == 1 and sweep.split_threads(1, 4) == 4
    with pytest.raises(ValueError, match="validation split"):
        sweep.DataSpec(val_size=0)
    with pytest.raises(ValueError, match="neither FashionCNNConfig nor TrainConfig"):
        base_spec().with_settings({"dropout": 0.5})
    with pytest.raises(ValueError, match="patience must be >= 0"):
        early_stop(-1)
    for argv, message in ((["--max-epochs", "0"], "--max-epochs must be >= 1"),
                          (["--plateau", "-1"], "--plateau >= 0"), (["--workers", "0"], "--workers must be >= 1"),
                          (["--shard", "4/4"], "shard 4 does not exist")):
        with pytest.raises(ValueError, match=message):
            sweep.plan(sweep_args("model", *argv))


def _epochs(val_accs, losses=None):
    losses = losses or [1.0] * len(val_accs)
    return [EpochResult(i + 1, loss, 0.5, 1.0, 0.5, 1.0, 1.0, 1.0, val_acc=acc)
            for i, (acc, loss) in enumerate(zip(val_accs, losses))]


def test_early_stop_on_plateau_and_divergence():
    stop = early_stop(2)
    assert stop(_epochs([0.5, 0.6, 0.6])) is None                    # best at epoch 2, one epoch ago
    assert stop(_epochs([0.5, 0.6, 0.6, 0.59])) == "plateau"          # two epochs without a better one
    assert stop(_epochs([0.5, 0.6, 0.6, 0.61])) is None
    assert early_stop(0)(_epochs([0.9, 0.1, 0.1, 0.1])) is None       # 0: no plateau stop
    assert early_stop(0)(_epochs([0.5, 0.1], [2.0, math.nan])) == "diverged"


def test_epoch_points_hold_the_metrics_and_at_most_50_windows():
    record = {"epoch": 3, "train_loss": 0.5, "train_acc": 0.8, "test_loss": 0.6, "test_acc": 0.7, "val_loss": 0.6,
              "val_acc": 0.75, "epoch_time": 1.0, "train_time": 3.0, "wall_time": 3.5}
    points = sweep.epoch_points(record, [1.0] * 430, steps_per_epoch=430)
    metrics = {key: step for key, _, step in points if key != "step_loss"}
    assert metrics == {key: 3 for key in resumable.EPOCH_METRICS}
    windows = [step for key, _, step in points if key == "step_loss"]
    assert len(windows) <= resumable.WINDOWS_PER_EPOCH and windows[-1] == 3 * 430 and windows[0] > 2 * 430


# ----------------------------------------------------------------------------------------------
# Resume, in process: a kill between an epoch's checkpoint and its metrics
# ----------------------------------------------------------------------------------------------

class SimulatedKill(BaseException):
    """Like a kill, nothing catches it; unlike SIGKILL, the run ends FAILED rather than RUNNING."""


def _history(run_id: str, key: str) -> list[int]:
    return [step for step, _ in tracking.metric_history(run_id, [key])[key]]


def test_interrupted_configuration_continues_in_its_own_run(mlflow_store, tmp_path, monkeypatch):
    from models.sweeps import sweep as sweep_module
    data_spec = sweep.DataSpec(dataset="synthetic", val_size=64, n_train=256, n_test=128)
    spec = sweep.RunSpec(FashionCNNConfig(conv1_channels=4, conv2_channels=4, hidden_units=16),
                         TrainConfig(epochs=3, batch_size=32), data_spec, plateau=0)
    job = sweep.Job(spec, "model", 0, {"conv1_channels": "4"})
    reference = sweep.run_jobs([job], "uninterrupted", data_spec, tmp_path / "a", threads=1,
                              progress=False)["results"][0]

    real_points, calls = sweep.epoch_points, {"n": 0}

    def dies_before_logging_epoch_2(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:                 # epoch 2 is checkpointed, its metrics not yet logged
            raise SimulatedKill
        return real_points(*args, **kwargs)

    monkeypatch.setattr(sweep_module, "epoch_points", dies_before_logging_epoch_2)
    with pytest.raises(SimulatedKill):
        sweep.run_jobs([job], "cut", data_spec, tmp_path / "b", threads=1, progress=False)
    [run] = tracking.find_runs("cut")
    assert run["status"] == "FAILED" and (tmp_path / "b" / f"{job.hash}.pt").exists()
    assert _history(run["run_id"], "val_acc") == [1]

    monkeypatch.setattr(sweep_module, "epoch_points", real_points)
    outcome = sweep.run_jobs([job], "cut", data_spec, tmp_path / "b", threads=1, progress=False)
    assert outcome["ran"] == 1
    [resumed] = tracking.find_runs("cut")
    assert resumed["run_id"] == run["run_id"] and resumed["status"] == "FINISHED"
    for key in ("val_acc", "test_acc", "train_loss", "epoch_time"):
        assert _history(run["run_id"], key) == [1, 2, 3], key
    for key in ("final_test_acc", "final_val_acc", "overfit_gap", "final_train_loss"):
        assert resumed["metrics"][key] == pytest.approx(reference[key], abs=1e-6), key
    assert not (tmp_path / "b" / f"{job.hash}.pt").exists()
    assert sweep.run_jobs([job], "cut", data_spec, tmp_path / "b", threads=1, progress=False)["skipped"] == 1


# ----------------------------------------------------------------------------------------------
# The Done-when test: SIGKILL a running quick sweep, start it again, check the store
# ----------------------------------------------------------------------------------------------

def _sweep_process(argv: list[str], env: dict, cwd: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "models.sweeps.sweep", *argv], cwd=cwd, env=env,
                            stdout=open(log, "ab"), stderr=subprocess.STDOUT, start_new_session=True)


def assert_complete(experiment: str, jobs: list[sweep.Job]) -> None:
    """Exactly one run per configuration, FINISHED, with every metric of every epoch it ran."""
    runs = tracking.find_runs(experiment)
    assert sorted(r["tags"][sweep.TAG_HASH] for r in runs) == sorted(job.hash for job in jobs)
    for run in runs:
        assert run["status"] == "FINISHED"
        metrics, tags = run["metrics"], run["tags"]
        for key in ("final_test_acc", "final_val_acc", "final_train_acc", "overfit_gap", "train_time_s",
                    "epochs_run"):
            assert key in metrics, key
        assert ("time_to_90_train_acc_s" in metrics) == (tags["time_to_90"] == "reached")
        epochs = list(range(1, int(metrics["epochs_run"]) + 1))
        for key in resumable.EPOCH_METRICS:
            assert _history(run["run_id"], key) == epochs, key
        assert run["params"]["config_json"] and run["params"]["model.conv1_kernel"]


@pytest.mark.parametrize("workers", [1, 2])
def test_sigkilled_quick_sweep_resumes_to_one_finished_run_per_configuration(mlflow_store, tmp_path, workers):
    argv = ["model", *QUICK_SYNTHETIC[:-1], str(workers), "--max-epochs", "3", "--workers", str(workers),
            "--out-dir", "ckpt"]
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_store, "PYTHONPATH": str(ROOT)}
    checkpoints = tmp_path / "ckpt" / "sweep-model-quick"
    jobs, _, _ = sweep.plan(sweep_args(*argv))
    log = tmp_path / "sweep.log"
    tracking.ensure_experiment("sweep-model-quick")     # the store exists before two processes open it
    proc = _sweep_process(argv, env, tmp_path, log)
    deadline = time.monotonic() + 150
    try:
        while True:       # kill once a configuration has finished and another is part-way
            finished = [r for r in tracking.find_runs("sweep-model-quick") if r["status"] == "FINISHED"]
            if finished and any(checkpoints.glob("*.pt")):
                break
            assert proc.poll() is None, f"the sweep ended before it could be killed:\n{log.read_text()}"
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    before = tracking.find_runs("sweep-model-quick")
    assert len([r for r in before if r["status"] == "FINISHED"]) < len(jobs)
    assert any(r["status"] == "RUNNING" for r in before)            # SIGKILL left a run open

    restart = _sweep_process(argv, env, tmp_path, log)
    assert restart.wait(timeout=150) == 0, log.read_text()
    assert_complete("sweep-model-quick", jobs)
    assert not list(checkpoints.glob("*.pt"))


# ----------------------------------------------------------------------------------------------
# Model sweep in shards -> train sweep on its best network -> report from the store
# ----------------------------------------------------------------------------------------------

def test_shards_then_train_sweep_then_report(mlflow_store, tmp_path):
    from models.reports import sweep_report
    out = ["--out-dir", str(tmp_path / "ckpt")]
    assert sweep.main(sweep_args("model", *QUICK_SYNTHETIC, "--shard", "0/2", *out)) == 0
    with pytest.raises(ValueError, match="has 2 of 4 configurations finished"):
        sweep.main(sweep_args("train", *QUICK_SYNTHETIC, *out))
    assert sweep.main(sweep_args("model", *QUICK_SYNTHETIC, "--shard", "1/2", *out)) == 0
    model_jobs = sweep.plan(sweep_args("model", *QUICK_SYNTHETIC))[0]
    assert_complete("sweep-model-quick", model_jobs)

    assert sweep.main(sweep_args("train", *QUICK_SYNTHETIC, *out)) == 0
    train_runs = tracking.find_runs("sweep-train-quick")
    best = min(tracking.find_runs("sweep-model-quick"), key=sweep.rank_key)
    chosen = sweep.RunSpec.from_dict(__import__("json").loads(best["params"]["config_json"])).model
    assert len(train_runs) == sweep.GRIDS["train"].size(quick=True)
    for run in train_runs:
        spec = sweep.RunSpec.from_dict(__import__("json").loads(run["params"]["config_json"]))
        assert spec.model.replace(init=chosen.init) == chosen

    parser = argparse.ArgumentParser()
    sweep_report.add_arguments(parser)
    report_dir = tmp_path / "report"
    args = parser.parse_args(["--quick", "--out-dir", str(report_dir), "--checkpoint-dir", str(tmp_path / "ckpt"),
                              "--no-progress", "--threads", "1"])
    assert sweep_report.main(args) == 0
    for name in ("top3.md", "top3.csv", "runs.md", "runs.csv", "pareto.png", "pareto_front.csv",
                 "main_effects.md", "main_effects.csv", "main_effects.png", "situations.md", "situations.csv"):
        assert (report_dir / name).stat().st_size > 0, name
    assert len(list(report_dir.glob("situation_*.png"))) == len(sweep_report.SITUATIONS)
    import pandas as pd
    assert len(pd.read_csv(report_dir / "top3.csv")) == 3
    situations = pd.read_csv(report_dir / "situations.csv")
    assert len(situations) == 5 and situations["plot"].notna().all()
    extras = tracking.find_runs("sweep-extra-quick")
    assert len(extras) == (situations["source"] == "extra run").sum()
    assert sweep_report.main(args) == 0                       # a second report trains nothing new
    assert len(tracking.find_runs("sweep-extra-quick")) == len(extras)
    effects = pd.read_csv(report_dir / "main_effects.csv")
    assert set(effects["hyperparameter"]) == set(sweep.GRIDS["model"].axes) | set(sweep.GRIDS["train"].axes)


def test_pareto_frontier_leaves_out_runs_that_learned_nothing(tmp_path):
    """A diverged run, or one stuck at chance, is faster than every real model; it must not
    stand on the frontier of test accuracy against training time."""
    import pandas as pd

    from models.reports import sweep_report
    frame = pd.DataFrame({
        "sweep": ["train", "train", "model", "model", "model"],
        "configuration": ["diverged", "stuck", "fast", "slow better", "slow worse"],
        "train_time_s": [20.0, 30.0, 50.0, 200.0, 300.0],
        "final_test_acc": [0.10, 0.105, 0.91, 0.92, 0.90],
        "final_val_acc": [0.10, 0.10, 0.91, 0.92, 0.90],
        "stop": ["diverged", "plateau", "max_epochs", "max_epochs", "max_epochs"],
        "model.num_classes": [10] * 5, "hash": list("abcde")})
    assert sweep_report.learned(frame).tolist() == [False, False, True, True, True]
    _, front = sweep_report.plot_pareto(frame, tmp_path)
    assert front["configuration"].tolist() == ["fast", "slow better"]
    assert (tmp_path / "pareto.png").stat().st_size > 0


def test_top3_names_a_configuration_run_by_both_sweeps_once(tmp_path):
    """The train sweep holds the model sweep's own training setup: the same hash in both sweeps
    is one row of the top 3, attributed to both."""
    import pandas as pd

    from models.reports import sweep_report
    frame = pd.DataFrame({
        "sweep": ["train", "model", "model", "train", "model"],
        "configuration": ["best", "best", "second", "third", "fourth"],
        "hash": ["h1", "h1", "h2", "h3", "h4"],
        "final_val_acc": [0.93, 0.93, 0.92, 0.91, 0.90], "final_test_acc": [0.92, 0.92, 0.91, 0.90, 0.89],
        "final_train_acc": [0.97] * 5, "overfit_gap": [0.05, 0.05, 0.06, 0.07, 0.08],
        "train_time_s": [300.0, 200.0, 100.0, 50.0, 40.0], "epochs_run": [10] * 5, "stop": ["max_epochs"] * 5,
        "time_to_90_train_acc_s": [90.0] * 5, "model_params": [1000] * 5})
    top3 = sweep_report.write_tables(frame, tmp_path)["top3"]
    assert top3["hash"].tolist() == ["h1", "h2", "h3"]
    assert top3["sweep"].tolist() == ["model + train", "model", "train"]
    assert top3["train_time_s"].iloc[0] == 200.0                 # the model sweep's run of it
    assert len(pd.read_csv(tmp_path / "runs.csv")) == 5          # the full table keeps every run
