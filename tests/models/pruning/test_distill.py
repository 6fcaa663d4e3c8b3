"""models.pruning.distill and fit's loss hook: the same training without it, Hinton's loss, soft
targets lined up with the loop's shuffled and flipped batches, a distilled session that resumes."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from models.data.datasets import synthetic_splits
from models.nets.fashion_cnn import FashionCNN, FashionCNNConfig
from models.pruning import prune
from models.pruning.distill import SoftTargets, check_distillation, distillation_loss
from models.training import loop as train_mod
from models.training.checkpoint import save_checkpoint
from models.training.loop import TrainConfig, fit

SMALL = FashionCNNConfig(conv1_channels=3, conv2_channels=3, hidden_units=8)
CFG = TrainConfig(epochs=2, batch_size=48, seed=3)          # 200 images: the last batch is short


def test_a_hook_that_returns_the_loss_changes_nothing():
    data = synthetic_splits(n_train=200, n_test=64)
    runs = []
    for hook in (None, lambda epoch, step, logits, y, loss: loss):
        torch.manual_seed(0)
        runs.append(fit(FashionCNN(SMALL), data, CFG, progress=False, loss_hook=hook))
    assert runs[0].step_losses == runs[1].step_losses
    assert runs[0].epochs[-1].test_acc == runs[1].epochs[-1].test_acc


def test_epoch_data_is_epoch_order_applied():
    data = synthetic_splits(n_train=64, n_test=8)
    x, y = train_mod.epoch_data(data.train, CFG, 1)
    order, flip = train_mod.epoch_order(64, CFG, 1)
    expected = data.train.x[order].clone()
    expected[flip] = expected[flip].flip(-1)
    assert torch.equal(x, expected) and torch.equal(y, data.train.y[order])
    assert 0 < int(flip.sum()) < 64
    assert train_mod.epoch_order(64, TrainConfig(hflip=False), 1)[1] is None


def test_distillation_loss_is_hintons():
    g = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(5, 10, generator=g), torch.randn(5, 10, generator=g)
    hard = torch.tensor(1.7)
    p, q = F.softmax(teacher / 3, dim=1), F.softmax(student / 3, dim=1)
    kl = (p * (p.log() - q.log())).sum(1).mean()
    torch.testing.assert_close(distillation_loss(student, teacher, hard, 3.0, 0.25), 0.75 * hard + 0.25 * 9 * kl)
    assert distillation_loss(student, teacher, hard, 3.0, 0.0) == hard
    assert float(distillation_loss(teacher, teacher, torch.tensor(0.0), 2.0, 1.0)) == pytest.approx(0, abs=1e-6)


@pytest.mark.parametrize("temperature, weight, words", [(-1.0, 0.5, "must be > 0"), (2.0, 1.5, "in \\[0, 1\\]"),
                                                         (float("nan"), 0.5, "finite")])
def test_bad_distillation_settings_are_refused(temperature, weight, words):
    with pytest.raises(ValueError, match=words):
        check_distillation(temperature, weight)
    with pytest.raises(ValueError, match=words):
        prune.PruneConfig(distill_temperature=temperature, distill_weight=weight)


@pytest.fixture
def teacher(tmp_path):
    torch.manual_seed(1)
    model = FashionCNN(FashionCNNConfig(conv1_channels=4, conv2_channels=4, hidden_units=12))
    return save_checkpoint(tmp_path / "teacher.pt", model), model


def test_soft_targets_are_the_teachers_logits_on_each_batch(teacher, tmp_path, monkeypatch):
    """Every step's soft targets equal the teacher's logits on exactly that step's (shuffled,
    partly flipped) images, in every epoch; the cache is reused."""
    path, model = teacher
    data = synthetic_splits(n_train=200, n_test=32)
    targets = SoftTargets.for_teacher(path, data, tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("soft_targets_*.pt"))) == 1
    monkeypatch.setattr("models.pruning.distill.teacher_logits", None)       # a second call must read the cache
    again = SoftTargets.for_teacher(path, data, tmp_path / "cache")
    assert torch.equal(again.plain, targets.plain) and torch.equal(again.flipped, targets.flipped)

    seen, checked = {}, []
    real_forward = FashionCNN.forward

    def remembering_forward(self, x, capture=None):
        if self.training:
            seen["x"] = x
        return real_forward(self, x, capture)

    hook = targets.loss_hook(CFG, temperature=2.0, weight=0.5)

    def checking_hook(epoch, step, logits, y, loss):
        batch = targets.for_epoch(CFG, epoch)[step * CFG.batch_size:step * CFG.batch_size + len(y)]
        model.eval()
        with torch.no_grad():
            torch.testing.assert_close(batch, model(seen["x"]), rtol=1e-5, atol=1e-5)
        checked.append((epoch, step))
        return hook(epoch, step, logits, y, loss)

    monkeypatch.setattr(FashionCNN, "forward", remembering_forward)
    torch.manual_seed(0)
    fit(FashionCNN(SMALL), data, CFG, progress=False, loss_hook=checking_hook)
    assert checked == [(e, s) for e in range(2) for s in range(5)]


def test_a_distilled_session_resumes_after_a_kill_and_an_old_state_still_reads(teacher, tmp_path, monkeypatch):
    path, _ = teacher
    data = synthetic_splits(n_train=200, n_test=64)
    cfg = prune.PruneConfig(retrain_epochs=1, max_steps_per_layer=1, importance_batch=32, max_drop=0.5,
                            distill_temperature=4.0)
    assert cfg.name == "l1-layer-distill-T4-w0.5"
    full = prune.run_session(path, data, cfg, tmp_path / "full", track=False, progress=False, log=lambda m: None)
    real_fit, calls = train_mod.fit, {"n": 0}

    def fit_dies_on_the_second_retraining(*args, **kwargs):
        assert kwargs["loss_hook"] is not None
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(train_mod, "fit", fit_dies_on_the_second_retraining)
    with pytest.raises(KeyboardInterrupt):
        prune.run_session(path, data, cfg, tmp_path / "cut", track=False, progress=False, log=lambda m: None)
    monkeypatch.setattr(train_mod, "fit", real_fit)
    resumed = prune.run_session(path, data, cfg, tmp_path / "cut", track=False, progress=False, log=lambda m: None)
    assert [s["test_after_retrain"] for s in resumed] == [s["test_after_retrain"] for s in full]

    # A state.json written before distillation existed: no distill fields, resumed as undistilled.
    plain = prune.PruneConfig(retrain_epochs=1, max_steps_per_layer=1, importance_batch=32, max_drop=0.5)
    prune.run_session(path, data, plain, tmp_path / "old", track=False, progress=False, log=lambda m: None)
    state_path = tmp_path / "old" / plain.name / "state.json"
    state = json.loads(state_path.read_text())
    for key in ("distill_temperature", "distill_weight"):
        del state["config"][key]
    state_path.write_text(json.dumps(state))
    again = prune.run_session(path, data, plain, tmp_path / "old", track=False, progress=False, log=lambda m: None)
    assert len(again) == len(state["steps"])
    assert prune.session_name(state) == "l1-layer"


def test_a_distill_weight_without_a_temperature_is_refused():
    """Weight 0.3 at temperature 0 would name the session as undistilled yet record another config."""
    from models.pruning.prune import PruneConfig
    with pytest.raises(ValueError, match="needs a distillation temperature > 0"):
        PruneConfig(distill_weight=0.3)
    assert PruneConfig(distill_temperature=1, distill_weight=0.3).distills
