"""What the tests read back from MLflow: every run of an experiment as one DataFrame."""

from __future__ import annotations

from models.training.tracking import tracking_uri


def read_runs(experiment: str, uri: str | None = None):
    """All runs of ``experiment`` as a pandas DataFrame (params.*, metrics.*, tags.* columns)."""
    import mlflow
    mlflow.set_tracking_uri(tracking_uri(uri))
    return mlflow.search_runs(experiment_names=[experiment])
