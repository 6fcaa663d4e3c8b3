"""`sysdl` command line: one subcommand per job. `sysdl --help` lists them.

    sysdl train [--epochs N] [--device cpu|cuda] [--data-dir DIR] [--no-track]
    sysdl bench-train [--rounds N]      # epoch time against a plain PyTorch loop
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields

from models.fashion_cnn import FashionCNNConfig
from models.train import TrainConfig

DEFAULT_CHECKPOINT = "runs/base.pt"


def _add_config_flags(parser: argparse.ArgumentParser, config_cls, skip=()) -> None:
    """One --flag per dataclass field, typed from the default, so configs are never restated."""
    for f in fields(config_cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        if isinstance(f.default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None)
        else:
            kind = type(f.default) if f.default is not None else str
            parser.add_argument(flag, type=kind, default=None, metavar=f.name.upper())


def _config_from(args, config_cls):
    values = {f.name: getattr(args, f.name) for f in fields(config_cls)
              if getattr(args, f.name, None) is not None}
    return config_cls(**values)


def _add_data_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default="fashion-mnist", choices=["fashion-mnist", "synthetic"])
    parser.add_argument("--data-dir", default=None, help="directory holding the four IDX files")
    parser.add_argument("--download", action="store_true",
                        help="allow a one-time torchvision download into the cache dir")
    parser.add_argument("--val-size", type=int, default=0,
                        help="images carved from train as a seeded validation split")


def cmd_train(args) -> int:
    from models.data import load_dataset
    from models.runtime import configure_cpu_runtime
    from models.train import train_job

    model_cfg = _config_from(args, FashionCNNConfig)
    train_cfg = _config_from(args, TrainConfig)
    runtime = configure_cpu_runtime(args.threads)
    data = load_dataset(args.dataset, args.data_dir, download=args.download,
                        val_size=args.val_size, seed=train_cfg.seed)
    print(f"data: {data.source} (train {len(data.train)}, test {len(data.test)}"
          f"{f', val {len(data.val)}' if data.val is not None else ''}); "
          f"{runtime['torch_threads']} threads; device {train_cfg.device}")
    train_job(model_cfg, train_cfg, data, args.checkpoint, experiment=args.experiment,
              run_name=args.run_name, track=not args.no_track, resume=args.resume,
              progress=not args.no_progress, runtime=runtime)
    return 0


def cmd_bench_train(args) -> int:
    from models.train_speed import main as bench_main
    return bench_main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sysdl", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train the Fashion-MNIST CNN (CPU default), log to MLflow")
    _add_config_flags(p, FashionCNNConfig)
    _add_config_flags(p, TrainConfig)
    _add_data_flags(p)
    p.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT, help="where the checkpoint goes")
    p.add_argument("--experiment", default="fashion-cnn", help="MLflow experiment name")
    p.add_argument("--run-name", default="train")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    p.add_argument("--no-track", action="store_true", help="do not log to MLflow")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint's last epoch")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("bench-train", help="time sysdl's training epoch against a plain PyTorch loop")
    from models.train_speed import add_arguments
    add_arguments(p)
    p.set_defaults(func=cmd_bench_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    from models.checkpoint import CheckpointError
    from models.data import DataError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, DataError, CheckpointError) as err:
        # Errors meant for the user (bad config, missing data, bad checkpoint) end cleanly.
        print(f"sysdl {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
