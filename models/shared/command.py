"""What every command shares: the process settings, the shared flags, and how user errors end.

    from models.shared.command import run_module
    raise SystemExit(run_module("models.analysis.optimus"))    # `python -m models.analysis.optimus`

A command module provides ``add_arguments(parser)`` and ``main(args) -> int``; the `sysdl`
command table (models/cli/main.py) and ``run_module`` (``python -m``) both run it through
``run_command``, so a user error ends the same way everywhere: one line on stderr naming what
was wrong and what to do, exit status 2, no traceback. Shared flags (``--data-dir``,
``--threads``, ``--quick``, ...) are declared here once; every flag's help line gives its default.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import io
import sys
import tokenize
from dataclasses import MISSING, dataclass, fields

from models.shared.errors import UserError
from sysdl_kernels.runtime import set_process_environment


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` lines end with the default, except where there is none to state."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "%(default)" in text or action.default in (None, False, argparse.SUPPRESS) or not action.option_strings:
            return text
        return text + " (default: %(default)s)"


def new_parser(prog: str, description: str = "") -> argparse.ArgumentParser:
    return argparse.ArgumentParser(prog=prog, description=description, formatter_class=HelpFormatter)


def user_error_types() -> tuple[type[BaseException], ...]:
    """The exceptions that are the user's to fix: a bad value, and every UserError."""
    return (ValueError, UserError)


def run_command(func, args, command: str) -> int:
    """Run a command's main; a user error ends with ``command: error: message`` and status 2."""
    try:
        return func(args)
    except user_error_types() as err:
        print(f"{command}: error: {err}", file=sys.stderr)
        return 2


def run_module(module_name: str, argv: list[str] | None = None) -> int:
    """`python -m models.X ...`: a command module run without the sysdl entry point."""
    set_process_environment()
    module = importlib.import_module(module_name)
    parser = new_parser(f"python -m {module_name}", (module.__doc__ or "").splitlines()[0])
    module.add_arguments(parser)
    return run_command(module.main, parser.parse_args(argv), f"python -m {module_name}")


# ---------------------------------------------------------------------------------------------
# Shared flags


def at_least(minimum: int):
    """An argparse type: a whole number >= ``minimum`` (argparse names the flag in its error)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value
    parse.__name__ = f"whole number >= {minimum}"
    return parse


def field_comments(config_cls) -> dict[str, str]:
    """{field: its trailing comment} from a config dataclass's source: the comment that
    documents a default is also its flag's help line, so it is written once."""
    comments, source = {}, inspect.getsource(config_cls)
    lines = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            lines[token.start[0]] = token.string.lstrip("#").strip()
    for number, line in enumerate(source.splitlines(), start=1):
        name = line.strip().split(":", 1)[0]
        if number in lines and line.startswith("    ") and not line.startswith("     ") and name.isidentifier():
            comments[name] = lines[number]
    return comments


def add_config_flags(parser: argparse.ArgumentParser, config_cls, skip=()) -> None:
    """One --flag per dataclass field, typed from the default, its help the field's comment.
    Unset flags stay absent from args, so ``config_from`` keeps the dataclass's own default."""
    comments = field_comments(config_cls)
    for f in fields(config_cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        default = None if f.default is MISSING else f.default
        text = f"{comments.get(f.name) or f.name.replace('_', ' ')} (default: {default})".replace("%", "%%")
        if isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=text)
        else:
            kind = type(default) if default is not None else str
            parser.add_argument(flag, type=kind, default=argparse.SUPPRESS, metavar=f.name.upper(), help=text)


def config_from(args, config_cls, **overrides):
    """The config with every flag the user gave (others keep their defaults), then ``overrides``."""
    values = {f.name: getattr(args, f.name) for f in fields(config_cls) if getattr(args, f.name, None) is not None}
    return config_cls(**{**values, **overrides})


def add_data_flags(parser: argparse.ArgumentParser, val_size: int | None = 0) -> None:
    """--dataset, --data-dir, --download and (unless ``val_size`` is None) --val-size."""
    add_dataset_flag(parser)
    add_data_dir_flag(parser)
    add_download_flag(parser)
    if val_size is not None:
        add_val_size_flag(parser, val_size)


def add_val_size_flag(parser: argparse.ArgumentParser, default: int | None = 0,
                      what: str = "images carved from train as a seeded validation split") -> None:
    parser.add_argument("--val-size", type=int, default=default, help=what)


def add_dataset_flag(parser: argparse.ArgumentParser, choices=("fashion-mnist", "synthetic"),
                     default: str | None = "fashion-mnist",
                     what: str = "the images to use: the real data set or seeded synthetic ones") -> None:
    parser.add_argument("--dataset", default=default, choices=list(choices), help=what)


def add_data_dir_flag(parser: argparse.ArgumentParser,
                      what: str = "directory holding the four Fashion-MNIST IDX files (default: Debian's "
                                  "dataset-fashion-mnist, then $SYSDL_DATA, then the cache)") -> None:
    parser.add_argument("--data-dir", default=None, help=what)


def add_download_flag(parser: argparse.ArgumentParser,
                      what: str = "allow a one-time download into the cache dir, checksum-verified") -> None:
    parser.add_argument("--download", action="store_true", help=what)


def add_threads_flag(parser: argparse.ArgumentParser, what: str = "torch threads (default: all cores)") -> None:
    parser.add_argument("--threads", type=int, default=None, help=what)


def add_quick_flag(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--quick", action="store_true", help=what)


@dataclass(frozen=True)
class QuickSettings:
    """A command's settings that have a full-run value and a ``--quick`` one: their flags default
    to None, the help names both, and ``resolve`` fills what the user left unset."""
    full: dict
    quick: dict

    def help(self, name: str, what: str) -> str:
        return f"{what} (default {self.full[name]}; --quick: {self.quick[name]})"

    def resolve(self, args) -> None:
        for name, value in (self.quick if args.quick else self.full).items():
            if getattr(args, name) is None:
                setattr(args, name, value)


def add_run_flags(parser: argparse.ArgumentParser, track: bool = True) -> None:
    """--no-progress and (with ``track``) --no-track."""
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    if track:
        parser.add_argument("--no-track", action="store_true", help="do not log to MLflow")
