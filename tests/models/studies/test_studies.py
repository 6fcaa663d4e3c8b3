"""models.studies: RMSProp-Nesterov against a hand-computed step, inverted dropout, the Eggholder data,
the depth-width grid (counted independently), and both studies end to end with --quick on a
private MLflow store, including a kill part-way through the depth-width study and its resume."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from models import studies
from models.training import resumable
from models.training import tracking
from models.studies import common, depth_width, optimizers
from sysdl_kernels.torch_optim import RMSpropNesterov
from tests.models.studies.helpers import QUICK, study_args


# ----------------------------------------------------------------------------------------------
# RMSProp with Nesterov momentum, by hand
# ----------------------------------------------------------------------------------------------

def test_rmsprop_nesterov_matches_a_hand_computed_update():
    lr, alpha, momentum, weight_decay = 0.1, 0.9, 0.5, 0.1
    c = [0.3, -0.4]                                  # loss = c . p, so dloss/dp = c
    p = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
    opt = RMSpropNesterov([p], lr=lr, alpha=alpha, eps=0.0, weight_decay=weight_decay, momentum=momentum)

    def step():
        opt.zero_grad()
        (torch.tensor(c, dtype=torch.float64) * p).sum().backward()
        opt.step()

    # Step 1: g = c + wd p = (0.4, -0.6); sq = (1 - alpha) g^2, so s = g / sqrt(sq) = sign(g) sqrt(10);
    # buf = s; p -= lr (s + momentum buf) = lr (1 + momentum) sqrt(10) sign(g) = 0.15 sqrt(10) sign(g).
    step()
    expected_1 = [1.0 - 0.15 * math.sqrt(10), -2.0 + 0.15 * math.sqrt(10)]
    assert p.tolist() == pytest.approx(expected_1, abs=1e-12)

    # Step 2, coordinate by coordinate in plain floats.
    expected_2 = []
    for ci, p1, p0 in zip(c, expected_1, (1.0, -2.0)):
        g0, g1 = ci + weight_decay * p0, ci + weight_decay * p1
        sq = alpha * (1 - alpha) * g0 ** 2 + (1 - alpha) * g1 ** 2
        s1 = g1 / math.sqrt(sq)
        buf = momentum * (g0 / abs(g0) * math.sqrt(10)) + s1
        expected_2.append(p1 - lr * (s1 + momentum * buf))
    step()
    assert p.tolist() == pytest.approx(expected_2, abs=1e-12)
    state = opt.state[p]
    assert set(state) == {"square_avg", "momentum_buffer"}


# ----------------------------------------------------------------------------------------------
# The networks
# ----------------------------------------------------------------------------------------------

def _linears(model: nn.Module) -> list[nn.Linear]:
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


def test_dropout_is_inverted_so_eval_needs_no_rescaling():
    torch.manual_seed(0)
    config = common.MLPConfig(20, (30, 30), 5)
    plain, dropped = common.MLP(config), common.MLP(common.MLPConfig(20, (30, 30), 5, dropout_input=0.2,
                                                                      dropout_hidden=0.5))
    for a, b in zip(_linears(plain), _linears(dropped)):
        b.load_state_dict(a.state_dict())
    x = torch.randn(64, 20)
    with torch.no_grad():
        assert torch.equal(dropped.eval()(x), plain.eval()(x))      # eval: dropout is the identity
        dropout = nn.Dropout(0.5).train()
        kept = dropout(torch.ones(10_000))
        assert set(kept.unique().tolist()) == {0.0, 2.0}             # kept units scaled by 1 / (1 - p)
    assert sum(isinstance(m, nn.Dropout) for m in dropped.modules()) == 3


def test_mlp_shapes_and_batch_norm():
    net = common.MLP(common.MLPConfig(2, (16, 32), 1, batch_norm=True))
    assert net(torch.randn(8, 2)).shape == (8, 1)
    assert sum(isinstance(m, nn.BatchNorm1d) for m in net.modules()) == 2
    # Linear(2,16, no bias) + BN(16) + Linear(16,32, no bias) + BN(32) + Linear(32,1)
    assert common.count_parameters(net) == 2 * 16 + 2 * 16 + 16 * 32 + 2 * 32 + 32 + 1
    with pytest.raises(ValueError, match="dropout_hidden is a probability"):
        common.MLPConfig(2, (16,), 1, dropout_hidden=1.0)


# ----------------------------------------------------------------------------------------------
# Depth versus width: the function, its data, the grid
# ----------------------------------------------------------------------------------------------

def test_eggholder_known_minimum():
    x1, x2 = torch.tensor(512.0, dtype=torch.float64), torch.tensor(404.2319, dtype=torch.float64)
    assert float(depth_width.eggholder(x1, x2)) == pytest.approx(-959.6407, abs=1e-3)


def test_eggholder_data_is_seeded_noisy_and_standardised():
    x, y = depth_width.eggholder_samples(20_000, seed=3)
    assert x.shape == (20_000, 2) and x.abs().max() <= 512
    noise = y - depth_width.eggholder(x[:, 0], x[:, 1])
    assert float(noise.std()) == pytest.approx(0.3, rel=0.03) and abs(float(noise.mean())) < 0.01
    assert torch.equal(depth_width.eggholder_samples(20_000, seed=3)[1], y)
    data, std = depth_width.eggholder_data(20_000, seed=3)
    assert len(data.train) == 16_000 and len(data.test) == 4_000
    assert data.train.x.abs().max() <= 1.0
    assert float(data.train.y.mean()) == pytest.approx(0.0, abs=1e-4)
    assert float(data.train.y.std()) == pytest.approx(1.0, abs=1e-4)
    assert std == pytest.approx(float(y[:16_000].std()))
    # The targets map back to f's units with the training split's statistics.
    back = data.test.y.double() * std + y[:16_000].mean()
    assert torch.allclose(back, y[16_000:], atol=1e-3)


def _count(budget: int, depth: int, units) -> int:
    """Sequences of exactly ``depth`` widths from ``units`` summing to <= budget, by recursion."""
    if depth == 0:
        return 1
    return sum(_count(budget - w, depth - 1, units) for w in units if w <= budget)


def test_depth_width_grid_is_exactly_the_allowed_architectures():
    grid = depth_width.architectures()
    for depth in (1, 2, 3):
        assert sum(len(a) == depth for a in grid) == _count(512, depth, depth_width.UNITS)
    assert [sum(len(a) == d for a in grid) for d in (1, 2, 3)] == [6, 25, 112]
    assert len(set(grid)) == len(grid) == 143
    assert all(sum(a) <= 512 and set(a) <= set(depth_width.UNITS) for a in grid)
    jobs = depth_width.plan(10, {"n": 1})
    assert [job.model.hidden for job in jobs] == grid
    assert all(job.model.batch_norm == (len(job.model.hidden) >= 2) for job in jobs)
    assert len({job.hash for job in jobs}) == len(jobs)
    quick = depth_width.architectures(**depth_width.QUICK_GRID)
    assert len(quick) == sum(_count(48, d, (16, 32)) for d in (1, 2, 3)) == 6


# ----------------------------------------------------------------------------------------------
# End to end, from the MLflow store
# ----------------------------------------------------------------------------------------------

def test_optimizer_study_quick_end_to_end(mlflow_store, tmp_path, capsys):
    args = study_args("optimizers", *QUICK, "--dataset", "synthetic", "--out-dir", str(tmp_path / "out"))
    assert studies.main(args) == 0
    out = tmp_path / "out" / "study-optimizers-quick"
    for name in ("optimizers.md", "optimizers.csv", "loss_curves.png"):
        assert (out / name).stat().st_size > 0, name
    import pandas as pd
    table = pd.read_csv(out / "optimizers.csv")
    assert list(table["method"]) == [m.label for m in optimizers.METHODS.values()]
    assert table.notna().all().all()
    assert (table["time ratio dropout / none"] == table["training time s, dropout"] / table["training time s"]).all()
    runs = tracking.find_runs("study-optimizers-quick")
    assert len(runs) == 10 and all(r["status"] == "FINISHED" for r in runs)
    assert {r["params"]["optimizer.name"] for r in runs} == set(optimizers.METHODS)
    capsys.readouterr()
    assert studies.main(args) == 0                                   # all finished: nothing retrained
    assert "0 runs trained, 10 were finished before" in capsys.readouterr().out


class SimulatedKill(BaseException):
    """Like a kill, nothing catches it."""


def test_depth_width_quick_resumes_after_a_kill(mlflow_store, tmp_path, monkeypatch):
    def run(experiment: str) -> int:
        return studies.main(study_args("depth-width", *QUICK, "--experiment", experiment,
                                       "--out-dir", str(tmp_path / "out")))

    assert run("reference") == 0
    real_points, calls = resumable.epoch_points, {"n": 0}

    def dies_on_third_epoch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:               # job 2's first epoch is checkpointed, not yet logged
            raise SimulatedKill
        return real_points(*args, **kwargs)

    monkeypatch.setattr(resumable, "epoch_points", dies_on_third_epoch)
    with pytest.raises(SimulatedKill):
        run("cut")
    checkpoints = tmp_path / "out" / "cut" / "checkpoints"
    assert len(list(checkpoints.glob("*.pt"))) == 1
    cut = {r["tags"][resumable.TAG_HASH]: r for r in tracking.find_runs("cut")}
    monkeypatch.setattr(resumable, "epoch_points", real_points)
    assert run("cut") == 0

    reference = {r["tags"][resumable.TAG_HASH]: r for r in tracking.find_runs("reference")}
    resumed = {r["tags"][resumable.TAG_HASH]: r for r in tracking.find_runs("cut")}
    assert resumed.keys() == reference.keys() and len(resumed) == 6
    for key, run_ in resumed.items():
        assert run_["status"] == "FINISHED"
        steps = [s for s, _ in tracking.metric_history(run_["run_id"], ["train_loss"])["train_loss"]]
        assert steps == [1, 2]
        assert run_["metrics"]["test_rmse"] == pytest.approx(reference[key]["metrics"]["test_rmse"], rel=1e-6)
        assert "test_acc" not in run_["metrics"]                    # a regression logs no accuracy
    killed = [key for key, r in cut.items() if r["status"] != "FINISHED"]
    assert len(killed) == 1 and resumed[killed[0]]["run_id"] == cut[killed[0]]["run_id"]
    assert not list(checkpoints.glob("*.pt"))
    out = tmp_path / "out" / "cut"
    for name in ("depth_width.md", "depth_width.csv", "rmse_vs_units.png", "rmse_vs_params.png", "time_vs_params.png"):
        assert (out / name).stat().st_size > 0, name


def test_report_only_refuses_an_unfinished_study(mlflow_store, tmp_path):
    with pytest.raises(ValueError, match="6 of 6 runs .* are not finished"):
        studies.main(study_args("depth-width", *QUICK, "--report-only", "--out-dir", str(tmp_path)))
