"""Every way of getting a small network, side by side: pruning sessions, the scratch control, the
longer final retraining and distillation (what `sysdl report prune` adds to its Pareto plot).

    from models.reports.prune_methods import method_fronts, method_table, control_table
    fronts = method_fronts(session_steps(prune_dir), read_runs(MAIN.prune_control_runs), base_flops)

``method_fronts`` puts every produced model in one frame: one row per (method, architecture) with
the mean, standard deviation, minimum, maximum and count of its test accuracy over seeds (a pruning
session is one seed: its step's model) and its mean validation accuracy where the run held out a
validation split. ``method_table`` then gives, for each method, the fewest FLOPs whose *mean* test
accuracy exceeds each threshold (87%, 90%), and beside it the same choice made on validation
accuracy (a decision that does not peek at the test set) with that model's test accuracy;
``control_table`` compares, architecture by architecture, the pruned model with every control
recipe trained on the same architecture. A run that ended at chance accuracy (its network died:
e.g. the one conv2 filter's ReLU stopped firing at the schedule's peak learning rate) stays in the
mean, as it happened, and every accuracy text says how many seeds collapsed.
"""

from __future__ import annotations

import math
from pathlib import Path

SIZES = ["conv1_channels", "conv2_channels", "hidden_units"]
FRONT_COLUMNS = ["method", "kind", "architecture", *SIZES, "flops", "flops_fraction", "n", "test_mean", "test_std",
                 "test_min", "test_max", "collapsed", "val_mean", "source"]


def architecture(row) -> str:
    return "-".join(str(int(row[k])) for k in SIZES)


def read_runs(path: str | Path):
    """`sysdl prune-control`'s runs.csv, or None where that job has not run."""
    import pandas as pd
    path = Path(path)
    return pd.read_csv(path, keep_default_na=True) if path.is_file() and path.stat().st_size else None


def method_fronts(steps, runs, base_flops: float):
    """One row per (method, architecture): the sessions' models (n = 1; ``kind`` "pruning") and
    the control's recipes aggregated over seeds (``kind`` "control"), fewest FLOPs first."""
    import pandas as pd

    from models.pruning.scratch_control import COLLAPSED_BELOW
    rows = []
    for _, step in steps.iterrows():
        val = step.get("val_after_retrain", math.nan)
        rows.append({"method": step["session"], "kind": "pruning", **{k: int(step[k]) for k in SIZES},
                     "flops": int(step["flops"]), "n": 1, "test_mean": step["test_after_retrain"], "test_std": 0.0,
                     "test_min": step["test_after_retrain"], "test_max": step["test_after_retrain"],
                     "collapsed": int(step["test_after_retrain"] < COLLAPSED_BELOW),
                     "val_mean": math.nan if pd.isna(val) else val, "source": f"step {step['step']}"})
    if runs is not None and len(runs):
        for (recipe, *_), group in runs.groupby(["recipe", *SIZES], sort=False):
            acc = group["final_test_acc"]
            rows.append({"method": recipe, "kind": "control", **{k: int(group[k].iloc[0]) for k in SIZES},
                         "flops": int(group["flops"].iloc[0]), "n": len(group), "test_mean": acc.mean(),
                         "test_std": acc.std(ddof=1) if len(group) > 1 else 0.0, "test_min": acc.min(),
                         "test_max": acc.max(), "collapsed": int((acc < COLLAPSED_BELOW).sum()),
                         "val_mean": group["final_val_acc"].mean(),
                         "source": "; ".join(sorted(set(group["source"].astype(str))))})
    fronts = pd.DataFrame(rows)
    fronts["architecture"] = fronts.apply(architecture, axis=1)
    fronts["flops_fraction"] = fronts["flops"] / base_flops
    return fronts[FRONT_COLUMNS].sort_values(["kind", "method", "flops"], ascending=[False, True, True],
                                             kind="stable").reset_index(drop=True)


def fewest_flops(rows, threshold: float, on: str = "test_mean"):
    """The row with the fewest FLOPs whose ``on`` exceeds ``threshold`` (ties: the more accurate),
    or None."""
    eligible = rows[rows[on] > threshold]
    if eligible.empty:
        return None
    return eligible.sort_values(["flops", "test_mean"], ascending=[True, False]).iloc[0]


