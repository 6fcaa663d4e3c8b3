"""`sysdl` command line: one subcommand per job. `sysdl --help` lists them.

    sysdl train [--epochs N] [--device cpu|cuda] [--data-dir DIR] [--no-track]
    sysdl bench-train [--rounds N]      # epoch time against a plain PyTorch loop
    sysdl gradcheck [--backend numba]   # finite differences for every scratch layer
    sysdl scratch overfit | converge | profile
    sysdl prune [--heuristic l1|l2|activation|taylor|random] [--schedule layer|global] [--quick]
    sysdl report prune [--threshold 0.87]
    sysdl sweep model | train [--workers N] [--shard I/N] [--quick]   # resumable MLflow sweeps
    sysdl report sweep [--quick]        # top-3, Pareto, main effects, the five situation plots
    sysdl infer-bench [--quick]         # original vs pruned vs MatmulNet (CPU, Triton) at batch 1/64/1000
    sysdl pipeline [--quick] [--dry-run]   # train -> prune -> select -> infer-bench -> benchmarks -> tables
    sysdl bench-table [--commit C] [--vs C] [--pytest-json F ...]   # asv/pytest-benchmark tables
    sysdl allreduce-bench [--world 4] [--quick]   # all-reduce strategies: busbw, latency, alpha-beta
    sysdl scaling [--workers 1 2 4] [--quick]     # DDP ResNet: strong/weak scaling per strategy
    sysdl analyze MODEL | all | --receptive-field N F   # analytic per-layer cost tables
    sysdl study optimizers | depth-width | cutout | batch-augment | transfer [--quick]   # studies
    sysdl predict-time [--ppp P] [--quick]        # PALEO-style prediction vs measurement, K80 table
    sysdl optimus loss | regress | speed          # Optimus loss-curve and speed models
"""

from __future__ import annotations

import os

# numpy's OpenBLAS threads spin ~0.1 s after every GEMM and take a core from Numba's threads
# (measured: a Numba conv 2.5 -> 6.3 ms right after a numpy matmul). OpenBLAS reads this once,
# when numpy loads, so the entry point sets it before anything imports numpy; a user's value wins.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import argparse  # noqa: E402  (after the environment is set)
import sys
from pathlib import Path
from dataclasses import fields

from models.fashion_cnn import FashionCNNConfig
from models.train import TrainConfig

DEFAULT_CHECKPOINT = "runs/base.pt"        # what `sysdl train` writes and the later jobs read
PRUNE_DIR = "runs/prune"
SELECTED_CHECKPOINT = "runs/pruned_selected.pt"   # what `sysdl report prune` writes, infer-bench reads


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


# Subcommands whose module provides add_arguments(parser) and main(args): (name, module, help).
MODULE_COMMANDS = (
    ("pipeline", "models.pipeline",
     "train, prune, select, infer-bench, benchmarks, bench-table; each stage skipped when current"),
    ("bench-table", "models.bench_table", "per-family tables and charts from asv and pytest-benchmark results"),
    ("allreduce-bench", "models.allreduce_bench",
     "all-reduce strategies vs dist.all_reduce: nccl-tests tables, alpha-beta fit"),
    ("scaling", "models.scaling", "data-parallel ResNet training, strong and weak scaling, per all-reduce strategy"),
    ("study", "models.studies", "training studies (resumable MLflow runs)"),
    ("analyze", "models.analyze",
     "per-layer shapes, activations, parameters and FLOPs of classic CNNs; receptive fields"),
    ("predict-time", "models.predict_time", "PALEO-style time prediction from FLOPs and traffic, against measurement"),
    ("optimus", "models.optimus", "Optimus loss-curve and parameter-server speed models: fits and predictions"),
)


def _module_command(parent, name: str, module_name: str, help_text: str) -> None:
    """A subcommand whose module provides ``add_arguments(parser)`` and ``main(args)``."""
    import importlib
    module = importlib.import_module(module_name)
    parser = parent.add_parser(name, help=help_text)
    module.add_arguments(parser)
    parser.set_defaults(func=module.main)


def run_module(module_name: str, argv: list[str] | None = None) -> int:
    """`python -m models.X ...`: a subcommand module run without the sysdl entry point."""
    import importlib
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"python -m {module_name}",
                                     description=(module.__doc__ or "").splitlines()[0])
    module.add_arguments(parser)
    args = parser.parse_args(argv)
    return _report_user_errors(module.main, args, f"python -m {module_name}")


