"""models.reports.prune_methods and `sysdl report prune` with the control's runs: every method's
front over seeds, the fewest FLOPs above 87% and 90% by the mean, the choice on validation accuracy,
the pruned-against-control table, and the report that draws and writes them."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from models.data.datasets import synthetic_splits
from models.nets.fashion_cnn import FashionCNN, FashionCNNConfig
from models.pruning import prune
from models.reports.prune_methods import control_table, method_fronts, method_table
from models.reports.prune_report import accuracy_floor, plot_pareto, prune_report
from models.training.checkpoint import save_checkpoint

BASE_FLOPS = 1000.0


def steps(val=False):
    """A session's steps: the base and three pruned models (one with no val, as sessions decided on test)."""
    rows = [("base", 10, 10, 100, 1000, 0.92), ("conv1", 2, 4, 30, 100, 0.905), ("fc1", 1, 2, 24, 20, 0.875),
            ("fc1", 1, 2, 12, 12, 0.86)]
    frame = pd.DataFrame([{"session": "l1-global", "step": i, "layer": layer, "conv1_channels": a,
                           "conv2_channels": b, "hidden_units": h, "flops": f, "test_after_retrain": acc}
                          for i, (layer, a, b, h, f, acc) in enumerate(rows)])
    if val:
        frame["val_after_retrain"] = frame["test_after_retrain"] + 0.015
    return frame


def runs():
    """The control: scratch at two sizes over three seeds, retraining one size over two."""
    rows = []
    for seed, (big, small) in enumerate([(0.88, 0.866), (0.874, 0.872), (0.872, 0.871)]):
        rows.append(("scratch, 30 ep", "scratch", (1, 2, 24), 20, seed, big, big + 0.002))
        rows.append(("scratch, 30 ep", "scratch", (1, 2, 12), 12, seed, small, small - 0.01))
    for seed, acc in enumerate([0.90, 0.904]):
        rows.append(("retrain, 15 ep", "retrain", (1, 2, 24), 20, seed, acc, acc))
    return pd.DataFrame([{"recipe": r, "method": m, "source": "extra", "conv1_channels": s[0], "conv2_channels": s[1],
                          "hidden_units": s[2], "flops": f, "seed": seed, "final_test_acc": t, "final_val_acc": v}
                         for r, m, s, f, seed, t, v in rows])


def test_fronts_aggregate_seeds():
    fronts = method_fronts(steps(), runs(), BASE_FLOPS)
    scratch_small = fronts[(fronts["method"] == "scratch, 30 ep") & (fronts["architecture"] == "1-2-12")].iloc[0]
    assert scratch_small["n"] == 3 and scratch_small["flops_fraction"] == pytest.approx(0.012)
    assert scratch_small["test_mean"] == pytest.approx((0.866 + 0.872 + 0.871) / 3)
    assert scratch_small["test_std"] == pytest.approx(pd.Series([0.866, 0.872, 0.871]).std())
    assert (scratch_small["test_min"], scratch_small["test_max"]) == (0.866, 0.872)
    session = fronts[fronts["kind"] == "pruning"]
    assert len(session) == 4 and (session["n"] == 1).all() and session["val_mean"].isna().all()


def test_the_method_table_chooses_by_the_mean_and_on_validation():
    table = method_table(method_fronts(steps(), runs(), BASE_FLOPS)).set_index("method")
    # 1-2-12 from scratch has one seed above 87% but a mean of 86.97%: not chosen.
    assert table.loc["scratch, 30 ep", "fewest FLOPs > 87% test"].startswith("1-2-24 at 1/50.0: 87.53% ± 0.42")
    assert table.loc["scratch, 30 ep", "fewest FLOPs > 90% test"] == "none"
    assert table.loc["scratch, 30 ep", "fewest FLOPs, one seed > 87% test"] == "1-2-12 at 1/83.3: 87.20% (best of 3)"
    assert table.loc["retrain, 15 ep", "fewest FLOPs > 90% test"].startswith("1-2-24 at 1/50.0: 90.20% ± 0.28")
    assert table.loc["l1-global", "fewest FLOPs > 87% test"] == "1-2-24 at 1/50.0: 87.50%"
    assert table.loc["l1-global", "fewest FLOPs > 90% test"] == "2-4-30 at 1/10.0: 90.50%"
    assert table.loc["l1-global", "chosen on validation > 87%: its test accuracy"] == "no validation split"
    # On validation, scratch 1-2-12 (86.97% - 1 point) stays out; 1-2-24 (val 87.73%) is chosen with its test accuracy.
    on_validation = table.loc["scratch, 30 ep", "chosen on validation > 87%: its test accuracy"]
    assert on_validation.startswith("1-2-24 at 1/50.0: 87.53%")
    with_val = method_table(method_fronts(steps(val=True), None, BASE_FLOPS)).set_index("method")
    assert with_val.loc["l1-global", "chosen on validation > 87%: its test accuracy"] == "1-2-12 at 1/83.3: 86.00%"


