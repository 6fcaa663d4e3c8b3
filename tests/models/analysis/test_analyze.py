"""sysdl_kernels.cnn_zoo and `sysdl analyze`: the analytic tables against torchvision and flop_counter.

The torchvision models are built once per module on the meta device: parameters get shapes but
no memory or initialisation, and FlopCounterMode counts from shapes, so VGG19 costs milliseconds
instead of 0.6 GB. weights=None everywhere: nothing is downloaded.
"""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch.utils.flop_counter import FlopCounterMode

from models.analysis import analyze as cli
from models.cli.main import main as sysdl
from sysdl_kernels import flops
from sysdl_kernels.cnn_zoo import ZOO, network_costs

TORCHVISION = {  # zoo name -> torchvision builder keyword arguments
    "alexnet": {}, "vgg16": {}, "vgg19": {}, "resnet50": {},
    "googlenet": {"aux_logits": False, "init_weights": False},
}


def _measure(name: str) -> dict:
    """One forward pass of torchvision's model at batch 1: parameters, FLOPs, each module's output shape."""
    with torch.device("meta"):
        model = getattr(torchvision.models, name)(weights=None, **TORCHVISION[name]).eval()
        shapes: dict[str, list] = {}
        for module_name, module in model.named_modules():
            module.register_forward_hook(
                lambda mod, args, out, key=module_name: shapes.setdefault(key, []).append(tuple(out.shape[1:])))
        with FlopCounterMode(display=False) as counter:
            model(torch.empty(1, 3, 224, 224))
    own_params = {n: sum(p.numel() for p in m.parameters(recurse=False)) for n, m in model.named_modules()}
    return {"params": sum(p.numel() for p in model.parameters()), "flops": counter.get_total_flops(),
            "shapes": shapes, "own_params": own_params}


@pytest.fixture(scope="module")
def torchvision_models():
    return {name: _measure(name) for name in TORCHVISION}


def costs_of(name: str) -> list[flops.LayerCost]:
    layers, shape = ZOO[name]
    return flops.analyze(layers, shape)


def test_network_costs_is_analyze_of_the_zoo_entry():
    assert network_costs("resnet50") == costs_of("resnet50")
    with pytest.raises(ValueError, match="unknown network 'resnet18'"):
        network_costs("resnet18")


@pytest.mark.parametrize("name", list(TORCHVISION))
def test_params_equal_torchvision(name, torchvision_models):
    assert flops.totals(costs_of(name))["params"] == torchvision_models[name]["params"]


@pytest.mark.parametrize("name", list(TORCHVISION))
def test_conv_and_linear_flops_equal_flop_counter(name, torchvision_models):
    assert flops.totals(costs_of(name))["gemm_flops"] == torchvision_models[name]["flops"]


@pytest.mark.parametrize("name", list(TORCHVISION))
def test_rows_mirror_torchvision_modules(name, torchvision_models):
    """Same names as torchvision's modules, the same parameters and output shape layer by layer."""
    measured = torchvision_models[name]
    rows = {cost.name: cost for cost in costs_of(name)}
    weighted = {n for n, count in measured["own_params"].items() if count}
    assert weighted <= rows.keys(), f"modules with parameters missing from the zoo: {weighted - rows.keys()}"
    for module_name in weighted:
        assert rows[module_name].params == measured["own_params"][module_name], module_name
    compared = 0
    for module_name, outputs in measured["shapes"].items():
        if module_name in rows and len(outputs) == 1:      # a module called twice (ResNet's relu) is skipped
            assert rows[module_name].output_shape == outputs[0], module_name
            compared += 1
    assert compared >= len(weighted)


def test_vgg19_known_entries():
    """The figures of the well-known VGG19 memory/parameter breakdown (CS231n)."""
    rows = {cost.name: cost for cost in costs_of("vgg19")}
    assert rows["features.0"].output_shape == (64, 224, 224)
    assert rows["features.0"].activations == 3_211_264                     # "224*224*64 = 3.2M"
    assert rows["features.0"].activations * 4 == 12_845_056                # bytes at float32
    assert (rows["features.0"].weights, rows["features.2"].weights) == (1_728, 36_864)   # (3*3*3)*64, (3*3*64)*64
    assert rows["classifier.0"].weights == 7 * 7 * 512 * 4096
    assert rows["classifier.3"].weights == 16_777_216                      # FC 4096 x 4096
    assert rows["classifier.6"].weights == 4_096_000