def _report_user_errors(func, args, command: str) -> int:
    """Run a command; errors meant for the user (bad config, missing data, bad checkpoint) end
    with their message and exit status 2 instead of a traceback."""
    from models.checkpoint import CheckpointError
    from models.data import DataError
    try:
        return func(args)
    except (ValueError, DataError, CheckpointError) as err:
        print(f"{command}: error: {err}", file=sys.stderr)
        return 2


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
    if args.quick:                       # the whole path in seconds: 2 epochs on 2,000 images
        from models.data import DataSplits
        data = DataSplits(data.train.head(2000), data.test.head(1000),
                          data.val.head(500) if data.val is not None else None, data.source)
        train_cfg = TrainConfig(**{**train_cfg.__dict__, "epochs": 2})
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


def cmd_gradcheck(args) -> int:
    import pandas as pd
    from sysdl_kernels.scratch.gradcheck import gradcheck

    table = pd.DataFrame(gradcheck(backend=args.backend, seed=args.seed, samples=args.samples))
    print(table.to_string(index=False, formatters={"max_rel_error": "{:.2e}".format}))
    worst = table["max_rel_error"].max()
    verdict = "PASS" if worst < args.threshold else "FAIL"
    print(f"\nworst relative error {worst:.2e}: {verdict} (threshold {args.threshold:g}, float64, centred differences)")
    return 0 if verdict == "PASS" else 1


def cmd_scratch(args) -> int:
    from models import scratch_train
    from models.data import load_dataset

    data = load_dataset(args.dataset, args.data_dir, download=args.download,
                        val_size=getattr(args, "val_size", 0), seed=0)
    out = Path(args.out_dir)
    if args.quick:
        for name, small in (("epochs", 1), ("train_images", 256), ("batch", 16), ("repeats", 2),
                            ("epoch_images", 512), ("max_epochs", 60)):
            if hasattr(args, name):
                setattr(args, name, small)
    if args.scratch_command == "overfit":
        result = scratch_train.overfit(data, samples=args.samples, backend=args.backend,
                                       max_epochs=args.max_epochs, progress=not args.no_progress)
        state = "reached" if result["reached"] else "did NOT reach"
        print(f"{result['samples']} training images: training accuracy {result['train_acc']:.4f} after "
              f"{result['epochs']} epochs ({state} 99%); test accuracy {result['test_acc']:.4f}, "
              f"{100 * result['gap']:.1f} points behind.")
        if result["gap"] > 0.05:
            print("It overfits, as it should: a few hundred thousand parameters memorise so few images "
                  "long before they describe the classes.")
        return 0 if result["reached"] else 1
    if args.scratch_command == "converge":
        results = scratch_train.converge(data, args.optimizers, epochs=args.epochs, train_images=args.train_images,
                                         backend=args.backend, track=not args.no_track,
                                         progress=not args.no_progress)
        import pandas as pd
        table = pd.DataFrame([{"optimizer": name, **history[-1]} for name, history in results.items()])
        print(table.round(4).to_string(index=False))
        path = scratch_train.plot_convergence(results, out / "scratch_convergence.png")
        table.to_csv(out / "scratch_convergence.csv", index=False)
        print(f"figure: {path}\ntable:  {out / 'scratch_convergence.csv'}")
        return 0
    from models import scratch_profile
    from models.runtime import configure_cpu_runtime, provenance

    configure_cpu_runtime()
    x = data.train.x[:args.batch].numpy()
    table = scratch_profile.layer_table(scratch_profile.run_profile(x, args.repeats))
    print(f"time per layer, ms for a batch of {len(x)} (median of {args.repeats})\n{table.round(3).to_string()}")
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "scratch_profile.csv")
    print(f"bar chart: {scratch_profile.plot_layers(table, out / 'scratch_profile.png')}")
    n = args.epoch_images
    epochs = scratch_profile.epoch_times(data.train.x[:n].numpy(), data.train.y[:n].numpy(),
                                         scratch_profile.ScratchConfig(image_size=x.shape[-1]))
    ratio = epochs["numba scratch"] / epochs["pytorch cpu"]
    print(f"one epoch over {n} images: numba scratch {epochs['numba scratch']:.2f} s, PyTorch CPU "
          f"{epochs['pytorch cpu']:.2f} s; ratio {ratio:.2f}x")
    print("provenance:", provenance())
    return 0


