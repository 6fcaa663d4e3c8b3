"""The `sysdl` command line: subcommands listed, user errors reported cleanly, bench-train smoke run."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from models.cli.main import main


def sysdl(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "models.cli.main", *args], capture_output=True, text=True,
                          **kwargs)


def test_help_lists_subcommands():
    out = sysdl("--help")
    assert out.returncode == 0
    for name in ("train", "bench-train"):
        assert name in out.stdout


def test_bad_config_is_a_clean_error(capsys):
    assert main(["train", "--conv1-kernel", "40", "--dataset", "synthetic", "--no-track"]) == 2
    assert "conv1: kernel 40x40 is larger than its 28x28 input" in capsys.readouterr().err


def test_missing_data_dir_is_a_clean_error(tmp_path, capsys):
    assert main(["train", "--data-dir", str(tmp_path), "--no-track"]) == 2
    assert "does not hold Fashion-MNIST" in capsys.readouterr().err


@pytest.mark.needs_data
def test_train_quick(tmp_path, fashion_mnist):
    """sysdl train --quick on the real data set (skips where it is not installed)."""
    out = sysdl("train", "--quick", "--hidden-units", "8", "--no-track", "--no-progress",
                "--checkpoint", str(tmp_path / "c.pt"))
    assert out.returncode == 0, out.stderr
    assert "final train accuracy" in out.stdout and "time to 90% training accuracy" in out.stdout
    assert (tmp_path / "c.pt").exists() and (tmp_path / "c_loss.png").exists()


def test_bench_train_quick(tmp_path):
    out = sysdl("bench-train", "--quick", "--out", str(tmp_path / "b.json"))
    assert out.returncode == 0, out.stderr
    result = json.loads((tmp_path / "b.json").read_text())
    assert len(result["times"]["plain"]) == len(result["times"]["sysdl"]) == 2
    assert result["median_ratio"] > 0
    # Same initial weights, data order and math: both loops reach similar accuracy.
    assert result["test_acc"]["plain"] == pytest.approx(result["test_acc"]["sysdl"], abs=0.05)


def test_gradcheck_command():
    out = sysdl("gradcheck", "--samples", "5")
    assert out.returncode == 0, out.stderr
    assert "PASS" in out.stdout and "fc1" in out.stdout


@pytest.mark.parametrize("command", ["profile", "converge"])
def test_scratch_commands_quick(command, tmp_path):
    extra = ["--no-track"] if command == "converge" else []
    out = sysdl("scratch", command, "--quick", "--dataset", "synthetic", "--out-dir", str(tmp_path),
                "--no-progress", *extra)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / f"scratch_{'profile' if command == 'profile' else 'convergence'}.png").exists()


def test_prune_quick_then_report(tmp_path):
    """The CI end-to-end path: a quick pruning session from a freshly trained base, then the report.
    The quick base is trained only where no --base is named (and runs/quick/base.pt is absent)."""
    prune_dir = tmp_path / "prune"
    out = sysdl("prune", "--quick", "--dataset", "synthetic", "--no-track", "--no-progress",
                "--out-dir", str(prune_dir), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "done: 6 steps" in out.stdout
    report = sysdl("report", "prune", "--prune-dir", str(prune_dir), "--out-dir", str(tmp_path),
                   "--threshold", "0.0", "--selected", str(tmp_path / "selected.pt"))
    assert report.returncode == 0, report.stderr
    assert "selected (lowest FLOPs" in report.stdout and (tmp_path / "prune_pareto.png").exists()


def test_infer_bench_quick(tmp_path):
    base = tmp_path / "base.pt"
    trained = sysdl("train", "--dataset", "synthetic", "--epochs", "1", "--no-track", "--no-progress",
                    "--checkpoint", str(base))
    assert trained.returncode == 0, trained.stderr
    missing = sysdl("infer-bench", "--quick", "--dataset", "synthetic", "--original", str(base),
                    "--pruned", str(tmp_path / "missing.pt"), "--out-dir", str(tmp_path))
    assert missing.returncode == 2 and "missing.pt" in missing.stderr     # a named path is no fallback
    out = sysdl("infer-bench", "--quick", "--dataset", "synthetic", "--original", str(base),
                "--pruned", str(base), "--out-dir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    for name in ("(a) original nn.Module", "(b) pruned nn.Module", "(c) MatmulNet", "(d) MatmulNet triton"):
        assert name in out.stdout
    import pandas as pd
    rows = pd.read_csv(tmp_path / "infer_bench.csv")
    assert set(rows["batch"]) == {64, 1000} and (rows["seconds"] > 0).all()
    assert "False" not in out.stdout.split("same predictions as the nn.Module")[1].split("csv:")[0]
    assert "(c) MatmulNet layered: MatmulNet[cpu] chunk 256: conv1=" in out.stdout    # which lowering ran
    ran = out.stdout.split("(c) MatmulNet: MatmulNet[cpu] chunk 256: ")[1]          # and which program
    assert ran.startswith("fused (one Numba kernel; the layered program, slower: conv1=") or ran.startswith("conv1=")
