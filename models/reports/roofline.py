"""Percent of roofline for every timed case, and a roofline chart per family, for `sysdl bench-table`.

    sysdl bench-table        # also writes bench_<family>_roofline.md and .png; bench_<family>.csv gains the columns

    roofs = read_roofs([".asv/results"], gpu="H200")     # measured CPU peaks per machine, the GPU's datasheet
    frame = utilisation(frame, roofs)                    # + GFLOP/s, GB/s, intensity, roof, % of roof, bound
    tables = roofline_tables(frame, roofs)               # family -> RooflineTable (markdown, chart)

Per timed row, with F and b the FLOPs and bytes of one call (recorded in the results beside the
timings) and t its median time:

    GFLOP/s = F / t,   GB/s = b / t,   intensity I = F / b (FLOP per byte)
    roof    = min(P, I x B)                          P: the compute roof, B: main-memory bandwidth
    % of roof = max(F / P, b / B) / t                the time at the roof over the time measured:
                                                     achieved / roof, and for a case without
                                                     arithmetic (F = 0, im2col) (b / t) / B
    bound   = "compute" where F / P >= b / B, else "memory"

Above 100% a case ran faster than main memory allows: its working set stayed in a cache (the
chart's dashed slopes are the caches' bandwidths).

Beside it, the PALEO prediction of each case (sysdl_kernels.perf_model: compute at P plus traffic
at B, in sequence, at PPP 1, labelled predicted) and the measured PPP: the prediction's time over
the measured one, the fraction of both peaks the run reached; where it is far from the family's
other cases the prediction fails for that layer.

Where the peaks come from (each table's notes say which were used):
  * cpu rows: the machine's own measurements by benchmarks/bench_machine.py in its asv results (the
    latest commit of that machine that has them, from the same results directory first), else
    `sysdl machine`'s runs/machine/<machine>.json. P is the theoretical FMA peak unless a measured
    GEMM beat it (a VM reports its nominal clock; turbo runs above it): then the best GEMM. B is
    the main-memory triad.
  * cuda rows: the --gpu device's datasheet (sysdl_kernels.perf_model.DEVICES): fp32 peak, or
    the TF32 tensor-core peak for "<name> tf32" implementations, and its HBM bandwidth, labelled
    "datasheet". Measured CPU peaks and datasheet GPU peaks are never mixed.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from models.reports.bench_results import (format_seconds, is_gpu, machine_name, precision_of, provenance, ratio,
                                          read_machine_figures, write_family_files)
from models.shared.artifacts import MACHINE_DIR
from sysdl_kernels.perf_model import exact_ppp, layer_seconds, probed_device

if TYPE_CHECKING:
    import pandas as pd

GIGA = 1e9
RECORD_PEAKS = ("`asv run --python=same --set-commit-hash $(git rev-parse HEAD) -b bench_machine` on that machine, "
                "or `sysdl machine` there (runs/machine/<machine>.json)")
NO_PEAKS = "no peaks: run `asv run ... -b bench_machine` or `sysdl machine`"
UTILISATION_COLUMNS = ["flops", "bytes", "gflop_per_s", "gb_per_s", "flop_per_byte", "roof_gflop_per_s",
                       "roof_gb_per_s", "percent_of_roof", "bound", "paleo_seconds", "measured_ppp", "peaks"]
CELL_COLUMNS = ["case", "implementation", "device", "machine", "time", "GFLOP/s", "GB/s", "FLOP/B", "roof",
                "% of roof", "bound", "PALEO at PPP 1 (predicted)", "measured PPP", "peaks"]


@dataclass(frozen=True)
class Peaks:
    """One device's roofs (FLOP/s, bytes/s) and where they came from."""
    name: str                   # "sysdl-dev, measured", "H200 datasheet, TF32": how tables and charts name it
    kind: str                   # "measured" (a machine's own CPU) or "datasheet" (a GPU's)
    source: str                 # the results, file or datasheet the figures were read from
    compute: float              # FLOP/s: the compute roof P
    compute_label: str          # which figure P is, and why
    memory: float               # bytes/s: the memory roof B (main-memory triad, or HBM)
    memory_label: str
    lines: dict = field(default_factory=dict)     # other compute rates drawn dotted: label -> FLOP/s
    caches: dict = field(default_factory=dict)    # cache level -> bytes/s, drawn as dashed slopes
    threads: float = math.nan                     # threads the CPU figures were measured with

    def describe(self) -> str:
        """One note: where the figures come from and what P and B are."""
        lines = ", ".join(f"{label} {format_figures(rate / GIGA)}" for label, rate in self.lines.items())
        caches = ", ".join(f"{level} {format_figures(rate / GIGA)}" for level, rate in self.caches.items())
        threads = f", {self.threads:g} threads" if not math.isnan(self.threads) else ""
        return (f"peaks of {self.name}, from {self.source}{threads}: compute roof "
                f"{format_figures(self.compute / GIGA)} GFLOP/s, {self.compute_label}; memory roof "
                f"{format_figures(self.memory / GIGA)} GB/s, {self.memory_label}"
                + (f"; also drawn: {lines} GFLOP/s" if lines else "") + (f"; caches {caches} GB/s" if caches else ""))


