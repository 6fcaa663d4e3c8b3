"""models.training.tracking against a real `mlflow server` on 127.0.0.1 (sqlite backend, free port),
and its bounded, one-line failures: a dead or silent server, one lost mid-run, a corrupt or
read-only sqlite store."""

from __future__ import annotations

import contextlib
import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from models.training import tracking
from tests.mlflow_runs import read_runs


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
    runs = read_runs("fail-exp")
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
    runs = read_runs("http-exp")
    assert len(runs) == 1 and runs.iloc[0]["status"] == "FINISHED"
    assert runs.iloc[0]["params.model.hidden"] == "100"
    assert runs.iloc[0]["metrics.test_acc"] == pytest.approx(0.8)
    from mlflow.tracking import MlflowClient
    client = MlflowClient(mlflow_server)
    assert [m.value for m in client.get_metric_history(run.run_id, "step_loss")] == [2.0, 1.5, 1.0]
    assert [a.path for a in client.list_artifacts(run.run_id)] == ["note.txt"]
    stored = list((tmp_path / "artifacts").rglob("note.txt"))
    assert len(stored) == 1 and stored[0].read_text() == "hello"


# ---- bounded waits and one-line errors ---------------------------------------------------------


@contextlib.contextmanager
def health_server():
    """A stand-in for a live tracking server that answers only GET /health; yields its URI."""
    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def quick_mlflow_http(monkeypatch):
    """MLflow's HTTP retries off and a short request timeout (no test waits on MLflow's back-off),
    and no server remembered as checked; all restored afterwards."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    monkeypatch.setattr(tracking, "_servers_checked", set(), raising=False)


def test_a_dead_tracking_server_ends_with_one_line_naming_it(quick_mlflow_http, monkeypatch, capsys):
    from models.shared.command import run_command
    uri = f"http://127.0.0.1:{free_port()}"                   # nothing listens there
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)

    def job(args):
        with tracking.start_run("dead-exp", "never", {"a": 1}):
            raise AssertionError("the body must not run without a server")

    assert run_command(job, None, "sysdl job") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and uri in err[0] and "--no-track" in err[0] and "MLFLOW_TRACKING_URI" in err[0]
    for call in (lambda: tracking.find_runs("dead-exp"), lambda: tracking.ensure_experiment("dead-exp")):
        with pytest.raises(tracking.TrackingError, match=uri):
            call()


def test_a_server_that_accepts_but_never_answers_fails_within_the_check_timeout(quick_mlflow_http, monkeypatch):
    monkeypatch.setattr(tracking, "SERVER_CHECK_SECONDS", 1.0, raising=False)
    with socket.socket() as listener:                           # accepts connections, never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        uri = f"http://127.0.0.1:{listener.getsockname()[1]}"
        with pytest.raises(tracking.TrackingError, match=uri):
            tracking.find_runs("silent-exp", uri=uri)


def test_the_server_check_runs_once_per_uri_and_bounds_mlflow_retries(monkeypatch):
    monkeypatch.setattr(tracking, "_servers_checked", set())
    for name in tracking.HTTP_REQUEST_DEFAULTS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "7")     # the user's own value wins
    with health_server() as uri:
        tracking.check_tracking_server(uri)
    tracking.check_tracking_server(uri)                         # now down: checked once, not again
    retries = int(os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"])
    backoff = int(os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"])
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "7"
    # a refused request ends after its back-off sleeps (urllib3: factor x 2^(n-1), + 1 s jitter each)
    assert sum(backoff * 2 ** n + 1 for n in range(retries)) <= 10
    tracking.check_tracking_server("sqlite:///no-server-needed.db")


def test_a_server_lost_mid_run_ends_with_one_tracking_error(quick_mlflow_http, monkeypatch):
    with health_server() as uri:
        tracking.check_tracking_server(uri)                     # it was up when the job started
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    with pytest.raises(tracking.TrackingError, match=f"{uri}.*(--no-track|restart)"):
        with tracking.start_run("lost-exp", "lost", {}):
            pass


def test_a_corrupt_sqlite_store_is_named_with_what_to_do(mlflow_store, tmp_path, capfd):
    from models.cli.main import main
    db = tmp_path / "mlruns.db"
    db.write_bytes(b"not a database " * 200)
    with pytest.raises(tracking.TrackingError, match=rf"{db}.*mv "):
        tracking.find_runs("any")
    capfd.readouterr()
    assert main(["optimus", "loss", "--out-dir", str(tmp_path / "out")]) == 2
    err = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and str(db) in err[0], err
    assert db.read_bytes() == b"not a database " * 200, "a corrupt store must be left as it was"


def test_a_read_only_sqlite_store_is_named_with_what_to_do(mlflow_store, tmp_path, monkeypatch):
    with tracking.start_run("ro-exp", "first", {}):
        pass
    db = tmp_path / "mlruns.db"
    # sqlite opens it read-only, as it does a file without write permission (chmod cannot stop root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///file:{db}?mode=ro&uri=true")
    assert len(tracking.find_runs("ro-exp")) == 1               # reading still works
    with pytest.raises(tracking.TrackingError, match=rf"{db}.*(read-only|writable)"):
        with tracking.start_run("ro-exp", "second", {}):
            pass
