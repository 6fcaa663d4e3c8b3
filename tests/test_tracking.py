"""models.tracking against a real `mlflow server` on 127.0.0.1 (sqlite backend, free port)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from models import tracking


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path):
    port = free_port()
    mlflow_bin = Path(sys.executable).with_name("mlflow")
    proc = subprocess.Popen(
        [str(mlflow_bin), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--artifacts-destination", str(tmp_path / "artifacts")],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "server.log", "wb"),
        start_new_session=True)  # its own process group: the workers die with it
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not start: {(tmp_path / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_tracking_uri_order(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.tracking_uri() == "sqlite:///mlruns.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://example:5000")
    assert tracking.tracking_uri() == "http://example:5000"
    assert tracking.tracking_uri("sqlite:///other.db") == "sqlite:///other.db"


def test_failed_body_marks_the_run_failed(mlflow_store):
    with pytest.raises(ZeroDivisionError):
        with tracking.start_run("fail-exp", "boom", {"a": 1}):
            1 / 0
    runs = tracking.read_runs("fail-exp")
    assert runs["status"].tolist() == ["FAILED"]


def test_short_run_over_http(mlflow_server, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    artifact = tmp_path / "note.txt"
    artifact.write_text("hello")
    with tracking.start_run("http-exp", "over-http", {"model": {"hidden": 100}, "lr": 0.1}) as run:
        for epoch in range(1, 4):
            run.log_metrics({"test_acc": 0.5 + epoch / 10}, step=epoch)
        run.log_series("step_loss", [2.0, 1.5, 1.0])
        run.log_artifact(artifact)
    runs = tracking.read_runs("http-exp")
    assert len(runs) == 1 and runs.iloc[0]["status"] == "FINISHED"
    assert runs.iloc[0]["params.model.hidden"] == "100"
    assert runs.iloc[0]["metrics.test_acc"] == pytest.approx(0.8)
    from mlflow.tracking import MlflowClient
    client = MlflowClient(mlflow_server)
    assert [m.value for m in client.get_metric_history(run.run_id, "step_loss")] == [2.0, 1.5, 1.0]
    assert [a.path for a in client.list_artifacts(run.run_id)] == ["note.txt"]
    stored = list((tmp_path / "artifacts").rglob("note.txt"))
    assert len(stored) == 1 and stored[0].read_text() == "hello"
