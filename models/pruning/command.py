"""`sysdl prune`: iterative structured pruning of the trained base model, with retraining; resumable.

    sysdl prune --heuristic l1 --schedule global     # runs/prune/l1-global/: state.json + step checkpoints
    sysdl prune --quick                              # 2 steps per layer, 1-epoch retraining, a data subset
    sysdl prune --distill-temperature 1              # retrain against the base's soft targets too

The base is --base when given (it must exist), else runs/base.pt. --quick reads and writes below
runs/quick/ instead: its base is runs/quick/base.pt (what `sysdl train --quick` writes) or, where
that is absent and no --base is named, a throwaway base trained for 2 epochs on the quick subset.
"""

from __future__ import annotations

from pathlib import Path

from models.pruning.prune import PruneConfig
from models.shared import command
from models.shared.artifacts import MAIN, QUICK


def add_arguments(parser) -> None:
    command.add_config_flags(parser, PruneConfig)
    command.add_data_flags(parser)
    parser.add_argument("--base", default=None,
                        help=f"the trained model to prune (default: {MAIN.base}; with --quick {QUICK.base}, else "
                             f"a quick base trained on the spot)")
    parser.add_argument("--out-dir", default=None,
                        help=f"sessions go to OUT_DIR/HEURISTIC-SCHEDULE (default: {MAIN.prune_dir}; "
                             f"{QUICK.prune_dir} with --quick)")
    command.add_threads_flag(parser)
    command.add_run_flags(parser)
    command.add_quick_flag(parser, "2 steps per layer, 1-epoch retraining, a data subset")


def main(args) -> int:
    from models.data.datasets import DataSplits, load_dataset
    from models.pruning.prune import run_session
    from sysdl_kernels.runtime import configure_cpu_runtime

    cfg = command.config_from(args, PruneConfig)
    paths = QUICK if args.quick else MAIN                     # --quick never touches the full run's files
    base = Path(args.base) if args.base else paths.base
    out_dir = Path(args.out_dir) if args.out_dir else paths.prune_dir
    if not base.exists() and (args.base or not args.quick):     # a path the user named must exist
        train = "sysdl train --quick" if args.quick else "sysdl train"
        raise ValueError(f"no base model at {base}: train one with `{train}`"
                         + ("" if args.base else " (or pass --base)"))
    configure_cpu_runtime(args.threads)
    data = load_dataset(args.dataset, args.data_dir, download=args.download, val_size=args.val_size, seed=cfg.seed)
    if args.quick:
        # A few steps of 1-epoch retraining on a subset: the whole path in about a minute.
        data = DataSplits(data.train.head(2000), data.test.head(1000), data.val.head(500) if data.val else None,
                          data.source)
        cfg = PruneConfig(**{**cfg.__dict__, "retrain_epochs": 1, "max_steps_per_layer": 2})
        if not base.exists():
            base = _quick_base(data, out_dir / "quick_base.pt")
            print(f"note: no base model at {QUICK.base}; pruning a throwaway one trained for 2 epochs: {base}")
    distill = (f" against the base's soft targets (T {cfg.distill_temperature:g}, weight {cfg.distill_weight:g})"
               if cfg.distills else "")
    print(f"pruning {base} with {cfg.name}; each step retrains {cfg.retrain_epochs} epochs on "
          f"{len(data.train)} images{distill}; decisions on {'validation' if data.val is not None else 'test'} "
          f"accuracy")
    steps = run_session(base, data, cfg, out_dir, track=not args.no_track, progress=not args.no_progress)
    kept = [s for s in steps if s["accepted"]][-1]
    print(f"done: {len(steps) - 1} steps; final model {kept['conv1_channels']}-{kept['conv2_channels']}-"
          f"{kept['hidden_units']}, {kept['flops']:,} FLOPs, test accuracy {kept['test_after_retrain']:.4f}")
    return 0


def _quick_base(data, path: Path) -> Path:
    """A base model trained for 2 epochs on the quick subset, for `sysdl prune --quick` without one."""
    from models.nets.fashion_cnn import FashionCNN
    from models.training.checkpoint import save_checkpoint
    from models.training.loop import TrainConfig, fit
    if not path.exists():
        model = FashionCNN()
        fit(model, data, TrainConfig(epochs=2), progress=False)
        save_checkpoint(path, model)
    return path


if __name__ == "__main__":
    raise SystemExit(command.run_module("models.pruning.command"))