def cmd_prune(args) -> int:
    from models.data import load_dataset
    from models.prune import PruneConfig, run_session
    from models.runtime import configure_cpu_runtime

    configure_cpu_runtime(args.threads)
    cfg = _config_from(args, PruneConfig)
    data = load_dataset(args.dataset, args.data_dir, download=args.download, val_size=args.val_size, seed=cfg.seed)
    base = Path(args.base)
    if args.quick:
        # A few steps of 1-epoch retraining on a subset: the whole path in about a minute.
        from models.data import DataSplits
        data = DataSplits(data.train.head(2000), data.test.head(1000), data.val.head(500) if data.val else None,
                          data.source)
        cfg = PruneConfig(**{**cfg.__dict__, "retrain_epochs": 1, "max_steps_per_layer": 2})
        if not base.exists():
            base = _quick_base(data, Path(args.out_dir) / "quick_base.pt")
    if not base.exists():
        raise ValueError(f"no base model at {base}: train one with `sysdl train` (or pass --base)")
    print(f"pruning {base} with {cfg.name}; each step retrains {cfg.retrain_epochs} epochs on "
          f"{len(data.train)} images; decisions on {'validation' if data.val is not None else 'test'} accuracy")
    steps = run_session(base, data, cfg, args.out_dir, track=not args.no_track, progress=not args.no_progress)
    kept = [s for s in steps if s["accepted"]][-1]
    print(f"done: {len(steps) - 1} steps; final model {kept['conv1_channels']}-{kept['conv2_channels']}-"
          f"{kept['hidden_units']}, {kept['flops']:,} FLOPs, test accuracy {kept['test_after_retrain']:.4f}")
    return 0


def _quick_base(data, path: Path) -> Path:
    """A base model trained for 2 epochs on the quick subset, for `sysdl prune --quick` without one."""
    from models.checkpoint import save_checkpoint
    from models.fashion_cnn import FashionCNN
    from models.train import fit
    if not path.exists():
        model = FashionCNN()
        fit(model, data, TrainConfig(epochs=2), progress=False)
        save_checkpoint(path, model)
    return path


def cmd_report(args) -> int:
    from models.report import prune_report

    result = prune_report(args.prune_dir, args.out_dir, args.threshold, args.selected)
    front = result["front"]
    print("Pareto front (FLOPs vs test accuracy):")
    print(front[["session", "step", "conv1_channels", "conv2_channels", "hidden_units", "flops",
                 "test_after_retrain"]].to_string(index=False))
    selected = result["selected"]
    if selected is None:
        print(f"no model reaches test accuracy > {args.threshold}")
        return 1
    print(f"\nselected (lowest FLOPs with test accuracy > {args.threshold}): {selected['session']} step "
          f"{selected['step']}: conv1 {selected['conv1_channels']}, conv2 {selected['conv2_channels']}, "
          f"fc1 {selected['hidden_units']}; {selected['flops']:,} FLOPs "
          f"(1/{result['base_flops'] / selected['flops']:.1f} of the base), {selected['params']:,} parameters, "
          f"test accuracy {selected['test_after_retrain']:.4f}\ncheckpoint: {args.selected}")
    print(f"plot: {result['plot']}\nsteps: {Path(args.out_dir) / 'prune_steps.csv'}")
    return 0


