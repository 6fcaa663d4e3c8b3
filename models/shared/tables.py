"""Tables every report and study writes: CSV + markdown side by side, and the Pareto front.

    write_table(frame, Path("runs"), "prune_steps", title="...")   # runs/prune_steps.csv and .md
"""

from __future__ import annotations

from pathlib import Path


def write_table(table, out: Path, stem: str, title: str = "", footer: str = "", floatfmt: str = ".4g") -> None:
    """``OUT/STEM.csv`` and ``OUT/STEM.md`` (the title above the table, the footer below it)."""
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / f"{stem}.csv", index=False)
    parts = [title, table.to_markdown(index=False, floatfmt=floatfmt), footer]
    (out / f"{stem}.md").write_text("\n\n".join(part for part in parts if part) + "\n")


def pareto_front(frame, x: str = "flops", y: str = "test_after_retrain"):
    """Rows not dominated by another with fewer (or equal) FLOPs and higher (or equal) accuracy."""
    ordered = frame.sort_values([x, y], ascending=[True, False])
    best, keep = -1.0, []
    for index, row in ordered.iterrows():
        if row[y] > best:
            keep.append(index)
            best = row[y]
    return frame.loc[keep]
