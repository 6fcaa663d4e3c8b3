"""MLflow helpers: the one module of sysdl that imports mlflow.

Where runs go:
  * ``$MLFLOW_TRACKING_URI`` when set: e.g. ``http://host:5000`` for a shared ``mlflow server``
    that a team or a cluster's jobs all log to;
  * otherwise ``sqlite:///mlruns.db`` in the current directory, with artifacts in ``./mlruns``.
Browse them with ``mlflow ui --backend-store-uri sqlite:///mlruns.db``.

Every wait is bounded and every failure a user can fix ends as one TrackingError (a UserError:
one line, exit status 2): before the first call to an http(s) server, once per process and URI,
a GET of its ``/health`` must answer within SERVER_CHECK_SECONDS; MLflow's own retries of a
failed request (7, doubling back-off, 120 s each: about 4 minutes) are cut to
HTTP_REQUEST_DEFAULTS unless the user set them; a server lost mid-run, a corrupt or read-only
sqlite store and an unknown run id are each named with what to do.

mlflow is imported lazily (it takes seconds) so that ``sysdl --help`` and the kernels stay quick.
"""

from __future__ import annotations

import logging
import os
import re
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from models.shared.errors import UserError

DEFAULT_TRACKING_URI = "sqlite:///mlruns.db"
_MAX_BATCH = 1000  # MLflow accepts at most 1000 metrics per log_batch call
SERVER_CHECK_SECONDS = 3.0  # a live tracking server answers /health in milliseconds
# Set for the process when it first uses an http(s) URI, where the user has not: a refused
# request then fails after about 3 s of back-off, a silent server after 3 x 15 s.
HTTP_REQUEST_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",      # retries of a failed request (MLflow: 7)
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",   # s; back-off factor x 2^(n-1) (MLflow: 2)
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",         # s per request (MLflow: 120)
}
_servers_checked: set[str] = set()
_NO_TRACK = "or pass --no-track"


class TrackingError(RuntimeError, UserError):
    """The tracking server or store cannot be used; the message names it and says what to do."""


def tracking_uri(explicit: str | None = None) -> str:
    """The tracking URI in force: explicit argument, then $MLFLOW_TRACKING_URI, then the sqlite default."""
    return explicit or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def _is_http(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def check_tracking_server(uri: str, timeout: float | None = None) -> None:
    """For an http(s) URI, once per process: bound MLflow's retries (HTTP_REQUEST_DEFAULTS) and
    raise TrackingError unless the server answers GET /health within ``timeout`` seconds (any
    HTTP answer counts: a proxy's 401 or 404 still means a server is there). Other URIs: nothing."""
    if not _is_http(uri) or uri in _servers_checked:
        return
    import http.client
    import ssl
    import urllib.error
    import urllib.request
    for name, value in HTTP_REQUEST_DEFAULTS.items():
        os.environ.setdefault(name, value)
    timeout = SERVER_CHECK_SECONDS if timeout is None else timeout
    # Liveness only: MLflow verifies the certificate itself (its own CA settings) on every request.
    context = ssl._create_unverified_context() if uri.startswith("https://") else None
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout, context=context):
            pass
    except urllib.error.HTTPError:
        pass
    except (OSError, http.client.HTTPException, ValueError) as err:
        reason = getattr(err, "reason", None) or err
        raise TrackingError(
            f"cannot reach the MLflow tracking server {uri} ({reason}; GET /health, {timeout:g} s limit): start it "
            f"(mlflow server --host HOST --port PORT), point $MLFLOW_TRACKING_URI (or --uri) at a running "
            f"one, unset it to log to {DEFAULT_TRACKING_URI}, {_NO_TRACK}") from None
    _servers_checked.add(uri)


