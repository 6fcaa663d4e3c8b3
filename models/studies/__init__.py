"""The course's training studies, each a thin module over models/training/loop.py and the sweeps' resumable
MLflow runs (models/studies/common.py); this package is the `sysdl study` command.

    sysdl study optimizers [--dataset cifar10|fashion-mnist] [--epochs N] [--quick]
    sysdl study depth-width [--epochs N] [--quick]
    sysdl study cutout --show [--quick]
    sysdl study batch-augment [--dataset auto|cifar10|fashion-mnist] [--n N] [--copies M ...] [--quick]
    sysdl study transfer --pretrain [--quick]; sysdl study transfer --base CHECKPOINT [--target DIR] [--quick]
    python -m models.studies optimizers --quick     # the same without the console script

Registered in the command table of models/cli/main.py as ``("study", "models.studies", ...)``.
"""

from __future__ import annotations

import argparse

# subcommand -> (module, one line of help); modules are imported only when the parser is built.
STUDIES = {
    "optimizers": ("models.studies.optimizers",
                   "MLP 2x1000: AdaGrad, RMSProp, RMSProp+Nesterov, AdaDelta, Adam, without and with dropout"),
    "depth-width": ("models.studies.depth_width",
                    "Eggholder regression: 1-3 hidden layers, <= 512 units, RMSE and time vs size"),
    "cutout": ("models.studies.cutout", "cutout (DeVries and Taylor 2017): two images before and after"),
    "batch-augment": ("models.studies.augmentation",
                      "batch augmentation (Hoffer et al. 2019): CIFAR ResNet, M copies per image, time to target"),
    "transfer": ("models.studies.transfer",
                 "ResNet-50 transfer: fine-tuning vs feature extraction, accuracy and training time"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One subcommand per study; each runs its own module's ``main(args)``."""
    import importlib
    studies = parser.add_subparsers(dest="study_command", required=True, metavar="STUDY")
    for name, (module_name, text) in STUDIES.items():
        module = importlib.import_module(module_name)
        sub = studies.add_parser(name, help=text, description=(module.__doc__ or "").splitlines()[0])
        module.add_arguments(sub)
        sub.set_defaults(study_main=module.main)


def main(args) -> int:
    """`sysdl study STUDY ...`."""
    return args.study_main(args)
