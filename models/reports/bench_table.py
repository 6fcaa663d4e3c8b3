"""Per-family tables of the benchmark results, and a CPU-vs-GPU table per family.

From asv's and pytest-benchmark's results; the CPU-vs-GPU tables are models/reports/gpu_table.py.

    sysdl bench-table                               # each machine's latest asv commit
    sysdl bench-table --commit 5dbe54               # one commit for every machine (a hash prefix)
    sysdl bench-table --vs 8e29e4                   # also: time at --commit / time at 8e29e4
    sysdl bench-table --pytest-json runs/bench.json # add pytest-benchmark's --benchmark-json files
    sysdl bench-table --asv-dir .asv/results docs/results/h200/asv --gpu H200 --ppp 0.4

Results are read by models/reports/bench_results.py (which results count, several asv
directories, which commit per machine). By default ``--asv-dir`` is this machine's
``.asv/results`` and every ``docs/results/<machine>/asv`` a GPU machine committed.

Each cell of a family table is the median time per call and, in brackets, the speedup over the
family's baseline (the first implementation its benchmark lists, as the results record it: asv's
benchmarks.json params, pytest-benchmark's extra_info "baseline"): baseline time / this time, for
the same case on the same device and machine. A CUDA cell whose baseline has no CUDA time is
compared with the baseline on the CPU and says so ("vs cpu"). Where a machine has both CPU and
CUDA times, a "GPU/CPU" column per implementation gives CPU time / CUDA time. Cases asv skipped
(NotImplementedError in setup, e.g. no GPU) or that failed are missing values, never zeros.
Tables go to the terminal (markdown) and to OUT_DIR as bench_<family>.md, .csv (numbers) and
.png (bar chart); the CPU-vs-GPU tables as bench_<family>_gpu.md, .csv and .png; the percent of
roofline of every timed case as bench_<family>_roofline.md and .png (models/reports/roofline.py),
its numbers as columns of bench_<family>.csv.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from models.reports import gpu_table, roofline
from models.reports.bench_results import (GPU_HINT, PYTEST_HINT, NoResultsError, baseline_of, default_asv_dirs,
                                          format_ratio, format_seconds, is_gpu, load_asv,
                                          load_pytest_benchmark, provenance, ratio, read_asv, resolve_commit, tidy,
                                          write_family_files)
from models.shared.artifacts import MACHINE_DIR, MAIN

if TYPE_CHECKING:
    import pandas as pd

CHANGE_FACTOR = 1.1     # --vs: "faster"/"slower" beyond this ratio either way (asv compare's default)


@dataclass
class FamilyTable:
    """One family's table: ``cells`` for reading, ``numbers`` (one row per timing) for CSV."""
    family: str
    baseline: str
    cells: pd.DataFrame                 # index case, columns "impl @ device (machine)", strings
    numbers: pd.DataFrame               # one row per timing: seconds, speedup, gpu_over_cpu, roofline, ...
    provenance: list[str] = field(default_factory=list)     # "asv commit ... on machine (cpu, threads)"
    notes: list[str] = field(default_factory=list)          # baseline fallbacks, missing devices


# ---------------------------------------------------------------------------------------------
# Tables


def _origins(frame) -> dict[tuple[str, str], str]:
    """(source, machine) -> column suffix: empty with one origin, else ' (machine)' (+ source if shared)."""
    pairs = sorted(set(zip(frame["source"], frame["machine"])))
    if len(pairs) == 1:
        return {pairs[0]: ""}
    shared = {m for m in frame["machine"] if frame.loc[frame["machine"] == m, "source"].nunique() > 1}
    return {(s, m): f" ({m}, {s})" if m in shared else f" ({m})" for s, m in pairs}


def _with_speedups(frame, baseline: str):
    """Adds speedup (baseline time / time; same case, device, machine, source), baseline_device and
    gpu_over_cpu (this implementation's CPU time / its CUDA time, same machine) to the timings."""
    times = {(r.source, r.machine, r.case, r.implementation, r.device): r.seconds for r in frame.itertuples()}

    def time(row, implementation, device):
        return times.get((row.source, row.machine, row.case, implementation, device), math.nan)

    speedups, against, gpu_over_cpu = [], [], []
    for row in frame.itertuples():
        device, base = row.device, time(row, baseline, row.device)
        if math.isnan(base) and is_gpu(device):
            device, base = "cpu", time(row, baseline, "cpu")      # no CUDA baseline: the CPU's, labelled
        speedups.append(ratio(base, row.seconds))
        against.append("" if math.isnan(base) else device)
        gpu_over_cpu.append(ratio(time(row, row.implementation, "cpu"), row.seconds) if is_gpu(row.device)
                            else math.nan)
    return frame.assign(speedup=speedups, baseline_device=against, gpu_over_cpu=gpu_over_cpu)


def _cell(row) -> str:
    if math.isnan(row.seconds):
        return "n/a"
    if math.isnan(row.speedup):
        return f"{format_seconds(row.seconds)} (no baseline)"
    versus = " vs cpu" if row.baseline_device != row.device else ""
    return f"{format_seconds(row.seconds)} ({format_ratio(row.speedup)}{versus})"


def _device_notes(numbers) -> list[str]:
    measured = numbers[numbers["seconds"].notna()]
    has_cpu = (measured["device"] == "cpu").any()
    has_gpu = measured["device"].map(is_gpu).any()
    if has_cpu and not has_gpu:
        return [f"no cuda results: the GPU/CPU column is missing ({GPU_HINT})"]
    if has_gpu and not has_cpu:
        return ["no cpu results: the GPU/CPU column is missing (run the benchmarks with device cpu too)"]
    if has_gpu and numbers["gpu_over_cpu"].isna().all():
        return ["no implementation has both cpu and cuda times on one machine: the GPU/CPU column is "
                f"missing (it compares the two on the same machine; {GPU_HINT})"]
    return []


def _columns(numbers, baseline: str, origins: dict) -> dict[str, tuple]:
    """Column label -> (kind, source, machine, implementation, device), in reading order: per
    machine, the baseline first, each implementation's devices (cpu first), then its GPU/CPU."""
    implementations = list(dict.fromkeys([baseline, *numbers["implementation"]]))
    devices = sorted(numbers["device"].unique(), key=lambda d: (d != "cpu", d))
    measured = numbers[numbers["seconds"].notna()]
    present = set(zip(measured["source"], measured["machine"], measured["implementation"], measured["device"]))
    ratios = numbers[numbers["gpu_over_cpu"].notna()]
    with_ratio = set(zip(ratios["source"], ratios["machine"], ratios["implementation"]))
    columns = {}
    for (source, machine), suffix in origins.items():
        for impl in implementations:
            for device in devices:
                if (source, machine, impl, device) in present:     # skipped everywhere: no column
                    columns[f"{impl} @ {device}{suffix}"] = ("time", source, machine, impl, device)
            if (source, machine, impl) in with_ratio:
                columns[f"{impl} GPU/CPU{suffix}"] = ("ratio", source, machine, impl, None)
    return columns


def _cells(numbers, baseline: str, origins: dict) -> pd.DataFrame:
    """Rows case (in benchmark order), one string column per _columns entry."""
    import pandas as pd
    cases = list(dict.fromkeys(numbers["case"]))
    timings = {(r.source, r.machine, r.implementation, r.device, r.case): r for r in numbers.itertuples()}
    gpu_ratios = {(r.source, r.machine, r.implementation, r.case): r.gpu_over_cpu
                  for r in numbers.itertuples() if not math.isnan(r.gpu_over_cpu)}
    table = {}
    for label, (kind, source, machine, impl, device) in _columns(numbers, baseline, origins).items():
        if kind == "time":
            rows = [timings.get((source, machine, impl, device, case)) for case in cases]
            table[label] = [_cell(r) if r is not None else "n/a" for r in rows]
        else:
            table[label] = [format_ratio(gpu_ratios.get((source, machine, impl, case), math.nan)) for case in cases]
    return pd.DataFrame(table, index=pd.Index(cases, name="case"))


def family_tables(frame, baselines: dict[str, str] | None = None,
                  roofs: roofline.Roofs | None = None) -> dict[str, FamilyTable]:
    """family -> FamilyTable, from a long frame (load_asv / load_pytest_benchmark, concatenated).
    baselines: family -> implementation; default: the baseline each family's results record.
    roofs: the peaks for the numbers' roofline columns (roofline.read_roofs); default none."""
    tables = {}
    for family, rows in frame.groupby("family", sort=False):
        rows = rows.reset_index(drop=True)
        baseline, note = baseline_of(family, rows, baselines)
        numbers = roofline.utilisation(_with_speedups(rows, baseline), roofs)
        origins = _origins(numbers)
        numbers = numbers[["case", "implementation", "device", "machine", "source", "commit", "threads",
                           "seconds", "speedup", "baseline_device", "gpu_over_cpu", *roofline.UTILISATION_COLUMNS]]
        tables[family] = FamilyTable(family, baseline, _cells(numbers, baseline, origins), numbers,
                                     provenance(rows), ([note] if note else []) + _device_notes(numbers))
    return tables


def compare_commits(results_dirs, commit_a: str, commit_b: str | None,
                    factor: float = CHANGE_FACTOR) -> dict[str, pd.DataFrame]:
    """family -> frame indexed (case, implementation, device, machine) with "time A", "time B"
    (seconds), "B/A" and "change": "faster" / "slower" when B/A is beyond ``factor`` either way.
    results_dirs: one asv results directory or several; commit_b None: the latest."""
    results_dirs = [results_dirs] if isinstance(results_dirs, (str, Path)) else list(results_dirs)
    frame, _ = read_asv(results_dirs)
    hash_a, hash_b = (resolve_commit(frame, c, results_dirs) for c in (commit_a, commit_b))
    keys = ["family", "case", "implementation", "device", "machine"]
    runs = [tidy(frame[frame["commit"] == c])[keys + ["seconds", "version"]] for c in (hash_a, hash_b)]
    both = runs[0].merge(runs[1], on=keys, how="outer", suffixes=(" A", " B"), sort=False)
    both = both.rename(columns={"seconds A": "time A", "seconds B": "time B"})
    both = both[both["time A"].notna() | both["time B"].notna()].copy()    # skipped at both: nothing to compare
    both["B/A"] = both["time B"] / both["time A"]
    changed = both["version A"].notna() & both["version B"].notna() & (both["version A"] != both["version B"])
    both["change"] = [_change(ta, tb, factor) + (" (benchmark code changed)" if code else "")
                      for ta, tb, code in zip(both["time A"], both["time B"], changed)]
    comparisons = {}
    for family, rows in both.groupby("family", sort=False):
        table = rows.set_index(keys[1:])[["time A", "time B", "B/A", "change"]]
        table.attrs.update(commit_a=hash_a, commit_b=hash_b)
        comparisons[family] = table
    return comparisons


def _change(time_a: float, time_b: float, factor: float) -> str:
    if math.isnan(time_a) or math.isnan(time_b):
        return f"no time at {'A' if math.isnan(time_a) else 'B'}"
    ratio = time_b / time_a
    return "slower" if ratio > factor else "faster" if ratio < 1 / factor else ""


# ---------------------------------------------------------------------------------------------
# Output


def to_markdown(table: FamilyTable) -> str:
    lines = [f"## {table.family}: median time per call (speedup over {table.baseline}, same case, device "
             "and machine)", ""]
    lines += [f"- {line}" for line in table.provenance + table.notes]
    return "\n".join(lines + ["", table.cells.to_markdown(), ""])


