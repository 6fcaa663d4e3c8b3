"""`sysdl gpu-check` without a GPU: it stops at once where there is no CUDA, its dry run names
every command, its runner records a failing or overrunning step and goes on, its asv selection
picks exactly the cuda time_ cases, and it never replaces an earlier run's folder unasked."""

from __future__ import annotations

import itertools
import json
import shlex
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from models.cli.main import main
from models.gpu import check
from models.gpu import steps as runner

PY = sys.executable


def nothing_may_run(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("gpu-check started work it should not have")
    monkeypatch.setattr(runner, "run_step", refuse)
    monkeypatch.setattr(check, "run", refuse)


# ---------------------------------------------------------------------------------------------
# No CUDA: exit 2 and one line, before any work


def test_no_nvidia_driver_stops_at_once_with_exit_2(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(check, "nvidia_driver_present", lambda: False)
    monkeypatch.setattr(check, "plan", lambda *a, **k: pytest.fail("planned steps without a GPU"))
    nothing_may_run(monkeypatch)
    assert main(["gpu-check", "--out-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err                                  # one line
    assert "no CUDA device" in err and "GPU host" in err and "sysdl triton-report" in err and "sm_90" in err
    assert not (tmp_path / "r").exists()


def test_torch_without_a_device_is_the_same_error(monkeypatch, capsys):
    import torch
    monkeypatch.setattr(check, "nvidia_driver_present", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    nothing_may_run(monkeypatch)
    assert main(["gpu-check"]) == 2
    assert "sees no CUDA device" in capsys.readouterr().err


def test_this_machine_without_cuda(capsys, monkeypatch):
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: gpu-check would run")
    nothing_may_run(monkeypatch)
    assert main(["gpu-check"]) == 2
    assert "no CUDA device" in capsys.readouterr().err


def test_a_machine_name_that_is_no_folder_name_is_refused(capsys):
    assert main(["gpu-check", "--dry-run", "--machine", "../h200"]) == 2
    assert "--machine '../h200'" in capsys.readouterr().err


@pytest.mark.parametrize("name, machine", [("NVIDIA H200", "gpu-h200"), ("NVIDIA H100 80GB HBM3", "gpu-h100-80gb-hbm3"),
                                           ("NVIDIA GeForce RTX 4090", "gpu-geforce-rtx-4090"), ("", "gpu-unknown")])
def test_the_machine_is_named_after_the_gpu(name, machine):
    assert check.machine_name(name) == machine


# ---------------------------------------------------------------------------------------------
# --dry-run


def test_dry_run_lists_every_step_and_command_and_runs_nothing(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(check, "find_gpu", lambda: (None, "no NVIDIA driver here"))
    nothing_may_run(monkeypatch)
    out_dir = tmp_path / "results"
    assert main(["gpu-check", "--dry-run", "--out-dir", str(out_dir)]) == 0
    out = capsys.readouterr().out
    steps = check.plan("gpu-unknown", out_dir)
    for index, step in enumerate(steps, 1):
        assert f"[{index:>2}/{len(steps)}] {step.name}  limit {step.limit} s" in out
        assert check.shell_line(step.command, step.env) in out
    for piece in ("tests/kernels/test_triton_ops.py", "-x --benchmark-disable -p no:cacheprovider",
                  "tests/benchmarks/test_benchmarks.py -k 'cuda and not classic' --benchmark-disable -q",
                  "asv run --python=same --launch-method spawn --machine gpu-unknown --set-commit-hash",
                  "-a rounds=1", "-b \"^bench_conv\\.\\w+\\.time_\\w+\\(.*'cuda'\\)$\"",
                  "infer-bench --quick", "bench-table --asv-dir .asv/results", "summary.md"):
        assert piece in out, piece
    assert "'cuda'\\)$" in out                                       # asv -b: the cuda cases only
    assert not out_dir.exists()


def test_dry_run_says_which_steps_are_skipped(monkeypatch, capsys):
    monkeypatch.setattr(check, "find_gpu", lambda: (None, "no NVIDIA driver here"))
    assert main(["gpu-check", "--dry-run", "--skip", "asv", "--skip", "tests"]) == 0
    out = capsys.readouterr().out
    skipped = [line for line in out.splitlines() if "(skipped: --skip)" in line]
    assert len(skipped) == 2 + len(check.ASV_FAMILIES) + 1          # machine, the families, copy; tests
    assert all(" asv-" in line or " tests " in line for line in skipped)


def test_the_printed_commands_are_the_argv_a_shell_would_pass():
    command = (PY, "-m", "asv", "run", "-b", check.asv_regex("conv", ["nn.Conv2d", "triton tf32"]),
               "-c", "from x import y; y('a b')")
    line = check.shell_line(command)
    assert '"^bench_conv' in line                                    # readable: double quotes, not '"'"'
    assert shlex.split(line)[1:] == list(command[1:])


# ---------------------------------------------------------------------------------------------
# asv's -b: exactly the cuda time_ cases, narrowed to implementations by name, not by prefix


def asv_names(module) -> list[str]:
    """Every benchmark name as asv 0.6 matches -b: `name(param, ...)`, each param its repr."""
    names = []
    for cls in vars(module).values():
        if not isinstance(cls, type) or cls.__module__ != module.__name__ or not getattr(cls, "params", None):
            continue
        params = cls.params if isinstance(cls.params[0], list) else [cls.params]
        for method in (m for m in dir(cls) if m.startswith(("time_", "peakmem_", "track_"))):
            for combo in itertools.product(*params):
                names.append(f"{module.__name__.split('.')[-1]}.{cls.__name__}.{method}"
                             f"({', '.join(repr(p) for p in combo)})")
    return names


def test_the_asv_families_are_the_benchmark_families():
    from tests.benchmarks.test_benchmarks import FAMILIES
    assert set(check.ASV_FAMILIES) | set(check.LEFT_OUT) == {family.name for family in FAMILIES}
    assert not set(check.ASV_FAMILIES) & set(check.LEFT_OUT)


@pytest.mark.parametrize("family", check.ASV_FAMILIES)
def test_asv_regex_selects_exactly_the_cuda_time_cases(family):
    import importlib
    import re
    names = asv_names(importlib.import_module(f"benchmarks.bench_{family}"))
    selected = {n for n in names if re.search(check.asv_regex(family), n)}
    assert selected and selected == {n for n in names if ".time_" in n and n.endswith("'cuda')")}


def test_a_narrowed_regex_names_implementations_whole():
    import re
    from benchmarks import bench_conv
    regex = check.asv_regex("conv", ["nn.Conv2d", "triton"])
    picked = {n.split(", ")[-2] for n in asv_names(bench_conv) if re.search(regex, n)}
    assert picked == {"'nn.Conv2d'", "'triton'"}                     # not 'nn.Conv2d tf32', 'triton-im2col'


# ---------------------------------------------------------------------------------------------
# The runner: a failure or an overrun is recorded, and the next step runs


def test_a_failing_step_is_recorded_and_the_next_one_runs(tmp_path, capsys):
    steps = [check.Step("fails", (PY, "-c", "print('about to fail'); raise SystemExit(3)"), 30),
             check.Step("runs", (PY, "-c", "print('2 passed, 1 skipped in 0.01s')"), 30, summary=check.PYTEST_COUNTS)]
    outcomes = runner.run_steps(steps, tmp_path)
    assert [o.status for o in outcomes] == ["failed (exit 3)", "ok"]
    assert outcomes[1].detail == "2 passed, 1 skipped in 0.01s"
    log = (tmp_path / "fails.log").read_text()
    assert "raise SystemExit(3)" in log and "about to fail" in log and "failed (exit 3)" in log
    assert "[ 1/2] fails" in capsys.readouterr().out


def alive(pid: int) -> bool:
    """A process that exists and is not a zombie (a container's init may not reap orphans)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return False


def test_a_step_past_its_limit_is_stopped_with_its_children(tmp_path):
    pid_file = tmp_path / "child.pid"
    sleeper = (f"import subprocess, sys, time; child = subprocess.Popen([sys.executable, '-c', "
               f"'import time; time.sleep(30)']); open({str(pid_file)!r}, 'w').write(str(child.pid)); time.sleep(30)")
    steps = [check.Step("sleeps", (PY, "-c", sleeper), 1), check.Step("next", (PY, "-c", "pass"), 30)]
    outcomes = runner.run_steps(steps, tmp_path)
    assert outcomes[0].status == "timed out (limit 1 s)" and outcomes[1].status == "ok"
    child = int(pid_file.read_text())
    for _ in range(50):                                                # SIGKILL is delivered, not awaited
        if not alive(child):
            break
        time.sleep(0.1)
    assert not alive(child), "the step's child outlived it"
    assert "timed out" in (tmp_path / "sleeps.log").read_text()


def test_a_signal_stops_the_step_in_flight_and_the_run(tmp_path):
    """SIGTERM (a lease ending) is handled like Ctrl-C: the step's group is stopped, no later step runs."""
    import signal
    previous = signal.signal(signal.SIGALRM, check._interrupt)
    signal.setitimer(signal.ITIMER_REAL, 1.0)
    try:
        outcomes = runner.run_steps([check.Step("sleeps", (PY, "-c", "import time; time.sleep(30)"), 60),
                                    check.Step("next", (PY, "-c", "pass"), 30)], tmp_path)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert [o.status for o in outcomes] == ["interrupted"] and not (tmp_path / "next.log").exists()


def test_skipped_steps_are_recorded_not_run(tmp_path):
    outcome = runner.run_step(check.Step("never", (PY, "-c", "raise SystemExit(1)"), 5, skip="--skip"), tmp_path)
    assert outcome.status == "skipped: --skip" and not (tmp_path / "never.log").exists()


# ---------------------------------------------------------------------------------------------
# The results folder: summary.md after every step; an earlier run is never replaced unasked


def fake_plan(*args, **kwargs):
    return [check.Step("environment", (PY, "-c", "print('gpu: Test GPU')"), 30, summary=r"^gpu: "),
            check.Step("tests", (PY, "-c", "print('1 failed, 3 passed in 0.2s'); raise SystemExit(1)"), 30,
                       summary=check.PYTEST_COUNTS)]


def test_a_run_writes_its_summary_and_says_what_failed(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(check, "find_gpu", lambda: ("NVIDIA Test GPU", ""))
    monkeypatch.setattr(check, "plan", fake_plan)
    folder = tmp_path / "results"
    assert main(["gpu-check", "--out-dir", str(folder)]) == 1            # a step failed: not 0, not 2
    summary = (folder / "summary.md").read_text()
    assert "# sysdl gpu-check: NVIDIA Test GPU (gpu-test-gpu)" in summary and "state: finished" in summary
    assert "| environment | ok |" in summary and "gpu: Test GPU" in summary
    assert "| tests | failed (exit 1) |" in summary and "1 failed, 3 passed" in summary and "`tests.log`" in summary
    assert "not ok: tests" in capsys.readouterr().out


def test_a_finished_results_folder_is_refused_unless_overwrite(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(check, "find_gpu", lambda: ("NVIDIA H200", ""))
    folder = tmp_path / "gpu-h200"
    folder.mkdir()
    (folder / "summary.md").write_text("- state: finished in 4 min\n")
    (folder / "notes.txt").write_text("mine")
    nothing_may_run(monkeypatch)
    assert main(["gpu-check", "--out-dir", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "already holds a finished gpu-check run" in err and "--overwrite" in err
    assert (folder / "summary.md").read_text() == "- state: finished in 4 min\n"

    monkeypatch.undo()
    monkeypatch.setattr(check, "find_gpu", lambda: ("NVIDIA H200", ""))
    monkeypatch.setattr(check, "plan", fake_plan)
    assert main(["gpu-check", "--out-dir", str(folder), "--overwrite"]) == 1
    assert "NVIDIA H200" in (folder / "summary.md").read_text()
    assert (folder / "notes.txt").read_text() == "mine"                 # only gpu-check's own files go


def test_an_unfinished_folder_is_refused_too(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(check, "find_gpu", lambda: ("NVIDIA H200", ""))
    nothing_may_run(monkeypatch)
    (tmp_path / "summary.md").write_text("- state: not finished (done: tests) after 2 min\n")
    assert main(["gpu-check", "--out-dir", str(tmp_path)]) == 2
    assert "an unfinished gpu-check run" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# What the steps call: the cases record and asv's narrowing, the machine file, the results copy


def record_case(monkeypatch, path, implementation, excinfo):
    monkeypatch.setenv(check.CASES_ENV, str(path))
    item = SimpleNamespace(callspec=SimpleNamespace(params={
        "family": SimpleNamespace(name="conv"), "case": "conv1", "implementation": implementation, "device": "cuda"}))
    assert check.pytest_runtest_makereport(item, SimpleNamespace(when="call", excinfo=excinfo)) is None


def test_the_cases_record_narrows_asv_to_what_ran(monkeypatch, tmp_path):
    record_case(monkeypatch, tmp_path / check.CASES_FILE, "triton", None)
    record_case(monkeypatch, tmp_path / check.CASES_FILE, "numba",
                SimpleNamespace(typename="Skipped", value="numba runs on the CPU only"))
    assert check.cuda_cases_that_ran(tmp_path / check.CASES_FILE) == {"conv": {"triton"}}
    steps = {s.name: s for s in check.plan("gpu-test", tmp_path)}
    finished = {"cases": check.Outcome(steps["cases"], "failed (exit 1)")}  # a failed case still leaves a record
    conv = check._narrow_asv(steps["asv-conv"], tmp_path, finished)
    assert conv.command[-1] == check.asv_regex("conv", ["triton"]) and "triton" in conv.note
    assert check._narrow_asv(steps["asv-layers"], tmp_path, finished).skip.startswith("no layers case ran")
    stopped = {"cases": check.Outcome(steps["cases"], "timed out (limit 40 s)")}  # partial record: not trusted
    assert check._narrow_asv(steps["asv-layers"], tmp_path, stopped).command == steps["asv-layers"].command


def test_the_asv_machine_is_added_with_its_details_and_an_existing_entry_kept(tmp_path):
    pytest.importorskip("asv")
    machine_file = tmp_path / ".asv-machine.json"
    machine_file.write_text(json.dumps({"other": {"machine": "other"}, "version": 1}))
    info = check.record_asv_machine("gpu-test", machine_file)
    assert info["machine"] == "gpu-test" and info["num_cpu"] and info["cpu"] is not None
    saved = json.loads(machine_file.read_text())
    assert saved["other"] == {"machine": "other"} and saved["gpu-test"] == info
    saved["gpu-test"]["cpu"] = "set by hand"
    machine_file.write_text(json.dumps(saved))
    assert check.record_asv_machine("gpu-test", machine_file)["cpu"] == "set by hand"


def test_asv_results_are_copied_and_their_cuda_timings_counted(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(check, "ROOT", tmp_path)
    source = tmp_path / check.ASV_RESULTS
    (source / "gpu-test").mkdir(parents=True)
    (source / "benchmarks.json").write_text("{}")
    (source / "gpu-test" / "machine.json").write_text(json.dumps({"machine": "gpu-test"}))
    params = [["'conv1'"], ["'torch'", "'numba'"], ["'cpu'", "'cuda'"]]
    result = {"commit_hash": "abc", "result_columns": ["result", "params"],
              "results": {"bench_conv.ConvForward.time_forward": [[0.002, 0.001, None, float("nan")], params]}}
    (source / "gpu-test" / "abc-existing.json").write_text(json.dumps(result))
    assert check.copy_asv_results("gpu-test", tmp_path / "out", "abc") == 1
    assert "cuda timings: 1 timed, 1 skipped or not selected, 0 failed" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "out" / "gpu-test").iterdir()) == ["abc-existing.json", "machine.json"]
    assert (tmp_path / "out" / "benchmarks.json").exists()
    with pytest.raises(SystemExit, match="no asv results for gpu-other"):
        check.copy_asv_results("gpu-other", tmp_path / "out")
