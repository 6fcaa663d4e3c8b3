"""models.pruning.prune: shrink equivalence, masks through retraining, importance, resume, the report."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from models.pruning import prune
from models.data.datasets import synthetic_splits
from models.nets.fashion_cnn import FashionCNN, FashionCNNConfig
from models.reports.prune_report import prune_report
from models.shared.tables import pareto_front

SMALL = FashionCNNConfig(conv1_channels=5, conv2_channels=4, hidden_units=7)
MASKS = {"conv1": torch.tensor([1, 0, 1, 1, 0], dtype=torch.bool),
         "conv2": torch.tensor([0, 1, 1, 1], dtype=torch.bool),
         "fc1": torch.tensor([1, 1, 0, 1, 1, 0, 1], dtype=torch.bool)}


def masked_copy(model):
    masked = FashionCNN(model.config)
    masked.load_state_dict(model.state_dict())
    prune.apply_masks(masked, MASKS)
    return masked


def test_shrink_gives_the_masked_models_logits():
    torch.manual_seed(0)
    model = FashionCNN(SMALL)
    masked = masked_copy(model)
    compact = prune.shrink(masked, MASKS)
    assert (compact.config.conv1_channels, compact.config.conv2_channels, compact.config.hidden_units) == (3, 3, 5)
    x = torch.randn(64, 1, 28, 28)
    torch.testing.assert_close(compact(x), masked(x), rtol=0, atol=1e-5)
    assert not torch.allclose(compact(x), model(x), atol=1e-3), "masking must change an untrained net"


@pytest.mark.needs_data
def test_shrink_on_the_whole_test_set(fashion_mnist):
    torch.manual_seed(1)
    masked = masked_copy(FashionCNN(SMALL))
    compact = prune.shrink(masked, MASKS)
    with torch.inference_mode():
        torch.testing.assert_close(compact(fashion_mnist.test.x), masked(fashion_mnist.test.x), rtol=0, atol=1e-5)


def train_steps(model, enforcer=None, steps=6):
    """A few SGD-momentum steps with weight decay on fixed data; returns the optimizer."""
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(steps, 16, 1, 28, 28, generator=g), torch.randint(0, 10, (steps, 16), generator=g)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    for i in range(steps):
        loss = F.cross_entropy(model(x[i]), y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if enforcer is not None:
            enforcer.enforce()
    return opt


def test_masks_stay_zero_through_retraining():
    torch.manual_seed(2)
    model = FashionCNN(SMALL)
    enforcer = prune.MaskEnforcer(model, MASKS)
    opt = train_steps(model, enforcer)
    for layer, mask in MASKS.items():
        module = getattr(model, layer)
        for param in (module.weight, module.bias):
            assert torch.count_nonzero(param[~mask]) == 0
            assert torch.count_nonzero(param.grad[~mask]) == 0
            assert torch.count_nonzero(opt.state[param]["momentum_buffer"][~mask]) == 0
            assert torch.count_nonzero(param[mask]) > 0


def test_retraining_compact_equals_retraining_masked():
    """Same updates to every surviving weight, hence the same logits, within float rounding."""
    torch.manual_seed(4)
    masked = masked_copy(FashionCNN(SMALL))
    compact = prune.shrink(masked, MASKS)
    enforcer = prune.MaskEnforcer(masked, MASKS)
    train_steps(masked, enforcer)
    train_steps(compact)
    x = torch.randn(32, 1, 28, 28)
    torch.testing.assert_close(compact(x), masked(x), rtol=1e-4, atol=1e-5)
    shrunk_after = prune.shrink(masked, MASKS)
    for name, value in compact.state_dict().items():
        torch.testing.assert_close(value, shrunk_after.state_dict()[name], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("layer, units", [("conv1", 5), ("conv2", 4), ("fc1", 7)])
@pytest.mark.parametrize("heuristic", ["l1", "l2", "activation", "taylor"])
def test_every_heuristic_finds_a_dead_unit_in_every_layer(layer, units, heuristic):
    torch.manual_seed(5)
    model = FashionCNN(SMALL)
    module = getattr(model, layer)
    with torch.no_grad():
        module.weight[2] = 0                # a dead unit: no weights, no bias
        module.bias[2] = 0
        module.weight[1] *= 1e-3            # a nearly dead one
    batch = (torch.randn(32, 1, 28, 28), torch.randint(0, 10, (32,)))
    scores = prune.importance(model, layer, heuristic, batch)
    assert scores.shape == (units,) and int(scores.argmin()) == 2
    assert float(scores[2]) == 0.0


def test_importance_heuristics():
    torch.manual_seed(5)
    model = FashionCNN(SMALL)
    batch = (torch.randn(32, 1, 28, 28), torch.randint(0, 10, (32,)))
    w = model.fc1.weight.detach()
    torch.testing.assert_close(prune.importance(model, "fc1", "l1", batch), w.abs().sum(1))
    torch.testing.assert_close(prune.importance(model, "fc1", "l2", batch), w.norm(dim=1))
    assert torch.equal(prune.importance(model, "conv1", "random", batch, seed=3),
                       prune.importance(model, "conv1", "random", batch, seed=3))
    assert all(p.grad is None for p in model.parameters()), "importance must leave no gradients behind"
    with pytest.raises(ValueError, match="unknown heuristic"):
        prune.importance(model, "conv1", "magic", batch)


def test_bad_prune_config():
    with pytest.raises(ValueError, match="heuristic must be one of"):
        prune.PruneConfig(heuristic="fisher")
    with pytest.raises(ValueError, match="schedule must be one of"):
        prune.PruneConfig(schedule="random")


@pytest.fixture
def base_checkpoint(tmp_path):
    from models.training.checkpoint import save_checkpoint
    from models.training.loop import TrainConfig, fit
    data = synthetic_splits(n_train=256, n_test=128, val_size=64)
    torch.manual_seed(0)
    model = FashionCNN(SMALL)
    fit(model, data, TrainConfig(epochs=2, batch_size=32), progress=False)
    return save_checkpoint(tmp_path / "base.pt", model), data


QUICK = dict(retrain_epochs=1, max_steps_per_layer=2, importance_batch=64, max_drop=0.5)


def test_session_resumes_after_a_kill(base_checkpoint, tmp_path, monkeypatch):
    base, data = base_checkpoint
    cfg = prune.PruneConfig(**QUICK)
    full = prune.run_session(base, data, cfg, tmp_path / "full", track=False, progress=False, log=lambda m: None)
    assert [s["step"] for s in full] == list(range(7))            # base + 2 steps x 3 layers

    from models.training import loop as train
    real_fit, calls = train.fit, {"n": 0}

    def fit_dies_on_the_fourth_retraining(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(train, "fit", fit_dies_on_the_fourth_retraining)
    with pytest.raises(KeyboardInterrupt):
        prune.run_session(base, data, cfg, tmp_path / "cut", track=False, progress=False, log=lambda m: None)
    state = json.loads((tmp_path / "cut" / cfg.name / "state.json").read_text())
    assert len(state["steps"]) == 4                                 # base + 3 finished steps
    monkeypatch.setattr(train, "fit", real_fit)
    resumed = prune.run_session(base, data, cfg, tmp_path / "cut", track=False, progress=False, log=lambda m: None)
    assert [s["step"] for s in resumed] == [s["step"] for s in full]
    for a, b in zip(resumed, full):
        assert (a["layer"], a["unit"], a["hidden_units"]) == (b["layer"], b["unit"], b["hidden_units"])
        assert a["test_after_retrain"] == pytest.approx(b["test_after_retrain"], abs=1e-9)
    with pytest.raises(ValueError, match="resuming needs the same settings"):
        prune.run_session(base, data, prune.PruneConfig(**{**QUICK, "max_drop": 0.2}), tmp_path / "cut",
                          track=False, progress=False)
    from models.training.checkpoint import save_checkpoint
    save_checkpoint(base, FashionCNN(SMALL))                        # the base is retrained meanwhile
    with pytest.raises(ValueError, match="pruned a different base model"):
        prune.run_session(base, data, cfg, tmp_path / "cut", track=False, progress=False)


def test_global_session_and_report(base_checkpoint, tmp_path, mlflow_store):
    base, data = base_checkpoint
    steps = prune.run_session(base, data, prune.PruneConfig(schedule="global", **QUICK), tmp_path / "p",
                              progress=False, log=lambda m: None)
    assert len(steps) > 1 and all("flops" in s for s in steps)
    from tests.mlflow_runs import read_runs
    runs = read_runs("prune")
    assert len(runs) == len(steps)                                   # one parent + one child per step
    report = prune_report(tmp_path / "p", tmp_path / "out", threshold=0.0, selected_path=tmp_path / "sel.pt")
    assert (tmp_path / "sel.pt").exists() and report["plot"].exists()
    assert report["selected"]["flops"] == report["steps"]["flops"].min()


def test_pareto_front():
    frame = pd.DataFrame({"flops": [10, 5, 5, 2, 1], "test_after_retrain": [0.9, 0.85, 0.88, 0.80, 0.70]})
    front = pareto_front(frame)
    assert sorted(front.index.tolist()) == [0, 2, 3, 4]


@pytest.mark.parametrize("field", ["max_drop", "retrain_lr"])
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_prune_hyperparameters_are_refused(field, value):
    with pytest.raises(ValueError, match=f"^{field} must be a finite number"):
        prune.PruneConfig(**{field: value})
