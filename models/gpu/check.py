"""`sysdl gpu-check`: everything sysdl measures on a CUDA GPU, in one run of under 8 minutes.

    sysdl gpu-check                  # on a CUDA host: results in docs/results/gpu-<GPU>/ (e.g. gpu-h200)
    sysdl gpu-check --dry-run        # the steps, their commands and time limits; runs nothing, needs no GPU
    sysdl gpu-check --skip asv       # leave steps out (a step's name; "asv" for every asv step)
    sysdl gpu-check --overwrite      # replace an earlier run's results folder

A GPU may be lent for a quarter of an hour, start-up included, so this is the one command to run
on it. Without CUDA it stops at once (exit 2). On a GPU host it runs the steps below in order,
each a subprocess from the repository root with a time limit, after which its whole process
group is stopped; each step's output goes to <step>.log in the results folder. A step that
fails or runs out of time is recorded and the next one runs: a partial result is better than
none. summary.md (the GPU, each step's status and time, the test counts, where each file is)
is rewritten after every step, so even a run killed from outside leaves one.

    step           limit  what                                                    here*    GPU host**
    environment     15 s  GPU, capability, driver, CUDA, versions, CPU, commit    2.3 s    3-5 s
    tests           70 s  the Triton kernel tests, compiled (tests/kernels)       72 s     30-60 s
    cases           40 s  every cuda case once (pytest, one process; 86 cases)    ~30 s?   15-30 s
    asv-machine     10 s  the machine in ~/.asv-machine.json (kept if there)      <1 s     <1 s
    asv-conv        65 s  asv times the conv family's cuda cases (12 run)         -        35-50 s
    asv-lowering    60 s  ... the lowering family's (the GEMMs; 14 run)           -        35-50 s
    asv-inference   50 s  ... the inference family's (9 run)                      -        30-40 s
    asv-layers      50 s  ... the scratch CNN layers' (torch alone: 12 run)       -        30-45 s
    asv-copy        10 s  asv's results into <results>/asv/                       <1 s     <1 s
    model           25 s  only without runs/base.pt: `sysdl train --quick`       10 s     5-10 s
    infer-bench     30 s  `sysdl infer-bench --quick`: every implementation       31 s     10-20 s
    tables          20 s  `sysdl bench-table`: the CPU-vs-GPU tables              8 s      5-8 s
    in all        7 min 25 s of limits (7 min without model; under 8 with start, stops)   about 4-5 min

*here: the CPU equivalent on the 2-core development VM (Triton under its interpreter; infer-bench
checks the interpreted Triton MatmulNet on 512 images, about half its time; ? estimated from 32
of the cpu cases, 11 s). **estimates: no GPU has run this yet; the first run's summary.md gives
the real times to set LIMITS by.

An asv step's time is mostly Python starting: under `--launch-method spawn`, which CUDA needs,
asv starts a fresh interpreter (torch, numba, the suite) for every case, 3.7 s here for a case
that skips at once and 7.5 s for a timed layers case (reading Fashion-MNIST included), against
a few tenths of a second of timing. So each asv step times only its family's `time_*` cases on
cuda (the ones `sysdl bench-table` reads; peakmem_ measures host memory, track_ figures derive
from the same times), one process per case (`-a rounds=1`), and only the implementations that
ran on cuda in the cases step (numba, numpy and the reference are CPU-only: 39 of the 86 cuda
cases); without that record, every implementation. One asv run per family because asv writes
its results only when a run ends: a run stopped at its limit loses its family, not all four.

The asv machine is named after the GPU (`gpu-` and the slug of torch.cuda.get_device_name
without the vendor: "NVIDIA H200" -> gpu-h200), so CPU and GPU hosts' results sit side by side.
The results folder (docs/results/<machine>/, committed) is never replaced without --overwrite,
which removes only the files this command writes. docs/gpu.md says how to commit the results
and make the tables.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from importlib.util import find_spec
from pathlib import Path

from models.gpu.steps import ROOT, Outcome, Step, _duration, _rel, run_steps, shell_line
from models.shared.artifacts import ASV_RESULTS, COMMITTED_RESULTS, MAIN, QUICK
from models.shared.errors import UserError

GPU_TESTS = ("tests/kernels/test_triton_ops.py", "tests/kernels/test_triton_conv.py")
BENCH_TESTS = "tests/benchmarks/test_benchmarks.py"
ASV_FAMILIES = ("conv", "lowering", "inference", "layers")     # timed in this order: the headline first
# Families left out of the 8-minute run, and why (each is timed by `asv run -b bench_<family>` on a longer loan).
LEFT_OUT = {"classic": "the classic networks' 48 layer cases: about 150 asv processes on cuda, 10 minutes alone"}
CASES_FILE = "cuda_cases.jsonl"               # the cases step's record: one line per cuda case
CASES_ENV = "SYSDL_GPU_CASES"                 # where the pytest hook at the end of this module writes it
# Seconds per step (the module docstring has what each takes): 7 min 25 s in all, so that with the
# command's own start and the grace given to a stopped step the run ends within 8 minutes.
LIMITS = {"environment": 15, "tests": 70, "cases": 40, "asv-machine": 10, "asv-conv": 65, "asv-lowering": 60,
          "asv-inference": 50, "asv-layers": 50, "asv-copy": 10, "model": 25, "infer-bench": 30, "tables": 20}
STEP_NAMES = tuple(LIMITS)
PYTEST_COUNTS = r"\d+ (passed|failed|skipped|errors?|deselected)\b.* in [\d.]+s"
NO_GPU_HINT = ("run sysdl gpu-check on a GPU host (docs/gpu.md); without a GPU, `sysdl triton-report` checks that the "
               "Triton kernels compile for sm_80/sm_90")


class NoCudaError(UserError):
    """No CUDA device: the command has nothing to measure here."""


# ---------------------------------------------------------------------------------------------
# The GPU, and the machine name it gives


def nvidia_driver_present() -> bool:
    """A cheap look for NVIDIA's driver, before torch is asked (and CUDA initialised)."""
    return (Path("/dev/nvidiactl").exists() or Path("/proc/driver/nvidia/version").exists()
            or shutil.which("nvidia-smi") is not None)


