"""The pruning report: every pruned model on one Pareto plot, the steps table, the selected model.

    sysdl report prune [--threshold 0.87]    # Pareto plot, steps table, the selected pruned model

The pruning report reads every session's ``state.json`` under ``runs/prune`` (the record each
session keeps of its finished steps, the same numbers it logs to MLflow) and considers every
model pruning produced: the base model and each step's retrained candidate, kept or rejected.
The model it selects is loaded and checked against its row (conv1, conv2 and fc1 sizes) before
it is copied: a missing, truncated or foreign checkpoint is an error naming the file.
"""

from __future__ import annotations

from pathlib import Path

from models.shared import command
from models.shared.artifacts import MAIN
from models.shared.tables import pareto_front, write_table


def pruning_steps(prune_dir: str | Path):
    """All steps of all sessions as one DataFrame (one row per produced model, ``session_dir``
    the folder its ``checkpoint`` is relative to)."""
    import pandas as pd

    from models.pruning.prune import read_state
    rows = []
    for state_path in sorted(Path(prune_dir).glob("*/state.json")):
        state = read_state(state_path)
        session = f"{state['config']['heuristic']}-{state['config']['schedule']}"
        rows += [{"session": session, **step, "session_dir": str(state_path.parent)} for step in state["steps"]]
    if not rows:
        raise ValueError(f"no pruning sessions under {prune_dir}; run `sysdl prune` first")
    return pd.DataFrame(rows)


def plot_pareto(frame, front, base_flops: float, path: str | Path, selected=None) -> Path:
    import matplotlib

    from models.shared.figures import new_figure, save

    fig, ax = new_figure((8, 5))
    colours = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    for colour, (session, group) in zip(colours, frame.groupby("session")):
        kept, rejected = group[group["accepted"]], group[~group["accepted"].astype(bool)]
        ax.scatter(kept["flops"] / base_flops, kept["test_after_retrain"], s=14, alpha=0.7, color=colour,
                   label=f"{session} (kept)")
        ax.scatter(rejected["flops"] / base_flops, rejected["test_after_retrain"], s=24, marker="x",
                   color=colour, label=f"{session} (rejected step)")
    ax.step(front["flops"] / base_flops, front["test_after_retrain"], where="post", color="black", lw=1.2,
            label="Pareto front")
    if selected is not None:
        ax.scatter([selected["flops"] / base_flops], [selected["test_after_retrain"]], s=120, facecolors="none",
                   edgecolors="red", lw=2, label="selected")
    ax.set(xscale="log", xlabel="inference FLOPs / base model's FLOPs (log)", ylabel="test accuracy",
           title="structured pruning: FLOPs vs test accuracy of every pruned model")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return save(fig, path)


def prune_report(prune_dir: str | Path = MAIN.prune_dir, out_dir: str | Path = MAIN.root,
                 threshold: float = 0.87, selected_path: str | Path = MAIN.selected) -> dict:
    """Write the steps table (CSV, markdown), the Pareto plot, and copy the selected model."""
    frame = pruning_steps(prune_dir)
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
    columns = ["session", "step", "layer", "unit", "conv1_channels", "conv2_channels", "hidden_units", "flops",
               "flops_fraction", "params", "test_before", "test_after_prune", "test_after_retrain", "drop",
               "accepted"]
    table = frame[[c for c in columns if c in frame.columns]]
    write_table(table, out, "prune_steps", floatfmt=".4f")
    plot = plot_pareto(frame, front, base_flops, out / "prune_pareto.png", selected)
    return {"steps": table, "front": front, "selected": selected, "plot": plot, "base_flops": base_flops}


def add_arguments(parser) -> None:
    parser.add_argument("--prune-dir", default=str(MAIN.prune_dir), help="the pruning sessions to read")
    parser.add_argument("--out-dir", default=str(MAIN.root), help="where the steps table and the plot go")
    parser.add_argument("--threshold", type=float, default=0.87, help="test accuracy the selected model must exceed")
    parser.add_argument("--selected", default=str(MAIN.selected), help="where the selected model is copied")


def main(args) -> int:
    result = prune_report(args.prune_dir, args.out_dir, args.threshold, args.selected)
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
    print(f"plot: {result['plot']}\nsteps: {Path(args.out_dir) / 'prune_steps.csv'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(command.run_module("models.reports.prune_report"))
