"""Report tables (pandas) and figures (matplotlib) from finished jobs.

    sysdl report prune [--threshold 0.87]    # Pareto plot, steps table, the selected pruned model

The pruning report reads every session's ``state.json`` under ``runs/prune`` (the record each
session keeps of its finished steps, the same numbers it logs to MLflow) and considers every
model pruning produced: the base model and each step's retrained candidate, kept or rejected.
"""

from __future__ import annotations

import json
from pathlib import Path


def write_table(table, out: Path, stem: str, title: str = "", footer: str = "", floatfmt: str = ".4g") -> None:
    """``OUT/STEM.csv`` and ``OUT/STEM.md`` (the title above the table, the footer below it)."""
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / f"{stem}.csv", index=False)
    parts = [title, table.to_markdown(index=False, floatfmt=floatfmt), footer]
    (out / f"{stem}.md").write_text("\n\n".join(part for part in parts if part) + "\n")


def pruning_steps(prune_dir: str | Path):
    """All steps of all sessions as one DataFrame (one row per produced model)."""
    import pandas as pd
    rows = []
    for state_path in sorted(Path(prune_dir).glob("*/state.json")):
        state = json.loads(state_path.read_text())
        session = f"{state['config']['heuristic']}-{state['config']['schedule']}"
        rows += [{"session": session, **step} for step in state["steps"]]
    if not rows:
        raise ValueError(f"no pruning sessions under {prune_dir}; run `sysdl prune` first")
    return pd.DataFrame(rows)


def pareto_front(frame, x: str = "flops", y: str = "test_after_retrain"):
    """Rows not dominated by another with fewer (or equal) FLOPs and higher (or equal) accuracy."""
    ordered = frame.sort_values([x, y], ascending=[True, False])
    best, keep = -1.0, []
    for index, row in ordered.iterrows():
        if row[y] > best:
            keep.append(index)
            best = row[y]
    return frame.loc[keep]


def plot_pareto(frame, front, base_flops: float, path: str | Path, selected=None) -> Path:
    import matplotlib

    from models.figures import new_figure, save

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


def prune_report(prune_dir: str | Path = "runs/prune", out_dir: str | Path = "runs",
                 threshold: float = 0.87, selected_path: str | Path = "runs/pruned_selected.pt") -> dict:
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
        from models.checkpoint import atomic_write
        data = Path(selected["checkpoint"]).read_bytes()
        atomic_write(selected_path, lambda fh: fh.write(data))
    columns = ["session", "step", "layer", "unit", "conv1_channels", "conv2_channels", "hidden_units", "flops",
               "flops_fraction", "params", "test_before", "test_after_prune", "test_after_retrain", "drop",
               "accepted"]
    table = frame[[c for c in columns if c in frame.columns]]
    write_table(table, out, "prune_steps", floatfmt=".4f")
    plot = plot_pareto(frame, front, base_flops, out / "prune_pareto.png", selected)
    return {"steps": table, "front": front, "selected": selected, "plot": plot, "base_flops": base_flops}
