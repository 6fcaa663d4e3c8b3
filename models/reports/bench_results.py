"""Benchmark results as one long frame, for `sysdl bench-table`: asv's result directories and
pytest-benchmark's JSON files, one row per timing, with each case's work (FLOPs, bytes) beside it.

    frame = load_asv([".asv/results", "docs/results/h200/asv"])   # each machine's latest commit
    frame = load_asv([".asv/results"], commit="5dbe54")           # one commit for every machine
    frame = load_pytest_benchmark([MAIN.bench_json])    # models.shared.artifacts: runs/bench.json

What is read (the schema of benchmarks/common.py, as the results record it; never imported):
- timings: an asv ``time_*`` benchmark of module ``bench_<family>`` whose param_names are
  exactly ``PARAM_NAMES``, or a pytest-benchmark entry whose extra_info holds ``family``, ``case``,
  ``implementation`` and ``device``. Other benchmarks (``peakmem_*``, older parameter lists) are
  left out; a skipped or failed case is NaN, never zero.
- work: asv ``track_flops`` / ``track_bytes`` with param_names ``["case"]`` or ``["case",
  "implementation"]`` (the ``*Work`` classes), joined to the timings of the same machine, commit,
  family and case (and implementation); pytest-benchmark's extra_info ``flops`` and ``bytes``.
  NaN where not recorded.
- the machine's peaks (``read_machine_figures``, for models/reports/roofline.py): asv
  ``bench_machine`` tracks, the theoretical FMA peak, GEMM rates per path, triad bandwidth per level.

Several asv directories: this machine's ``.asv/results`` and the GPU results `sysdl gpu-check`
commits (``docs/results/<machine>/asv``, a copy of asv's results directory for that machine).
Each is read with its own benchmarks.json; a result file found in two of them (a copy) counts
once, and a machine name that two directories use for different runs is told apart by its
directory. By default each machine contributes its latest commit (by commit date), so a GPU
machine measured at another commit than the CPU's still joins; ``commit=`` picks one for all.
"""

from __future__ import annotations

import ast
import datetime as dt
import itertools
import json
import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from models.shared.artifacts import ASV_RESULTS, COMMITTED_RESULTS
from models.shared.errors import UserError

if TYPE_CHECKING:
    import pandas as pd

# The case schema of benchmarks/common.py as its results record it (asv's param_names,
# pytest-benchmark's extra_info keys); each family's baseline comes with its results.
PARAM_NAMES = ["case", "implementation", "device"]
WORK_PARAM_NAMES = (["case"], ["case", "implementation"])        # per case, or per implementation too
WORK_TRACKS = {"track_flops": "flops", "track_bytes": "bytes"}     # asv method -> frame column
# benchmarks/bench_machine.py's tracks (class.method -> figure), read for the roofline
MACHINE_TRACKS = {"MachineCompute.track_fma_peak": "fma_peak", "MachineCompute.track_gemm": "gemm",
                  "MachineBandwidth.track_triad": "triad"}
TF32_SUFFIX = " tf32"       # an implementation named "<name> tf32" runs on the tensor cores (CUDA only)
ASV_HINT = "run `asv run --python=same --set-commit-hash $(git rev-parse HEAD)` first (README, \"Tracking speedups\")"
PYTEST_HINT = ("run `.venv/bin/python -m pytest tests/benchmarks/test_benchmarks.py --benchmark-only "
               "--benchmark-json=runs/bench.json` first")
GPU_HINT = ("run the benchmarks on a GPU machine: `sysdl gpu-check` commits its asv results to "
            "docs/results/<machine>/asv, which `sysdl bench-table` reads")
KEY = ["source", "machine", "family", "case", "implementation", "device"]   # one timing per key
COLUMNS = ["source", "results_dir", "machine", "cpu", "threads", "commit", "date", "env", "family", "benchmark",
           *PARAM_NAMES, "seconds", "version", "started_at", "baseline", "flops", "bytes"]


class NoResultsError(UserError):
    """Nothing to tabulate where the user pointed (`sysdl` ends it with one line, exit status 2)."""