def test_inception_reduced_against_hand_counts():
    """Inception (3a)'s filters on a 256x32x32 input: every conv keeps 32x32 = 1024 positions."""
    positions = 32 * 32
    weights = {"1x1": 256 * 64, "3x3 reduce": 256 * 96, "3x3": 96 * 3 * 3 * 128,
               "5x5 reduce": 256 * 16, "5x5": 16 * 5 * 5 * 32, "pool proj": 256 * 32}
    assert sum(weights.values()) == 176_640
    biases = 64 + 96 + 128 + 16 + 32 + 32
    total = flops.totals(costs_of("inception_reduced"))
    assert total["macs"] == sum(weights.values()) * positions == 180_879_360
    assert total["params"] == 176_640 + biases == 177_008
    assert costs_of("inception_reduced")[-1].output_shape == (64 + 128 + 32 + 32, 32, 32)


def test_inception_naive_costs_about_three_times_more():
    naive_weights = 256 * 64 + 256 * 3 * 3 * 128 + 256 * 5 * 5 * 32
    naive = flops.totals(costs_of("inception_naive"))
    assert naive["macs"] == naive_weights * 32 * 32 == 528_482_304
    assert naive["params"] == naive_weights + 64 + 128 + 32
    assert costs_of("inception_naive")[-1].output_shape == (64 + 128 + 32 + 256, 32, 32)   # the pool passes 256 on
    assert 2.9 < naive["macs"] / flops.totals(costs_of("inception_reduced"))["macs"] < 3.0


def test_fashion_cnn_is_its_default_config():
    from models.nets.fashion_cnn import FashionCNNConfig
    layers, shape = cli.networks()["fashion_cnn"]
    assert flops.totals(flops.analyze(layers, shape)) == flops.totals(FashionCNNConfig().cost())


def test_conv_share_and_memory_traffic():
    costs = costs_of("vgg19")
    total = flops.totals(costs)
    assert total["conv_flops_share"] == pytest.approx(
        sum(c.flops for c in costs if c.kind == "conv") / total["flops"])
    assert 0.99 < total["conv_flops_share"] < 1
    first = costs[0]                                                        # reads the image and its weights
    assert flops.bytes_read(first) == (3 * 224 * 224 + 1_792) * 4
    assert flops.memory_bytes(first, dtype_bytes=2) == (3 * 224 * 224 + 1_792 + 3_211_264) * 2


@pytest.mark.parametrize("n", [1, 2, 3, 5, 10])
@pytest.mark.parametrize("f", [1, 2, 3, 5, 7])
def test_receptive_field_closed_form(n, f):
    assert flops.receptive_field([f] * n) == n * f - n + 1 == flops.receptive_field_closed_form(n, f)


def test_receptive_field_strided_by_hand():
    # Each layer adds (k - 1) pixels of its input, which are prod(earlier strides) input pixels apart.
    assert flops.receptive_field([3, 3, 3], [2, 2, 1]) == 1 + 2 * 1 + 2 * 2 + 2 * 4 == 15
    assert flops.receptive_field_closed_form(3, 3, stride=2) == 15
    assert flops.receptive_field([11, 3, 5], [4, 2, 1]) == 1 + 10 * 1 + 2 * 4 + 4 * 8 == 51   # AlexNet's start
    assert flops.receptive_field([7, 3], [2, 2]) == 11                                       # ResNet's stem
    with pytest.raises(ValueError, match="one stride per kernel"):
        flops.receptive_field([3, 3], [1])


def test_cli_writes_tables_and_compares_inceptions(tmp_path, capsys):
    parser = __import__("argparse").ArgumentParser()
    cli.add_arguments(parser)
    assert cli.main(parser.parse_args(["inception_naive", "inception_reduced", "--totals-only",
                                       "--out-dir", str(tmp_path)])) == 0
    out = capsys.readouterr().out
    assert "2.92x fewer MACs" in out and "177,008 params" in out
    for name in ("inception_naive.csv", "inception_reduced.md", "inception_reduced.png", "summary.csv"):
        assert (tmp_path / name).stat().st_size > 0


def test_cli_receptive_field_and_errors(capsys):
    table = cli.receptive_field_table(4, 3, stride=2)
    assert table.iloc[:, -2].tolist() == table.iloc[:, -1].tolist() == [3, 7, 15, 31]
    assert sysdl(["analyze", "--receptive-field", "4", "3"]) == 0
    last_row = capsys.readouterr().out.strip().splitlines()[-1]
    assert last_row.replace(" ", "") == "|4|3|1|9|9|"                          # 4 * 3 - 4 + 1, both ways
    assert sysdl(["analyze", "vgg11"]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'vgg11' (did you mean vgg1" in err and "choose from alexnet, vgg16" in err
    with pytest.raises(ValueError, match="name a model"):
        cli.main(cli.argparse.Namespace(model=[], receptive_field=None))