def test_the_control_table_names_the_winner_per_architecture():
    table = control_table(method_fronts(steps(), runs(), BASE_FLOPS)).set_index("architecture")
    assert list(table.index) == ["1-2-12", "1-2-24"]                   # fewest FLOPs first
    assert table.loc["1-2-24", "pruned (session)"] == "87.50% (l1-global step 2)"
    assert table.loc["1-2-24", "best"] == "retrain, 15 ep"
    assert table.loc["1-2-24", "by (points)"] == "2.67"                  # 90.20% against 87.53%, stds 0.28 and 0.42
    assert table.loc["1-2-12", "by (points)"] == "0.97"                  # 86.97% ± 0.32 against 86.00%
    close = runs()
    close.loc[close["method"] == "retrain", "final_test_acc"] = [0.86, 0.90]         # 88.00% ± 2.83 against 87.53%
    table = control_table(method_fronts(steps(), close, BASE_FLOPS)).set_index("architecture")
    assert table.loc["1-2-24", "by (points)"] == "0.47 (within the seeds' spread)"
    assert table.loc["1-2-12", "pruned (session)"] == "86.00% (l1-global step 3)"
    assert table.loc["1-2-12", "best"] == "scratch, 30 ep" and table.loc["1-2-12", "retrain, 15 ep"] == ""


def test_the_report_draws_and_writes_every_method(tmp_path):
    data = synthetic_splits(n_train=96, n_test=64, val_size=32)
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "base.pt", FashionCNN(FashionCNNConfig(conv1_channels=3, conv2_channels=3,
                                                                      hidden_units=6)))
    cfg = prune.PruneConfig(retrain_epochs=1, max_steps_per_layer=1, importance_batch=32, max_drop=0.5)
    prune.run_session(tmp_path / "base.pt", data, cfg, tmp_path / "prune", track=False, progress=False,
                      log=lambda m: None)
    (tmp_path / "prune_control").mkdir()
    control = runs()
    control.to_csv(tmp_path / "prune_control" / "runs.csv", index=False)    # where the report looks by default
    report = prune_report(tmp_path / "prune", tmp_path / "out", threshold=0.0, selected_path=tmp_path / "sel.pt")
    for name in ("prune_methods.md", "prune_methods.csv", "prune_control.md", "prune_fronts.csv", "prune_pareto.png"):
        assert (tmp_path / "out" / name).stat().st_size > 0, name
    assert set(report["methods"]["method"]) == {"l1-layer", "scratch, 30 ep", "retrain, 15 ep"}
    chosen = report["selected_on_validation"]                         # this session decided on validation
    assert chosen is not None and chosen["flops"] == report["steps"]["flops"].min()
    assert not math.isnan(report["fronts"].query("kind == 'pruning'")["val_mean"].iloc[0])

    alone = prune_report(tmp_path / "prune", tmp_path / "alone", threshold=0.0, selected_path=tmp_path / "sel.pt",
                         control_runs=tmp_path / "none.csv")
    assert len(alone["controls"]) == 0 and not (tmp_path / "alone" / "prune_control.md").exists()


def test_a_run_that_collapsed_to_chance_is_counted_and_said():
    """A seed whose network died (test accuracy at chance) stays in the mean, as it happened, and
    the text says so; the other architectures' texts are unchanged."""
    collapsed = runs()
    collapsed.loc[(collapsed["hidden_units"] == 12) & (collapsed["seed"] == 0), "final_test_acc"] = 0.0999
    fronts = method_fronts(steps(), collapsed, BASE_FLOPS)
    small = fronts[(fronts["method"] == "scratch, 30 ep") & (fronts["architecture"] == "1-2-12")].iloc[0]
    assert small["collapsed"] == 1 and small["test_mean"] == pytest.approx((0.0999 + 0.872 + 0.871) / 3)
    text = control_table(fronts).set_index("architecture").loc["1-2-12", "scratch, 30 ep"]
    assert text.endswith("n=3); 1 of 3 collapsed to chance"), text
    assert "collapsed" not in control_table(fronts).set_index("architecture").loc["1-2-24", "scratch, 30 ep"]
    assert (fronts[fronts["kind"] == "pruning"]["collapsed"] == 0).all()


def test_a_collapsed_run_does_not_squash_the_plot(tmp_path):
    """With a seed at chance the accuracy axis starts just below the lowest model that did not
    collapse; without one the plot keeps its own limits."""
    collapsed = runs()
    collapsed.loc[(collapsed["hidden_units"] == 12) & (collapsed["seed"] == 0), "final_test_acc"] = 0.0999
    session = steps()
    fronts = method_fronts(session, collapsed, BASE_FLOPS)
    assert accuracy_floor(session, fronts) == pytest.approx(0.86 - 0.02)     # the session's 86% model
    assert accuracy_floor(session, method_fronts(session, runs(), BASE_FLOPS)) is None
    session["accepted"] = True
    path = plot_pareto(session, session, BASE_FLOPS, tmp_path / "pareto.png", fronts=fronts)
    assert path.stat().st_size > 0
