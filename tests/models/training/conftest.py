"""Fixtures of the training room's tests."""

from __future__ import annotations

import pytest

from models.training import loop as train_mod


@pytest.fixture
def kill_training_after(monkeypatch):
    """``kill_training_after(epoch)`` makes the next training run die (KeyboardInterrupt) right
    after that epoch is checkpointed, as a kill would; it returns ``restore()``, which puts the
    real loop back so that the run can be resumed."""
    real_fit = train_mod.fit

    def kill_after(epoch: int):
        def fit_killed(model, data, cfg, progress, on_epoch, start):
            def on_epoch_then_die(record, losses, state):
                on_epoch(record, losses, state)
                if record.epoch == epoch:
                    raise KeyboardInterrupt
            return real_fit(model, data, cfg, progress=progress, on_epoch=on_epoch_then_die, start=start)
        monkeypatch.setattr(train_mod, "fit", fit_killed)
        return lambda: monkeypatch.setattr(train_mod, "fit", real_fit)
    return kill_after
