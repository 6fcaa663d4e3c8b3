"""Shared fixtures: the real data set (skipped where absent) and isolated MLflow stores."""

from __future__ import annotations

import pytest

from models.data import DataNotFoundError, load_fashion_mnist


@pytest.fixture(scope="session")
def fashion_mnist():
    """The real Fashion-MNIST, loaded once; tests that need it skip where it is not installed."""
    try:
        return load_fashion_mnist(download=False)
    except DataNotFoundError as err:
        pytest.skip(f"real Fashion-MNIST not installed (apt-get install dataset-fashion-mnist): {err}")


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch):
    """A private sqlite MLflow store; artifacts land under tmp_path too (MLflow resolves them from cwd)."""
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri
