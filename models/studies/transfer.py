"""Transfer learning: a ResNet-50 (torchvision) with a new final layer for the target's classes,
(a) fine-tuned in all layers, (b) as a fixed feature extractor (only the new layer trains).

    sysdl study transfer --pretrain                    # base: ResNet-50 on Fashion-MNIST classes 0-4 (~2 min)
    sysdl study transfer --base runs/studies/study-transfer-pretrain/base.pt   # target: classes 5-9 (~3 min)
    sysdl study transfer --base BASE.pt --target data/dtd --image-size 72      # any image folder
    sysdl study transfer --target data/dtd --download  # torchvision's ImageNet weights (downloaded once)
    sysdl study transfer --pretrain --quick && sysdl study transfer --quick --base \\
        runs/studies/study-transfer-pretrain-quick/base.pt                   # CI: 16 px, tiny subsets
    python -m models.studies.transfer --help           # the same without the console script

Pretrained weights, in this order: --base CHECKPOINT (a checkpoint written by --pretrain: the same
network trained on a source task); else torchvision's ImageNet weights (IMAGENET1K_V1) when they
are in torch's cache ($TORCH_HOME/hub/checkpoints), or downloaded there with --download (never
otherwise, never in tests); else an error that says what to do.

Target: --target DIR, an image folder (models/data/image_folder.py: DIR/train/CLASS and DIR/val/CLASS
as the Visual Decathlon sets come, or DIR/CLASS split 80/20), or by default the second half of the
--source classes (Fashion-MNIST 5-9: sandal, shirt, sneaker, bag, ankle boot), the first half
(0-4) being the source task of --pretrain: an in-memory equivalent of writing the halves as image
folders (image_folder.class_halves). Its description goes to ``target_classes.md`` / ``.csv`` /
``.png`` (images per class) and ``target_samples.png`` (4 images of each of 2 classes).

Runs (experiment ``study-transfer``): fine-tuning with one learning rate for all layers, 0.001,
0.01 and 0.1; feature extraction with 1, 0.1, 0.01 and 0.001. All: SGD, momentum 0.9, batch 64,
no weight decay (the study names none), the learning rate times 0.1 at each of three epochs
(--milestones), no augmentation, the same data order. In feature extraction the frozen layers also
keep their batch-norm statistics (eval mode) and no gradient flows through them: the backward
pass is the last layer's only, which is where its speed comes from. Training time is that of the
training passes (no evaluation). From the store: ``transfer.md`` / ``.csv`` and ``transfer.png``.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from models.shared.tables import write_table
from models.studies import common
from models.training.loop import TrainConfig
from models.shared import command

STUDY = "transfer"
PRETRAIN_STUDY = "transfer-pretrain"
BATCH_SIZE = 64
MOMENTUM = 0.9
WEIGHT_DECAY = 0.0                 # L2 coefficient (none: the study names none)
FINE_TUNE_LRS = (0.001, 0.01, 0.1)
FEATURE_LRS = (1.0, 0.1, 0.01, 0.001)
# Source task: SGD + momentum, weight decay 5e-4, the same drops. 0.05 was unstable for a ResNet-50
# from random weights at 32 px (training loss 6 at epoch 3, 33% accuracy); 0.01: 78% after 2 epochs.
PRETRAIN_LR = 0.01
PRETRAIN_WEIGHT_DECAY = 5e-4
EVAL_BATCH = 256
FASHION_NAMES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"]
SYNTHETIC_STATS = (0.5, 0.25)      # synthetic images are read as if normalised with this mean and std
# Scales. per_class / test_per_class: images of each class kept (0: all).
REDUCED = {"epochs": 6, "milestones": (3, 4, 5), "image_size": 32, "per_class": 200, "test_per_class": 100,
           "pretrain_epochs": 4, "pretrain_per_class": 1000}
QUICK = {"epochs": 2, "milestones": (1, 2, 3), "image_size": 16, "per_class": 8, "test_per_class": 4,
         "pretrain_epochs": 1, "pretrain_per_class": 16}


# ----------------------------------------------------------------------------------------------
# The network
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TransferConfig:
    num_classes: int               # outputs of the new final layer
    base: str = "none"             # "none" (random weights), "imagenet", or a --pretrain checkpoint's path
    base_sha256: str = ""          # the base checkpoint's content: another base is another configuration
    freeze: bool = False           # feature extraction: every layer but the new final one frozen
    download: bool = field(default=False, compare=False)   # may fetch ImageNet weights; not in to_dict

    def to_dict(self) -> dict:
        values = asdict(self)
        del values["download"]
        return values

    def build(self) -> "TransferNet":
        return TransferNet(self)


class TransferNet(nn.Module):
    """torchvision's ResNet-50 with the base's weights and a new ``fc`` for ``num_classes``."""

    def __init__(self, config: TransferConfig):
        super().__init__()
        self.config = config                          # save_checkpoint records config.to_dict()
        self.net = base_network(config)
        self.net.fc = nn.Linear(self.net.fc.in_features, config.num_classes)
        if config.freeze:
            for name, param in self.net.named_parameters():
                param.requires_grad = name.startswith("fc.")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)                            # (N, 3, S, S) -> (N, num_classes)

    def train(self, mode: bool = True) -> "TransferNet":
        super().train(mode)
        if self.config.freeze:    # frozen layers keep the base's batch-norm statistics too
            for name, child in self.net.named_children():
                if name != "fc":
                    child.eval()
        return self


def base_network(config: TransferConfig) -> nn.Module:
    from torchvision.models import resnet50
    net = resnet50(weights=None)
    if config.base == "imagenet":
        net.load_state_dict(imagenet_state_dict(config.download))
    elif config.base != "none":
        net = load_base(Path(config.base)).net
    return net


def imagenet_state_dict(download: bool) -> dict:
    """torchvision's ImageNet ResNet-50 weights from torch's cache; fetched only when ``download``."""
    from torchvision.models import ResNet50_Weights

    from models.data.datasets import DataNotFoundError
    weights = ResNet50_Weights.IMAGENET1K_V1
    path = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    if not path.exists() and not download:
        raise DataNotFoundError(f"torchvision's ImageNet ResNet-50 weights are not at {path}, and downloading is "
                                f"not allowed. Pass --download to fetch them once, or --base CHECKPOINT (make one "
                                f"here with `sysdl study transfer --pretrain`).")
    return weights.get_state_dict(progress=False)


def load_base(path: Path) -> TransferNet:
    """The network a --pretrain checkpoint holds."""
    from models.training.checkpoint import CheckpointError, load_checkpoint
    payload = load_checkpoint(path)
    try:
        config = TransferConfig(**payload["config"])
    except TypeError as err:
        raise CheckpointError(f"{path} is not a transfer base (its config is {payload['config']}); make one "
                              f"with `sysdl study transfer --pretrain`") from err
    # Its own base only set its starting point: the weights below replace them.
    model = TransferNet(dataclasses.replace(config, base="none", base_sha256=""))
    model.load_state_dict(payload["state_dict"])
    return model


def file_sha256(path: Path) -> str:
    from models.data.datasets import DataNotFoundError
    if not path.is_file():
        raise DataNotFoundError(f"--base {path}: no such file; make a base with `sysdl study transfer --pretrain`")
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------


def source_halves(name: str, scale: dict, per_class: int):
    """(source, target) ImageSets: the two halves of the classes of --source."""
    from models.data.datasets import FASHION_MNIST_MEAN, FASHION_MNIST_STD, load_dataset
    from models.data.image_folder import class_halves
    data = load_dataset(name)
    mean, std = (FASHION_MNIST_MEAN, FASHION_MNIST_STD) if name == "fashion-mnist" else SYNTHETIC_STATS
    names = FASHION_NAMES if name == "fashion-mnist" else None
    return class_halves(data, [mean], [std], scale["image_size"], names, per_class, scale["test_per_class"])


def load_target(args, scale: dict):
    """The target ImageSet: --target's image folder (capped at per_class images a class) or the
    second half of --source."""
    from models.data.datasets import DataSplits
    from models.data.image_folder import ImageSet, load_image_folder, take_classes
    if args.target is None:
        return source_halves(args.source, scale, scale["per_class"])[1]
    found = load_image_folder(args.target, scale["image_size"], seed=args.seed)
    classes = range(len(found.classes))
    data = found.data
    return ImageSet(DataSplits(take_classes(data.train, classes, scale["per_class"]),
                               take_classes(data.test, classes, scale["test_per_class"]), None, data.source,
                               data.num_classes), found.classes)


# ----------------------------------------------------------------------------------------------
# Jobs
# ----------------------------------------------------------------------------------------------


def train_config(scale: dict, lr: float, seed: int, pretrain: bool = False) -> tuple[TrainConfig, dict]:
    epochs = scale["pretrain_epochs" if pretrain else "epochs"]
    train = TrainConfig(epochs=epochs, batch_size=BATCH_SIZE, lr=lr, momentum=MOMENTUM,
                        weight_decay=PRETRAIN_WEIGHT_DECAY if pretrain else WEIGHT_DECAY, schedule="constant",
                        hflip=False, seed=seed, eval_batch_size=EVAL_BATCH)
    return train, {"name": "sgd", "momentum": MOMENTUM, "milestones": list(scale["milestones"]), "gamma": 0.1}


def plan(target, scale: dict, spec: dict, base: str, base_sha256: str, download: bool,
         seed: int = 0) -> list[common.StudyJob]:
    """Fine-tuning at each of FINE_TUNE_LRS, then feature extraction at each of FEATURE_LRS."""
    jobs = []
    for freeze, lrs in ((False, FINE_TUNE_LRS), (True, FEATURE_LRS)):
        model = TransferConfig(target.data.num_classes, base, base_sha256, freeze, download)
        mode = "feature extraction" if freeze else "fine-tuning"
        for lr in lrs:
            train, optimizer = train_config(scale, lr, seed)
            jobs.append(common.StudyJob(STUDY, len(jobs), f"{mode}, lr {lr:g}", {"mode": mode, "lr": lr},
                                        model, train, optimizer, spec))
    return jobs


def pretrain(args, scale: dict) -> int:
    """`--pretrain`: the base network trained on the first half of --source's classes, its final
    weights written to --base (default OUT_DIR/EXPERIMENT/base.pt)."""
    from models.training.checkpoint import save_checkpoint
    source = source_halves(args.source, scale, scale["pretrain_per_class"])[0]
    spec = {"source": args.source, "classes": source.classes, "image_size": scale["image_size"],
            "per_class": scale["pretrain_per_class"], "test_per_class": scale["test_per_class"]}
    train, optimizer = train_config(scale, PRETRAIN_LR, args.seed, pretrain=True)
    job = common.StudyJob(PRETRAIN_STUDY, 0, f"ResNet-50 on {args.source} classes {', '.join(source.classes)}",
                          {}, TransferConfig(source.data.num_classes), train, optimizer, spec)
    experiment = args.experiment or common.experiment_name(PRETRAIN_STUDY, args.quick)
    path = Path(args.base) if args.base else Path(args.out_dir) / experiment / "base.pt"
    print(f"pretraining: {job.label}; {len(source.data.train)} training images at {scale['image_size']} px, "
          f"{train.epochs} epochs")

    def save_base(model, data, result) -> dict:      # run_job's summarise: the finished weights
        save_checkpoint(path, model, {"config_hash": job.hash, "source": source.data.source,
                                      "final_test_acc": result.epochs[-1].test_acc})
        return {}

    args.experiment = experiment
    common.execute(args, PRETRAIN_STUDY, [job], source.data, save_base)
    run = common.finished_runs(experiment, [job])[0][1]
    if not path.is_file():
        raise ValueError(f"the pretraining run of experiment {experiment!r} is finished but {path} is missing; "
                         f"pass another --experiment (or delete that run) to train the base again")
    print(f"base: {path} (source test accuracy {run['metrics']['final_test_acc']:.4f})\nnext: sysdl study "
          f"transfer{' --quick' if args.quick else ''} --base {path}")
    return 0


# ----------------------------------------------------------------------------------------------
# Report, from the store
# ----------------------------------------------------------------------------------------------


def results_table(pairs):
    import pandas as pd
    rows = []
    for job, run in pairs:
        metrics = run["metrics"]
        _, accuracy = common.epoch_history(run["run_id"], "test_acc")
        rows.append({"mode": job.factors["mode"], "lr": job.factors["lr"],
                     "final validation accuracy": metrics["final_test_acc"], "best validation accuracy": max(accuracy),
                     "trainable parameters": int(metrics["model_params"]), "training s": metrics["train_time_s"],
                     "training s per epoch": metrics["train_time_s"] / metrics["epochs_run"]})
    frame = pd.DataFrame(rows)
    fine = frame.loc[frame["mode"] == "fine-tuning", "training s per epoch"].mean()
    frame["time per epoch / fine-tuning's"] = frame["training s per epoch"] / fine
    return frame


def verdict(table) -> str:
    """The winning approach and learning rate (best validation accuracy; decided on the validation
    split, as a user would), and the best of the other approach with its speed beside it."""
    ranked = table.sort_values("best validation accuracy", ascending=False)
    win = ranked.iloc[0]
    other = ranked[ranked["mode"] != win["mode"]]
    text = (f"winner: {win['mode']} at lr {win['lr']:g} (best validation accuracy "
            f"{win['best validation accuracy']:.3f})")
    if len(other):
        runner = other.iloc[0]
        text += (f"; best {runner['mode']}: lr {runner['lr']:g}, {runner['best validation accuracy']:.3f}, at "
                 f"{runner['training s per epoch'] / win['training s per epoch']:.2f}x the winner's time per epoch")
    return text


def plot(pairs, table, path: Path, title: str) -> Path:
    from models.shared.figures import new_figure, save
    fig, (left, right) = new_figure((12, 4.5), 1, 2)
    for job, run in pairs:
        epochs, accuracy = common.epoch_history(run["run_id"], "test_acc")
        left.plot(epochs, accuracy, "o-" if job.factors["mode"] == "fine-tuning" else "s--", ms=3, label=job.label)
    left.set(xlabel="epoch", ylabel="validation accuracy", title="accuracy")
    left.grid(alpha=0.3)
    left.legend(fontsize=8)
    colours = ["tab:blue" if mode == "fine-tuning" else "tab:orange" for mode in table["mode"]]
    right.barh([job.label for job, _ in pairs], table["training s per epoch"], color=colours)
    right.invert_yaxis()
    right.set(xlabel="training seconds per epoch (no evaluation)", title="training time")
    fig.suptitle(title)
    return save(fig, path)


def report(experiment: str, jobs: list[common.StudyJob], out: Path, title: str) -> dict:
    pairs = common.finished_runs(experiment, jobs)
    table = results_table(pairs)
    write_table(table, out, "transfer", title, footer=verdict(table))
    return {"table": table, "plot": plot(pairs, table, out / "transfer.png", title)}


# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    common.add_common_arguments(parser, STUDY, REDUCED["epochs"], scale="the reduced scale")
    parser.add_argument("--pretrain", action="store_true", help="train the base on the source task (the first "
                        "half of --source's classes) and write it to --base (default OUT_DIR/EXPERIMENT/base.pt)")
    parser.add_argument("--base", default=None, help="the pretrained checkpoint (written by --pretrain); "
                        "default: torchvision's ImageNet weights")
    command.add_download_flag(parser, "allow fetching the ImageNet weights once")
    parser.add_argument("--target", default=None, help="the target image folder (default: the second half of "
                        "--source's classes)")
    parser.add_argument("--source", default="fashion-mnist", choices=["fashion-mnist", "synthetic"],
                        help="the data set whose classes are halved into source and target (default %(default)s)")
    parser.add_argument("--milestones", type=int, nargs=3, default=None, metavar="EPOCH",
                        help=f"the three epochs after which the learning rate is multiplied by 0.1 "
                        f"(default {' '.join(map(str, REDUCED['milestones']))})")
    parser.add_argument("--image-size", type=int, default=None, help=f"images are resized to this side "
                        f"(default {REDUCED['image_size']}; --quick: {QUICK['image_size']}; ImageNet weights: 224)")
    parser.add_argument("--per-class", type=int, default=None, help=f"training images per target class "
                        f"(0: all; default {REDUCED['per_class']}; --quick: {QUICK['per_class']})")
    parser.add_argument("--test-per-class", type=int, default=None, help=f"validation images per class (0: all; "
                        f"default {REDUCED['test_per_class']})")
    parser.add_argument("--pretrain-epochs", type=int, default=None,
                        help=f"epochs of --pretrain (default {REDUCED['pretrain_epochs']})")
    parser.add_argument("--pretrain-per-class", type=int, default=None, help=f"source images per class for "
                        f"--pretrain (0: all; default {REDUCED['pretrain_per_class']})")


def scale_from(args) -> dict:
    base = QUICK if args.quick else REDUCED
    scale = {key: getattr(args, key) if getattr(args, key, None) is not None else value
             for key, value in base.items()}
    scale["epochs"] = common.epochs_from(args, REDUCED["epochs"])
    if scale["image_size"] < 1 or min(scale["per_class"], scale["test_per_class"], scale["pretrain_per_class"]) < 0 \
            or scale["pretrain_epochs"] < 1 or min(scale["milestones"]) < 1:
        raise ValueError(f"--image-size, --pretrain-epochs and --milestones must be >= 1 and the per-class counts "
                         f">= 0 (0: all); got {scale}")
    return scale


def main(args) -> int:
    """`sysdl study transfer`."""
    from models.data.image_folder import describe
    scale = scale_from(args)
    if args.pretrain:
        return pretrain(args, scale)
    base, sha = ("imagenet", "") if args.base is None else (str(Path(args.base).resolve()), file_sha256(Path(args.base)))
    if base == "imagenet":
        imagenet_state_dict(args.download)           # fail here, with what to do, not inside the first run
    target = load_target(args, scale)
    spec = {"target": target.data.source, "classes": target.classes, "image_size": scale["image_size"],
            "per_class": scale["per_class"], "test_per_class": scale["test_per_class"]}
    jobs = plan(target, scale, spec, base, sha, args.download, args.seed)
    experiment = args.experiment or common.experiment_name(STUDY, args.quick)
    description = describe(target, Path(args.out_dir) / experiment, "target")
    print(f"study transfer: {len(jobs)} runs of {scale['epochs']} epochs; base {base}; target {target.data.source}: "
          f"{len(target.classes)} classes, {len(target.data.train)} training, {len(target.data.test)} validation "
          f"images at {scale['image_size']} px\n{description['table'].to_markdown(index=False)}")
    experiment, out = common.execute(args, STUDY, jobs, target.data, None)
    title = (f"ResNet-50 from {Path(base).name if sha else base} to {target.data.source} "
             f"({len(target.data.train)} training images, {scale['image_size']} px), {scale['epochs']} epochs")
    result = report(experiment, jobs, out, title)
    print(result["table"].to_markdown(index=False, floatfmt=".4g"))
    print(verdict(result["table"]))
    print(f"table: {out / 'transfer.md'}\nfigure: {result['plot']}\ntarget: {description['bars']}, "
          f"{description['samples']}")
    return 0


if __name__ == "__main__":
    import sys

    from models.shared.command import run_module
    sys.exit(run_module("models.studies.transfer"))
