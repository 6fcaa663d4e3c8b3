"""`sysdl train`: train the Fashion-MNIST CNN (CPU by default), log it to MLflow, checkpoint it.

    sysdl train                          # 15 epochs -> runs/base.pt, runs/base_loss.png, an MLflow run
    sysdl train --quick                  # 2 epochs on 2,000 images (smoke test) -> runs/quick/base.pt
    sysdl train --resume                 # continue from the checkpoint's last epoch
    sysdl train --overwrite              # start afresh in place of an existing checkpoint
    python -m models.training.command --quick
"""

from __future__ import annotations

from models.nets.fashion_cnn import FashionCNNConfig
from models.shared import command
from models.shared.artifacts import MAIN, QUICK
from models.training.loop import TrainConfig


def add_arguments(parser) -> None:
    command.add_config_flags(parser, FashionCNNConfig)
    command.add_config_flags(parser, TrainConfig)
    command.add_data_flags(parser)
    parser.add_argument("--checkpoint", default=None,
                        help=f"where the checkpoint goes (default: {MAIN.base}; {QUICK.base} with --quick)")
    parser.add_argument("--experiment", default="fashion-cnn", help="MLflow experiment name")
    parser.add_argument("--run-name", default="train", help="MLflow run name")
    command.add_threads_flag(parser)
    command.add_run_flags(parser)
    existing = parser.add_mutually_exclusive_group()
    existing.add_argument("--resume", action="store_true", help="continue from the checkpoint's last epoch")
    existing.add_argument("--overwrite", action="store_true",
                          help="start afresh in place of an existing checkpoint (its unfinished MLflow run is "
                               "marked KILLED)")
    command.add_quick_flag(parser, f"2 epochs on 2,000 images (smoke test), checkpoint below {QUICK.root}/")


def main(args) -> int:
    from models.data.datasets import DataSplits, load_dataset
    from models.training.loop import check_device, train_job
    from sysdl_kernels.runtime import configure_cpu_runtime

    model_cfg = command.config_from(args, FashionCNNConfig)
    train_cfg = command.config_from(args, TrainConfig)
    check_device(train_cfg.device)                   # before the seconds spent loading data
    checkpoint = args.checkpoint or (QUICK.base if args.quick else MAIN.base)
    runtime = configure_cpu_runtime(args.threads)
    data = load_dataset(args.dataset, args.data_dir, download=args.download,
                        val_size=args.val_size, seed=train_cfg.seed)
    if args.quick:                       # the whole path in seconds: 2 epochs on 2,000 images
        data = DataSplits(data.train.head(2000), data.test.head(1000),
                          data.val.head(500) if data.val is not None else None, data.source)
        train_cfg = TrainConfig(**{**train_cfg.__dict__, "epochs": 2})
    print(f"data: {data.source} (train {len(data.train)}, test {len(data.test)}"
          f"{f', val {len(data.val)}' if data.val is not None else ''}); "
          f"{runtime['torch_threads']} threads; device {train_cfg.device}")
    train_job(model_cfg, train_cfg, data, checkpoint, experiment=args.experiment,
              run_name=args.run_name, track=not args.no_track, resume=args.resume,
              progress=not args.no_progress, runtime=runtime, overwrite=args.overwrite)
    return 0


if __name__ == "__main__":
    raise SystemExit(command.run_module("models.training.command"))
