"""`sysdl scaling`: the quick run end to end (tiny ResNet, synthetic data, 1 and 2 spawned
workers), and the summary arithmetic on known step times."""

from __future__ import annotations

import pandas as pd
import pytest

from models.nets.fashion_resnet import fashion_resnet
from models.distributed.scaling import summarise


def test_fashion_resnet_takes_grey_28x28_images():
    import torch
    for name in ("tiny", "resnet18"):
        assert fashion_resnet(name)(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    with pytest.raises(ValueError, match="unknown ResNet"):
        fashion_resnet("resnet7")


def test_summary_arithmetic():
    rows = [{"workers": 1, "mode": "strong", "strategy": "none", "global_batch": 64, "worker_batch": 64, "step_s": 1.0},
            {"workers": 2, "mode": "strong", "strategy": "ring", "global_batch": 64, "worker_batch": 32, "step_s": 0.8},
            {"workers": 2, "mode": "strong", "strategy": "tree", "global_batch": 64, "worker_batch": 32, "step_s": 0.5}]
    frame = summarise(pd.DataFrame(rows), train_images=640, price=3.6).set_index(["strategy", "workers"])
    assert frame.loc[("ring", 1), "images_per_s"] == 64 and frame.loc[("tree", 1), "efficiency"] == 1.0
    assert frame.loc[("ring", 2), "images_per_s"] == pytest.approx(80)
    assert frame.loc[("ring", 2), "efficiency"] == pytest.approx(80 / 128)
    assert frame.loc[("tree", 2), "epoch_s"] == pytest.approx(10 * 0.5)
    assert frame.loc[("tree", 2), "cost_per_epoch"] == pytest.approx(2 * 3.6 * 5 / 3600)


def test_quick_scaling_writes_table_and_plot(tmp_path):
    from models.cli.main import main
    assert main(["scaling", "--quick", "--strategies", "ring", "recursive_doubling",
                 "--out-dir", str(tmp_path)]) == 0
    frame = pd.read_csv(tmp_path / "scaling.csv")
    assert set(frame["workers"]) == {1, 2} and set(frame["mode"]) == {"strong", "weak"}
    assert set(frame["strategy"]) == {"ring", "recursive_doubling"}
    weak = frame[frame["mode"] == "weak"]
    assert set(weak["worker_batch"]) == {16} and set(weak["global_batch"]) == {16, 32}
    assert (frame["images_per_s"] > 0).all() and frame["efficiency"].notna().all()
    assert (tmp_path / "scaling.png").stat().st_size > 0 and "efficiency" in (tmp_path / "scaling.md").read_text()


@pytest.mark.parametrize("flag", ["--workers", "--global-batch", "--worker-batch", "--steps", "--group-size"])
def test_non_positive_counts_are_refused_naming_the_flag(flag, capsys):
    from models.distributed.scaling import add_arguments
    from models.shared.command import new_parser
    parser = new_parser("sysdl scaling")
    add_arguments(parser)
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args([flag, "0"])
    assert exit_.value.code == 2 and flag in capsys.readouterr().err


def test_quick_fills_in_only_what_the_user_did_not_give():
    import argparse
    from models.distributed import scaling
    parser = argparse.ArgumentParser()
    scaling.add_arguments(parser)
    args = parser.parse_args(["--quick", "--steps", "5", "--global-batch", "48"])
    scaling.resolve_settings(args)
    assert (args.steps, args.global_batch) == (5, 48)                       # what the user gave
    assert (args.model, args.workers, args.warmup) == ("tiny", [1, 2], 1)   # --quick's own
    args = parser.parse_args([])
    scaling.resolve_settings(args)
    assert (args.model, args.steps, args.workers) == ("resnet18", 8, [1, 2, 4])