def _sqlite_path(uri: str) -> Path | None:
    """The file of a sqlite:/// URI (also SQLAlchemy's ``sqlite:///file:PATH?mode=ro&uri=true``)."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri.removeprefix("sqlite:///").split("?", 1)[0]
    return Path(path.removeprefix("file:")).resolve()


def _chain(err: BaseException) -> Iterator[BaseException]:
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__


def _translate(err: Exception, uri: str) -> TrackingError | None:
    """The TrackingError a user can act on for ``err`` from MLflow at ``uri``, or None."""
    import sqlite3
    import requests
    for cause in _chain(err):
        if isinstance(cause, requests.exceptions.RequestException):
            found = re.findall(r"\[Errno -?\d+\] [^'\")]+", str(cause))
            reason = found[-1] if found else type(cause).__name__
            return TrackingError(
                f"lost the MLflow tracking server {uri} ({reason}): restart it and run again, point "
                f"$MLFLOW_TRACKING_URI (or --uri) at a running one, {_NO_TRACK}")
        if isinstance(cause, sqlite3.DatabaseError):
            db, message = _sqlite_path(uri), str(cause).splitlines()[0]
            if "locked" in message:
                return None                             # another writer: transient, not the user's
            if "readonly" in message or "unable to open" in message:
                return TrackingError(
                    f"{db}: the MLflow store is read-only here ({message}): make the file and its folder "
                    f"writable, point $MLFLOW_TRACKING_URI at a store you can write "
                    f"(e.g. sqlite:////tmp/mlruns.db), {_NO_TRACK}")
            if "not a database" in message or "malformed" in message:
                return TrackingError(
                    f"{db}: not a readable MLflow store ({message}): the file is corrupt or not MLflow's; "
                    f"move it aside (mv {db} {db}.bad) and a new store is created on the next run, or "
                    f"point $MLFLOW_TRACKING_URI at another store")
            return TrackingError(f"{db}: the MLflow store failed ({message}): check the file and its disk, "
                                 f"or point $MLFLOW_TRACKING_URI at another store")
    return None


@contextmanager
def _user_errors(uri: str) -> Iterator[None]:
    try:
        yield
    except Exception as err:
        translated = _translate(err, uri)
        if translated is None:
            raise
        raise translated from None


class _Client:
    """An MlflowClient whose failures a user can fix arrive as TrackingError."""

    def __init__(self, client, uri: str):
        self._client, self.uri = client, uri

    def __getattr__(self, name: str):
        method = getattr(self._client, name)

        def call(*args, **kwargs):
            with _user_errors(self.uri):
                return method(*args, **kwargs)
        return call


class _DropStoreTraceback(logging.Filter):
    """MLflow logs a traceback of every SQLAlchemy error before raising it; the raised error is
    enough (it reaches the user as a TrackingError, or as itself with its full traceback)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("SQLAlchemy database error")


def _client(uri: str | None = None) -> _Client:
    """A client of the store in force (tracking_uri), its server checked first."""
    resolved = tracking_uri(uri)
    check_tracking_server(resolved)
    from mlflow.tracking import MlflowClient
    store_logger = logging.getLogger("mlflow.store.db.utils")
    if not any(isinstance(f, _DropStoreTraceback) for f in store_logger.filters):
        store_logger.addFilter(_DropStoreTraceback())
    with _user_errors(resolved):
        client = MlflowClient(tracking_uri=resolved)       # opens (and migrates) a sqlite store
    return _Client(client, resolved)


def _flatten(params: dict, prefix: str = "") -> dict[str, str]:
    flat = {}
    for key, value in params.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = str(value)
    return flat