def comparison_markdown(family: str, comparison) -> str:
    a, b = comparison.attrs["commit_a"][:8], comparison.attrs["commit_b"][:8]
    shown = comparison.reset_index()
    for column in ("time A", "time B"):
        shown[column] = shown[column].map(format_seconds)
    shown["B/A"] = shown["B/A"].map(lambda r: "n/a" if math.isnan(r) else f"{r:.2f}")
    shown = shown.rename(columns={"time A": f"A {a}", "time B": f"B {b}"})
    return "\n".join([f"## {family}: commit {b} (B) against {a} (A); B/A < 1 is faster", "",
                      shown.to_markdown(index=False), ""])


def plot(table: FamilyTable, path: str | Path) -> Path:
    """Grouped bars: x = case, a bar per implementation @ device (machine), y = median time (log)."""
    import pandas as pd

    from models.shared.figures import new_figure, save
    numbers = table.numbers
    bars = {}
    for label, (kind, source, machine, impl, device) in _columns(numbers, table.baseline, _origins(numbers)).items():
        if kind == "time":
            rows = numbers[(numbers["source"] == source) & (numbers["machine"] == machine)
                           & (numbers["implementation"] == impl) & (numbers["device"] == device)]
            bars[label] = rows.set_index("case")["seconds"]
    seconds = pd.DataFrame(bars).reindex(list(dict.fromkeys(numbers["case"])))   # (case, bar)
    seconds = seconds.dropna(axis=1, how="all")
    machines = ", ".join(sorted(set(numbers["machine"])))
    if seconds.empty:                          # every case skipped or failed: say so rather than draw nothing
        fig, ax = new_figure((6.0, 2.0))
        ax.axis("off")
        ax.text(0.5, 0.5, f"{table.family} on {machines}: no timed case (all skipped or failed)",
                ha="center", va="center")
        return save(fig, path)
    fig, ax = new_figure((max(5.0, 1.2 * len(seconds) + 0.2 * seconds.shape[1]) + 3.5, 4.5))
    seconds.plot.bar(ax=ax, logy=True, rot=0, width=0.85)
    ax.set(xlabel="", ylabel="median seconds per call (log)", title=f"{table.family} on {machines}")
    ax.grid(axis="y", alpha=0.3, which="both")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return save(fig, path)


def write_outputs(tables: dict[str, FamilyTable], out_dir: str | Path, comparisons: dict | None = None) -> list[Path]:
    """bench_<family>.md / .csv / .png per family (and bench_<family>_vs.md / .csv for --vs)."""
    out = Path(out_dir)
    written = write_family_files(tables, out, "", to_markdown, plot)
    for family, comparison in (comparisons or {}).items():
        md, csv = out / f"bench_{family}_vs.md", out / f"bench_{family}_vs.csv"
        md.write_text(comparison_markdown(family, comparison), encoding="utf-8")
        comparison.to_csv(csv)
        written += [md, csv]
    return written


# ---------------------------------------------------------------------------------------------
# Command line


