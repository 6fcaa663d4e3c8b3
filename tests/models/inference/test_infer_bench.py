"""`sysdl infer-bench`: a path the user names must exist; a stand-in for an absent default is labelled
for what it is, the original network."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from models.cli.main import main
from models.nets.fashion_cnn import FashionCNN, FashionCNNConfig
from models.training.checkpoint import save_checkpoint

TINY = FashionCNNConfig(conv1_channels=2, conv2_channels=2, hidden_units=4)


def tiny_checkpoint(path):
    torch.manual_seed(0)
    return save_checkpoint(path, FashionCNN(TINY))


def test_a_missing_pruned_path_the_user_named_is_an_error(tmp_path, capsys):
    base = tiny_checkpoint(tmp_path / "base.pt")
    assert main(["infer-bench", "--quick", "--dataset", "synthetic", "--original", str(base),
                 "--pruned", str(tmp_path / "missing.pt"), "--out-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("sysdl infer-bench: error: ") and "missing.pt" in err and "\n" not in err, err
    assert not (tmp_path / "infer_bench.csv").exists()


def test_an_absent_default_pruned_model_is_labelled_as_the_original(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)                     # no runs/pruned_selected.pt here
    base = tiny_checkpoint(tmp_path / "base.pt")
    assert main(["infer-bench", "--quick", "--dataset", "synthetic", "--original", str(base),
                 "--out-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    names = set(pd.read_csv(tmp_path / "infer_bench.csv")["implementation"])
    assert {"(a) original nn.Module", "(c) MatmulNet (original weights)"} <= names
    assert not any("pruned" in name for name in names), names
    assert "pruned nn.Module" not in out.split("csv:")[0]
    written = (tmp_path / "infer_bench.csv").read_bytes()
    assert main(["infer-bench", "--quick", "--dataset", "synthetic", "--original", str(base),
                 "--out-dir", str(tmp_path)]) == 2          # a second run does not replace the first
    err = capsys.readouterr().err.strip()
    assert "holds an earlier run" in err and "--overwrite" in err and "\n" not in err, err
    assert (tmp_path / "infer_bench.csv").read_bytes() == written


def test_rates_and_peak_fractions_follow_from_the_times(tmp_path):
    """GFLOP/s is each implementation's network FLOPs over its time; the percent is of the CPU
    peak; MatmulNet is timed as it chooses and as the layered program."""
    from models.inference.infer_bench import run
    from sysdl_kernels.flops import totals
    base, pruned = tiny_checkpoint(tmp_path / "base.pt"), tmp_path / "pruned.pt"
    torch.manual_seed(1)
    smaller = FashionCNNConfig(conv1_channels=1, conv2_channels=1, hidden_units=3)
    save_checkpoint(pruned, FashionCNN(smaller))
    x, y = torch.rand(40, 1, 28, 28), torch.randint(0, 10, (40,))
    rows, _ = run(base, pruned, x, y, repeats=1, batch_sizes=(40,), peak=1e11)
    assert {"(c) MatmulNet", "(c) MatmulNet layered"} <= {row["implementation"] for row in rows}
    flops = {"original": totals(TINY.cost())["flops"], "pruned": totals(smaller.cost())["flops"]}
    for row in rows:
        network = "original" if "original" in row["implementation"] else "pruned"
        rate = row["images"] * flops[network] / row["seconds"]
        assert row["GFLOP/s"] == pytest.approx(rate / 1e9, rel=1e-9), row
        assert row["% of CPU FMA peak"] == pytest.approx(100 * rate / 1e11, rel=1e-9), row
