"""models.data.augment, models.nets.cifar_resnet and `sysdl study cutout|batch-augment`: cutout zeroes exactly its
(clipped) square, batch augmentation's copies differ only where their cutouts do and carry repeated
labels, the CIFAR ResNet has 6n + 2 layers, and the study end to end with --quick on a private
MLflow store (synthetic images: nothing is downloaded)."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from models import studies
from models.training import tracking
from models.data.augment import BatchAugment, cutout, cutout_mask, random_crop
from models.nets.cifar_resnet import CifarResNetConfig, weighted_layers
from models.data.datasets import synthetic_splits
from models.training.loop import TrainConfig, fit
from tests.models.studies.helpers import QUICK, study_args, one_thread  # noqa: F401 (a fixture)

pytestmark = pytest.mark.usefixtures("one_thread")   # the machine is shared


def nonzero_images(n: int, c: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """Images without a zero pixel, so every zero after augmentation is cutout's."""
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed)) + 1.0


def square_by_loops(h: int, w: int, size: int, row: int, col: int) -> torch.Tensor:
    expected = torch.zeros(h, w, dtype=torch.bool)
    for r in range(row - size // 2, row - size // 2 + size):
        for c in range(col - size // 2, col - size // 2 + size):
            if 0 <= r < h and 0 <= c < w:
                expected[r, c] = True
    return expected


# ----------------------------------------------------------------------------------------------
# Cutout
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [4, 3])
def test_cutout_zeroes_exactly_the_clipped_square(size):
    x = nonzero_images(3, 2, 7, 9)                   # non-square images
    # Near the top-right corner (clipped on two sides), inside, and at the bottom-left pixel.
    centres = torch.tensor([[1, 8], [3, 4], [6, 0]])
    out = cutout(x, size, centres)
    for i, (row, col) in enumerate(centres.tolist()):
        square = square_by_loops(7, 9, size, row, col)
        assert torch.equal(out[i][:, square], torch.zeros_like(out[i][:, square]))
        assert torch.equal(out[i][:, ~square], x[i][:, ~square])           # the rest untouched
    assert square_by_loops(7, 9, size, 1, 8).sum() < size * size           # the corner one was clipped
    assert torch.equal(x, nonzero_images(3, 2, 7, 9))                      # the input is not modified


def test_cutout_refuses_bad_arguments():
    with pytest.raises(ValueError, match="one \\(row, column\\) centre per image"):
        cutout(torch.ones(2, 1, 4, 4), 2, torch.zeros(3, 2))
    with pytest.raises(ValueError, match="side must be >= 1"):
        cutout_mask(4, 4, 0, torch.zeros(1, 2))


def test_random_crop_takes_windows_of_the_padded_image():
    x = nonzero_images(16, 2, 5, 6)
    out = random_crop(x, 2, torch.Generator().manual_seed(1))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for image, source in zip(out, padded):
        windows = [(t, l) for t in range(5) for l in range(5) if torch.equal(source[:, t:t + 5, l:l + 6], image)]
        assert windows, "a crop is not a 5x6 window of its padded image"
    assert torch.equal(random_crop(x, 0, None), x)


# ----------------------------------------------------------------------------------------------
# Batch augmentation
# ----------------------------------------------------------------------------------------------

def test_batch_copies_differ_only_where_their_cutouts_differ_and_labels_repeat():
    copies, size = 4, 3
    x, y = nonzero_images(5, 3, 8, 10), torch.tensor([3, 1, 4, 1, 5])
    out, labels = BatchAugment(copies=copies, pad=0, flip=False, cutout=size)(x, y, torch.Generator().manual_seed(0))
    assert out.shape == (5 * copies, 3, 8, 10)
    assert labels.tolist() == [label for label in y.tolist() for _ in range(copies)]
    masks = (out == 0).all(dim=1)                                          # (M*B, H, W)
    assert torch.equal((out == 0).any(dim=1), masks)                       # zeroed in every channel at once
    for i in range(5):
        group = range(i * copies, (i + 1) * copies)
        for a in group:
            rows, cols = masks[a].any(1).nonzero().flatten(), masks[a].any(0).nonzero().flatten()
            assert masks[a].sum() == len(rows) * len(cols) and 0 < len(rows) <= size and 0 < len(cols) <= size
            assert torch.equal(out[a][:, ~masks[a]], x[i][:, ~masks[a]])
            for b in group:
                differs = (out[a] != out[b]).any(dim=0)
                assert torch.equal(differs, masks[a] ^ masks[b])
        assert len({tuple(masks[a].flatten().tolist()) for a in group}) > 1     # independent draws


def test_batch_augment_flips_and_crops_each_copy_independently_and_reproducibly():
    x, y = nonzero_images(3, 1, 6, 6), torch.arange(3)
    flip_only = BatchAugment(copies=8, pad=0, flip=True)
    out, _ = flip_only(x, y, torch.Generator().manual_seed(0))
    for k, image in enumerate(out):
        assert torch.equal(image, x[k // 8]) or torch.equal(image, x[k // 8].flip(-1))
    standard = BatchAugment(copies=2, cutout=2)
    first, _ = standard(x, y, torch.Generator().manual_seed(5))
    again, _ = standard(x, y, torch.Generator().manual_seed(5))
    assert torch.equal(first, again)
    with pytest.raises(ValueError, match="copies >= 1"):
        BatchAugment(copies=0)


def test_fit_with_batch_augmentation_reports_an_accuracy_in_0_1():
    torch.manual_seed(0)
    data = synthetic_splits(n_train=96, n_test=32)
    model = CifarResNetConfig(n=1, in_channels=1, width=4).build()
    cfg = TrainConfig(epochs=1, batch_size=32, lr=0.05, hflip=False, schedule="constant")
    result = fit(model, data, cfg, progress=False, batch_transform=BatchAugment(copies=3, cutout=4))
    assert 0 <= result.epochs[0].train_acc <= 1


# ----------------------------------------------------------------------------------------------
# The CIFAR ResNet
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 2, 7])
def test_cifar_resnet_depth_is_6n_plus_2(n):
    config = CifarResNetConfig(n=n)
    assert weighted_layers(config.build()) == config.depth == 6 * n + 2


def test_resnet44_size_and_shapes():
    model = CifarResNetConfig(n=7).build()
    assert sum(p.numel() for p in model.parameters()) == 658_586              # He et al.: 0.66 M
    small = CifarResNetConfig(n=1, num_classes=5, in_channels=1).build().eval()
    assert small(torch.randn(2, 1, 28, 28)).shape == (2, 5)
    assert small(torch.randn(1, 1, 27, 20)).shape == (1, 5)                   # odd, non-square


# ----------------------------------------------------------------------------------------------
# The studies end to end
# ----------------------------------------------------------------------------------------------

def test_cutout_show_quick(tmp_path):
    assert studies.main(study_args("cutout", "--show", "--quick", "--out-dir", str(tmp_path))) == 0
    assert (tmp_path / "cutout.png").stat().st_size > 0
    with pytest.raises(ValueError, match="--show"):
        studies.main(study_args("cutout", "--quick", "--out-dir", str(tmp_path)))


def test_batch_augment_quick_end_to_end(mlflow_store, tmp_path, capsys):
    args = study_args("batch-augment", *QUICK, "--out-dir", str(tmp_path / "out"), "--target", "0.5")
    assert studies.main(args) == 0
    out = tmp_path / "out" / "study-batch-augment-quick"
    for name in ("batch_augment.md", "batch_augment.csv", "val_error.png"):
        assert (out / name).stat().st_size > 0, name
    table = pd.read_csv(out / "batch_augment.csv")
    assert table["M"].tolist() == [1, 2, 4]
    assert table["examples per step"].tolist() == [64, 128, 256]
    runs = tracking.find_runs("study-batch-augment-quick")
    assert len(runs) == 3 and all(r["status"] == "FINISHED" for r in runs)
    assert sorted(r["params"]["augment.copies"] for r in runs) == ["1", "2", "4"]
    for run in runs:                                   # accuracy after every epoch, for the figure
        assert len(tracking.metric_history(run["run_id"], ["test_acc"])["test_acc"]) == 2
    capsys.readouterr()
    assert studies.main(args) == 0
    assert "0 runs trained, 3 were finished before" in capsys.readouterr().out