class RunLogger:
    """Logs to one active MLflow run."""

    def __init__(self, client, run_id: str):
        self._client = client
        self.run_id = run_id

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        from mlflow.entities import Metric
        now = int(time.time() * 1000)
        self._send([Metric(k, float(v), now, step or 0) for k, v in metrics.items()])

    def log_points(self, points: Iterable[tuple[str, float, int]]) -> None:
        """Log (key, value, step) points of several metrics and steps in one batch: up to 1000
        points land in one store transaction, so a kill leaves all of them or none."""
        from mlflow.entities import Metric
        now = int(time.time() * 1000)
        self._send([Metric(k, float(v), now, int(step)) for k, v, step in points])

    def log_series(self, key: str, values: Sequence[float], first_step: int = 0) -> None:
        """Log many values of one metric (e.g. every step's loss) in a few batched calls."""
        from mlflow.entities import Metric
        now = int(time.time() * 1000)
        self._send([Metric(key, float(v), now, first_step + i) for i, v in enumerate(values)])

    def _send(self, metrics: list) -> None:
        for start in range(0, len(metrics), _MAX_BATCH):
            self._client.log_batch(self.run_id, metrics=metrics[start:start + _MAX_BATCH])

    def log_artifact(self, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        self._client.log_artifact(self.run_id, str(path), artifact_path)

    def set_tags(self, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self._client.set_tag(self.run_id, key, str(value))


class NullRunLogger:
    """Stands in for RunLogger when tracking is switched off (``--no-track``)."""
    run_id = None

    def log_metrics(self, metrics, step=None): pass
    def log_points(self, points): pass
    def log_series(self, key, values, first_step=0): pass
    def log_artifact(self, path, artifact_path=None): pass
    def set_tags(self, tags): pass


@contextmanager
def start_run(experiment: str, run_name: str, params: dict, tags: dict | None = None,
              uri: str | None = None, enabled: bool = True, run_id: str | None = None,
              parent_run_id: str | None = None) -> Iterator[RunLogger | NullRunLogger]:
    """Open a run in ``experiment``; it ends FINISHED, or FAILED/KILLED if the body raises.

    ``run_id`` reopens an existing run (a resumed job: its params are already logged);
    ``parent_run_id`` nests the new run under a parent, as MLflow's UI shows child runs."""
    if not enabled:
        yield NullRunLogger()
        return
    from mlflow.entities import Param
    client = _client(uri)
    if run_id is not None:
        client.update_run(run_id, status="RUNNING")
    else:
        found = client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found else client.create_experiment(experiment)
        tags = dict(tags or {})
        if parent_run_id is not None:
            tags["mlflow.parentRunId"] = parent_run_id
        run_id = client.create_run(experiment_id, run_name=run_name, tags=tags).info.run_id
        items = [Param(k, v) for k, v in _flatten(params).items()]
        for start in range(0, len(items), 100):
            client.log_batch(run_id, params=items[start:start + 100])
    logger = RunLogger(client, run_id)
    status = "FAILED"
    try:
        yield logger
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    except TrackingError:
        status = None                           # the store is gone: nothing can mark the run
        raise
    finally:
        if status is not None:
            client.set_terminated(run_id, status=status)


def ensure_experiment(experiment: str, uri: str | None = None) -> str:
    """The id of ``experiment``, created if missing (call it once before starting worker
    processes, so that they do not race to create the store or the experiment)."""
    client = _client(uri)
    found = client.get_experiment_by_name(experiment)
    return found.experiment_id if found else client.create_experiment(experiment)


def find_runs(experiment: str, tags: dict[str, str] | None = None, uri: str | None = None) -> list[dict]:
    """Active (not deleted) runs of ``experiment`` whose tags equal ``tags``, as dicts with
    run_id, status, start_time, tags, params and metrics (latest values); [] if no such experiment."""
    client = _client(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    query = " and ".join(f"tags.`{key}` = '{value}'" for key, value in (tags or {}).items())
    runs, token = [], None
    while True:
        page = client.search_runs([found.experiment_id], query, max_results=1000, page_token=token)
        runs += [{"run_id": r.info.run_id, "status": r.info.status, "start_time": r.info.start_time,
                  "tags": dict(r.data.tags), "params": dict(r.data.params), "metrics": dict(r.data.metrics)}
                 for r in page]
        token = page.token
        if not token:
            return runs


def end_runs(run_ids: Iterable[str], status: str = "KILLED", uri: str | None = None) -> None:
    """Mark runs ended with ``status`` (e.g. the runs of worker processes that were stopped)."""
    client = _client(uri)
    for run_id in run_ids:
        client.set_terminated(run_id, status=status)


def delete_runs(run_ids: Iterable[str], uri: str | None = None) -> None:
    """Move runs to MLflow's deleted runs (``mlflow runs restore --run-id ID`` brings one back)."""
    client = _client(uri)
    for run_id in run_ids:
        client.delete_run(run_id)


def metric_history(run_id: str, keys: Iterable[str], uri: str | None = None) -> dict[str, list[tuple[int, float]]]:
    """Every logged (step, value) of each metric in ``keys``, sorted by step; TrackingError
    for a run that is not in the store."""
    client = _client(uri)
    from mlflow.exceptions import MlflowException
    try:
        client.get_run(run_id)
    except MlflowException as err:
        if err.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        raise TrackingError(f"MLflow run {run_id} does not exist in {client.uri}: check the id "
                            f"(`mlflow runs list --experiment-id ID` lists them) and --uri") from None
    return {key: sorted((m.step, m.value) for m in client.get_metric_history(run_id, key)) for key in keys}


def artifact_dir_note(uri: str | None = None) -> str:
    resolved = tracking_uri(uri)
    if resolved.startswith("sqlite:///"):
        db = Path(resolved.removeprefix("sqlite:///"))
        return f"mlflow ui --backend-store-uri {resolved}  (store {db.resolve()})"
    return f"open {resolved} in a browser (tracking server)"
