"""One table per kernel family from the benchmark results: asv's and pytest-benchmark's.

    sysdl bench-table                               # latest asv commit, every machine
    sysdl bench-table --commit 5dbe54               # another commit (a hash prefix)
    sysdl bench-table --vs 8e29e4                   # also: time at --commit / time at 8e29e4
    sysdl bench-table --pytest-json runs/bench.json # add pytest-benchmark's --benchmark-json files

A timing benchmark joins the tables when it follows the case schema (``PARAM_NAMES``): an
asv ``time_*`` benchmark of module ``bench_<family>`` with param_names exactly
``["case", "implementation", "device"]``, or a pytest-benchmark entry whose ``extra_info`` holds
``family``, ``case``, ``implementation`` and ``device``. Other benchmarks (``track_*``,
``peakmem_*``, older parameter lists) are left out.

Each cell is the median time per call and, in brackets, the speedup over the family's baseline
(the first implementation its benchmark lists, as the results record it: asv's
benchmarks.json params, pytest-benchmark's extra_info "baseline"): baseline time / this time, for the same case on the same
device and machine. A CUDA cell whose baseline has no CUDA time is compared with the baseline
on the CPU and says so ("vs cpu"). Where a machine has both CPU and CUDA times, a "GPU/CPU"
column per implementation gives CPU time / CUDA time. Cases asv skipped (NotImplementedError in
setup, e.g. no GPU) or that failed are missing values, never zeros. Tables go to the terminal
(markdown) and to OUT_DIR as bench_<family>.md, .csv (numbers) and .png (bar chart).
"""

from __future__ import annotations

import ast
import datetime as dt
import itertools
import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from models.shared.artifacts import MAIN

if TYPE_CHECKING:
    import pandas as pd

# The case schema of benchmarks/common.py as its results record it (asv's param_names,
# pytest-benchmark's extra_info keys); each family's baseline comes with its results.
PARAM_NAMES = ["case", "implementation", "device"]
CHANGE_FACTOR = 1.1     # --vs: "faster"/"slower" beyond this ratio either way (asv compare's default)
ASV_HINT = "run `asv run --python=same --set-commit-hash $(git rev-parse HEAD)` first (README, \"Tracking speedups\")"
PYTEST_HINT = ("run `.venv/bin/python -m pytest tests/benchmarks/test_benchmarks.py --benchmark-only "
               "--benchmark-json=runs/bench.json` first")
GPU_HINT = "run the benchmarks on a GPU machine; see README"
KEY = ["source", "machine", "family", "case", "implementation", "device"]   # one timing per key
COLUMNS = ["source", "machine", "cpu", "threads", "commit", "date", "env", "family", "benchmark", *PARAM_NAMES,
           "seconds", "version", "started_at", "baseline"]     # the long frame both loaders return


class NoResultsError(ValueError):
    """Nothing to tabulate where the user pointed (a ValueError: `sysdl` reports it cleanly)."""


@dataclass
class FamilyTable:
    """One family's table: ``cells`` for reading, ``numbers`` (one row per timing) for CSV."""
    family: str
    baseline: str
    cells: pd.DataFrame                 # index case, columns "impl @ device (machine)", strings
    numbers: pd.DataFrame               # one row per timing: seconds, speedup, gpu_over_cpu, ...
    provenance: list[str] = field(default_factory=list)     # "asv commit ... on machine (cpu, threads)"
    notes: list[str] = field(default_factory=list)          # baseline fallbacks, missing devices


# ---------------------------------------------------------------------------------------------
# Reading: asv


def _family_of(benchmark: str) -> str:
    """'bench_conv.ConvForward.time_forward' -> 'conv' (the first dotted part named bench_*)."""
    parts = benchmark.split(".")
    module = next((p for p in parts[:-1] if p.startswith("bench_")), parts[0])
    return module.removeprefix("bench_")


def _param_value(text) -> str:
    """asv stores parameter values as their repr ("'conv1 1->16 28x28'"); the value as a string."""
    try:
        return str(ast.literal_eval(text))
    except (ValueError, SyntaxError):
        return str(text)


def _is_case_timing(name: str, spec: dict | None) -> bool:
    return (spec is not None and spec.get("type") == "time" and name.rsplit(".", 1)[-1].startswith("time_")
            and list(spec.get("param_names", [])) == PARAM_NAMES)


