"""The import rules of docs/architecture.md, the one command table, and what is defined once:
checked on the source, so a change that breaks a rule fails here rather than in review."""

from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path

import pytest

from models.cli.main import COMMANDS, build_parser

ROOT = Path(__file__).resolve().parents[3]
JOBS = {"pruning", "inference", "scratch", "sweeps", "studies", "distributed", "analysis", "gpu"}
# room -> the rooms of models/ it may import (besides itself); "*" for everything but the CLI
ALLOWED = {
    "shared": set(),
    "data": {"shared"},
    "nets": {"data", "shared"},
    "training": {"nets", "data", "shared"},
    **{job: {"training", "nets", "data", "shared"} for job in JOBS},
    "reports": JOBS | {"training", "nets", "data", "shared"},
    "cli": {"*"},
}
BENCHMARK_IMPORTS = {"models.training.checkpoint", "models.data.datasets", "models.nets.fashion_cnn",
                     "models.shared.artifacts"}


def imports_of(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function, and every importlib target."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant)):
            found.add(node.args[0].value)
    return found


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def models_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted((ROOT / "models").rglob("*.py"))}


def room(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[0] == "models") else None


def test_every_module_sits_in_a_room():
    loose = [m for m in models_modules() if m.count(".") == 1
             and not (ROOT / m.replace(".", "/") / "__init__.py").exists()]
    assert loose == [], f"modules outside the rooms of models/: {loose}"


def test_rooms_import_only_what_they_may():
    broken = []
    for module, path in models_modules().items():
        if module == "models":
            continue
        mine = room(module)
        allowed = ALLOWED.get(mine)
        assert allowed is not None, f"{module}: room {mine!r} is not in docs/architecture.md's table"
        for target in imports_of(path):
            if not target.startswith("models.") or target.count(".") < 1:
                continue
            theirs = target.split(".")[1]
            if theirs == mine or theirs not in ALLOWED:     # own room, or a name imported from a package
                continue
            if theirs == "cli" and mine != "cli" or ("*" not in allowed and theirs not in allowed):
                broken.append(f"{module} imports {target}")
    assert broken == []


def test_no_import_cycle_between_modules():
    modules = models_modules()
    graph = {m: {t for t in imports_of(p) if t in modules and t != m} for m, p in modules.items()}

    def reachable(start):
        seen, stack = set(), [start]
        while stack:
            for nxt in graph[stack.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return seen
    cycles = [m for m in graph if m in reachable(m) and not m.endswith("__main__")]
    assert cycles == []


def test_benchmarks_import_only_the_public_api():
    for path in sorted((ROOT / "benchmarks").glob("*.py")):
        for target in imports_of(path):
            if target.startswith("models"):
                assert any(target == allowed or target.startswith(allowed + ".") for allowed in BENCHMARK_IMPORTS), \
                    f"{path.name} imports {target}: asv runs today's benchmarks against older commits"


def test_artifact_paths_are_spelled_once():
    spelled = re.compile(r"""["']runs/[\w./-]*["']""")
    hits = [f"{p.relative_to(ROOT)}: {m.group(0)}" for p in sorted((ROOT / "models").rglob("*.py"))
            if p.name != "artifacts.py" for m in spelled.finditer(p.read_text())]
    assert hits == []


@pytest.mark.parametrize("flag", ["--data-dir", "--threads", "--quick", "--download", "--dataset", "--no-progress",
                                  "--no-track", "--val-size"])
def test_shared_flags_are_declared_once(flag):
    pattern = re.compile(rf"""add_argument\(\s*["']{flag}["']""")
    places = [str(p.relative_to(ROOT)) for p in sorted((ROOT / "models").rglob("*.py")) if pattern.search(p.read_text())]
    assert places == ["models/shared/command.py"]


def _parsers(parser: argparse.ArgumentParser, name: str = "sysdl"):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child_name, child in action.choices.items():
                yield from _parsers(child, f"{name} {child_name}")


def test_every_flag_says_what_it_does_and_its_default():
    undocumented = []
    for name, parser in _parsers(build_parser()):
        formatter = parser.formatter_class(prog=name)
        for action in parser._actions:
            if not action.option_strings or action.help == argparse.SUPPRESS or isinstance(action, argparse._HelpAction):
                continue
            if not action.help:
                undocumented.append(f"{name} {action.option_strings[0]}: no help")
            elif (action.default not in (None, False, argparse.SUPPRESS)
                  and "default" not in formatter._get_help_string(action)):
                undocumented.append(f"{name} {action.option_strings[0]}: default not shown")
    assert undocumented == []


def test_every_command_is_registered_once_in_the_table():
    names = [name for name, _, _ in COMMANDS]
    assert len(names) == len(set(names))
    assert "cmd_" not in (ROOT / "models/cli/main.py").read_text()
