"""Steps with a time limit, each a subprocess in its own process group with its own log: the
runner behind `sysdl gpu-check` (models/gpu/check.py plans the steps).

    outcomes = run_steps([Step("tests", ("python", "-m", "pytest", "-q"), limit=70)], folder)

A step that fails or overruns is recorded and the next one runs; at its limit the step's whole
process group gets SIGTERM, then SIGKILL (asv's and pytest's children too); a Ctrl-C stops the
step in flight and ends the run. Every step runs from the repository root, without
TRITON_INTERPRET (on a GPU the Triton kernels run compiled) and with the repository on
PYTHONPATH (asv's benchmark processes import sysdl where it is not installed).
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Step:
    name: str
    command: tuple[str, ...]                 # argv, run from the repository root
    limit: int                               # seconds; then the step's whole process group is stopped
    outputs: tuple[str, ...] = ()            # what it writes besides its log, relative to the results folder
    note: str = ""                           # what to know about this run of it (a fallback, a narrowing)
    skip: str = ""                           # why it does not run, decided before it would start
    summary: str = ""                        # regex: the log's last matching line goes to summary.md
    env: dict = field(default_factory=dict)
    resolve: Callable | None = None          # (step, folder, outcomes) -> step, just before it starts

    @property
    def log(self) -> str:
        return f"{self.name}.log"


@dataclass
class Outcome:
    step: Step
    status: str                              # ok | failed (exit N) | timed out ... | skipped: why | interrupted
    seconds: float = 0.0
    detail: str = ""                         # the log's summary line (pytest's counts, ...)

    @property
    def finished(self) -> bool:
        """The process ended by itself (its record is complete, whatever its exit status)."""
        return self.status == "ok" or self.status.startswith("failed (exit")


def _rel(path: Path) -> str:
    path = Path(path)
    return str(path.relative_to(ROOT)) if path.is_absolute() and path.is_relative_to(ROOT) else str(path)


def shell_line(argv, env: dict | None = None) -> str:
    """The command as one line a shell would run the same way (regexes in double quotes where safe)."""
    def word(text: str) -> str:
        if re.fullmatch(r"[\w@%+=:,./-]+", text):
            return text
        if "'" in text and not re.search(r'["`!]|\$[\w{(]|\\[$`"\\]', text):
            return f'"{text}"'
        return shlex.quote(text)
    argv = [_rel(Path(argv[0])) if Path(argv[0]).is_absolute() else argv[0], *argv[1:]]
    return " ".join([*(f"{k}={word(v)}" for k, v in (env or {}).items()), *map(word, argv)])


def _stop_group(process: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL, to the step's process group: asv's and pytest's children too."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        pass                                        # the group has ended
    else:
        try:
            process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    process.wait()


def _detail(log: Path, pattern: str) -> str:
    if not pattern or not log.exists():
        return ""
    lines = [line.strip(" =") for line in log.read_text(errors="replace").splitlines() if re.search(pattern, line)]
    return lines[-1][:200] if lines else ""


def run_step(step: Step, folder: Path) -> Outcome:
    """Run one step with its time limit, its output in folder/<name>.log; never raises for the
    step's own failure (a Ctrl-C stops the step and is reported as "interrupted")."""
    if step.skip:
        return Outcome(step, f"skipped: {step.skip}")
    log = folder / step.log
    # Triton reads TRITON_INTERPRET at import: on the GPU its kernels run compiled, never interpreted.
    # The repository on PYTHONPATH: asv's benchmark processes import sysdl where it is not installed.
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.update(PYTHONUNBUFFERED="1", PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
               **step.env)
    start = time.perf_counter()
    with open(log, "w") as out:
        out.write(f"$ {shell_line(step.command, step.env)}\n# from {ROOT}, limit {step.limit} s\n")
        out.flush()
        try:
            # Its own process group (to stop it whole), in this session: whatever ends this
            # session's processes ends the step's too.
            process = subprocess.Popen(step.command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                       stderr=subprocess.STDOUT, process_group=0)
        except OSError as err:
            out.write(f"could not start: {err}\n")
            return Outcome(step, f"failed: could not start ({err})", time.perf_counter() - start)
        try:
            code = process.wait(timeout=step.limit)
            status = "ok" if code == 0 else f"failed (exit {code})"
        except subprocess.TimeoutExpired:
            status = f"timed out (limit {step.limit} s)"
        except KeyboardInterrupt:
            status = "interrupted"
        finally:
            _stop_group(process)
        seconds = time.perf_counter() - start
        out.write(f"\n# {status} after {seconds:.1f} s\n")
    return Outcome(step, status, seconds, _detail(log, step.summary))


def _duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 90 else f"{int(seconds // 60)} min {int(seconds % 60)} s"


def run_steps(steps: list[Step], folder: Path, on_step: Callable | None = None) -> list[Outcome]:
    """Every step in order, whatever the earlier ones did; stops early only on Ctrl-C."""
    outcomes: dict[str, Outcome] = {}
    for index, step in enumerate(steps, 1):
        if step.resolve is not None and not step.skip:
            step = step.resolve(step, folder, outcomes)
        print(f"[{index:>2}/{len(steps)}] {step.name:<14}", end=" ", flush=True)
        outcome = run_step(step, folder)
        outcomes[step.name] = outcome
        took = "" if outcome.status.startswith("skipped") else f" in {_duration(outcome.seconds)}"
        print(f"{outcome.status}{took}{'  ' + outcome.detail if outcome.detail else ''}", flush=True)
        if on_step is not None:
            on_step(list(outcomes.values()))
        if outcome.status == "interrupted":
            break
    return list(outcomes.values())
