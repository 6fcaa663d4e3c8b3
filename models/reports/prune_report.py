"""The pruning report: every pruned model on one Pareto plot, the steps table, the selected model.

    sysdl report prune [--threshold 0.87]    # Pareto plot, steps table, the selected pruned model

The pruning report reads every session's ``state.json`` under ``runs/prune`` (the record each
session keeps of its finished steps, the same numbers it logs to MLflow) and considers every
model pruning produced: the base model and each step's retrained candidate, kept or rejected.
The model it selects is loaded and checked against its row (conv1, conv2 and fc1 sizes) before
it is copied: a missing, truncated or foreign checkpoint is an error naming the file. Beside the
course's selection (lowest FLOPs above the threshold in test accuracy) it names the one made on
validation accuracy, where the sessions held a validation split out.

Where `sysdl prune-control` has run (its runs.csv in the prune_control folder beside the sessions'),
the plot also draws the scratch control, the final retraining and the distilled recipes, and the
report writes every method's front (prune_fronts), the fewest FLOPs above 87% and 90% per method with
the mean and spread over seeds (prune_methods) and the pruned-against-control table (prune_control);
models/reports/prune_methods.py computes them.
"""

from __future__ import annotations

from pathlib import Path

from models.shared import command
from models.shared.artifacts import MAIN, MainJobArtifacts
from models.shared.tables import pareto_front, write_table


def accuracy_floor(frame, fronts=None, margin: float = 0.02) -> float | None:
    """The lowest accuracy the plot shows when a control run collapsed to chance (else None: the
    plot's own limits): the lowest session model or control seed that did not collapse, less
    ``margin``, so a dead network does not squash the front into a sliver of the chart."""
    if fronts is None or not (fronts["collapsed"] > 0).any():
        return None
    alive = fronts[fronts["collapsed"] == 0]
    lowest = min(frame["test_after_retrain"].min(), alive["test_min"].min() if len(alive) else 1.0)
    return max(0.0, lowest - margin)


def plot_pareto(frame, front, base_flops: float, path: str | Path, selected=None, fronts=None) -> Path:
    """Every pruned model (kept and rejected, per session), the pruning sessions' joint Pareto front,
    and, from ``fronts`` (prune_methods.method_fronts), each method's own front: a session's
    models, or a control recipe's mean over seeds with bars from its worst to its best seed. Where
    a control run collapsed to chance, the accuracy axis starts at ``accuracy_floor`` and the
    collapsed point is marked at its foot with its count and mean."""
    import matplotlib

    from models.shared.figures import new_figure, save

    fig, ax = new_figure((9, 5.5))
    colours = iter(matplotlib.rcParams["axes.prop_cycle"].by_key()["color"] * 4)
    for session, group in frame.groupby("session"):
        colour = next(colours)
        kept, rejected = group[group["accepted"]], group[~group["accepted"].astype(bool)]
        ax.scatter(kept["flops"] / base_flops, kept["test_after_retrain"], s=14, alpha=0.7, color=colour,
                   label=f"{session} (kept)")
        ax.scatter(rejected["flops"] / base_flops, rejected["test_after_retrain"], s=24, marker="x",
                   color=colour, label=f"{session} (rejected step)")
        own = pareto_front(group)
        ax.step(own["flops"] / base_flops, own["test_after_retrain"], where="post", color=colour, lw=0.8, alpha=0.8)
    ax.step(front["flops"] / base_flops, front["test_after_retrain"], where="post", color="black", lw=1.2,
            label="Pareto front of the pruning sessions")
    if fronts is not None:
        for method, group in fronts[fronts["kind"] == "control"].groupby("method"):
            colour = next(colours)
            x, y = group["flops_fraction"], group["test_mean"]
            ax.errorbar(x, y, yerr=[y - group["test_min"], group["test_max"] - y], fmt="s", ms=5, capsize=3,
                        color=colour, label=f"{method} (mean, worst-best seed)")
            own = pareto_front(group, x="flops", y="test_mean")
            ax.step(own["flops_fraction"], own["test_mean"], where="post", color=colour, lw=1.2, ls="--")
    if selected is not None:
        ax.scatter([selected["flops"] / base_flops], [selected["test_after_retrain"]], s=120, facecolors="none",
                   edgecolors="red", lw=2, label="selected")
    ax.axhline(0.87, color="grey", lw=0.6, ls=":")
    floor = accuracy_floor(frame, fronts)
    if floor is not None:
        ax.set_ylim(bottom=floor)
        for _, row in fronts[fronts["collapsed"] > 0].iterrows():
            ax.annotate(f"{int(row['collapsed'])} of {int(row['n'])} seeds collapsed to chance\n"
                        f"({row['method']}, {row['architecture']}: mean {100 * row['test_mean']:.1f}%)",
                        xy=(row["flops_fraction"], floor), xytext=(0, 14), textcoords="offset points",
                        ha="center", fontsize=7, arrowprops={"arrowstyle": "->", "lw": 0.8})
    ax.set(xscale="log", xlabel="inference FLOPs / base model's FLOPs (log)", ylabel="test accuracy",
           title="FLOPs vs test accuracy: pruning sessions, scratch control, final retraining, distillation")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="lower right")
    return save(fig, path)


