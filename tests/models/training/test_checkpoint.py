"""models.training.checkpoint: round trip, atomic writes and the mismatch errors."""

from __future__ import annotations

import pytest
import torch

from models.training.checkpoint import CheckpointError, load_checkpoint, load_model, save_checkpoint
from models.nets.fashion_cnn import FashionCNN, FashionCNNConfig


def test_round_trip(tmp_path):
    cfg = FashionCNNConfig(conv1_channels=5, conv2_kernel=4, hidden_units=17)
    net = FashionCNN(cfg)
    path = save_checkpoint(tmp_path / "a" / "net.pt", net, {"test_acc": 0.5})
    assert [p.name for p in path.parent.iterdir()] == ["net.pt"], "no temporary file may remain"
    loaded, payload = load_model(path, expected_config=cfg)
    assert payload["metrics"] == {"test_acc": 0.5} and payload["format_version"] == 1
    x = torch.randn(4, 1, 28, 28)
    torch.testing.assert_close(loaded(x), net(x), rtol=0, atol=0)


def test_config_mismatch_is_explained(tmp_path):
    path = save_checkpoint(tmp_path / "net.pt", FashionCNN(FashionCNNConfig(conv1_channels=5)))
    with pytest.raises(CheckpointError, match=r"conv1_channels: checkpoint 5 vs expected 16"):
        load_model(path, expected_config=FashionCNNConfig())


def test_weights_that_do_not_fit_the_config(tmp_path):
    path = save_checkpoint(tmp_path / "net.pt", FashionCNN())
    payload = torch.load(path, weights_only=True)
    payload["config"]["hidden_units"] = 50
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=r"fc1.weight: config needs \(50, 9216\), file has \(100, 9216\)"):
        load_model(path)


def test_unreadable_and_missing_files(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "absent.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable sysdl checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"format_version": 99}, tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="checkpoint format 99"):
        load_checkpoint(tmp_path / "future.pt")
