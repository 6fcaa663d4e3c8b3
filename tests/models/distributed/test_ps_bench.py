"""`sysdl ps-bench` (models/distributed/ps_bench.py): the quick grid end to end (a finished grid
refused, then fitted by `sysdl optimus speed`); killed midway and resumed, the finished points
kept and not measured again, one MLflow run per point (slow: a fresh MLflow store alone costs
~10 s here); the arithmetic of a point's row and the resume plan on known inputs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from models.distributed.ps_bench import (CSV_NAME, TIME_COLUMNS, FinishedGridError, append_row, grid,
                                         over_rounds, point_row, points_to_measure)
from models.distributed.parameter_server import Point, PSJob
from models.shared.errors import UserError

ROOT = Path(__file__).resolve().parents[3]
QUICK = ["--quick", "--steps", "8"]          # ~0.5 s a point: time to kill the run between two points


def _rows(path: Path):
    return pd.read_csv(path) if path.exists() and path.stat().st_size else pd.DataFrame()


def test_quick_grid_end_to_end_then_refused_then_fitted(tmp_path, capsys):
    from models.cli.main import main
    out = tmp_path / "ps"
    csv = out / CSV_NAME
    assert main(["ps-bench", "--quick", "--no-track", "--out-dir", str(out)]) == 0   # MLflow: the slow test
    rows = pd.read_csv(csv)
    assert sorted(zip(rows["ps"], rows["workers"])) == [(p, w) for p in (1, 2) for w in (1, 2, 3)]
    assert (rows["mode"] == "sync").all() and (rows["round"] == 0).all()
    assert (rows["global_batch"] == 32).all() and (rows["threads"] == 1).all()
    assert (rows["steps_per_s"] > 0).all() and (rows[["compute_s", "push_s", "update_s", "pull_s"]] > 0).all().all()
    assert (rows["step_s"] >= rows["compute_s"]).all()              # the slowest step holds its compute
    assert (out / "ps_bench.png").stat().st_size > 0 and "steps_per_s" in (out / "ps_bench.md").read_text()

    capsys.readouterr()
    assert main(["ps-bench", "--quick", "--no-track", "--out-dir", str(out)]) == 2   # finished: not replaced
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--overwrite" in err[0] and str(csv) in err[0]
    assert pd.read_csv(csv).equals(rows)

    assert main(["optimus", "speed", "--csv", str(csv), "--steps", "1000", "--hold-out", "3,2",
                 "--out-dir", str(tmp_path / "fit")]) == 0
    points = pd.read_csv(tmp_path / "fit" / "speed_points.csv")
    assert points["held_out"].sum() == 1 and points["error_pct"].notna().all()
    assert "held out of the fit: 1 point(s)" in capsys.readouterr().out


@pytest.mark.slow
def test_a_grid_killed_midway_keeps_its_points_measures_only_the_rest_and_logs_each(mlflow_store, tmp_path):
    from models.cli.main import main
    from models.training import tracking
    out = tmp_path / "ps"
    csv = out / CSV_NAME
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_store, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    log = tmp_path / "ps_bench.log"
    proc = subprocess.Popen([sys.executable, "-m", "models.distributed.ps_bench", *QUICK, "--no-progress",
                             "--out-dir", str(out)], cwd=tmp_path, env=env, stdout=open(log, "ab"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    try:
        while len(_rows(csv)) < 2:        # kill once two points are in and four are not
            assert proc.poll() is None, f"ps-bench ended before it could be killed:\n{log.read_text()}"
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    before = _rows(csv)
    assert 2 <= len(before) < 6, log.read_text()
    assert not (out / "ps_bench.md").exists()

    assert main(["ps-bench", *QUICK, "--out-dir", str(out)]) == 0
    after = pd.read_csv(csv)
    assert len(after) == 6 and set(zip(after["ps"], after["workers"])) == {(p, w) for p in (1, 2) for w in (1, 2, 3)}
    kept = after.merge(before, on=["mode", "ps", "workers"], suffixes=("", "_before"))
    assert len(kept) == len(before) and (kept["steps_per_s"] == kept["steps_per_s_before"]).all()
    runs = tracking.find_runs("ps-bench")                 # the killed run logged none; the resumed one all
    assert sorted(r["tags"]["sysdl.ps_bench.point"] for r in runs) == sorted(
        f"sync p{p} w{w} round 0" for p in (1, 2) for w in (1, 2, 3))
    assert all(r["status"] == "FINISHED" and r["metrics"]["steps_per_s"] > 0 for r in runs)


def _point(mode: str, server_times, worker_times) -> Point:
    point = Point(mode, len(server_times), len(worker_times), None)
    point.times = {"server": torch.tensor(server_times, dtype=torch.float64),
                   "worker": torch.tensor(worker_times, dtype=torch.float64)}
    return point


def test_a_synchronous_step_lasts_its_slowest_worker():
    # 2 workers x 3 steps of (compute, push, pull); steps last 6, 9, 7 (worker 1: 5, 9, 4)
    workers = [[[3, 1, 2], [2, 1, 2], [4, 1, 2]], [[2, 1, 2], [6, 1, 2], [1, 1, 2]]]
    servers = [[[1, 0.5, 0.1], [2, 0.7, 0.1], [3, 0.6, 0.1]]]
    row = point_row(_point("sync", servers, workers), 0, PSJob(global_batch=10, steps=3), threads=1, parameters=99)
    assert row["step_s"] == 7 and row["steps_per_s"] == pytest.approx(1 / 7)       # median of 6, 9, 7
    assert row["compute_s"] == 4 and row["push_s"] == 1 and row["pull_s"] == 2     # compute: median of 3, 6, 4
    assert row["update_s"] == 0.6 and row["server_wait_s"] == 2
    assert row["images_per_s"] == pytest.approx(10 / 7) and row["worker_batch"] == 5


def test_asynchronous_speed_adds_the_workers_shares():
    workers = [[[1, 0, 0]] * 3, [[4, 0, 0]] * 3]              # worker 0: 1 s a step, worker 1: 4 s
    row = point_row(_point("async", [[[0, 0, 0]] * 3], workers), 0, PSJob(global_batch=10, steps=3), 1, 99)
    assert row["steps_per_s"] == pytest.approx(0.5 / 1 + 0.5 / 4)


def test_the_plan_resumes_refuses_other_settings_and_a_finished_grid(tmp_path):
    csv = tmp_path / CSV_NAME
    points = grid(["sync"], [1, 2], [1, 2], rounds=2)
    assert points[:4] == [("sync", 1, 1, 0), ("sync", 1, 2, 0), ("sync", 2, 1, 0), ("sync", 2, 2, 0)]
    assert points_to_measure(csv, points, "abc", overwrite=False) == points
    append_row(csv, {"mode": "sync", "ps": 1, "workers": 2, "round": 0, "steps_per_s": 3.0, "settings_hash": "abc"})
    assert points_to_measure(csv, points, "abc", overwrite=False) == points[:1] + points[2:]
    with pytest.raises(UserError, match="other settings.*--overwrite"):
        points_to_measure(csv, points, "xyz", overwrite=False)
    with pytest.raises(FinishedGridError, match="every point of this grid"):
        points_to_measure(csv, [("sync", 1, 2, 0)], "abc", overwrite=False)
    assert points_to_measure(csv, points, "xyz", overwrite=True) == points and not csv.exists()


def test_the_tables_take_the_median_over_rounds():
    rows = [{"mode": "sync", "ps": 1, "workers": 2, "round": r, "worker_batch": 8, "steps_per_s": v,
             "images_per_s": 16 * v, **{c: 1 / v for c in TIME_COLUMNS}} for r, v in enumerate((4.0, 5.0, 10.0))]
    row = over_rounds(pd.DataFrame(rows)).iloc[0]
    assert row["steps_per_s"] == 5.0 and row["rounds"] == 3 and row["spread_pct"] == pytest.approx(120.0)


@pytest.mark.parametrize("flag", ["--servers", "--workers", "--steps", "--global-batch"])
def test_non_positive_counts_are_refused_naming_the_flag(flag, capsys):
    from models.distributed.ps_bench import add_arguments
    from models.shared.command import new_parser
    parser = new_parser("sysdl ps-bench")
    add_arguments(parser)
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args([flag, "0"])
    assert exit_.value.code == 2 and flag in capsys.readouterr().err


def test_a_batch_smaller_than_the_workers_is_refused_before_any_process_starts(tmp_path, capsys):
    from models.cli.main import main
    assert main(["ps-bench", "--quick", "--global-batch", "2", "--no-track", "--out-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--global-batch >= 3" in err[0]
    assert not (tmp_path / CSV_NAME).exists()


def test_under_torchrun_a_refusal_of_rank_0_ends_every_rank_at_once(tmp_path):
    """Rank 0 alone reads the CSV; when it refuses it (other settings), it tells the other ranks,
    which end with its message instead of waiting for it until the init timeout."""
    out = tmp_path / "ps"
    out.mkdir()
    pd.DataFrame([{"mode": "sync", "ps": 1, "workers": 1, "round": 0, "settings_hash": "other"}]).to_csv(
        out / CSV_NAME, index=False)
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                           "--standalone", "-m", "models.cli", "ps-bench", "--quick", "--servers", "1",
                           "--workers", "1", "--no-track", "--no-progress", "--timeout", "300",
                           "--out-dir", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=240)
    seconds = time.monotonic() - start
    log = done.stdout + done.stderr
    assert done.returncode != 0, log
    assert "holds points measured with other settings" in log and "rank 0 refused" in log, log
    assert seconds < 120, f"{seconds:.0f} s: a rank waited for the timeout\n{log}"
