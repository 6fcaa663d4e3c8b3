"""Checkpoints of the Fashion-MNIST CNN: {format_version, config, state_dict, metrics}.

Written atomically (a temporary file in the same directory, then ``os.replace``), so an
interrupted save never leaves a half-written checkpoint; loaded with ``weights_only=True``,
so a checkpoint can hold only tensors and plain Python values. An optional ``resume`` entry
carries the optimizer and scheduler state needed to continue training.

    python -m models.training.checkpoint runs/base.pt     # prints the config and metrics of a checkpoint
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import torch

from models.nets.fashion_cnn import FashionCNN, FashionCNNConfig
from models.shared.errors import UserError

FORMAT_VERSION = 1


class CheckpointError(RuntimeError, UserError):
    """A checkpoint cannot be read or does not fit the model asked for."""


def atomic_write(path: str | os.PathLike, write) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, flush it to disk, then rename it
    over ``path``: readers see the old file or the complete new one, never a partial one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_checkpoint(path: str | os.PathLike, model: FashionCNN, metrics: dict | None = None,
                    resume: dict | None = None) -> Path:
    payload = {
        "format_version": FORMAT_VERSION,
        "config": model.config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "metrics": dict(metrics or {}),
    }
    if resume is not None:
        payload["resume"] = resume
    return atomic_write(path, lambda fh: torch.save(payload, fh))


def load_checkpoint(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; train one with `sysdl train`")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for a corrupt or foreign file
        raise CheckpointError(f"{path} is not a readable sysdl checkpoint: {err}") from err
    if not isinstance(payload, dict) or payload.get("format_version") != FORMAT_VERSION:
        found = payload.get("format_version") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"{path}: checkpoint format {found!r}, this sysdl reads "
                              f"format {FORMAT_VERSION}")
    return payload


def load_model(path: str | os.PathLike, expected_config: FashionCNNConfig | None = None,
               device: str | torch.device = "cpu") -> tuple[FashionCNN, dict]:
    """Build the model a checkpoint describes and load its weights; returns (model, payload)."""
    payload = load_checkpoint(path)
    config = FashionCNNConfig.from_dict(payload["config"])
    if expected_config is not None and expected_config != config:
        diffs = [f"{k}: checkpoint {v!r} vs expected {expected_config.to_dict()[k]!r}"
                 for k, v in config.to_dict().items() if expected_config.to_dict()[k] != v]
        raise CheckpointError(f"{path} holds a different network than the one asked for: "
                              + "; ".join(diffs))
    model = FashionCNN(config)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in payload["state_dict"].items()}
    if expected != found:
        bad = sorted(k for k in expected.keys() | found.keys() if expected.get(k) != found.get(k))
        raise CheckpointError(f"{path}: its weights do not match its config "
                              + "; ".join(f"{k}: config needs {expected.get(k)}, file has {found.get(k)}"
                                          for k in bad))
    model.load_state_dict(payload["state_dict"])
    return model.to(device), payload


if __name__ == "__main__":
    ckpt = load_checkpoint(sys.argv[1])
    print("config:", ckpt["config"])
    print("metrics:", ckpt["metrics"])
