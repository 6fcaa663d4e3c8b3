"""Shared fixtures: the real data set (skipped where absent) and isolated MLflow stores."""

from __future__ import annotations

import os

from sysdl_kernels.runtime import set_process_environment

# Before numpy and Numba load, as `sysdl` and the benchmarks do: the tests compile the same code.
set_process_environment()

import torch  # noqa: E402

# Triton reads TRITON_INTERPRET when it is imported: without a GPU its kernels are tested under
# the interpreter, so this conftest, which runs before any test module imports triton, owns it.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402

from models.data.datasets import DataNotFoundError, load_fashion_mnist  # noqa: E402


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


@pytest.fixture(scope="session")
def trained_small_checkpoint(tmp_path_factory, fashion_mnist):
    """A small CNN trained for one epoch on 6,000 real images: logits with real margins."""
    from models.training.checkpoint import save_checkpoint
    from models.data.datasets import DataSplits
    from models.nets.fashion_cnn import FashionCNN, FashionCNNConfig
    from models.training.loop import TrainConfig, fit
    torch.manual_seed(0)
    model = FashionCNN(FashionCNNConfig(conv1_channels=3, conv2_channels=4, hidden_units=20))
    data = DataSplits(fashion_mnist.train.head(6000), fashion_mnist.test.head(1000), None, "head")
    fit(model, data, TrainConfig(epochs=1), progress=False)
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "small.pt", model)