def _asv_rows(result, benchmarks: dict, machine: str) -> list[dict]:
    """Long rows for one asv result file (one machine, commit and environment)."""
    # benchmarks.common.threads() uses $SYSDL_BENCH_THREADS, else every core asv counted.
    threads = _number(result.env_vars.get("SYSDL_BENCH_THREADS") or result.params.get("num_cpu"))
    rows = []
    for name in result.get_all_result_keys():
        spec = benchmarks.get(name)
        if not _is_case_timing(name, spec):
            continue
        params = result.get_result_params(name) or spec["params"]      # None when the whole run failed
        values = result.get_result_value(name, params)                 # flat, in product order
        for (case, implementation, device), seconds in zip(itertools.product(*params), values):
            rows.append({"source": "asv", "machine": machine, "cpu": result.params.get("cpu", ""),
                         "threads": threads, "commit": result.commit_hash, "date": result.date, "env": result.env_name,
                         "family": _family_of(name), "benchmark": name, "case": _param_value(case),
                         "implementation": _param_value(implementation), "device": _param_value(device),
                         "seconds": math.nan if seconds is None else float(seconds),
                         "version": result.benchmark_version.get(name),
                         "started_at": result.started_at.get(name) or 0,
                         "baseline": _param_value(spec["params"][1][0]) if spec.get("params") else None})
    return rows


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _read_asv(results_dir: str | Path):
    """Every case-schema timing under results_dir, all machines and commits, as a long frame."""
    import pandas as pd
    from asv import util
    from asv.results import Results, iter_results_paths

    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise NoResultsError(f"no asv results in {results_dir} (no such directory): {ASV_HINT}")
    index = results_dir / "benchmarks.json"
    if not index.is_file():
        raise NoResultsError(f"no asv results in {results_dir} ({index.name} is missing): {ASV_HINT}")
    try:
        benchmarks = util.load_json(str(index), api_version=2)
    except util.UserError as err:
        raise NoResultsError(f"cannot read {index} ({err}): {ASV_HINT}") from err
    rows, commits = [], set()
    for root, filename, machine in iter_results_paths(str(results_dir)):
        path = Path(root, filename)
        try:
            result = Results.load(str(path), machine_name=machine)
        except util.UserError as err:        # what asv itself does with an unreadable file
            warnings.warn(f"skipped {path}: {err}", stacklevel=2)
            continue
        commits.add(result.commit_hash)
        rows += _asv_rows(result, benchmarks, machine)
    if not rows:
        found = f"results for {len(commits)} commit(s), but " if commits else ""
        raise NoResultsError(f"no asv results in {results_dir}: {found}no time_* benchmark with param_names "
                             f"{PARAM_NAMES} ran; {ASV_HINT}")
    return pd.DataFrame(rows, columns=COLUMNS)


def _git_rev_parse(name: str) -> str | None:
    import subprocess
    try:
        out = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{name}^{{commit}}"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _resolve_commit(frame, commit: str | None, results_dir) -> str:
    """The full hash: the latest (by commit date) when commit is None, else the one it prefixes."""
    if commit is None:
        return frame.sort_values(["date", "started_at"])["commit"].iloc[-1]
    matches = sorted(c for c in frame["commit"].unique() if c.startswith(commit.strip().lower()))
    if not matches:                               # a git name (HEAD~1, main, a tag) for this checkout
        full = _git_rev_parse(commit)
        matches = [full] if full in set(frame["commit"]) else []
    if len(matches) == 1:
        return matches[0]
    known = frame.drop_duplicates("commit").sort_values("date", ascending=False)
    listing = ", ".join(f"{c[:8]} ({_day(d)})" for c, d in zip(known["commit"], known["date"]))
    if not matches:
        raise ValueError(f"unknown commit {commit!r}: {results_dir} has time results for {listing}; to add "
                         "it, check it out and run `asv run --python=same --set-commit-hash $(git rev-parse HEAD)`")
    raise ValueError(f"commit prefix {commit!r} is ambiguous in {results_dir}: "
                     f"{', '.join(m[:12] for m in matches)}")


