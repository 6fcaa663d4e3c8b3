"""Cutout (DeVries and Taylor 2017) shown: two training images before and after a random square
of side --size is zeroed (the transform is models/data/augment.py's ``cutout``).

    sysdl study cutout --show                      # CIFAR-10 where found, else Fashion-MNIST (said so)
    sysdl study cutout --show --quick              # synthetic images: no data set needed (CI)
    python -m models.studies.cutout --show         # the same without the console script

The figure goes to ``OUT_DIR/cutout.png``; the centres are drawn with --seed.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from models.shared import command
from models.shared.artifacts import STUDIES_DIR


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--show", action="store_true", help="save the figure (the command's one action)")
    parser.add_argument("--size", type=int, default=None, help="side of the square in pixels "
                        "(default: half the image side, 16 on CIFAR-10)")
    command.add_dataset_flag(parser, ["auto", "cifar10", "fashion-mnist", "synthetic"], None,
                             "default auto: CIFAR-10 where found, else Fashion-MNIST (--quick: synthetic)")
    command.add_data_dir_flag(parser, "the data set's folder")
    command.add_quick_flag(parser, "synthetic images (no data set needed)")
    parser.add_argument("--seed", type=int, default=0, help="draws the squares' centres")
    parser.add_argument("--out-dir", default=str(STUDIES_DIR), help="where cutout.png goes")


def main(args) -> int:
    """`sysdl study cutout --show`."""
    from models.data.augment import show_cutout
    from models.studies.augmentation import resolve_dataset
    if not args.show:
        raise ValueError("sysdl study cutout only makes its figure: run it with --show")
    dataset, data = resolve_dataset(args.dataset or ("synthetic" if args.quick else "auto"), args.data_dir, False)
    images = data.train.x[:2]                                       # (2, C, H, W)
    size = args.size if args.size is not None else images.shape[-1] // 2
    path = show_cutout(images, size, Path(args.out_dir) / "cutout.png", seed=args.seed,
                       title=f"cutout {size}x{size} on {dataset}")
    print(f"figure: {path}")
    return 0


if __name__ == "__main__":
    import sys

    from models.shared.command import run_module
    sys.exit(run_module("models.studies.cutout"))
