"""`sysdl pipeline`: the whole path from data to timing tables, each stage skipped when current.

    sysdl pipeline                 # train -> prune -> select -> infer-bench -> benchmarks -> bench-table
    sysdl pipeline --quick         # the same path on small data in a few minutes (CI runs it)
    sysdl pipeline --dry-run       # what would run, what is current, and the time it would take

Stages run one after another as `sysdl` (or pytest) subprocesses, so each keeps its own progress
bar, resume logic and errors, and a Ctrl-C or a kill loses at most the step in flight: training
checkpoints every epoch and pruning every step, and running the pipeline again continues there.
A stage is skipped when its outputs exist and are current:

    train        runs/base.pt is a finished run (no resume state left in it)
    prune        the session's state.json is finished and was pruned from this base.pt
    select       runs/pruned_selected.pt is newer than the session's state.json
    infer-bench  runs/infer_bench.csv is newer than both models
    benchmarks   runs/bench.json (pytest-benchmark) was measured at this git commit, after both models
                 (every family but the classic networks' layers: `asv run -b bench_classic` times those)
    bench-table  always runs (seconds): it reads runs/bench.json and any asv results

``--quick`` writes everything under runs/quick/ (so it never touches a full run's files): 2
training epochs on 2,000 images, 2 pruning steps per layer with 1-epoch retraining, infer-bench
on 2,000 images, one benchmark round per case, and a selection threshold of 0 (a two-epoch
model does not reach 87%).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from models.shared import command
from models.shared.artifacts import MAIN, QUICK, MainJobArtifacts

ROOT = Path(__file__).resolve().parents[2]

# Seconds a stage takes here (2 cores, AMD EPYC), to say how long a run will take. Measured:
# the --quick row (one run of 67 s, rounded up), train (67.5 s) and prune (l1-global, 40-60 min);
# full infer-bench and benchmarks are rough guesses from their parts.
ESTIMATES = {
    False: {"train": 70, "prune": 45 * 60, "select": 5, "infer-bench": 90, "benchmarks": 6 * 60, "bench-table": 5},
    True: {"train": 10, "prune": 15, "select": 5, "infer-bench": 10, "benchmarks": 60, "bench-table": 5},
}


@dataclass
class Stage:
    name: str
    command: list[str]                      # argv after the python executable
    outputs: list[Path]
    current: Callable[[], str | None]       # why the stage can be skipped, or None when it must run
    env: dict = field(default_factory=dict)


def _newer(path: Path, *inputs: Path) -> bool:
    return path.exists() and all(i.exists() and path.stat().st_mtime >= i.stat().st_mtime for i in inputs)


def _training_finished(path: Path) -> str | None:
    if not path.exists():
        return None
    from models.training.checkpoint import load_checkpoint
    payload = load_checkpoint(path)
    return f"{path} is a finished training run" if payload.get("resume") is None else None


def _session_finished(state_path: Path, base: Path) -> str | None:
    if not state_path.exists() or not base.exists():
        return None
    import hashlib

    from models.pruning.prune import read_state
    state = read_state(state_path)             # garbage: an error naming the file, not a traceback
    if not state["finished"]:
        return None
    digest = hashlib.sha256(base.read_bytes()).hexdigest()
    if state.get("base_sha256", digest) != digest:     # sessions older than the digest carry none
        return None
    return f"{state_path.parent} finished ({len(state['steps']) - 1} steps) from this base model"


def _bench_current(bench_json: Path, *models: Path) -> str | None:
    if not _newer(bench_json, *models):
        return None
    from models.training.provenance import git_commit
    measured = json.loads(bench_json.read_text()).get("commit_info", {}).get("id")
    here = git_commit(ROOT)                                   # short hash
    current = measured and here != "unknown" and measured.startswith(here)
    return f"{bench_json} was measured at this commit ({here})" if current else None


def stages(quick: bool = False, heuristic: str = "l1", schedule: str = "global",
           out_root: str | Path | None = None) -> list[Stage]:
    """The pipeline's stages, in order, for the full run or ``--quick``."""
    paths = MainJobArtifacts.under(Path(out_root) if out_root else ROOT / (QUICK if quick else MAIN).root)
    session = paths.prune_dir / f"{heuristic}-{schedule}"
    sysdl = ["-m", "models.cli"]
    quick_flag = ["--quick"] if quick else []
    threshold = "0" if quick else "0.87"
    bench_rounds = (["--benchmark-max-time=0.01", "--benchmark-min-rounds=1", "--benchmark-warmup=off"]
                    if quick else [])
    model_env = {"SYSDL_BASE_CHECKPOINT": str(paths.base), "SYSDL_PRUNED_CHECKPOINT": str(paths.selected)}
    return [
        Stage("train", [*sysdl, "train", "--resume", "--checkpoint", str(paths.base), *quick_flag],
              [paths.base, paths.base.with_name("base_loss.png")], lambda: _training_finished(paths.base)),
        Stage("prune", [*sysdl, "prune", "--heuristic", heuristic, "--schedule", schedule, "--base", str(paths.base),
                        "--out-dir", str(paths.prune_dir), *quick_flag],
              [session / "state.json"], lambda: _session_finished(session / "state.json", paths.base)),
        Stage("select", [*sysdl, "report", "prune", "--prune-dir", str(paths.prune_dir), "--out-dir", str(paths.root),
                         "--selected", str(paths.selected), "--threshold", threshold],
              [paths.selected, paths.root / "prune_pareto.png", paths.root / "prune_steps.csv"],
              lambda: (f"{paths.selected} is newer than the pruning session"
                       if _newer(paths.selected, session / "state.json") else None)),
        Stage("infer-bench", [*sysdl, "infer-bench", "--original", str(paths.base), "--pruned", str(paths.selected),
                              "--out-dir", str(paths.root), "--overwrite", *quick_flag],
              [paths.infer_csv, paths.root / "infer_bench.png"],
              lambda: (f"{paths.infer_csv} is newer than both models"
                       if _newer(paths.infer_csv, paths.base, paths.selected) else None)),
        Stage("benchmarks", ["-m", "pytest", str(ROOT / "tests/benchmarks/test_benchmarks.py"), "-q", "-k",
                             "test_benchmark_case and not classic" + (" and not reference" if quick else ""),
                             "--benchmark-only", f"--benchmark-json={paths.bench_json}", *bench_rounds],
              [paths.bench_json], lambda: _bench_current(paths.bench_json, paths.base, paths.selected), env=model_env),
        Stage("bench-table", [*sysdl, "bench-table", "--pytest-json", str(paths.bench_json),
                              "--out-dir", str(paths.tables)],
              [paths.tables], lambda: None),
    ]


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def run(quick: bool = False, heuristic: str = "l1", schedule: str = "global", dry_run: bool = False,
        out_root: str | Path | None = None) -> int:
    """Run the stages that are not current; returns the first failing stage's exit code, else 0."""
    plan = stages(quick, heuristic, schedule, out_root)
    todo = {stage.name: stage.current() for stage in plan}
    estimate = sum(ESTIMATES[quick][name] for name, why in todo.items() if why is None)
    print(f"sysdl pipeline{' --quick' if quick else ''}: {len(plan)} stages, "
          f"about {_duration(estimate)} here for the ones to run (2 cores)")
    for stage in plan:
        status = f"skip ({todo[stage.name]})" if todo[stage.name] else f"run  (~{_duration(ESTIMATES[quick][stage.name])})"
        print(f"  {stage.name:<12} {status}")
    if dry_run:
        return 0
    summary = []
    for index, stage in enumerate(plan, 1):
        why = stage.current()       # asked again: an earlier stage may have changed its inputs
        if why:
            summary.append((stage, "skipped: current", 0.0))
            continue
        print(f"\n[{index}/{len(plan)}] {stage.name}: {' '.join(stage.command)}", flush=True)
        start = time.perf_counter()
        result = subprocess.run([sys.executable, *stage.command], cwd=ROOT, env={**os.environ, **stage.env})
        elapsed = time.perf_counter() - start
        if result.returncode != 0:
            print(f"\nsysdl pipeline: stage {stage.name} failed (exit {result.returncode}) after "
                  f"{_duration(elapsed)}; fix it and run the same command again: finished stages are kept",
                  file=sys.stderr)
            return result.returncode
        summary.append((stage, "ran", elapsed))
    print("\nsummary:")
    for stage, status, elapsed in summary:
        took = f" in {_duration(elapsed)}" if status == "ran" else ""
        outputs = ", ".join(str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p) for p in stage.outputs)
        print(f"  {stage.name:<12} {status}{took}: {outputs}")
    return 0


def add_arguments(parser) -> None:
    command.add_quick_flag(parser, f"the whole path on small data in a few minutes, under {QUICK.root}/")
    parser.add_argument("--heuristic", default="l1", help="pruning heuristic (sysdl prune --heuristic)")
    parser.add_argument("--schedule", default="global", choices=["layer", "global"], help="pruning schedule")
    parser.add_argument("--dry-run", action="store_true", help="say what would run and how long, run nothing")
    parser.add_argument("--out-root", default=None, help="where the artifacts go (default runs/ or runs/quick/)")


def main(args) -> int:
    return run(args.quick, args.heuristic, args.schedule, args.dry_run, args.out_root)


if __name__ == "__main__":
    from models.shared.command import run_module
    raise SystemExit(run_module("models.cli.pipeline"))
