"""sysdl: a deep-learning-systems benchmark suite on the command line, one subcommand per job.

    sysdl --help                         # every command, one line each
    sysdl COMMAND --help                 # its flags, each with what it does and its default

The commands (README, "Commands", has the map):
    train, bench-train, gradcheck, scratch, prune, prune-control, report prune, report sweep, sweep,
    infer-bench, explore, pipeline, bench-table, allreduce-bench, scaling, ps-bench, study, analyze,
    predict-time, optimus, machine, growth, triton-report, gpu-check
"""

from __future__ import annotations

import argparse
import importlib
import sys

from models.shared import command

# (command, module, one line of help). A module provides add_arguments(parser) and main(args);
# "group name" puts a command under a group ("report prune"). Nothing else registers commands.
COMMANDS = (
    ("train", "models.training.command", "train the Fashion-MNIST CNN (CPU default), log to MLflow"),
    ("bench-train", "models.training.epoch_benchmark", "time sysdl's training epoch against a plain PyTorch loop"),
    ("gradcheck", "models.scratch.gradcheck", "finite-difference check of every from-scratch layer and the network"),
    ("scratch", "models.scratch.command", "the from-scratch numpy CNN: overfit, converge, profile"),
    ("prune", "models.pruning.command", "iterative structured pruning with retraining (resumable)"),
    ("report prune", "models.reports.prune_report", "Pareto plot, steps table and the selected pruned model"),
    ("prune-control", "models.pruning.scratch_control",
     "train-from-scratch control and longer final retraining of the pruning front, optionally distilled (resumable)"),
    ("report sweep", "models.reports.sweep_report",
     "top-3, runs table, Pareto, main effects, situation plots (from MLflow)"),
    ("sweep", "models.sweeps.sweep", "hyperparameter sweeps: model | train (resumable, --workers, --shard I/N)"),
    ("infer-bench", "models.inference.infer_bench", "time original / pruned / MatmulNet inference on the test set"),
    ("pipeline", "models.cli.pipeline",
     "train, prune, select, infer-bench, benchmarks, bench-table; each stage skipped when current"),
    ("bench-table", "models.reports.bench_table", "per-family tables and charts from asv and pytest-benchmark results"),
    ("allreduce-bench", "models.distributed.allreduce_bench",
     "all-reduce strategies vs dist.all_reduce: nccl-tests tables, alpha-beta fit"),
    ("scaling", "models.distributed.scaling",
     "data-parallel ResNet training, strong and weak scaling, per all-reduce strategy"),
    ("ps-bench", "models.distributed.ps_bench",
     "parameter-server training on torch.distributed: steps/s over a grid of servers x workers (resumable)"),
    ("study", "models.studies", "training studies (resumable MLflow runs)"),
    ("analyze", "models.analysis.analyze",
     "per-layer shapes, activations, parameters and FLOPs of classic CNNs; receptive fields"),
    ("predict-time", "models.analysis.predict_time",
     "PALEO-style time prediction from FLOPs and traffic, against measurement"),
    ("optimus", "models.analysis.optimus", "Optimus loss-curve and parameter-server speed models: fits and predictions"),
    ("machine", "models.analysis.machine",
     "this machine's limits: theoretical FMA peak, GEMM rates by path, cache and memory bandwidth"),
    ("growth", "models.analysis.growth",
     "time against FLOPs per implementation: fitted rates, where each leaves its linear regime and why (caches)"),
    ("triton-report", "models.gpu.triton_report",
     "compile every Triton kernel for sm_80/sm_90 (no GPU needed): registers, spills, occupancy"),
    ("gpu-check", "models.gpu.check",
     "on a CUDA host: GPU tests, every cuda benchmark case, asv, infer-bench and tables in under 8 minutes"),
    ("explore", "models.reports.explore",
     "the test set's predictions as one offline web page: confusion matrix, gallery, facets, base vs pruned"),
)
GROUPS = {"report": "tables and figures from finished jobs"}


def _every_parser(parser: argparse.ArgumentParser):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield from _every_parser(child)


def build_parser() -> argparse.ArgumentParser:
    parser = command.new_parser("sysdl", __doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    groups = {}
    for name, module_name, help_text in COMMANDS:
        parent = sub
        if " " in name:
            group, name = name.split(" ", 1)
            if group not in groups:
                groups[group] = sub.add_parser(group, help=GROUPS[group]).add_subparsers(
                    dest=f"{group}_command", required=True, metavar=group.upper())
            parent = groups[group]
        module = importlib.import_module(module_name)
        p = parent.add_parser(name, help=help_text, description=(module.__doc__ or help_text).splitlines()[0])
        module.add_arguments(p)
        p.set_defaults(func=module.main)
    for each in _every_parser(parser):          # nested subcommands (study, sweep, scratch) too
        each.formatter_class = command.HelpFormatter
    return parser


def main(argv: list[str] | None = None) -> int:
    command.set_process_environment()
    args = build_parser().parse_args(argv)
    name = " ".join(str(getattr(args, key)) for key in ("command", f"{args.command}_command") if hasattr(args, key))
    return command.run_command(args.func, args, f"sysdl {name}")


if __name__ == "__main__":
    sys.exit(main())
