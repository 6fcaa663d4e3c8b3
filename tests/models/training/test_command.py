"""`sysdl train` on the command line: where --quick writes, and user errors as one line, exit status 2."""

from __future__ import annotations

import pytest
import torch

from models.cli.main import main

FAST = ["--dataset", "synthetic", "--no-track", "--no-progress", "--conv1-channels", "2",
        "--conv2-channels", "2", "--hidden-units", "8"]


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("sysdl train: error: ") and "\n" not in err, err
    return err


def test_quick_writes_below_runs_quick(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "base.pt").write_bytes(b"a finished full run")
    assert main(["train", "--quick", *FAST]) == 0
    assert (tmp_path / "runs" / "quick" / "base.pt").exists()
    assert (tmp_path / "runs" / "base.pt").read_bytes() == b"a finished full run"


@pytest.fixture
def no_data(monkeypatch):
    """Loading data fails the test: the errors below must come before it."""
    import models.data.datasets as datasets

    def refuse(*args, **kwargs):
        raise AssertionError("data were loaded before the arguments were checked")
    monkeypatch.setattr(datasets, "load_dataset", refuse)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_is_one_line(capsys, no_data, tmp_path):
    assert main(["train", "--device", "cuda", "--checkpoint", str(tmp_path / "c.pt"), *FAST]) == 2
    assert "cuda" in one_line_error(capsys)


def test_a_nonsense_device_is_one_line(capsys, no_data, tmp_path):
    assert main(["train", "--device", "nonsense", "--checkpoint", str(tmp_path / "c.pt"), *FAST]) == 2
    assert "nonsense" in one_line_error(capsys)


def test_a_non_finite_learning_rate_is_one_line(capsys, no_data, tmp_path):
    assert main(["train", "--lr", "nan", "--checkpoint", str(tmp_path / "c.pt"), *FAST]) == 2
    assert "lr" in one_line_error(capsys)
    assert not (tmp_path / "c.pt").exists()


@pytest.mark.parametrize("flags, words", [(["--num-classes", "3"], "num_classes"),
                                          (["--in-channels", "3"], "in_channels"),
                                          (["--image-size", "32"], "image_size")])
def test_a_model_that_does_not_fit_the_data_is_one_line(capsys, tmp_path, flags, words):
    assert main(["train", *flags, "--epochs", "1", "--checkpoint", str(tmp_path / "c.pt"), *FAST]) == 2
    assert words in one_line_error(capsys)
    assert not (tmp_path / "c.pt").exists()


def test_an_existing_checkpoint_is_kept_and_the_error_says_what_to_do(capsys, tmp_path):
    checkpoint = tmp_path / "c.pt"
    assert main(["train", "--epochs", "1", "--checkpoint", str(checkpoint), *FAST]) == 0
    before = checkpoint.read_bytes()
    capsys.readouterr()
    assert main(["train", "--epochs", "1", "--checkpoint", str(checkpoint), *FAST]) == 2
    err = one_line_error(capsys)
    assert str(checkpoint) in err and "--overwrite" in err and "--resume" in err
    assert checkpoint.read_bytes() == before
    assert main(["train", "--epochs", "1", "--checkpoint", str(checkpoint), "--resume", *FAST]) == 0
    assert "nothing to resume" in capsys.readouterr().out
    assert main(["train", "--epochs", "1", "--seed", "1", "--checkpoint", str(checkpoint), "--overwrite", *FAST]) == 0
    assert checkpoint.read_bytes() != before