def _tidy(frame):
    """One timing per key. asv: of several environments at one commit (other env vars), each
    benchmark's latest run as a whole, so a table never mixes two; pytest-benchmark: the last file.
    A family with several benchmarks (forward, backward) gets rows "Class.time_x: case"."""
    asv = frame["source"] == "asv"
    latest = frame.groupby(["source", "machine", "commit", "benchmark"])["started_at"].transform("max")
    frame = frame[~asv | (frame["started_at"] == latest)].copy()
    several = frame.groupby(["source", "family"])["benchmark"].transform("nunique") > 1
    short = frame["benchmark"].str.split(".", n=1).str[-1]        # bench_conv.A.time_x -> A.time_x
    frame["case"] = frame["case"].where(~several, short + ": " + frame["case"])
    return frame.drop_duplicates(KEY, keep="last").reset_index(drop=True)


def load_asv(results_dir: str | Path = ".asv/results", commit: str | None = None) -> pd.DataFrame:
    """Long frame of one commit's case-schema timings from every machine (latest commit by default).
    ``attrs["notes"]`` names the machines whose results are all at other commits."""
    frame = _read_asv(results_dir)
    chosen = _resolve_commit(frame, commit, results_dir)
    selected = _tidy(frame[frame["commit"] == chosen])
    selected.attrs["notes"] = _machines_elsewhere(frame, chosen)
    return selected


def _machines_elsewhere(frame, chosen: str) -> list[str]:
    """A GPU machine that ran an older commit would otherwise vanish from the table silently."""
    here = set(frame.loc[frame["commit"] == chosen, "machine"])
    notes = []
    for machine, rows in frame[~frame["machine"].isin(here)].groupby("machine"):
        latest = rows.sort_values(["date", "started_at"])["commit"].iloc[-1][:8]
        notes.append(f"{machine} has no results at commit {chosen[:8]}, so it is not in the tables; "
                     f"its latest are at {latest} (--commit {latest})")
    return notes


# ---------------------------------------------------------------------------------------------
# Reading: pytest-benchmark


def load_pytest_benchmark(paths) -> pd.DataFrame:
    """Long frame from pytest-benchmark --benchmark-json files; entries without extra_info
    "family" are not part of a family and are left out."""
    import pandas as pd
    rows = []
    for path in map(Path, paths):
        if not path.is_file():
            raise NoResultsError(f"no pytest-benchmark JSON at {path}: {PYTEST_HINT}")
        data = json.loads(path.read_text())
        machine_info = data.get("machine_info") or {}
        machine = machine_info.get("node") or path.stem
        cpu = (machine_info.get("cpu") or {}).get("brand_raw", "")
        commit = (data.get("commit_info") or {}).get("id") or ""
        for entry in data.get("benchmarks", []):
            info = entry.get("extra_info") or {}
            if "family" not in info:
                continue
            missing = [k for k in PARAM_NAMES if k not in info]
            if missing:
                raise ValueError(f"{path}: benchmark {entry.get('name')!r} has extra_info family but no "
                                 f"{', '.join(missing)} (benchmarks/common.py sets all of {PARAM_NAMES})")
            median = (entry.get("stats") or {}).get("median")
            rows.append({"source": "pytest-benchmark", "machine": machine, "cpu": cpu,
                         "threads": _number(info.get("threads")),
                         "commit": commit, "date": math.nan, "env": str(path), "family": info["family"],
                         "benchmark": str(entry.get("name", "")).split("[")[0], "case": str(info["case"]),
                         "implementation": str(info["implementation"]), "device": str(info["device"]),
                         "seconds": math.nan if median is None else float(median),
                         "version": None, "started_at": len(rows),
                         "baseline": str(info["baseline"]) if info.get("baseline") else None})
    return _tidy(pd.DataFrame(rows, columns=COLUMNS))


# ---------------------------------------------------------------------------------------------
# Tables


def format_seconds(seconds: float) -> str:
    """'1.23 ms', '12.3 µs', '456 ms'; 'n/a' for a skipped or failed case."""
    if seconds is None or math.isnan(seconds):
        return "n/a"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if seconds >= scale or unit == "ns":
            value = seconds / scale
            return f"{value:.{2 if value < 10 else 1 if value < 100 else 0}f} {unit}"


def format_ratio(ratio: float) -> str:
    """'2.10x', '1,466x', '0.0631x'; below 0.01 the slowdown ('3,412x slower'), never a bare 0.00x."""
    if ratio is None or math.isnan(ratio):
        return "n/a"
    if ratio >= 100:
        return f"{ratio:,.0f}x"
    if ratio >= 0.1:
        return f"{ratio:.2f}x"
    return f"{ratio:.3g}x" if ratio >= 0.01 else f"{1 / ratio:,.0f}x slower"