def default_asv_dirs() -> list[Path]:
    """This machine's asv results, then every committed ``docs/results/<machine>/asv``."""
    return [ASV_RESULTS, *sorted(p for p in COMMITTED_RESULTS.glob("*/asv") if p.is_dir())]


def precision_of(implementation: str) -> str:
    """'tf32' for an implementation named '<name> tf32', else 'ieee' (fp32)."""
    return "tf32" if implementation.endswith(TF32_SUFFIX) else "ieee"


# ---------------------------------------------------------------------------------------------
# asv


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


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _is_case_timing(name: str, spec: dict | None) -> bool:
    return (spec is not None and spec.get("type") == "time" and name.rsplit(".", 1)[-1].startswith("time_")
            and list(spec.get("param_names", [])) == PARAM_NAMES)


def _work_quantity(name: str, spec: dict | None) -> str | None:
    """'flops' or 'bytes' for a *Work class's track, else None."""
    if spec is None or spec.get("type") != "track" or list(spec.get("param_names", [])) not in WORK_PARAM_NAMES:
        return None
    return WORK_TRACKS.get(name.rsplit(".", 1)[-1])


def _values(result, name: str, spec: dict):
    """(parameter values as strings, value or NaN) per parameter combination of one benchmark in
    one result file, in asv's product order."""
    params = result.get_result_params(name) or spec["params"]      # None when the whole run failed
    for combination, value in zip(itertools.product(*params), result.get_result_value(name, params)):
        yield tuple(map(_param_value, combination)), math.nan if value is None else float(value)


def _threads_of(result) -> float:
    """The threads an asv run used: benchmarks.common.threads() takes $SYSDL_BENCH_THREADS, else
    every core asv counted."""
    return _number(result.env_vars.get("SYSDL_BENCH_THREADS") or result.params.get("num_cpu"))


def _asv_rows(result, benchmarks: dict, machine: str, results_dir: str) -> tuple[list[dict], list[dict]]:
    """(timing rows, work rows) of one asv result file (one machine, commit and environment)."""
    threads = _threads_of(result)
    origin = {"source": "asv", "results_dir": results_dir, "machine": machine, "commit": result.commit_hash,
              "env": result.env_name}
    timings, work = [], []
    for name in result.get_all_result_keys():
        spec = benchmarks.get(name)
        started_at = result.started_at.get(name) or 0
        if _is_case_timing(name, spec):
            baseline = _param_value(spec["params"][1][0]) if spec.get("params") else None
            timings += [{**origin, "cpu": result.params.get("cpu", ""), "threads": threads, "date": result.date,
                         "family": _family_of(name), "benchmark": name, "case": case,
                         "implementation": implementation, "device": device, "seconds": seconds,
                         "version": result.benchmark_version.get(name), "started_at": started_at,
                         "baseline": baseline}
                        for (case, implementation, device), seconds in _values(result, name, spec)]
        elif quantity := _work_quantity(name, spec):
            work += [{**origin, "family": _family_of(name), "benchmark": name, "case": names[0],
                      "implementation": names[1] if len(names) > 1 else None, "quantity": quantity, "value": value,
                      "started_at": started_at}
                     for names, value in _values(result, name, spec)]
    return timings, work


def _result_files(results_dir: Path):
    """(benchmarks.json's specs, asv Results, machine name) per result file under one directory;
    NoResultsError when the directory or its benchmarks.json is missing."""
    from asv import util
    from asv.results import Results, iter_results_paths

    if not results_dir.is_dir():
        raise NoResultsError(f"no asv results in {results_dir} (no such directory): {ASV_HINT}")
    index = results_dir / "benchmarks.json"
    if not index.is_file():
        raise NoResultsError(f"no asv results in {results_dir} ({index.name} is missing): {ASV_HINT}")
    try:
        benchmarks = util.load_json(str(index), api_version=2)
    except util.UserError as err:
        raise NoResultsError(f"cannot read {index} ({err}): {ASV_HINT}") from err
    for root, filename, machine in iter_results_paths(str(results_dir)):
        path = Path(root, filename)
        try:
            result = Results.load(str(path), machine_name=machine)
        except util.UserError as err:        # what asv itself does with an unreadable file
            warnings.warn(f"skipped {path}: {err}", stacklevel=2)
            continue
        yield benchmarks, result, machine