def find_gpu() -> tuple[str | None, str]:
    """(the first CUDA device's name, "") or (None, why there is none)."""
    if not nvidia_driver_present():
        return None, "no NVIDIA driver here: no nvidia-smi, /dev/nvidiactl or /proc/driver/nvidia"
    import torch
    if not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
        return None, f"torch {torch.__version__} ({build}) sees no CUDA device"
    return torch.cuda.get_device_name(0), ""


def machine_name(device_name: str) -> str:
    """gpu- and the slug of the GPU's name without the vendor: 'NVIDIA H200' -> 'gpu-h200'."""
    words = [w for w in re.split(r"[^a-z0-9]+", device_name.lower()) if w and w != "nvidia"]
    return "gpu-" + ("-".join(words) or "unknown")


def _checked_machine(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise UserError(f"--machine {name!r}: use letters, digits, '.', '_' and '-' (it names a folder), "
                        f"e.g. gpu-h200")
    return name


# ---------------------------------------------------------------------------------------------
# The steps


def _git_head() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _dataset() -> tuple[str, str]:
    """(data set for the model and infer-bench steps, a note when it is the stand-in)."""
    from models.data.datasets import DataNotFoundError, find_fashion_mnist
    try:
        find_fashion_mnist(download=False)
        return "fashion-mnist", ""
    except DataNotFoundError:
        return "synthetic", ("Fashion-MNIST is not installed here: synthetic images (256 test images; "
                             "set $SYSDL_DATA to time the real 2,000)")


def asv_regex(family: str, implementations=None) -> str:
    """asv -b: the family's time_* cases on cuda. asv matches `name(param, ...)`, each param its
    repr, for parameterised benchmarks: bench_conv.ConvForward.time_forward('conv1 ...', 'triton', 'cuda')."""
    which = ".*" if not implementations else ".*'(" + "|".join(re.escape(i) for i in implementations) + ")', "
    return rf"^bench_{family}\.\w+\.time_\w+\({which}'cuda'\)$"


def cuda_cases_that_ran(path: Path) -> dict[str, set[str]] | None:
    """{family: implementations that ran on cuda} from the cases step's record; None without one."""
    if not path.exists():
        return None
    ran: dict[str, set[str]] = {}
    for line in path.read_text().splitlines():
        case = json.loads(line)
        if case["outcome"] == "passed":
            ran.setdefault(case["family"], set()).add(case["implementation"])
    return ran


def _narrow_asv(step: Step, folder: Path, outcomes: dict) -> Step:
    """An asv step's -b, narrowed to the implementations that ran on cuda in a finished cases step."""
    family = step.name.removeprefix("asv-")
    cases = outcomes.get("cases")
    ran = cuda_cases_that_ran(folder / CASES_FILE) if cases is not None and cases.finished else None
    if ran is None:
        return replace(step, note="every implementation (no finished cases step to narrow it)")
    if not ran.get(family):
        return replace(step, skip=f"no {family} case ran on cuda in the cases step ({CASES_FILE})")
    return replace(step, command=(*step.command[:-1], asv_regex(family, sorted(ran[family]))),
                   note=f"narrowed to what ran on cuda in the cases step: {', '.join(sorted(ran[family]))}")


def plan(machine: str, folder: Path, skip=()) -> list[Step]:
    """The steps for results in ``folder`` under the asv machine name ``machine``, in order."""
    py, out = sys.executable, Path(_rel(folder))
    skipped = lambda name: any(name == s or name.startswith(s + "-") for s in skip)  # noqa: E731
    head = _git_head()
    tests = tuple(t for t in GPU_TESTS if (ROOT / t).exists())
    if find_spec("asv") is None:
        no_asv = "asv is not installed (pip install asv==0.6.6; where no registry is reachable, carry its wheel)"
    else:
        no_asv = "" if head else "no git commit here to record the asv results under"
    sysdl = (py, "-m", "models.cli")
    steps = [
        Step("environment", (py, "-c", "from models.gpu.check import write_environment; "
                                       f"write_environment({str(out / 'environment.json')!r})"),
             LIMITS["environment"], ("environment.json",), summary=r"^gpu: "),
        Step("tests", (py, "-m", "pytest", *tests, "-q", "-x", "--benchmark-disable", "-p", "no:cacheprovider"),
             LIMITS["tests"], skip="" if tests else "no GPU test file here", summary=PYTEST_COUNTS,
             env={"SYSDL_TRITON_AUTOTUNE": "0"},
             note="compiled Triton kernels (TRITON_INTERPRET is removed from every step's environment), "
                  "each list's first configuration: autotuning every new test shape would not fit the limit"),
        Step("cases", (py, "-m", "pytest", BENCH_TESTS, "-k", "cuda and not classic", "--benchmark-disable", "-q",
                       "-p", "no:cacheprovider", "-p", "models.gpu.check"),
             LIMITS["cases"], (CASES_FILE,), env={CASES_ENV: str(out / CASES_FILE)}, summary=PYTEST_COUNTS),
        Step("asv-machine", (py, "-c", f"from models.gpu.check import record_asv_machine; "
                                       f"record_asv_machine({machine!r})"),
             LIMITS["asv-machine"], skip=no_asv, summary=r"^asv machine "),
    ]
    for family in ASV_FAMILIES:
        steps.append(Step(f"asv-{family}", (py, "-m", "asv", "run", "--python=same", "--launch-method", "spawn",
                                            "--machine", machine, "--set-commit-hash", head or "HEAD",
                                            "-a", "rounds=1", "--show-stderr", "-b", asv_regex(family)),
                          LIMITS[f"asv-{family}"], skip=no_asv, resolve=_narrow_asv))
    steps.append(Step("asv-copy", (py, "-c", "from models.gpu.check import copy_asv_results; "
                                             f"copy_asv_results({machine!r}, {str(out / 'asv')!r}, {head!r})"),
                      LIMITS["asv-copy"], (f"asv/{machine}/", "asv/benchmarks.json"), skip=no_asv,
                      summary=r"^cuda timings: "))
    steps += _inference_steps(sysdl, out)
    # This host's asv results, every committed machine's (the CPU hosts': the CPU-vs-GPU columns) and this run's.
    asv_dirs = dict.fromkeys([str(ASV_RESULTS), *sorted(str(p) for p in (ROOT / COMMITTED_RESULTS).glob("*/asv")
                                                         if p.is_dir() and p.parent != folder), str(out / "asv")])
    steps.append(Step("tables", (*sysdl, "bench-table", "--asv-dir", *(_rel(Path(d)) for d in asv_dirs),
                                 "--out-dir", str(out / "tables")),
                      LIMITS["tables"], ("tables/",)))
    return [replace(s, skip="--skip") if skipped(s.name) else s for s in steps]


def _inference_steps(sysdl: tuple[str, ...], out: Path) -> list[Step]:
    """infer-bench on the main job's models; without them, on a quick model trained first."""
    dataset, data_note = _dataset()
    steps, pruned = [], []
    if (ROOT / MAIN.base).exists():
        original, note = MAIN.base, ""
        if (ROOT / MAIN.selected).exists():
            pruned = ["--pruned", str(MAIN.selected)]
    else:
        original = QUICK.base
        note = f"no {MAIN.base} here: {QUICK.base}, a 2-epoch model of the same shapes (times do not depend on weights)"
        if not (ROOT / QUICK.base).exists():
            steps.append(Step("model", (*sysdl, "train", "--quick", "--dataset", dataset,
                                        "--checkpoint", str(QUICK.base), "--no-track", "--no-progress"),
                              LIMITS["model"], note=f"for infer-bench: {note}; {data_note}".rstrip("; ")))
    steps.append(Step("infer-bench", (*sysdl, "infer-bench", "--quick", "--dataset", dataset, "--original",
                                      str(original), *pruned, "--out-dir", str(out)),
                      LIMITS["infer-bench"], ("infer_bench.csv", "infer_bench.png"),
                      note="; ".join(n for n in (note, data_note) if n)))
    return steps


# ---------------------------------------------------------------------------------------------
# What the steps call (python -c ...)


def write_environment(path: str | os.PathLike) -> dict:
    """GPU, compute capability, driver, CUDA, torch/triton/numba versions, CPU and git commit -> JSON."""
    import platform
    from datetime import datetime, timezone
    from importlib.metadata import PackageNotFoundError, version

    import torch

    from models.training.provenance import provenance

    info = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), **provenance(),
            "commit": _git_head() or "unknown", "dirty": bool(_git(["status", "--porcelain"])),
            "python": platform.python_version(), "cuda_runtime": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
            "driver": _nvidia_smi("driver_version"), "gpu": None}
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info.update(gpu=p.name, compute_capability=f"{p.major}.{p.minor}", gpu_count=torch.cuda.device_count(),
                    gpu_memory_gib=round(p.total_memory / 2**30, 1), multiprocessors=p.multi_processor_count)
    for package in ("triton", "numba", "numpy", "asv", "pytest", "pytest-benchmark"):
        try:
            info[package] = version(package)
        except PackageNotFoundError:
            info[package] = None
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(info, indent=2) + "\n")
    print(json.dumps(info, indent=2))
    print(f"gpu: {info['gpu']} (sm {info.get('compute_capability')}), driver {info['driver']}, "
          f"CUDA {info['cuda_runtime']}, torch {info['torch']}, triton {info['triton']}, "
          f"{info['cores']} cores of {info['cpu']}")
    return info