# ---------------------------------------------------------------------------------------------
# Peaks: measured on the CPU, the datasheet's on the GPU


def measured_peaks(name: str, source: str, fma_peak: float, gemm: dict, bandwidth: dict,
                   threads: float = math.nan) -> Peaks | None:
    """A CPU's Peaks from its figures (FLOP/s, bytes/s; bandwidth by level, "memory" the main
    memory): P is the theoretical FMA peak unless a measured GEMM ran faster, then the best GEMM.
    None without a compute figure or a main-memory bandwidth."""
    gemm = {path: rate for path, rate in gemm.items() if rate > 0}
    memory = bandwidth.get("memory", math.nan)
    fastest = max(gemm, key=gemm.get, default=None)
    has_peak = fma_peak > 0
    if not (memory > 0) or (fastest is None and not has_peak):
        return None
    lines = {f"GEMM {path}": rate for path, rate in gemm.items()}
    if fastest is not None and (not has_peak or gemm[fastest] > fma_peak):
        why = (f"above the theoretical FMA peak {format_figures(fma_peak / GIGA)} GFLOP/s (the clock read is below the "
               "one the cores ran at)" if has_peak else "no theoretical FMA peak recorded")
        compute, label = gemm[fastest], f"the best measured GEMM ({fastest}), {why}"
        lines.update({"theoretical FMA peak": fma_peak} if has_peak else {})
    else:
        compute, label = fma_peak, "the theoretical FMA peak (cores x lanes x FMA units x 2 x clock)"
    caches = {level: rate for level, rate in bandwidth.items() if level != "memory" and rate > 0}
    return Peaks(name, "measured", source, compute, label, memory, "the main-memory triad", lines, caches, threads)


def datasheet_peaks(gpu: str, precision: str) -> Peaks | None:
    """The GPU's datasheet Peaks at a precision ("ieee": fp32, "tf32": the tensor cores' dense TF32
    peak); None for TF32 on a GPU without tensor cores."""
    from sysdl_kernels.perf_model import DEVICES
    device = DEVICES[gpu]
    if precision == "tf32" and device.tf32_flops is None:
        return None
    compute, label = ((device.tf32_flops, "the dense TF32 tensor-core peak") if precision == "tf32"
                      else (device.peak_flops, "the fp32 peak"))
    return Peaks(f"{gpu} datasheet{', TF32' if precision == 'tf32' else ''}", "datasheet",
                 f"the {device.source} for the {device.name} in sysdl_kernels.perf_model.DEVICES (--gpu)",
                 compute, label, device.bandwidth, "HBM bandwidth")


def _asv_peaks(figures) -> list[tuple[str, str, Peaks]]:
    """(results_dir, machine, Peaks) per machine with bench_machine figures, from its latest commit
    (by commit date) that has them, each figure's latest run there."""
    found = []
    for (results_dir, machine), rows in figures.groupby(["results_dir", "machine"], sort=False):
        commit = rows.sort_values(["date", "started_at"])["commit"].iloc[-1]
        latest = rows[rows["commit"] == commit].sort_values("started_at").drop_duplicates(["figure", "param"],
                                                                                          keep="last")
        value = {(r.figure, r.param): r.value * GIGA for r in latest.itertuples()}
        source = f"asv bench_machine at commit {commit[:8]} in {results_dir}"
        peaks = measured_peaks(f"{machine}, measured", source, value.get(("fma_peak", ""), math.nan),
                               {p: v for (f, p), v in value.items() if f == "gemm"},
                               {p: v for (f, p), v in value.items() if f == "triad"}, latest["threads"].iloc[0])
        if peaks is not None:
            found.append((results_dir, machine, peaks))
    return found