def cmd_infer_bench(args) -> int:
    import pandas as pd
    from models import infer_bench
    from models.data import load_dataset
    from models.runtime import configure_cpu_runtime, provenance

    configure_cpu_runtime(args.threads)
    original, pruned = Path(args.original), Path(args.pruned)
    if not original.exists():
        raise ValueError(f"no original model at {original}: run `sysdl train` first")
    if not pruned.exists():
        print(f"note: no pruned model at {pruned} (run `sysdl prune` and `sysdl report prune`); "
              f"the original stands in for it, so (b) and (c) time the unpruned network")
        pruned = original
    data = load_dataset(args.dataset, args.data_dir, download=args.download)
    x, y = data.test.x, data.test.y
    repeats, batches = args.repeats, infer_bench.BATCH_SIZES
    if args.quick:
        x, y, repeats, batches = x[:2000], y[:2000], 1, (64, 1000)
    rows, checks = infer_bench.run(original, pruned, x, y, repeats=repeats, batch_sizes=batches)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    print(f"{len(x)} test images; time for all of them (speedup over (a) on the same device), median of {repeats}")
    print(infer_bench.table(rows).to_string())
    print("\n" + pd.DataFrame(checks).drop(columns="what ran").to_string(index=False))
    for check in checks:
        if check["what ran"]:
            print(f"{check['implementation']}: {check['what ran']}")
    pd.DataFrame(rows).to_csv(out / "infer_bench.csv", index=False)
    print(f"\ncsv: {out / 'infer_bench.csv'}\nchart: {infer_bench.plot(rows, out / 'infer_bench.png')}")
    print("provenance:", provenance())
    return 0


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
    p.add_argument("--quick", action="store_true", help="2 epochs on 2,000 images (smoke test)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("gradcheck", help="finite-difference check of every from-scratch layer and the network")
    p.add_argument("--backend", default="numpy", choices=["numpy", "numba"])
    p.add_argument("--samples", type=int, default=20, help="entries checked per array")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threshold", type=float, default=1e-6, help="largest relative error that passes")
    p.set_defaults(func=cmd_gradcheck)

    p = sub.add_parser("scratch", help="the from-scratch numpy CNN: overfit, converge, profile")
    scratch = p.add_subparsers(dest="scratch_command", required=True, metavar="SCRATCH_COMMAND")
    for name, text in (("overfit", "fit 100 training images to >= 99%% and report the test gap"),
                       ("converge", "SGD-momentum / AdaGrad / Adam convergence figure"),
                       ("profile", "time per layer: numpy vs Numba vs PyTorch; one epoch each")):
        q = scratch.add_parser(name, help=text)
        _add_data_flags(q)
        q.add_argument("--backend", default="numba", choices=["numpy", "numba"])
        q.add_argument("--out-dir", default="runs", help="where tables and figures go")
        q.add_argument("--no-progress", action="store_true")
        q.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test of the whole path")
        q.set_defaults(func=cmd_scratch)
        if name == "overfit":
            q.add_argument("--samples", type=int, default=100)
            q.add_argument("--max-epochs", type=int, default=300)
        elif name == "converge":
            q.add_argument("--optimizers", nargs="+", default=["sgd-momentum", "adagrad", "adam"])
            q.add_argument("--epochs", type=int, default=5)
            q.add_argument("--train-images", type=int, default=10_000)
            q.add_argument("--no-track", action="store_true")
            q.set_defaults(val_size=5000)
        else:
            q.add_argument("--batch", type=int, default=128)
            q.add_argument("--repeats", type=int, default=10)
            q.add_argument("--epoch-images", type=int, default=60_000)

    p = sub.add_parser("prune", help="iterative structured pruning with retraining (resumable)")
    from models.prune import PruneConfig
    _add_config_flags(p, PruneConfig)
    _add_data_flags(p)
    p.add_argument("--base", default=DEFAULT_CHECKPOINT, help="the trained model to prune")
    p.add_argument("--out-dir", default=PRUNE_DIR, help="sessions go to OUT_DIR/HEURISTIC-SCHEDULE")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--no-track", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--quick", action="store_true", help="2 steps per layer, 1-epoch retraining, a data subset")
    p.set_defaults(func=cmd_prune)

    p = sub.add_parser("report", help="tables and figures from finished jobs")
    reports = p.add_subparsers(dest="report_command", required=True, metavar="REPORT")
    q = reports.add_parser("prune", help="Pareto plot, steps table and the selected pruned model")
    q.add_argument("--prune-dir", default=PRUNE_DIR)
    q.add_argument("--out-dir", default="runs")
    q.add_argument("--threshold", type=float, default=0.87, help="test accuracy the selected model must exceed")
    q.add_argument("--selected", default=SELECTED_CHECKPOINT, help="where the selected model is copied")
    q.set_defaults(func=cmd_report)

    _module_command(reports, "sweep", "models.sweep_report",
                    "top-3, runs table, Pareto, main effects, situation plots (from MLflow)")

    _module_command(sub, "sweep", "models.sweep", "hyperparameter sweeps: model | train (resumable, --workers, --shard I/N)")

    p = sub.add_parser("infer-bench", help="time original / pruned / MatmulNet inference on the test set")
    _add_data_flags(p)
    p.add_argument("--original", default=DEFAULT_CHECKPOINT)
    p.add_argument("--pruned", default=SELECTED_CHECKPOINT)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out-dir", default="runs")
    p.add_argument("--quick", action="store_true", help="2,000 images, batch 64 and 1000, one repeat")
    p.set_defaults(func=cmd_infer_bench)

    for name, module_name, help_text in MODULE_COMMANDS:
        _module_command(sub, name, module_name, help_text)

    p = sub.add_parser("bench-train", help="time sysdl's training epoch against a plain PyTorch loop")
    from models.train_speed import add_arguments
    add_arguments(p)
    p.set_defaults(func=cmd_bench_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return _report_user_errors(args.func, args, f"sysdl {args.command}")


if __name__ == "__main__":
    sys.exit(main())