def accuracy_text(row) -> str:
    """"87.47%" for one model, "87.47% ± 0.21 (87.25-87.70, n=3)" over seeds (percent, sample std),
    with "; 1 of 3 collapsed to chance" where runs ended at chance accuracy."""
    collapsed = int(row.get("collapsed", 0))
    if row["n"] == 1:
        return f"{100 * row['test_mean']:.2f}%" + ("; collapsed to chance" if collapsed else "")
    return (f"{100 * row['test_mean']:.2f}% ± {100 * row['test_std']:.2f} "
            f"({100 * row['test_min']:.2f}-{100 * row['test_max']:.2f}, n={int(row['n'])})"
            + (f"; {collapsed} of {int(row['n'])} collapsed to chance" if collapsed else ""))


def choice_text(row) -> str:
    """"1-2-24 at 1/53.1: 87.47% ± 0.21 (...)", or "none"."""
    if row is None:
        return "none"
    return f"{row['architecture']} at 1/{1 / row['flops_fraction']:.1f}: {accuracy_text(row)}"


def method_table(fronts, thresholds=(0.87, 0.90), validation_threshold: float = 0.87):
    """Per method: the fewest FLOPs above each test-accuracy threshold (by the mean over seeds),
    the fewest whose best seed exceeds the first threshold (a single model that does), and the
    fewest FLOPs above ``validation_threshold`` in validation accuracy with its test accuracy
    ("no validation split" where the method's runs held none out)."""
    import pandas as pd
    rows = []
    for (kind, method), group in fronts.groupby(["kind", "method"], sort=False):
        row = {"method": method, "kind": kind, "seeds": int(group["n"].max())}
        for threshold in thresholds:
            row[f"fewest FLOPs > {100 * threshold:g}% test"] = choice_text(fewest_flops(group, threshold))
        best_run = fewest_flops(group, thresholds[0], on="test_max")
        row[f"fewest FLOPs, one seed > {100 * thresholds[0]:g}% test"] = (
            "none" if best_run is None else f"{best_run['architecture']} at 1/{1 / best_run['flops_fraction']:.1f}: "
            f"{100 * best_run['test_max']:.2f}% (best of {int(best_run['n'])})")
        row[f"chosen on validation > {100 * validation_threshold:g}%: its test accuracy"] = (
            choice_text(fewest_flops(group, validation_threshold, on="val_mean")) if group["val_mean"].notna().any()
            else "no validation split")
        rows.append(row)
    return pd.DataFrame(rows)


def control_table(fronts):
    """Per architecture the control trained: the pruned model's test accuracy (the best session
    model of that size) beside every control recipe's mean ± std over seeds, the winner and its
    margin over the runner-up (points of accuracy; flagged where the larger of the two standard
    deviations covers it)."""
    import pandas as pd
    control = fronts[fronts["kind"] == "control"]
    pruned = fronts[fronts["kind"] == "pruning"]
    rows = []
    for arch, group in control.groupby("architecture", sort=False):
        row = {"architecture": arch, "of the base": f"1/{1 / group['flops_fraction'].iloc[0]:.1f}"}
        scores = {}
        same = pruned[pruned["architecture"] == arch]
        if len(same):
            best = same.sort_values("test_mean", ascending=False).iloc[0]
            row["pruned (session)"] = f"{100 * best['test_mean']:.2f}% ({best['method']} {best['source']})"
            scores["pruned (session)"] = best["test_mean"]
        for _, entry in group.iterrows():
            row[entry["method"]] = accuracy_text(entry)
            scores[entry["method"]] = entry["test_mean"]
        ranked = sorted(scores.items(), key=lambda kv: -kv[1])
        row["best"] = ranked[0][0]
        row["by (points)"] = ""
        if len(ranked) > 1:
            margin = ranked[0][1] - ranked[1][1]
            spread = group.set_index("method")["test_std"].reindex([ranked[0][0], ranked[1][0]]).fillna(0).max()
            row["by (points)"] = f"{100 * margin:.2f}" + (" (within the seeds' spread)" if margin <= spread else "")
        rows.append(row)
    table = pd.DataFrame(rows)
    if len(table):
        order = control.drop_duplicates("architecture").set_index("architecture")["flops"]
        table = table.sort_values("architecture", key=lambda s: s.map(order)).reset_index(drop=True)
    return table.fillna("")