def file_peaks(path: Path) -> Peaks | None:
    """Peaks from a file `sysdl machine` saved (runs/machine/<name>.json; FLOP/s and bytes/s);
    None, with a warning, for a file that is not one."""
    try:
        figures = json.loads(path.read_text())
        source = f"`sysdl machine` file {path}, measured {figures.get('measured_at', '?')}"
        return measured_peaks(f"{path.stem}, measured", source, figures.get("theoretical_fma_peak", math.nan),
                              figures.get("gemm", {}), figures.get("bandwidth", {}), figures.get("threads", math.nan))
    except (OSError, ValueError, AttributeError, TypeError) as err:
        warnings.warn(f"skipped {path}: not a file `sysdl machine` saved ({err}); `sysdl machine --overwrite` "
                      "measures again", stacklevel=2)
        return None


@dataclass
class Roofs:
    """Every set of peaks a table may use: measured CPU peaks by machine (asv's, then `sysdl
    machine`'s files) and the --gpu datasheet (None: no GPU peaks)."""
    asv: list = field(default_factory=list)       # (results_dir, machine, Peaks), as _asv_peaks gives them
    files: dict = field(default_factory=dict)     # machine -> Peaks from runs/machine/<machine>.json
    gpu: str | None = None

    def for_row(self, source: str, results_dir: str, machine: str, device: str, implementation: str) -> Peaks | None:
        """The peaks of the device that timed a row; None where none were recorded."""
        if is_gpu(device):
            return datasheet_peaks(self.gpu, precision_of(implementation)) if self.gpu else None
        name = machine_name(machine, results_dir) if source == "asv" else machine
        same_name = sorted((d != results_dir, i) for i, (d, m, _) in enumerate(self.asv) if m == name)
        return self.asv[same_name[0][1]][2] if same_name else self.files.get(name)     # this directory's first


def read_roofs(asv_dirs, gpu: str | None = None, machine_dir: str | Path = MACHINE_DIR) -> Roofs:
    """The Roofs of bench_machine's figures under asv_dirs, of every `sysdl machine` file in
    machine_dir, and of the ``gpu`` datasheet (a sysdl_kernels.perf_model.DEVICES key)."""
    files = {path.stem: peaks for path in sorted(Path(machine_dir).glob("*.json"))
             if (peaks := file_peaks(path)) is not None}
    return Roofs(_asv_peaks(read_machine_figures(asv_dirs)), files, gpu)


# ---------------------------------------------------------------------------------------------
# Per-row figures


def _row_figures(flops: float, moved: float, seconds: float, peaks: Peaks | None) -> dict:
    """UTILISATION_COLUMNS of one timed row (NaN where the work, the time or the peaks are missing)."""
    figures = {"flops": flops, "bytes": moved, "gflop_per_s": ratio(flops, seconds) / GIGA,
               "gb_per_s": ratio(moved, seconds) / GIGA, "flop_per_byte": ratio(flops, moved) if flops > 0 else flops,
               "roof_gflop_per_s": math.nan, "roof_gb_per_s": math.nan, "percent_of_roof": math.nan, "bound": "",
               "paleo_seconds": math.nan, "measured_ppp": math.nan, "peaks": peaks.name if peaks else ""}
    if peaks is None or math.isnan(flops) or math.isnan(moved):
        return figures
    compute_seconds, memory_seconds = flops / peaks.compute, moved / peaks.memory
    at_roof = max(compute_seconds, memory_seconds)          # the time of one call at the roof
    if not at_roof > 0:
        return figures
    # PALEO (sysdl_kernels.perf_model): compute and traffic in sequence, R + C + W, on the same peaks
    # at PPP 1; the measured PPP is the fraction of both peaks the run reached (the prediction's
    # time over the measured one).
    paleo = layer_seconds(flops, moved, probed_device(peaks.compute, peaks.memory, peaks.name), ppp=1.0)
    return {**figures, "roof_gflop_per_s": flops / at_roof / GIGA, "roof_gb_per_s": moved / at_roof / GIGA,
            "percent_of_roof": 100 * ratio(at_roof, seconds),
            "bound": "compute" if compute_seconds >= memory_seconds else "memory",
            "paleo_seconds": paleo, "measured_ppp": exact_ppp(paleo, seconds) if seconds > 0 else math.nan}