def prune_report(prune_dir: str | Path = MAIN.prune_dir, out_dir: str | Path = MAIN.root,
                 threshold: float = 0.87, selected_path: str | Path = MAIN.selected,
                 control_runs: str | Path | None = None) -> dict:
    """Write the steps table (CSV, markdown), the Pareto plot, and copy the selected model; with
    `sysdl prune-control`'s runs (``control_runs``, default: runs.csv of the prune_control folder
    beside ``prune_dir``), also every method's front and the method and control tables."""
    from models.pruning.prune import session_steps
    from models.reports.prune_methods import control_table, method_fronts, method_table, read_runs
    frame = session_steps(prune_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    base_flops = float(frame.loc[frame["layer"] == "base", "flops"].max())
    frame["flops_fraction"] = frame["flops"] / base_flops
    front = pareto_front(frame)
    eligible = frame[frame["test_after_retrain"] > threshold]
    selected = None
    if len(eligible):
        selected = eligible.sort_values(["flops", "test_after_retrain"], ascending=[True, False]).iloc[0]
        from models.pruning.prune import load_step
        from models.training.checkpoint import atomic_write
        path = load_step(Path(selected["session_dir"]), selected.to_dict())[1]    # the model of this row, or an error
        data = path.read_bytes()
        atomic_write(selected_path, lambda fh: fh.write(data))
    on_validation = None                      # the same choice on validation accuracy, where sessions have it
    if "val_after_retrain" in frame:
        by_val = frame[frame["val_after_retrain"] > threshold]
        if len(by_val):
            on_validation = by_val.sort_values(["flops", "val_after_retrain"], ascending=[True, False]).iloc[0]
    columns = ["session", "step", "layer", "unit", "conv1_channels", "conv2_channels", "hidden_units", "flops",
               "flops_fraction", "params", "test_before", "test_after_prune", "test_after_retrain", "drop",
               "accepted", "val_after_retrain"]
    table = frame[[c for c in columns if c in frame.columns]]
    write_table(table, out, "prune_steps", floatfmt=".4f")
    runs = read_runs(control_runs or MainJobArtifacts.under(Path(prune_dir).parent).prune_control_runs)
    fronts = method_fronts(frame, runs, base_flops)
    write_table(fronts, out, "prune_fronts", floatfmt=".4f")
    methods = method_table(fronts, sorted({threshold, 0.87, 0.90}), validation_threshold=threshold)
    write_table(methods, out, "prune_methods", title="Fewest FLOPs above each test accuracy (mean over seeds), "
                "and the same choice made on validation accuracy")
    controls = control_table(fronts)
    if len(controls):
        write_table(controls, out, "prune_control", title="Each architecture the control trained: pruned model "
                    "against every recipe (test accuracy, mean ± std over seeds)")
    plot = plot_pareto(frame, front, base_flops, out / "prune_pareto.png", selected, fronts)
    return {"steps": table, "front": front, "selected": selected, "selected_on_validation": on_validation,
            "plot": plot, "base_flops": base_flops, "fronts": fronts, "methods": methods, "controls": controls,
            "control_runs": runs}


def add_arguments(parser) -> None:
    parser.add_argument("--prune-dir", default=str(MAIN.prune_dir), help="the pruning sessions to read")
    parser.add_argument("--out-dir", default=str(MAIN.root), help="where the steps table and the plot go")
    parser.add_argument("--threshold", type=float, default=0.87, help="test accuracy the selected model must exceed")
    parser.add_argument("--selected", default=str(MAIN.selected), help="where the selected model is copied")
    parser.add_argument("--control-runs", default=None, help=f"`sysdl prune-control`'s finished runs (default: "
                        f"the {MAIN.prune_control_runs.relative_to(MAIN.root)} beside --prune-dir, "
                        f"{MAIN.prune_control_runs} for the default one)")


def main(args) -> int:
    result = prune_report(args.prune_dir, args.out_dir, args.threshold, args.selected, args.control_runs)
    front = result["front"]
    print("Pareto front (FLOPs vs test accuracy):")
    print(front[["session", "step", "conv1_channels", "conv2_channels", "hidden_units", "flops",
                 "test_after_retrain"]].to_string(index=False))
    selected = result["selected"]
    if selected is None:
        print(f"no model reaches test accuracy > {args.threshold}")
        return 1
    print(f"\nselected (lowest FLOPs with test accuracy > {args.threshold}): {selected['session']} step "
          f"{selected['step']}: conv1 {selected['conv1_channels']}, conv2 {selected['conv2_channels']}, "
          f"fc1 {selected['hidden_units']}; {selected['flops']:,} FLOPs "
          f"(1/{result['base_flops'] / selected['flops']:.1f} of the base), {selected['params']:,} parameters, "
          f"test accuracy {selected['test_after_retrain']:.4f}\ncheckpoint: {args.selected}")
    chosen = result["selected_on_validation"]
    print("selected on validation accuracy instead: " + (
        f"{chosen['session']} step {chosen['step']}: {chosen['conv1_channels']}-{chosen['conv2_channels']}-"
        f"{chosen['hidden_units']}, 1/{result['base_flops'] / chosen['flops']:.1f} of the base's FLOPs, validation "
        f"{chosen['val_after_retrain']:.4f}, test accuracy {chosen['test_after_retrain']:.4f}" if chosen is not None
        else "none (the sessions decided on test accuracy: run `sysdl prune --val-size N` for a held-out split)"))
    print("\nevery method (fewest FLOPs above each threshold, mean over seeds):")
    print(result["methods"].to_string(index=False))
    if len(result["controls"]):
        print("\npruned against the control, architecture by architecture:")
        print(result["controls"].to_string(index=False))
    out = Path(args.out_dir)
    print(f"\nplot: {result['plot']}\nsteps: {out / 'prune_steps.csv'}\nmethods: {out / 'prune_methods.md'}"
          f"\nfronts: {out / 'prune_fronts.csv'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(command.run_module("models.reports.prune_report"))