def _is_gpu(device: str) -> bool:
    return device.startswith("cuda")


def _baseline(family: str, rows, baselines: dict | None) -> tuple[str, str | None]:
    """(baseline implementation, a note when it is not the recorded one). The baseline is
    ``baselines[family]`` when given, else the one the family's results record."""
    why = None
    implementations = list(dict.fromkeys(rows["implementation"]))
    recorded = rows["baseline"].dropna() if "baseline" in rows else rows.iloc[:0, 0]
    if baselines is not None:
        configured = baselines.get(family)
    else:
        configured = recorded.mode().iloc[0] if len(recorded) else None
    if configured in implementations:
        return configured, None
    if configured is not None:
        why = f"the baseline {configured!r} has no results"
    why = why or (f"no baseline for {family!r} among those given" if baselines is not None
                  else f"the results of {family!r} record no baseline (benchmarks older than this report)")
    fallback = sorted(implementations)[0]
    return fallback, f"{why}: speedups are over {fallback!r}, the first implementation alphabetically"


def _origins(frame) -> dict[tuple[str, str], str]:
    """(source, machine) -> column suffix: empty with one origin, else ' (machine)' (+ source if shared)."""
    pairs = sorted(set(zip(frame["source"], frame["machine"])))
    if len(pairs) == 1:
        return {pairs[0]: ""}
    shared = {m for m in frame["machine"] if frame.loc[frame["machine"] == m, "source"].nunique() > 1}
    return {(s, m): f" ({m}, {s})" if m in shared else f" ({m})" for s, m in pairs}


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else math.nan     # NaN > 0 is False


def _with_speedups(frame, baseline: str):
    """Adds speedup (baseline time / time; same case, device, machine, source), baseline_device and
    gpu_over_cpu (this implementation's CPU time / its CUDA time, same machine) to the timings."""
    times = {(r.source, r.machine, r.case, r.implementation, r.device): r.seconds for r in frame.itertuples()}

    def time(row, implementation, device):
        return times.get((row.source, row.machine, row.case, implementation, device), math.nan)

    speedups, against, gpu_over_cpu = [], [], []
    for row in frame.itertuples():
        device, base = row.device, time(row, baseline, row.device)
        if math.isnan(base) and _is_gpu(device):
            device, base = "cpu", time(row, baseline, "cpu")      # no CUDA baseline: the CPU's, labelled
        speedups.append(_ratio(base, row.seconds))
        against.append("" if math.isnan(base) else device)
        gpu_over_cpu.append(_ratio(time(row, row.implementation, "cpu"), row.seconds) if _is_gpu(row.device)
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
    has_gpu = measured["device"].map(_is_gpu).any()
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


def _provenance(frame) -> list[str]:
    """'asv commit 5dbe5424 (2026-11-20): vm (AMD EPYC, 2 threads), ...', one line per source and commit."""
    lines = []
    for (source, commit), group in frame.groupby(["source", "commit"], sort=False):
        machines = []
        for machine, rows in group.groupby("machine"):
            detail = [rows["cpu"].iloc[0]] if rows["cpu"].iloc[0] else []
            threads = rows["threads"].dropna()
            detail += [f"{int(threads.iloc[0])} threads"] if len(threads) else []
            machines.append(f"{machine} ({', '.join(detail)})" if detail else machine)
        when = f" ({_day(group['date'].iloc[0])})" if source == "asv" else ""
        lines.append(f"{source} commit {commit[:8] or 'unknown'}{when}: {', '.join(machines)}")
    return lines


def _day(ms) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).date().isoformat()


def family_tables(frame, baselines: dict[str, str] | None = None) -> dict[str, FamilyTable]:
    """family -> FamilyTable, from a long frame (load_asv / load_pytest_benchmark, concatenated).
    baselines: family -> implementation; default: the baseline each family's results record."""
    tables = {}
    for family, rows in frame.groupby("family", sort=False):
        rows = rows.reset_index(drop=True)
        baseline, note = _baseline(family, rows, baselines)
        numbers = _with_speedups(rows, baseline)
        origins = _origins(numbers)
        numbers = numbers[["case", "implementation", "device", "machine", "source", "commit", "threads",
                           "seconds", "speedup", "baseline_device", "gpu_over_cpu"]]
        tables[family] = FamilyTable(family, baseline, _cells(numbers, baseline, origins), numbers,
                                     _provenance(rows), ([note] if note else []) + _device_notes(numbers))
    return tables


