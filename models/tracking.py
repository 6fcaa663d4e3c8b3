"""MLflow helpers: the one module of sysdl that imports mlflow.

Where runs go:
  * ``$MLFLOW_TRACKING_URI`` when set: e.g. ``http://host:5000`` for a shared ``mlflow server``
    that a team or a cluster's jobs all log to;
  * otherwise ``sqlite:///mlruns.db`` in the current directory, with artifacts in ``./mlruns``.
Browse them with ``mlflow ui --backend-store-uri sqlite:///mlruns.db``.

mlflow is imported lazily (it takes seconds) so that ``sysdl --help`` and the kernels stay quick.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, Sequence

DEFAULT_TRACKING_URI = "sqlite:///mlruns.db"
_MAX_BATCH = 1000  # MLflow accepts at most 1000 metrics per log_batch call


def tracking_uri(explicit: str | None = None) -> str:
    """The tracking URI in force: explicit argument, then $MLFLOW_TRACKING_URI, then the sqlite default."""
    return explicit or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


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
    from mlflow.tracking import MlflowClient
    client = MlflowClient(tracking_uri=tracking_uri(uri))
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
    finally:
        client.set_terminated(run_id, status=status)


def read_runs(experiment: str, uri: str | None = None):
    """All runs of ``experiment`` as a pandas DataFrame (params.*, metrics.*, tags.* columns)."""
    import mlflow
    mlflow.set_tracking_uri(tracking_uri(uri))
    return mlflow.search_runs(experiment_names=[experiment])


def ensure_experiment(experiment: str, uri: str | None = None) -> str:
    """The id of ``experiment``, created if missing (call it once before starting worker
    processes, so that they do not race to create the store or the experiment)."""
    from mlflow.tracking import MlflowClient
    client = MlflowClient(tracking_uri=tracking_uri(uri))
    found = client.get_experiment_by_name(experiment)
    return found.experiment_id if found else client.create_experiment(experiment)


def find_runs(experiment: str, tags: dict[str, str] | None = None, uri: str | None = None) -> list[dict]:
    """Active (not deleted) runs of ``experiment`` whose tags equal ``tags``, as dicts with
    run_id, status, start_time, tags, params and metrics (latest values); [] if no such experiment."""
    from mlflow.tracking import MlflowClient
    client = MlflowClient(tracking_uri=tracking_uri(uri))
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
    from mlflow.tracking import MlflowClient
    client = MlflowClient(tracking_uri=tracking_uri(uri))
    for run_id in run_ids:
        client.set_terminated(run_id, status=status)


def delete_runs(run_ids: Iterable[str], uri: str | None = None) -> None:
    """Move runs to MLflow's deleted runs (``mlflow runs restore --run-id ID`` brings one back)."""
    from mlflow.tracking import MlflowClient
    client = MlflowClient(tracking_uri=tracking_uri(uri))
    for run_id in run_ids:
        client.delete_run(run_id)


def metric_history(run_id: str, keys: Iterable[str], uri: str | None = None) -> dict[str, list[tuple[int, float]]]:
    """Every logged (step, value) of each metric in ``keys``, sorted by step."""
    from mlflow.tracking import MlflowClient
    client = MlflowClient(tracking_uri=tracking_uri(uri))
    return {key: sorted((m.step, m.value) for m in client.get_metric_history(run_id, key)) for key in keys}


def artifact_dir_note(uri: str | None = None) -> str:
    resolved = tracking_uri(uri)
    if resolved.startswith("sqlite:///"):
        db = Path(resolved.removeprefix("sqlite:///"))
        return f"mlflow ui --backend-store-uri {resolved}  (store {db.resolve()})"
    return f"open {resolved} in a browser (tracking server)"