def _peaks_per_row(frame, roofs: Roofs) -> list[Peaks | None]:
    return [roofs.for_row(r.source, r.results_dir, r.machine, r.device, r.implementation) for r in frame.itertuples()]


def utilisation(frame, roofs: Roofs | None = None):
    """The long frame (bench_results) with UTILISATION_COLUMNS: achieved GFLOP/s and GB/s, FLOP per
    byte, the roof at that intensity (GFLOP/s), percent of it, which roof bounds it, whose peaks."""
    import pandas as pd
    figures = [_row_figures(r.flops, r.bytes, r.seconds, peaks)
               for r, peaks in zip(frame.itertuples(), _peaks_per_row(frame, roofs or Roofs()))]
    added = pd.DataFrame(figures, columns=UTILISATION_COLUMNS, index=frame.index)
    return pd.concat([frame.drop(columns=[c for c in UTILISATION_COLUMNS if c in frame]), added], axis=1)


# ---------------------------------------------------------------------------------------------
# Tables


@dataclass
class RooflineTable:
    """One family's roofline: ``cells`` (CELL_COLUMNS, strings), ``numbers`` (the timed rows with
    UTILISATION_COLUMNS), the ``peaks`` they were set against (by name)."""
    family: str
    cells: pd.DataFrame
    numbers: pd.DataFrame
    peaks: dict = field(default_factory=dict)
    provenance: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def format_figures(value: float) -> str:
    """Three significant figures, thousands separated: '1,234', '140', '12.3', '0.0123'; 'n/a' for NaN."""
    if value is None or math.isnan(value):
        return "n/a"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def format_percent(percent: float) -> str:
    """'52%', '3.4%', '0.012%'; 'n/a' for NaN."""
    if math.isnan(percent):
        return "n/a"
    return f"{percent:,.0f}%" if percent >= 10 else f"{percent:.2g}%"


def _cell_row(row) -> dict:
    """CELL_COLUMNS of one timed row."""
    no_work = math.isnan(row.flops) or math.isnan(row.bytes)
    arithmetic = no_work or row.flops > 0        # without arithmetic, the roof is the bandwidth
    roof = (f"{format_figures(row.roof_gflop_per_s)} GFLOP/s" if arithmetic
            else f"{format_figures(row.roof_gb_per_s)} GB/s")
    percent = "no work recorded" if no_work else format_percent(row.percent_of_roof) if row.peaks else NO_PEAKS
    return {"case": row.case, "implementation": row.implementation, "device": row.device, "machine": row.machine,
            "time": format_seconds(row.seconds),
            "GFLOP/s": format_figures(row.gflop_per_s) if arithmetic else "no arithmetic",
            "GB/s": format_figures(row.gb_per_s), "FLOP/B": format_figures(row.flop_per_byte),
            "roof": roof if row.peaks and not no_work else "n/a", "% of roof": percent, "bound": row.bound,
            "PALEO at PPP 1 (predicted)": format_seconds(row.paleo_seconds) if row.peaks and not no_work else "n/a",
            "measured PPP": format_figures(row.measured_ppp) if row.peaks and not no_work else "n/a",
            "peaks": row.peaks or "none"}


def _notes(numbers, peaks: dict) -> list[str]:
    """Where each set of peaks came from, the rows without peaks or work, and what > 100% means."""
    if numbers.empty:
        return ["no timed case (every case skipped or failed): nothing to set against a roof"]
    notes = [p.describe() for p in peaks.values()]
    unpeaked = numbers[numbers["peaks"] == ""]
    for (machine, device), _ in unpeaked.groupby(["machine", "device"], sort=False):
        what = (f"no GPU datasheet for {device} (--gpu; TF32 needs a GPU with tensor cores)" if is_gpu(device)
                else f"no measured peaks for {machine}: run {RECORD_PEAKS}")
        notes.append(f"{machine} {device}: {what}")
    notes += _thread_notes(numbers, peaks)
    if numbers["flops"].isna().any() or numbers["bytes"].isna().any():
        notes.append("rows with no work recorded have no rates (results from before the *Work benchmarks)")
    if (numbers["flops"] == 0).any():
        notes.append("a case without arithmetic (FLOPs 0) is set against the memory roof: its % is GB/s over the "
                     "bandwidth; the chart leaves it out (no point at intensity 0 on a log axis)")
    if numbers["device"].map(is_gpu).any():
        notes.append("GPU percentages are of the datasheet's roof of the --gpu device, whatever GPU the machine had")
    if (numbers["percent_of_roof"] > 100).any():
        notes.append("above 100%: faster than main memory allows, so the working set stayed in a cache (the chart's "
                     "dashed slopes)")
    return notes