def _read_asv_dir(results_dir: Path):
    """(timing rows, work rows) of every result file under one directory."""
    timings, work, commits = [], [], set()
    for benchmarks, result, machine in _result_files(results_dir):
        commits.add(result.commit_hash)
        more_timings, more_work = _asv_rows(result, benchmarks, machine, str(results_dir))
        timings += more_timings
        work += more_work
    if not timings:
        found = f"results for {len(commits)} commit(s), but " if commits else ""
        raise NoResultsError(f"no asv results in {results_dir}: {found}no time_* benchmark with param_names "
                             f"{PARAM_NAMES} ran; {ASV_HINT}")
    return timings, work


def _one_copy_per_run(frame):
    """A result file found in two directories (a copy) counts once: the first directory's."""
    run = ["machine", "commit", "env", "benchmark", "started_at"]
    first_dir = frame.groupby(run, sort=False)["results_dir"].transform("first")
    return frame[frame["results_dir"] == first_dir]


def _machines_told_apart(frame, column: str = "machine"):
    """A machine name that several directories use for different runs becomes 'name (directory)'."""
    dirs = frame.groupby(column)["results_dir"].transform("nunique")
    return frame.assign(**{column: frame[column].where(dirs < 2, frame[column] + " (" + frame["results_dir"] + ")")})


def machine_name(machine: str, results_dir: str) -> str:
    """The name the machine's results are filed under: the frame's machine without the
    ' (directory)' that _machines_told_apart may have added."""
    return machine.removesuffix(f" ({results_dir})")


def _wide(work, keys: list[str]):
    """One row per keys with a flops and a bytes column (empty work: no rows, the same columns)."""
    import pandas as pd
    quantities = list(WORK_TRACKS.values())
    if work.empty:
        return pd.DataFrame(columns=keys + quantities)
    wide = work.pivot(index=keys, columns="quantity", values="value")
    return wide.reindex(columns=quantities).reset_index()


def _with_work(timings, work):
    """The timings with the flops and bytes recorded on the same machine and commit for their
    family and case: per implementation where recorded so, else per case (the latest run of each
    where an environment ran twice)."""
    keys = ["results_dir", "machine", "commit", "family", "case"]
    latest = work.sort_values("started_at").drop_duplicates(keys + ["implementation", "quantity"], keep="last")
    per_case = latest["implementation"].isna()
    frame = timings.merge(_wide(latest[~per_case], keys + ["implementation"]), on=keys + ["implementation"],
                          how="left")
    frame = frame.merge(_wide(latest[per_case], keys), on=keys, how="left", suffixes=("", " of the case"))
    for quantity in WORK_TRACKS.values():
        frame[quantity] = frame[quantity].astype(float).fillna(frame[f"{quantity} of the case"].astype(float))
    return frame


def read_asv(results_dirs) -> tuple[pd.DataFrame, list[str]]:
    """(every case-schema timing under results_dirs, all machines and commits, as a long frame;
    notes naming the directories that had none). NoResultsError when none had any."""
    import pandas as pd
    timings, work, errors = [], [], []
    for results_dir in map(Path, results_dirs):
        try:
            more_timings, more_work = _read_asv_dir(results_dir)
        except NoResultsError as err:
            errors.append(str(err))
            continue
        timings += more_timings
        work += more_work
    if not timings:
        raise NoResultsError("; ".join(errors) if errors else f"no asv results directory given: {ASV_HINT}")
    frame = pd.DataFrame(timings, columns=[c for c in COLUMNS if c not in ("flops", "bytes")])
    work_frame = pd.DataFrame(work, columns=["source", "results_dir", "machine", "commit", "env", "family",
                                             "benchmark", "case", "implementation", "quantity", "value", "started_at"])
    frame = _with_work(_one_copy_per_run(frame), _one_copy_per_run(work_frame))
    return _machines_told_apart(frame)[COLUMNS], errors