def _git(args: list[str]) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _nvidia_smi(query: str) -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None


def record_asv_machine(name: str, path: str | os.PathLike | None = None) -> dict:
    """Add ``name`` to asv's machine file with this host's details; an entry already there is kept.

    `asv machine --machine NAME --yes` on a host with no machine file records the name alone (asv
    0.6 fills in the defaults only for an unnamed machine), and `sysdl bench-table` reads the cpu
    and num_cpu it leaves out; this writes what `asv machine --yes` would, under ``name``. Other
    machines in the file are left as they are."""
    from asv.machine import Machine, MachineCollection
    path = Path(path or MachineCollection.get_machine_file_path())
    known = json.loads(path.read_text()) if path.exists() else {}
    if name in known:
        print(f"asv machine {name}: already in {path}, left as it is ({known[name].get('cpu')}, "
              f"{known[name].get('num_cpu')} cpus)")
        return known[name]
    info = {**Machine.get_defaults(), "machine": name}
    MachineCollection.save(name, info, _path=str(path))
    print(f"asv machine {name}: added to {path} ({info['cpu']}, {info['num_cpu']} cpus)")
    return info


def copy_asv_results(machine: str, dest: str | os.PathLike, commit: str | None = None) -> int:
    """asv's results for ``machine`` (and benchmarks.json) into dest/<machine>/ and dest/; returns
    how many cuda timings the result file of ``commit`` holds."""
    import itertools
    source, dest = ROOT / ASV_RESULTS, Path(dest)
    files = sorted((source / machine).glob("*.json"))
    if not files or not (source / "benchmarks.json").exists():
        raise SystemExit(f"no asv results for {machine} in {source}: every asv step failed or was skipped")
    (dest / machine).mkdir(parents=True, exist_ok=True)
    for f in files:
        shutil.copy2(f, dest / machine / f.name)
    shutil.copy2(source / "benchmarks.json", dest / "benchmarks.json")
    print(f"copied {len(files)} files of {source / machine} and benchmarks.json to {dest}")
    counts = {"timed": 0, "skipped or not selected": 0, "failed": 0}     # asv: NaN, null
    for f in files:
        result = json.loads(f.read_text())
        if "results" not in result or (commit and result.get("commit_hash") != commit):
            continue
        columns = result["result_columns"]
        for name, row in result["results"].items():
            values, params = row[columns.index("result")], row[columns.index("params")]
            for value, combo in zip(values, itertools.product(*params) if params else [()]):
                if combo and combo[-1] == "'cuda'":
                    kind = "failed" if value is None else "skipped or not selected" if value != value else "timed"
                    counts[kind] += 1
    print("cuda timings: " + ", ".join(f"{n} {kind}" for kind, n in counts.items()))
    return counts["timed"]