def _thread_notes(numbers, peaks: dict) -> list[str]:
    notes = []
    for name, rows in numbers[numbers["peaks"] != ""].groupby("peaks", sort=False):
        measured_with, timed_with = peaks[name].threads, set(rows["threads"].dropna())
        if not math.isnan(measured_with) and timed_with - {measured_with}:
            notes.append(f"{name}: timed on {', '.join(f'{t:g}' for t in sorted(timed_with))} threads, peaks "
                         f"measured on {measured_with:g}: the percentages are of a {measured_with:g}-thread roof")
    return notes


def _used_peaks(rows, roofs: Roofs) -> dict[str, Peaks]:
    """name -> Peaks of every set the rows are set against, in row order."""
    return {peaks.name: peaks for peaks in _peaks_per_row(rows, roofs) if peaks is not None}


def roofline_tables(frame, roofs: Roofs | None = None) -> dict[str, RooflineTable]:
    """family -> RooflineTable, one row per timed (case, implementation, device, machine) of the
    long frame (bench_results.load_asv / load_pytest_benchmark, concatenated)."""
    import pandas as pd
    roofs = roofs or Roofs()
    tables = {}
    for family, rows in frame.groupby("family", sort=False):
        timed = rows[rows["seconds"].notna()].reset_index(drop=True)
        numbers = utilisation(timed, roofs)
        peaks = _used_peaks(timed, roofs)
        cells = pd.DataFrame([_cell_row(r) for r in numbers.itertuples()], columns=CELL_COLUMNS)
        tables[family] = RooflineTable(family, cells, numbers, peaks, provenance(rows), _notes(numbers, peaks))
    return tables


def to_markdown(table: RooflineTable) -> str:
    lines = [f"## {table.family}: percent of roofline, achieved GFLOP/s against min(compute peak, FLOP/B x memory "
             "bandwidth) of the device that ran it", ""]
    lines += [f"- {line}" for line in table.provenance + table.notes]
    return "\n".join(lines + ["", table.cells.to_markdown(index=False, disable_numparse=True), ""])


# ---------------------------------------------------------------------------------------------
# Chart

MARKERS = "osD^vP*Xh<>"
X_SPAN = (0.1, 100.0)      # FLOP per byte the chart spans at least: both roofs stay visible
COLOURS = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive",
           "tab:cyan"]


def _panels(numbers) -> list[tuple[str, str, pd.DataFrame]]:
    """(machine, "CPU" or "GPU", its rows) per panel: CPU panels first, one per machine."""
    kind = numbers["device"].map(lambda d: "GPU" if is_gpu(d) else "CPU")
    groups = numbers.assign(kind=kind).groupby(["kind", "machine"], sort=False)
    return sorted(((machine, k, rows) for (k, machine), rows in groups), key=lambda p: (p[1] != "CPU", p[0]))


def _x_range(rows, peaks: list[Peaks]) -> tuple[float, float]:
    """Intensities spanning the points, every ridge point (P / B) and at least X_SPAN, with a margin."""
    xs = [x for x in rows["flop_per_byte"] if 0 < x < math.inf] + [p.compute / p.memory for p in peaks]
    return min(xs + [X_SPAN[0] * 4]) / 4, max(xs + [X_SPAN[1] / 4]) * 4


def _spread(heights: list[float], factor: float = 1.15) -> list[float]:
    """Label heights on a log axis, each at least ``factor`` above the one below (in the given order
    sorted ascending), so labels of close rates do not print over each other."""
    placed = []
    for height in sorted(heights):
        placed.append(max(height, placed[-1] * factor) if placed else height)
    order = sorted(range(len(heights)), key=heights.__getitem__)
    return [placed[order.index(i)] for i in range(len(heights))]