def compare_commits(results_dir: str | Path, commit_a: str, commit_b: str,
                    factor: float = CHANGE_FACTOR) -> dict[str, pd.DataFrame]:
    """family -> frame indexed (case, implementation, device, machine) with "time A", "time B"
    (seconds), "B/A" and "change": "faster" / "slower" when B/A is beyond ``factor`` either way."""
    frame = _read_asv(results_dir)
    hash_a, hash_b = (_resolve_commit(frame, c, results_dir) for c in (commit_a, commit_b))
    keys = ["family", "case", "implementation", "device", "machine"]
    runs = [_tidy(frame[frame["commit"] == c])[keys + ["seconds", "version"]] for c in (hash_a, hash_b)]
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
    fig, ax = new_figure((max(5.0, 1.2 * len(seconds) + 0.2 * seconds.shape[1]) + 3.5, 4.5))
    seconds.plot.bar(ax=ax, logy=True, rot=0, width=0.85)
    machines = ", ".join(sorted(set(numbers["machine"])))
    ax.set(xlabel="", ylabel="median seconds per call (log)", title=f"{table.family} on {machines}")
    ax.grid(axis="y", alpha=0.3, which="both")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return save(fig, path)


def write_outputs(tables: dict[str, FamilyTable], out_dir: str | Path, comparisons: dict | None = None) -> list[Path]:
    """bench_<family>.md / .csv / .png per family (and bench_<family>_vs.md / .csv for --vs)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for family, table in tables.items():
        md, csv = out / f"bench_{family}.md", out / f"bench_{family}.csv"
        md.write_text(to_markdown(table), encoding="utf-8")
        table.numbers.to_csv(csv, index=False)
        written += [md, csv, plot(table, out / f"bench_{family}.png")]
    for family, comparison in (comparisons or {}).items():
        md, csv = out / f"bench_{family}_vs.md", out / f"bench_{family}_vs.csv"
        md.write_text(comparison_markdown(family, comparison), encoding="utf-8")
        comparison.to_csv(csv)
        written += [md, csv]
    return written


# ---------------------------------------------------------------------------------------------
# Command line


def add_arguments(parser) -> None:
    parser.add_argument("--asv-dir", default=".asv/results", help="asv results directory")
    parser.add_argument("--pytest-json", nargs="*", default=[], metavar="FILE",
                        help="pytest-benchmark --benchmark-json files to add")
    parser.add_argument("--commit", default=None, help="asv commit hash or prefix (default: the latest with results)")
    parser.add_argument("--vs", default=None, metavar="COMMIT",
                        help="also compare asv times at --commit (B) with those at COMMIT (A)")
    parser.add_argument("--out-dir", default=str(MAIN.tables), help="where the .md, .csv and .png go")


def run(asv_dir: str | Path = ".asv/results", pytest_json=(), commit: str | None = None, vs: str | None = None,
        out_dir: str | Path = MAIN.tables, baselines: dict[str, str] | None = None) -> int:
    """Print the family tables (and the --vs comparison), write them to out_dir; returns 0."""
    import pandas as pd
    frames, notes = [], []
    try:
        frames.append(load_asv(asv_dir, commit))
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
    frame = pd.concat(frames, ignore_index=True)
    tables = family_tables(frame, baselines)
    for table in tables.values():
        table.notes += notes
        print(to_markdown(table))
    comparisons = None
    if vs:
        chosen = frame.loc[frame["source"] == "asv", "commit"].iloc[0]
        comparisons = compare_commits(asv_dir, vs, chosen)
        for family, comparison in comparisons.items():
            print(comparison_markdown(family, comparison))
    written = write_outputs(tables, out_dir, comparisons)
    print(f"wrote {len(written)} files to {out_dir}: " + ", ".join(p.name for p in written))
    return 0


def main(args) -> int:
    """Entry for `sysdl bench-table` (args from a parser given add_arguments)."""
    return run(args.asv_dir, args.pytest_json, args.commit, args.vs, args.out_dir)


if __name__ == "__main__":
    from models.shared.command import run_module
    raise SystemExit(run_module("models.reports.bench_table"))