# ---------------------------------------------------------------------------------------------
# The results folder and its summary


def _our_files(steps: list[Step]) -> list[str]:
    return ["summary.md", *(f for s in steps for f in (s.log, *s.outputs))]


def claim_folder(folder: Path, steps: list[Step], overwrite: bool) -> None:
    """Refuse a results folder holding an earlier run unless ``overwrite``; then remove (only) the
    files this command writes, so no earlier run's file is mistaken for this one's."""
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder} is a file, not a results folder: pass --out-dir DIR")
    if folder.is_dir() and any(folder.iterdir()) and not overwrite:
        summary = folder / "summary.md"
        what = ("a finished gpu-check run" if summary.exists() and "state: finished" in summary.read_text()
                else "an unfinished gpu-check run" if summary.exists() else "files")
        raise UserError(f"{folder} already holds {what}: pass --overwrite to replace it (only the files "
                        f"gpu-check writes are removed), or --out-dir DIR to write elsewhere")
    for name in _our_files(steps):
        path = folder / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    folder.mkdir(parents=True, exist_ok=True)


def write_summary(folder: Path, device: str, machine: str, steps: list[Step], outcomes: list[Outcome],
                  elapsed: float, finished: bool) -> Path:
    done = {o.step.name: o for o in outcomes}
    ok = sum(o.status == "ok" for o in outcomes)
    ran = [o for o in outcomes if not o.status.startswith("skipped")]
    # "finished" marks a complete run (claim_folder reads it); otherwise running, or stopped from outside
    state = "finished" if finished else f"not finished (done: {outcomes[-1].step.name if outcomes else 'no step'})"
    lines = [f"# sysdl gpu-check: {device} ({machine})", "",
             f"- state: {state} after {_duration(elapsed)}; {ok} of the {len(ran)} steps that ran are ok",
             f"- commit {_git_head() or 'unknown'}; the GPU, driver, versions and CPU: environment.json",
             "- each step's output: <step>.log beside this file", "",
             "| step | status | time | limit | detail | files |", "|---|---|---|---|---|---|"]
    for step in steps:
        o = done.get(step.name)
        status, seconds = (o.status, _duration(o.seconds)) if o else ("not run", "")
        if o is not None and o.status.startswith("skipped"):
            seconds = ""
        files = ", ".join(f"`{f}`" for f in (step.log, *step.outputs) if (folder / f).exists()) if o else ""
        note = "; ".join(x for x in ((o.detail if o else ""), (o.step.note if o else step.note)) if x)
        lines.append(f"| {step.name} | {status} | {seconds} | {step.limit} s | {note.replace('|', '/')} | {files} |")
    rel = _rel(folder)
    lines += ["", "Next: commit this folder (`git add " + rel + "`), then the CPU-vs-GPU tables from a host",
              f"with CPU results: `sysdl bench-table --asv-dir .asv/results {rel}/asv` (docs/gpu.md).", ""]
    path = folder / "summary.md"
    path.write_text("\n".join(lines))
    return path


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def run(steps: list[Step], folder: Path, device: str, machine: str) -> int:
    """Run the steps into ``folder`` (claimed already); 0 when every step that ran is ok, else 1.
    A SIGTERM (a lease ending, a kill) stops the step in flight like Ctrl-C, and the summary stays."""
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return _run(steps, folder, device, machine)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(steps: list[Step], folder: Path, device: str, machine: str) -> int:
    print(f"sysdl gpu-check: {device} -> {_rel(folder)}/ ({len(steps)} steps, at most "
          f"{_duration(sum(s.limit for s in steps if not s.skip))}: the sum of their limits)", flush=True)
    start = time.perf_counter()
    summarise = lambda outcomes, finished=False: write_summary(  # noqa: E731
        folder, device, machine, steps, outcomes, time.perf_counter() - start, finished)
    summarise([])
    outcomes = run_steps(steps, folder, on_step=summarise)
    finished = len(outcomes) == len(steps)
    summary = summarise(outcomes, finished)
    bad = [o.step.name for o in outcomes if not o.status.startswith(("ok", "skipped"))]
    took = _duration(time.perf_counter() - start)
    print(f"\n{len(outcomes) - len(bad)} of {len(steps)} steps ok or skipped in {took}"
          f"{'; not ok: ' + ', '.join(bad) if bad else ''}\nsummary: {_rel(summary)}")
    return 0 if not bad and finished else 1