def _fraction_of_peak(text: str) -> float:
    """An argparse type: a PPP in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction of the peaks in (0, 1], got {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], a fraction of the peaks, got {value:g}")
    return value


def add_arguments(parser) -> None:
    from sysdl_kernels.perf_model import DEVICES
    parser.add_argument("--asv-dir", nargs="+", default=None, metavar="DIR",
                        help="asv results directories (default: .asv/results and every docs/results/*/asv, "
                             "the GPU results `sysdl gpu-check` commits)")
    parser.add_argument("--pytest-json", nargs="*", default=[], metavar="FILE",
                        help="pytest-benchmark --benchmark-json files to add")
    parser.add_argument("--commit", default=None,
                        help="asv commit hash or prefix for every machine (default: each machine's latest)")
    parser.add_argument("--vs", default=None, metavar="COMMIT",
                        help="also compare asv times at --commit (B; default the latest) with those at COMMIT (A)")
    parser.add_argument("--gpu", default=gpu_table.DEFAULT_GPU, choices=list(DEVICES),
                        help="the GPU whose datasheet peaks predict GPU times (sysdl_kernels.perf_model.DEVICES)")
    parser.add_argument("--ppp", type=_fraction_of_peak, default=None,
                        help="platform percent of peak for the predictions, in (0, 1] (default: the --gpu "
                             "device's, 0.5)")
    parser.add_argument("--out-dir", default=str(MAIN.tables), help="where the .md, .csv and .png go")


def _load(asv_dirs, pytest_json, commit: str | None, vs: str | None):
    """(the long frame of every result asked for, notes about the asv directories)."""
    import pandas as pd
    frames, notes = [], []
    try:
        frames.append(load_asv(asv_dirs, commit))
        notes = frames[0].attrs["notes"]
    except NoResultsError as err:
        if not pytest_json or commit or vs:     # asv was asked for, or it is all there is
            raise
        print(f"note: {err}")
    if pytest_json:
        frames.append(load_pytest_benchmark(pytest_json))
    frames = [f for f in frames if len(f)]
    if not frames:
        raise NoResultsError(f"no benchmark with extra_info family in {', '.join(map(str, pytest_json))}: "
                             f"{PYTEST_HINT}")
    return pd.concat(frames, ignore_index=True), notes


def run(asv_dir=None, pytest_json=(), commit: str | None = None, vs: str | None = None,
        out_dir: str | Path = MAIN.tables, baselines: dict[str, str] | None = None,
        gpu: str = gpu_table.DEFAULT_GPU, ppp: float | None = None, machine_dir: str | Path = MACHINE_DIR) -> int:
    """Print the family tables, the CPU-vs-GPU tables, the rooflines (and the --vs comparison),
    write them to out_dir; returns 0. asv_dir: a directory or several; None: default_asv_dirs().
    The CPU peaks come from bench_machine's results in the same asv directories, else from
    machine_dir (`sysdl machine`'s files); the GPU's from the --gpu datasheet."""
    asv_dirs = default_asv_dirs() if asv_dir is None else [asv_dir] if isinstance(asv_dir, (str, Path)) else asv_dir
    prediction = gpu_table.make_prediction(gpu, ppp)
    frame, notes = _load(asv_dirs, pytest_json, commit, vs)
    roofs = roofline.read_roofs(asv_dirs, prediction.key, machine_dir)
    tables = family_tables(frame, baselines, roofs)
    gpu_tables = gpu_table.gpu_tables(frame, prediction, baselines)
    rooflines = roofline.roofline_tables(frame, roofs)
    for family, table in tables.items():
        for each in (table, gpu_tables[family], rooflines[family]):
            each.notes += notes
        print(to_markdown(table))
        print(gpu_table.to_markdown(gpu_tables[family]))
        print(roofline.to_markdown(rooflines[family]))
    comparisons = None
    if vs:
        comparisons = compare_commits(asv_dirs, vs, commit)
        for family, comparison in comparisons.items():
            print(comparison_markdown(family, comparison))
    written = (write_outputs(tables, out_dir, comparisons) + gpu_table.write_outputs(gpu_tables, out_dir)
               + roofline.write_outputs(rooflines, out_dir))
    print(f"wrote {len(written)} files to {out_dir}: " + ", ".join(p.name for p in written))
    return 0


def main(args) -> int:
    """Entry for `sysdl bench-table` (args from a parser given add_arguments)."""
    return run(args.asv_dir, args.pytest_json, args.commit, args.vs, args.out_dir, gpu=args.gpu, ppp=args.ppp)


if __name__ == "__main__":
    from models.shared.command import run_module
    raise SystemExit(run_module("models.reports.bench_table"))
