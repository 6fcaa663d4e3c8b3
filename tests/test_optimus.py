"""`sysdl optimus` (models/optimus.py) end to end on CSVs written here and on a private MLflow
store: tables, figures, the unreachable-target message and the choice of the default run.

    pytest tests/test_optimus.py
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.cli import main as sysdl


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
    from models import tracking
    for epochs in (6, 2):                                     # the newest run is too short to fit
        with tracking.start_run("fashion-cnn", "train", {}) as run:
            run.log_points([("train_loss", float(loss_curve(e, 0.8, 1.2, 0.1)), e) for e in range(1, epochs + 1)])
    assert _standalone(["loss", "--out-dir", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "skipped 1 newer run" in out
    assert pd.read_csv(tmp_path / "out" / "loss_fit.csv")["b0"].iloc[0] == pytest.approx(0.8, rel=1e-3)