def read_machine_figures(results_dirs) -> pd.DataFrame:
    """benchmarks/bench_machine.py's figures under results_dirs, every machine and commit: one row
    per figure ("fma_peak", "gemm", "triad"), its parameter (the GEMM path, the cache level; "" for
    the peak) and value (GFLOP/s or GB/s, as recorded), with results_dir, machine (as filed),
    commit, date, started_at and threads. A directory without asv results adds no rows."""
    import pandas as pd
    rows = []
    for results_dir in map(Path, results_dirs):
        try:
            files = list(_result_files(results_dir))
        except NoResultsError:
            continue
        for benchmarks, result, machine in files:
            origin = {"results_dir": str(results_dir), "machine": machine, "commit": result.commit_hash,
                      "date": result.date, "threads": _threads_of(result)}
            for name in result.get_all_result_keys():
                figure = MACHINE_TRACKS.get(".".join(name.rsplit(".", 2)[-2:]))
                if figure is None or name not in benchmarks:
                    continue
                rows += [{**origin, "started_at": result.started_at.get(name) or 0, "figure": figure,
                          "param": names[0] if names else "", "value": value}
                         for names, value in _values(result, name, benchmarks[name]) if not math.isnan(value)]
    return pd.DataFrame(rows, columns=["results_dir", "machine", "commit", "date", "started_at", "threads",
                                       "figure", "param", "value"])


def _git_rev_parse(name: str) -> str | None:
    import subprocess
    try:
        out = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{name}^{{commit}}"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def latest_commit(frame) -> str:
    """The full hash of the latest commit (by commit date, then run start) in the frame."""
    return frame.sort_values(["date", "started_at"])["commit"].iloc[-1]


def resolve_commit(frame, commit: str | None, where) -> str:
    """The full hash: the latest (by commit date) when commit is None, else the one it prefixes or names."""
    if commit is None:
        return latest_commit(frame)
    matches = sorted(c for c in frame["commit"].unique() if c.startswith(commit.strip().lower()))
    if not matches:                               # a git name (HEAD~1, main, a tag) for this checkout
        full = _git_rev_parse(commit)
        matches = [full] if full in set(frame["commit"]) else []
    if len(matches) == 1:
        return matches[0]
    known = frame.drop_duplicates("commit").sort_values("date", ascending=False)
    listing = ", ".join(f"{c[:8]} ({day(d)})" for c, d in zip(known["commit"], known["date"]))
    where = ", ".join(map(str, where)) if isinstance(where, (list, tuple)) else str(where)
    if not matches:
        raise ValueError(f"unknown commit {commit!r}: {where} has time results for {listing}; to add "
                         "it, check it out and run `asv run --python=same --set-commit-hash $(git rev-parse HEAD)`")
    raise ValueError(f"commit prefix {commit!r} is ambiguous in {where}: {', '.join(m[:12] for m in matches)}")


def tidy(frame):
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


def load_asv(results_dirs=(ASV_RESULTS,), commit: str | None = None) -> pd.DataFrame:
    """Long frame of case-schema timings under results_dirs (a directory or several): each
    machine's latest commit, or ``commit`` (a hash prefix or git name) for every machine.
    ``attrs["notes"]``: directories without results, machines without results at ``commit``,
    machines at different commits."""
    results_dirs = [results_dirs] if isinstance(results_dirs, (str, Path)) else list(results_dirs)
    frame, notes = read_asv(results_dirs)
    if commit is None:
        chosen = {machine: latest_commit(rows) for machine, rows in frame.groupby("machine")}
        selected = frame[frame["commit"] == frame["machine"].map(chosen)]
        notes += _commits_differ(chosen)
    else:
        full = resolve_commit(frame, commit, results_dirs)
        selected = frame[frame["commit"] == full]
        notes += _machines_elsewhere(frame, full)
    selected = tidy(selected)
    selected.attrs["notes"] = notes
    return selected


def _commits_differ(chosen: dict[str, str]) -> list[str]:
    if len(set(chosen.values())) < 2:
        return []
    each = ", ".join(f"{machine} at {commit[:8]}" for machine, commit in sorted(chosen.items()))
    return [f"machines are at different commits (each its latest): {each}; --commit picks one for all"]