def print_plan(steps: list[Step], folder: Path, device: str | None, why_not: str, machine: str) -> None:
    total = sum(s.limit for s in steps if not s.skip)
    print(f"sysdl gpu-check --dry-run: {len(steps)} steps, at most {_duration(total)} (the sum of their limits); "
          f"nothing runs")
    print(f"GPU: {device}" if device else f"GPU: none here ({why_not}); on a GPU host the machine is named "
          f"gpu-<its name>, e.g. gpu-h200; shown here as {machine}")
    print(f"results: {_rel(folder)}/" + ("  (exists: a run refuses it without --overwrite)"
                                         if folder.is_dir() and any(folder.iterdir()) else ""))
    for index, step in enumerate(steps, 1):
        files = ", ".join((step.log, *step.outputs))
        print(f"\n[{index:>2}/{len(steps)}] {step.name}  limit {step.limit} s -> {files}"
              + (f"  (skipped: {step.skip})" if step.skip else ""))
        print(f"    {shell_line(step.command, step.env)}")
        if step.resolve is _narrow_asv:
            print("    (-b narrowed at run time to the implementations that ran on cuda in the cases step)")
        if step.note:
            print(f"    note: {step.note}")
    print("\nthen summary.md: the GPU, each step's status and time, the test counts, where each file is")


