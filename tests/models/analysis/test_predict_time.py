"""PALEO-style prediction: the per-layer arithmetic on hand-computed numbers, and
`sysdl predict-time --quick` end to end (it measures, but asserts no speed)."""

from __future__ import annotations

import pandas as pd
import pytest

from models.nets.fashion_cnn import FashionCNNConfig
from sysdl_kernels.perf_model import (DEVICES, TRAINING_FACTOR, Device, exact_ppp, layer_seconds,
                                      predict_layers, probed_device)


def test_layer_time_is_compute_plus_traffic_at_ppp():
    device = Device("toy", peak_flops=1e9, bandwidth=1e8, default_ppp=0.5, source="test")
    assert layer_seconds(1e9, 1e8, device, ppp=1.0) == pytest.approx(2.0)
    assert layer_seconds(1e9, 1e8, device) == pytest.approx(4.0)          # the device's default PPP
    with pytest.raises(ValueError, match="percent of peak"):
        layer_seconds(1.0, 1.0, device, ppp=1.5)


def test_batch_scales_activations_not_weights():
    costs = FashionCNNConfig().cost()
    device = probed_device(1e11, 1e10)
    one, two = predict_layers(costs, 1, device), predict_layers(costs, 2, device)
    fc1 = next(i for i, c in enumerate(costs) if c.name == "fc1")
    flatten = next(i for i, c in enumerate(costs) if c.name == "flatten")
    assert one[flatten]["bytes"] == 0                       # a view: nothing moves
    cost = costs[fc1]
    assert one[fc1]["bytes"] == 4 * (cost.input_activations + cost.activations + cost.params)
    assert two[fc1]["bytes"] == 4 * (2 * (cost.input_activations + cost.activations) + cost.params)
    assert two[fc1]["flops"] == 2 * one[fc1]["flops"] == 2 * cost.flops
    train = predict_layers(costs, 2, device, training=True)
    assert sum(r["seconds"] for r in train) == pytest.approx(TRAINING_FACTOR * sum(r["seconds"] for r in two))


def test_exact_ppp_reproduces_the_measurement():
    costs = FashionCNNConfig().cost()
    device = probed_device(1e11, 1e10)
    at_one = sum(r["seconds"] for r in predict_layers(costs, 100, device, 1.0))
    ppp = exact_ppp(at_one, measured=at_one * 4)
    assert ppp == pytest.approx(0.25)
    assert sum(r["seconds"] for r in predict_layers(costs, 100, device, ppp)) == pytest.approx(at_one * 4)


def test_datasheet_devices_are_ordered_by_generation():
    peaks = [DEVICES[name].peak_flops for name in ("K80", "P100", "V100", "A100", "H100")]
    assert peaks == sorted(peaks)


def test_quick_prediction_writes_tables_and_chart(tmp_path, capsys):
    from models.cli.main import main
    assert main(["predict-time", "--quick", "--out-dir", str(tmp_path)]) == 0
    ours = pd.read_csv(tmp_path / "predict_time_ours.csv")
    assert set(ours["pass"]) == {"forward", "train_step"}
    assert (ours["measured_ms"] > 0).all() and (ours["exact_ppp"] > 0).all()
    classic = pd.read_csv(tmp_path / "predict_time_classic.csv")
    assert set(classic["network"]) == {"vgg16", "googlenet", "resnet50"}
    assert set(classic["device"]) == set(DEVICES)
    k80 = classic[classic["device"] == "K80"].set_index("network")
    assert k80.loc["vgg16", "batch1_ms"] > k80.loc["resnet50", "batch1_ms"] > k80.loc["googlenet", "batch1_ms"]
    assert (tmp_path / "predict_time_layers.png").stat().st_size > 0
    assert "exact_ppp" in capsys.readouterr().out


def test_a_training_batch_larger_than_the_forward_batch_is_refused(tmp_path, capsys):
    from models.cli.main import main
    assert main(["predict-time", "--batch", "16", "--train-batch", "32", "--out-dir", str(tmp_path)]) == 2
    assert "--train-batch (32) at most --batch (16)" in capsys.readouterr().err


def predict_args(argv):
    from models.analysis.predict_time import add_arguments, resolve_sizes
    from models.shared.command import new_parser
    parser = new_parser("sysdl predict-time")
    add_arguments(parser)
    args = parser.parse_args(argv)
    resolve_sizes(args)
    return args


def test_quick_keeps_the_batches_the_user_gave():
    args = predict_args(["--quick", "--batch", "16", "--repeats", "5"])
    assert (args.batch, args.train_batch, args.gpu_batch, args.repeats) == (16, 16, 8, 5)
    args = predict_args(["--quick"])
    assert (args.batch, args.train_batch, args.gpu_batch, args.repeats) == (64, 32, 8, 3)
    args = predict_args(["--train-batch", "100"])
    assert (args.batch, args.train_batch, args.gpu_batch, args.repeats) == (1000, 100, 64, 10)


@pytest.mark.parametrize("flag", ["--batch", "--train-batch", "--gpu-batch", "--repeats"])
def test_a_non_positive_batch_is_refused_naming_the_flag(tmp_path, capsys, flag):
    from models.cli.main import main
    assert main(["predict-time", "--quick", flag, "-5", "--out-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{flag} must be >= 1, got -5" in err[0]
    assert not (tmp_path / "predict_time.md").exists()