def _machines_elsewhere(frame, chosen: str) -> list[str]:
    """A GPU machine that ran another commit would otherwise vanish from the table silently."""
    here = set(frame.loc[frame["commit"] == chosen, "machine"])
    notes = []
    for machine, rows in frame[~frame["machine"].isin(here)].groupby("machine"):
        latest = latest_commit(rows)[:8]
        notes.append(f"{machine} has no results at commit {chosen[:8]}, so it is not in the tables; "
                     f"its latest are at {latest} (--commit {latest})")
    return notes


# ---------------------------------------------------------------------------------------------
# pytest-benchmark


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
        origin = {"source": "pytest-benchmark", "results_dir": str(path),
                  "machine": machine_info.get("node") or path.stem,
                  "cpu": (machine_info.get("cpu") or {}).get("brand_raw", ""),
                  "commit": (data.get("commit_info") or {}).get("id") or "", "date": math.nan, "env": str(path)}
        for entry in data.get("benchmarks", []):
            info = entry.get("extra_info") or {}
            if "family" not in info:
                continue
            missing = [k for k in PARAM_NAMES if k not in info]
            if missing:
                raise ValueError(f"{path}: benchmark {entry.get('name')!r} has extra_info family but no "
                                 f"{', '.join(missing)} (benchmarks/common.py sets all of {PARAM_NAMES})")
            median = (entry.get("stats") or {}).get("median")
            rows.append({**origin, "threads": _number(info.get("threads")), "family": info["family"],
                         "benchmark": str(entry.get("name", "")).split("[")[0], "case": str(info["case"]),
                         "implementation": str(info["implementation"]), "device": str(info["device"]),
                         "seconds": _number(median), "version": None, "started_at": len(rows),
                         "baseline": str(info["baseline"]) if info.get("baseline") else None,
                         "flops": _number(info.get("flops")), "bytes": _number(info.get("bytes"))})
    return tidy(pd.DataFrame(rows, columns=COLUMNS))


# ---------------------------------------------------------------------------------------------
# What every table shares: the baseline, the provenance lines, how numbers are written


def baseline_of(family: str, rows, baselines: dict | None) -> tuple[str, str | None]:
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


def provenance(frame) -> list[str]:
    """'asv commit 5dbe5424 (2026-11-20): vm (AMD EPYC, 2 threads), ...', one line per source and
    commit (the newest first), so each machine's numbers name their commit; with several asv
    result directories, each machine's directory too."""
    several_dirs = frame.loc[frame["source"] == "asv", "results_dir"].nunique() > 1
    newest_first = frame.sort_values("date", ascending=False, kind="stable")
    lines = []
    for (source, commit), group in newest_first.groupby(["source", "commit"], sort=False):
        machines = []
        for machine, rows in group.groupby("machine"):
            detail = [rows["cpu"].iloc[0]] if rows["cpu"].iloc[0] else []
            threads = rows["threads"].dropna()
            detail += [f"{int(threads.iloc[0])} threads"] if len(threads) else []
            detail += [f"from {rows['results_dir'].iloc[0]}"] if several_dirs and source == "asv" else []
            machines.append(f"{machine} ({', '.join(detail)})" if detail else machine)
        when = f" ({day(group['date'].iloc[0])})" if source == "asv" else ""
        lines.append(f"{source} commit {commit[:8] or 'unknown'}{when}: {', '.join(machines)}")
    return lines


def day(ms) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).date().isoformat()


def is_gpu(device: str) -> bool:
    return device.startswith("cuda")


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


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else math.nan     # NaN > 0 is False


def write_family_files(tables: dict, out_dir, suffix: str, to_markdown, plot, with_csv: bool = True) -> list[Path]:
    """bench_<family><suffix>.md (to_markdown(table)), .csv (table.numbers, unless with_csv is
    False) and .png (plot(table, path)) per family in ``tables``; returns the paths written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for family, table in tables.items():
        stem = f"bench_{family}{suffix}"
        (out / f"{stem}.md").write_text(to_markdown(table), encoding="utf-8")
        written.append(out / f"{stem}.md")
        if with_csv:
            table.numbers.to_csv(out / f"{stem}.csv", index=False)
            written.append(out / f"{stem}.csv")
        written.append(plot(table, out / f"{stem}.png"))
    return written
