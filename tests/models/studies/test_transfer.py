"""models.data.image_folder and `sysdl study transfer`: an image folder the test writes (both layouts),
the class halves, the transfer network's frozen layers and base weights, the refusal to download
ImageNet weights unasked, and --pretrain then the study end to end with --quick on a private MLflow
store. Nothing is downloaded."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from models import studies
from models.training import tracking
from models.training.checkpoint import save_checkpoint
from models.data.datasets import DataNotFoundError, synthetic_splits
from models.data.image_folder import class_halves, load_image_folder
from models.studies import transfer
from tests.models.studies.helpers import QUICK, study_args, one_thread  # noqa: F401 (a fixture)

pytestmark = pytest.mark.usefixtures("one_thread")   # the machine is shared

COUNTS = {"cat": 5, "dog": 3, "emu": 4}       # images per class, unequal on purpose


def write_folder(root, counts=COUNTS, seed: int = 0):
    """root/CLASS/i.png: non-square images, grey for one class (ImageFolder converts to RGB)."""
    rng = np.random.default_rng(seed)
    for label, (name, count) in enumerate(counts.items()):
        (root / name).mkdir(parents=True)
        for i in range(count):
            shape = (11, 17) if name == "emu" else (11, 17, 3)
            pixels = rng.integers(0, 256, size=shape, dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def test_image_folder_is_split_per_class_and_resized(tmp_path):
    found = load_image_folder(write_folder(tmp_path / "set"), image_size=12, val_fraction=0.25, seed=0)
    assert found.classes == sorted(COUNTS)
    data = found.data
    assert data.num_classes == 3 and data.train.x.shape[1:] == (3, 12, 12)
    total = torch.bincount(data.train.y, minlength=3) + torch.bincount(data.test.y, minlength=3)
    assert total.tolist() == list(COUNTS.values())
    assert torch.bincount(data.test.y, minlength=3).tolist() == [1, 1, 1]   # round(0.25 n), at least 1
    again = load_image_folder(tmp_path / "set", image_size=12, val_fraction=0.25, seed=0)
    assert torch.equal(again.data.test.x, data.test.x)


def test_image_folder_with_train_and_val_folders(tmp_path):
    write_folder(tmp_path / "set" / "train")
    write_folder(tmp_path / "set" / "val", {name: 2 for name in COUNTS}, seed=1)
    data = load_image_folder(tmp_path / "set", image_size=8).data
    assert len(data.train) == sum(COUNTS.values()) and len(data.test) == 6
    with pytest.raises(DataNotFoundError, match="no such folder"):
        load_image_folder(tmp_path / "missing")


def test_class_halves_relabel_and_convert_to_rgb():
    data = synthetic_splits(n_train=200, n_test=100, num_classes=4, image_size=10)
    source, target = class_halves(data, [0.5], [0.25], image_size=16, per_class=5)
    assert source.data.train.x.shape[1:] == (3, 16, 16)
    assert torch.bincount(target.data.train.y).tolist() == [5, 5]
    assert target.classes == ["2", "3"] and target.data.num_classes == 2
    from models.data.image_folder import IMAGENET_MEAN, IMAGENET_STD
    pixels = target.data.train.x * torch.tensor(IMAGENET_STD).reshape(1, 3, 1, 1) + torch.tensor(
        IMAGENET_MEAN).reshape(1, 3, 1, 1)
    assert torch.allclose(pixels[:, 0], pixels[:, 1], atol=1e-5) and torch.allclose(pixels[:, 0], pixels[:, 2], atol=1e-5)


def test_transfer_net_loads_its_base_and_freezes_all_but_the_last_layer(tmp_path):
    torch.manual_seed(0)
    base = transfer.TransferConfig(num_classes=5).build()
    path = save_checkpoint(tmp_path / "base.pt", base)
    sha = transfer.file_sha256(path)
    frozen = transfer.TransferConfig(3, str(path), sha, freeze=True).build()
    assert torch.equal(frozen.net.conv1.weight, base.net.conv1.weight)
    assert frozen.net.fc.out_features == 3
    assert [name for name, p in frozen.named_parameters() if p.requires_grad] == ["net.fc.weight", "net.fc.bias"]
    frozen.train()
    assert frozen.net.fc.training and not frozen.net.bn1.training and not frozen.net.layer4.training
    tuned = transfer.TransferConfig(3, str(path), sha).build().train()
    assert all(p.requires_grad for p in tuned.parameters()) and tuned.net.bn1.training


def test_imagenet_weights_are_never_downloaded_unasked(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(DataNotFoundError, match="--download"):
        transfer.imagenet_state_dict(download=False)


def test_pretrain_then_transfer_quick_end_to_end(mlflow_store, tmp_path, capsys):
    out = tmp_path / "out"
    assert studies.main(study_args("transfer", "--pretrain", *QUICK, "--source", "synthetic",
                                   "--out-dir", str(out))) == 0
    base = out / "study-transfer-pretrain-quick" / "base.pt"
    assert base.is_file()
    target = write_folder(tmp_path / "target")
    args = study_args("transfer", *QUICK, "--base", str(base), "--target", str(target), "--out-dir", str(out))
    assert studies.main(args) == 0
    folder = out / "study-transfer-quick"
    for name in ("transfer.md", "transfer.csv", "transfer.png", "target_classes.md", "target_classes.csv",
                 "target_classes.png", "target_samples.png"):
        assert (folder / name).stat().st_size > 0, name
    table = pd.read_csv(folder / "transfer.csv")
    assert table["lr"].tolist() == [*transfer.FINE_TUNE_LRS, *transfer.FEATURE_LRS]
    features = table[table["mode"] == "feature extraction"]
    assert (features["trainable parameters"] == 2048 * 3 + 3).all()
    counts = pd.read_csv(folder / "target_classes.csv")
    assert counts["class"].tolist() == sorted(COUNTS)
    assert (counts["training images"] + counts["validation images"]).tolist() == list(COUNTS.values())
    runs = tracking.find_runs("study-transfer-quick")
    assert len(runs) == 7 and all(r["status"] == "FINISHED" for r in runs)
    best = table.loc[table["best validation accuracy"].idxmax()]
    assert f"winner: {best['mode']} at lr {best['lr']:g}" in (folder / "transfer.md").read_text()
    capsys.readouterr()
    assert studies.main(args) == 0
    assert "0 runs trained, 7 were finished before" in capsys.readouterr().out


def test_verdict_names_the_winner_and_the_other_approach():
    table = pd.DataFrame([
        {"mode": "fine-tuning", "lr": 0.01, "best validation accuracy": 0.9, "training s per epoch": 8.0},
        {"mode": "fine-tuning", "lr": 0.1, "best validation accuracy": 0.7, "training s per epoch": 8.0},
        {"mode": "feature extraction", "lr": 0.1, "best validation accuracy": 0.8, "training s per epoch": 2.0}])
    text = transfer.verdict(table)
    assert text.startswith("winner: fine-tuning at lr 0.01 (best validation accuracy 0.900)")
    assert "best feature extraction: lr 0.1, 0.800, at 0.25x the winner's time per epoch" in text