def _draw_roofs(ax, peaks: Peaks, x_range: tuple[float, float], shade: str) -> None:
    """The roof min(P, I x B) solid, each cache's slope dashed, the other compute rates dotted."""
    import numpy as np
    x = np.geomspace(*x_range, 200)
    top = peaks.compute / GIGA
    ax.plot(x, np.minimum(top, x * peaks.memory / GIGA), color=shade, linewidth=2,
            label=f"{peaks.name}: {format_figures(top)} GFLOP/s, {format_figures(peaks.memory / GIGA)} GB/s")
    for (level, bandwidth), dashes in zip(peaks.caches.items(), [(8, 3), (4, 2), (6, 2, 1, 2), (2, 2)]):
        ax.plot(x, np.minimum(top, x * bandwidth / GIGA), color=shade, linestyle=(0, dashes), linewidth=1,
                label=f"{level} {format_figures(bandwidth / GIGA)} GB/s")
    rates = [rate / GIGA for rate in peaks.lines.values()]
    for label, rate, height in zip(peaks.lines, rates, _spread(rates)):
        ax.axhline(rate, color=shade, linestyle=":", linewidth=1)
        ax.annotate(f"{label} {format_figures(rate)}", (x[-1], height), fontsize="x-small", color=shade, ha="right",
                    va="bottom")


def _draw_panel(ax, machine: str, kind: str, rows, peaks: dict[str, Peaks], styles: dict) -> None:
    used = [peaks[name] for name in dict.fromkeys(rows["peaks"]) if name]
    x_range = _x_range(rows, used)
    for shade, p in zip(["black", "dimgray", "gray"], used):
        _draw_roofs(ax, p, x_range, shade)
    drawn = rows[(rows["flop_per_byte"] > 0) & (rows["gflop_per_s"] > 0)
                 & rows["flop_per_byte"].map(math.isfinite)]
    for implementation, points in drawn.groupby("implementation", sort=False):
        marker, colour = styles[implementation]
        ax.scatter(points["flop_per_byte"], points["gflop_per_s"], marker=marker, color=colour, label=implementation,
                   zorder=3)
    source = ", ".join(sorted({p.kind for p in used})) or NO_PEAKS
    left_out = len(rows) - len(drawn)
    not_drawn = f"; {left_out} row{'s' * (left_out > 1)} without arithmetic or work not drawn" if left_out else ""
    ax.set(xscale="log", yscale="log", xlabel="arithmetic intensity (FLOP per byte)", ylabel="GFLOP/s",
           title=f"{machine} {kind} ({source}){not_drawn}")
    ax.grid(alpha=0.3, which="both")
    if len(drawn) or used:
        ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.01, 1.0))


def plot(table: RooflineTable, path: str | Path) -> Path:
    """Log-log roofline, one panel per machine and device kind (CPU, GPU): each implementation's
    cases as points (one marker and colour per implementation across panels) under the roofs."""
    import numpy as np

    from models.shared.figures import new_figure, save
    numbers = table.numbers
    panels = _panels(numbers)
    if not panels:
        fig, ax = new_figure((6.0, 2.0))
        ax.axis("off")
        ax.text(0.5, 0.5, f"{table.family}: no timed case (all skipped or failed)", ha="center", va="center")
        return save(fig, path)
    implementations = list(dict.fromkeys(numbers["implementation"]))
    styles = {impl: (MARKERS[i % len(MARKERS)], COLOURS[i % len(COLOURS)]) for i, impl in enumerate(implementations)}
    fig, axes = new_figure((9.0 * len(panels), 5.0), 1, len(panels))
    for ax, (machine, kind, rows) in zip(np.atleast_1d(axes), panels):
        _draw_panel(ax, machine, kind, rows, table.peaks, styles)
    fig.suptitle(f"{table.family}: roofline")
    return save(fig, path)


def write_outputs(tables: dict[str, RooflineTable], out_dir: str | Path) -> list[Path]:
    """bench_<family>_roofline.md and .png per family (the numbers are in bench_<family>.csv)."""
    return write_family_files(tables, out_dir, "_roofline", to_markdown, plot, with_csv=False)
