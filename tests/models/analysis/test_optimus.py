"""`sysdl optimus` (models/analysis/optimus.py) end to end on CSVs written here and on a private MLflow
store: tables, figures, the unreachable-target message and the choice of the default run.

    pytest tests/models/analysis/test_optimus.py
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from models.cli.main import main as sysdl


def _standalone(argv):
    return sysdl(["optimus", *argv])
from sysdl_kernels.perf_model import loss_curve, speed_terms

B = (0.05, 0.5, 0.2)
THETA = np.array([4e-4, 5e-3, 8e-3, 1e-3, 2e-3])


def _write_curve(path, column="step"):
    k = np.arange(0, 301, 3.0)
    pd.DataFrame({column: k, "loss": loss_curve(k, *B)}).to_csv(path, index=False)
    return path


def test_loss_cli_on_a_csv(tmp_path, capsys):
    csv = _write_curve(tmp_path / "curve.csv")
    assert _standalone(["loss", "--csv", str(csv), "--target", "0.3", "--out-dir", str(tmp_path / "out")]) == 0
    fit = pd.read_csv(tmp_path / "out" / "loss_fit.csv").iloc[0]
    assert [fit.b0, fit.b1, fit.b2] == pytest.approx(B, rel=1e-3) and fit.r2 == pytest.approx(1.0)
    targets = pd.read_csv(tmp_path / "out" / "loss_targets.csv")
    assert targets["steps_to_target"].iloc[0] == pytest.approx((1 / (0.3 - 0.2) - 0.5) / 0.05, rel=1e-3)
    assert (tmp_path / "out" / "loss_fit.png").stat().st_size > 0
    assert "steps_to_target" in capsys.readouterr().out


def test_loss_cli_flags_an_unreachable_target(tmp_path, capsys):
    csv = _write_curve(tmp_path / "curve.csv", "epoch")
    assert _standalone(["loss", "--csv", str(csv), "--target", "0.15", "--out-dir", str(tmp_path)]) == 1
    assert "unreachable: at or below b2 = 0.2" in capsys.readouterr().out


def test_loss_cli_explains_a_wrong_csv(tmp_path, capsys):
    (tmp_path / "bad.csv").write_text("iteration,value\n1,2\n")
    assert _standalone(["loss", "--csv", str(tmp_path / "bad.csv"), "--out-dir", str(tmp_path)]) == 2
    assert "expected columns 'step' (or 'epoch') and 'loss'" in capsys.readouterr().err


def test_regress_cli_predicts_from_depth_and_device(tmp_path, capsys):
    rows = []
    for name, depth, device in (("a", 2, "cpu"), ("b", 4, "cpu"), ("c", 8, "cpu"), ("d", 4, "cuda"), ("e", 8, "cuda")):
        b0 = 0.1 * np.exp(-0.1 * depth + (0.5 if device == "cuda" else 0))
        rows += [{"log": name, "depth": depth, "device": device, "epoch": k, "loss": loss_curve(k, b0, 0.5, 0.1)}
                 for k in range(1, 41)]
    pd.DataFrame(rows).to_csv(tmp_path / "logs.csv", index=False)
    assert _standalone(["regress", "--csv", str(tmp_path / "logs.csv"), "--depth", "6", "--device", "cuda",
                        "--target", "0.5", "--out-dir", str(tmp_path)]) == 0
    predicted = pd.read_csv(tmp_path / "regress_prediction.csv").iloc[0]
    assert predicted.b0 == pytest.approx(0.1 * np.exp(-0.6 + 0.5), rel=0.01)
    assert predicted.epochs_to_target == pytest.approx((1 / 0.4 - 0.5) / predicted.b0, rel=1e-6)
    assert (tmp_path / "regress_prediction.png").exists()


def test_speed_cli_on_a_csv_with_steps_from_a_loss_csv(tmp_path, capsys):
    workers, servers = np.meshgrid([1, 2, 4, 8], [1, 2, 4])
    workers, servers = workers.ravel(), servers.ravel()
    speeds = 1 / (speed_terms(workers, servers, 32) @ THETA)
    pd.DataFrame({"workers": workers, "ps": servers, "steps_per_s": speeds}).to_csv(tmp_path / "s.csv", index=False)
    csv = _write_curve(tmp_path / "curve.csv")
    assert _standalone(["speed", "--csv", str(tmp_path / "s.csv"), "--batch", "32", "--loss-csv", str(csv),
                        "--target", "0.3", "--out-dir", str(tmp_path)]) == 0
    fit = pd.read_csv(tmp_path / "speed_fit.csv")
    assert fit["theta_s"].to_numpy() == pytest.approx(THETA, rel=1e-3)
    times = pd.read_csv(tmp_path / "time_to_target.csv").set_index("workers")
    steps = (1 / (0.3 - 0.2) - 0.5) / 0.05
    assert times.loc[3, "time_s_p4"] == pytest.approx(steps * (speed_terms(3, 4, 32) @ THETA)[0], rel=1e-3)
    assert (tmp_path / "time_to_target.png").exists()


def test_default_run_is_the_newest_with_enough_epochs(mlflow_store, tmp_path, capsys):
    from models.training import tracking
    for epochs in (6, 2):                                     # the newest run is too short to fit
        with tracking.start_run("fashion-cnn", "train", {}) as run:
            run.log_points([("train_loss", float(loss_curve(e, 0.8, 1.2, 0.1)), e) for e in range(1, epochs + 1)])
    assert _standalone(["loss", "--out-dir", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "skipped 1 newer run" in out
    assert pd.read_csv(tmp_path / "out" / "loss_fit.csv")["b0"].iloc[0] == pytest.approx(0.8, rel=1e-3)


def test_a_run_id_not_in_the_store_is_named(mlflow_store, tmp_path, capsys):
    from models.training import tracking
    with tracking.start_run("fashion-cnn", "train", {}):         # a store that exists, without that run
        pass
    capsys.readouterr()
    assert _standalone(["loss", "--run-id", "0123abcd", "--out-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "run 0123abcd does not exist" in err[0]


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    ("", "empty"),
    ("step,loss\n", "no rows"),
    ("step,loss\n1,2.0\n2,lots\n3,1.0\n", "data row 2.*'lots'"),
])
def test_a_loss_csv_that_cannot_be_read_is_named(tmp_path, capsys, content, message):
    csv = tmp_path / "curve.csv"
    if content is not None:
        csv.write_text(content)
    assert _standalone(["loss", "--csv", str(csv), "--out-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(csv) in err[0]
    assert re.search(message, err[0]), err[0]


def test_a_speeds_csv_with_a_word_for_a_number_is_named(tmp_path, capsys):
    (tmp_path / "s.csv").write_text("workers,ps,steps_per_s\n1,1,2.0\n2,1,fast\n")
    assert _standalone(["speed", "--csv", str(tmp_path / "s.csv"), "--steps", "100",
                        "--out-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "s.csv") in err and "steps_per_s" in err and "'fast'" in err


def test_a_fit_that_explains_nothing_predicts_nothing(tmp_path, capsys):
    rng = np.random.default_rng(0)
    k = np.arange(1, 21)
    pd.DataFrame({"epoch": k, "loss": 0.5 + 0.05 * rng.standard_normal(k.size)}).to_csv(tmp_path / "flat.csv",
                                                                                      index=False)
    assert _standalone(["loss", "--csv", str(tmp_path / "flat.csv"), "--target", "0.6", "0.45",
                        "--out-dir", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert "warning" in captured.err and "R^2" in captured.err
    targets = pd.read_csv(tmp_path / "loss_targets.csv")
    assert targets["epochs_to_target"].isna().all()               # no number dressed as a prediction
    assert targets["note"].str.contains("R^2", regex=False).all()


# ---- speed: measured points, held out of the fit -------------------------------------------

def _speeds(workers=(1, 2, 3, 4), servers=(1, 2, 4), batch=32, **columns):
    w, p = np.meshgrid(workers, servers)
    w, p = w.ravel(), p.ravel()
    return pd.DataFrame({"workers": w, "ps": p, "steps_per_s": 1 / (speed_terms(w, p, batch) @ THETA), **columns})


def test_held_out_points_stay_out_of_the_fit_and_their_error_is_reported(tmp_path, capsys):
    speeds = _speeds()
    speeds.loc[(speeds["workers"] == 3) & (speeds["ps"] == 2), "steps_per_s"] *= 1.25     # a point off the model
    speeds.to_csv(tmp_path / "s.csv", index=False)
    assert _standalone(["speed", "--csv", str(tmp_path / "s.csv"), "--batch", "32", "--steps", "100",
                        "--hold-out", "3,2", "1,4", "--out-dir", str(tmp_path)]) == 0
    fit = pd.read_csv(tmp_path / "speed_fit.csv")
    assert fit["theta_s"].to_numpy() == pytest.approx(THETA, rel=1e-3)          # the odd point did not move it
    assert (fit["fitted_points"] == 10).all() and (fit["held_out_points"] == 2).all()
    points = pd.read_csv(tmp_path / "speed_points.csv").set_index(["workers", "ps"])
    assert points["held_out"].sum() == 2
    assert points.loc[(3, 2), "error_pct"] == pytest.approx(100 * (1 / 1.25 - 1), rel=1e-3)
    assert abs(points.loc[(1, 4), "error_pct"]) < 1e-3
    assert fit["held_out_max_abs_error_pct"].iloc[0] == pytest.approx(20.0, rel=1e-3)
    assert "held out of the fit: 2 point(s), mean |error| 10.0%, max 20.0%" in capsys.readouterr().out


def test_default_hold_out_keeps_enough_points_to_fit(tmp_path):
    from models.analysis.optimus import held_out_configurations
    twelve = _speeds()
    assert held_out_configurations(twelve, None) == [(2, 1), (2, 2), (2, 4)]    # every 4th in (p, w) order
    six = _speeds(workers=(1, 2, 3), servers=(1, 2))
    assert held_out_configurations(six, None) == []                              # 5 coefficients + 1
    with pytest.raises(ValueError, match="4 .* configurations left to fit the 5"):
        held_out_configurations(_speeds(workers=(1, 2, 3), servers=(1, 2)), [(1, 1), (2, 2)])
    with pytest.raises(ValueError, match="--hold-out 9,9: not measured"):
        held_out_configurations(twelve, [(9, 9)])


def test_curves_mark_measured_points_and_flag_extrapolation(tmp_path):
    _speeds(workers=(1, 2, 3, 4), servers=(1, 2)).to_csv(tmp_path / "s.csv", index=False)
    assert _standalone(["speed", "--csv", str(tmp_path / "s.csv"), "--batch", "32", "--steps", "100",
                        "--out-dir", str(tmp_path)]) == 0
    times = pd.read_csv(tmp_path / "time_to_target.csv").set_index("workers")
    assert list(times.index) == list(range(1, 9))                               # 2 x the most measured
    assert not times.loc[1:4, "extrapolated_p2"].any() and times.loc[5:, "extrapolated_p2"].all()
    assert times["extrapolated_p4"].all()                                        # p = 4 never measured
    assert times.loc[3, "measured_time_s_p2"] == pytest.approx(100 * (speed_terms(3, 2, 32) @ THETA)[0])
    assert times.loc[5:, "measured_time_s_p2"].isna().all() and times["measured_time_s_p4"].isna().all()
    assert (tmp_path / "time_to_target.png").stat().st_size > 0


def test_speed_reads_ps_bench_by_default_its_batch_sync_rows_and_median_repeats(tmp_path, monkeypatch, capsys):
    from models.shared.artifacts import PS_BENCH_DIR
    monkeypatch.chdir(tmp_path)
    assert _standalone(["speed", "--steps", "100"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "sysdl ps-bench" in err[0] and "--illustrative" in err[0]
    sync = _speeds(batch=64, mode="sync", global_batch=64)
    loaded = sync.assign(steps_per_s=sync["steps_per_s"] / 2)               # a round slowed by another job
    noise = _speeds(batch=64, mode="async", global_batch=64).assign(steps_per_s=1e3)   # not the model's
    (tmp_path / PS_BENCH_DIR).mkdir(parents=True)
    pd.concat([sync, loaded, sync, noise]).to_csv(tmp_path / PS_BENCH_DIR / "ps_bench.csv", index=False)
    assert _standalone(["speed", "--steps", "100", "--hold-out", "none"]) == 0
    fit = pd.read_csv(tmp_path / "runs" / "optimus" / "speed_fit.csv")
    assert (fit["batch"] == 64).all() and fit["theta_s"].to_numpy() == pytest.approx(THETA, rel=1e-3)
    points = pd.read_csv(tmp_path / "runs" / "optimus" / "speed_points.csv")
    assert len(points) == 12 and (points["repeats"] == 3).all()             # the median of each three
    assert "global batch M = 64" in capsys.readouterr().out


def test_illustrative_speeds_are_only_used_when_asked_and_say_so(tmp_path, capsys):
    assert _standalone(["speed", "--illustrative", "--steps", "100", "--out-dir", str(tmp_path)]) == 0
    assert "illustrative (made-up coefficients, not measured)" in capsys.readouterr().out
    assert pd.read_csv(tmp_path / "speed_points.csv")["source"].str.contains("made-up").all()