# ---------------------------------------------------------------------------------------------
# The command


def add_arguments(parser) -> None:
    parser.add_argument("--out-dir", default=None,
                        help=f"the results folder (default: {COMMITTED_RESULTS}/<machine>/, at the repository root)")
    parser.add_argument("--machine", default=None,
                        help="asv machine name and results folder name (default: gpu- and the GPU's name, "
                             "e.g. gpu-h200)")
    parser.add_argument("--skip", action="append", default=None, choices=[*STEP_NAMES, "asv"], metavar="STEP",
                        help=f"leave a step out (repeatable): {', '.join(STEP_NAMES)}; asv for every asv step")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier run's results folder (only the files gpu-check writes are removed)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the steps, their commands and limits; run nothing (works without a GPU)")


def main(args) -> int:
    requested = _checked_machine(args.machine) if args.machine else None
    device, why_not = find_gpu()
    if device is None and not args.dry_run:
        raise NoCudaError(f"no CUDA device ({why_not}): {NO_GPU_HINT}")
    machine = requested or (machine_name(device) if device else "gpu-unknown")
    folder = Path(args.out_dir).resolve() if args.out_dir else ROOT / COMMITTED_RESULTS / machine
    steps = plan(machine, folder, args.skip or ())
    if args.dry_run:
        print_plan(steps, folder, device, why_not, machine)
        return 0
    claim_folder(folder, steps, args.overwrite)
    return run(steps, folder, device, machine)


# ---------------------------------------------------------------------------------------------
# pytest hook: active only in the cases step, which loads this module with `-p models.gpu.check`


def pytest_runtest_makereport(item, call):
    """Record each cuda benchmark case's outcome (one JSON line) in $SYSDL_GPU_CASES, so that asv
    times only the implementations that run on cuda. Returns None: pytest makes its report as usual."""
    path = os.environ.get(CASES_ENV)
    params = getattr(getattr(item, "callspec", None), "params", {})
    if not path or call.when != "call" or params.get("device") != "cuda" or "family" not in params:
        return None
    excinfo = call.excinfo
    outcome = ("passed" if excinfo is None else "skipped" if excinfo.typename == "Skipped" else "failed")
    record = {"family": params["family"].name, "case": params.get("case"),
              "implementation": params.get("implementation"), "outcome": outcome,
              "reason": "" if excinfo is None else str(excinfo.value)[:200]}
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
    return None


if __name__ == "__main__":
    from models.shared.command import run_module
    raise SystemExit(run_module("models.gpu.check"))
