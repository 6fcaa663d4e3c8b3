"""Figures for reports: made on matplotlib's object API (no pyplot state, no backend switch),
so plotting is headless and never changes the backend of a process that imports sysdl."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure


def new_figure(figsize=(7, 4), nrows: int = 1, ncols: int = 1):
    """(figure, axes) for a grid of nrows x ncols panels."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols)


def save(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Lay out and write the figure as PNG, creating the directory; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    return path
