"""Image-folder data sets (one sub-folder per class, as the Visual Decathlon sets come) as whole
in-memory tensors, an in-memory equivalent cut from Fashion-MNIST by class, and a data set's
description (classes, images per class, sample images).

    data = load_image_folder("data/dtd", image_size=64)     # DIR/train/CLASS/*.png and DIR/val/CLASS/...
    source, target = class_halves(load_fashion_mnist(), image_size=32)   # classes 0-4 and 5-9
    python -m models.data.image_folder DIR [SIZE]                # prints the classes and counts

Layout: ``DIR/train/<class>/<image>`` with ``DIR/val/<class>/...`` (or ``test``) is used as it is;
a plain ``DIR/<class>/<image>`` is split into training and validation images with a seeded random
draw of ``val_fraction`` of each class. Reading is torchvision's ImageFolder (any format Pillow
opens, converted to RGB). Every image is resized to image_size x image_size (aspect not kept)
and normalised with the ImageNet mean and standard deviation, the statistics torchvision's
pretrained ResNets expect; the whole set then sits in memory like the other data sets
(models/data/datasets.py), so a 72-pixel Decathlon set of 10,000 images takes 0.6 GB.

``class_halves`` gives the same format from an in-memory (N, 1 or 3, H, W) set: grey images are
repeated to three channels, resized bilinearly and re-normalised with the ImageNet statistics;
labels are renumbered 0..k-1 within each half. It stands in for writing the halves as folders.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from models.data.datasets import DataError, DataNotFoundError, DataSplits, Split

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
VAL_FOLDERS = ("val", "test")


@dataclass
class ImageSet:
    """A data set's splits and its class names (label i is classes[i])."""
    data: DataSplits
    classes: list[str]


def _folder(root: Path, image_size: int):
    from torchvision import datasets, transforms
    transform = transforms.Compose([transforms.Resize((image_size, image_size)), transforms.ToTensor(),
                                    transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    try:
        return datasets.ImageFolder(str(root), transform=transform)
    except (FileNotFoundError, RuntimeError) as err:      # no class folders, or no images in them
        raise DataNotFoundError(f"{root}: not an image folder ({err}); expected {root}/<class>/<image> "
                                f"(or {root}/train/<class>/... with val/), one sub-folder per class") from err


def _load(folder, index: int):
    """(image, label) of one file; DataError naming it when it cannot be decoded."""
    try:
        return folder[index]
    except Exception as err:        # Pillow raises many types for damaged files (OSError, SyntaxError, ...)
        path = folder.samples[index][0]
        raise DataError(f"{path}: not a readable image ({type(err).__name__}: {err}); it is truncated or "
                        f"corrupt: delete or replace it") from err


def _tensors(folder, indices) -> Split:
    images, labels = zip(*(_load(folder, i) for i in indices)) if len(indices) else ((), ())
    if not images:
        raise DataError(f"{folder.root}: no images in this split")
    return Split(torch.stack(images), torch.tensor(labels, dtype=torch.int64))   # (N, 3, S, S), (N,)


def _seeded_split(targets: list[int], val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices (train, val): a seeded ``val_fraction`` of every class to validation (at least one)."""
    g = torch.Generator().manual_seed(seed)
    targets_t = torch.tensor(targets)
    train, val = [], []
    for label in targets_t.unique().tolist():
        members = (targets_t == label).nonzero().flatten()
        members = members[torch.randperm(len(members), generator=g)]
        cut = max(1, round(val_fraction * len(members))) if len(members) > 1 else 0
        val += members[:cut].tolist()
        train += members[cut:].tolist()
    return sorted(train), sorted(val)


def load_image_folder(root, image_size: int = 64, val_fraction: float = 0.2, seed: int = 0) -> ImageSet:
    """The image folder ``root`` as in-memory tensors (module docstring for the layouts)."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataNotFoundError(f"{root}: no such folder; --target takes an image folder, one sub-folder "
                                f"per class (or train/ and val/ holding those)")
    val_root = next((root / name for name in VAL_FOLDERS if (root / name).is_dir()), None)
    if (root / "train").is_dir() and val_root is not None:
        train, val = _folder(root / "train", image_size), _folder(val_root, image_size)
        if train.classes != val.classes:
            raise DataError(f"{root}: train/ and {val_root.name}/ have different classes "
                            f"({train.classes} vs {val.classes}); they must hold the same class folders")
        splits = (_tensors(train, range(len(train))), _tensors(val, range(len(val))))
        classes = train.classes
    else:
        if not 0 < val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
        folder = _folder(root, image_size)
        train_idx, val_idx = _seeded_split(folder.targets, val_fraction, seed)
        splits, classes = (_tensors(folder, train_idx), _tensors(folder, val_idx)), folder.classes
    data = DataSplits(train=splits[0], test=splits[1], val=None, source=f"folder:{root}",
                      num_classes=len(classes))
    return ImageSet(data, list(classes))


def to_imagenet_format(x: torch.Tensor, mean, std, image_size: int) -> torch.Tensor:
    """(N, 1 or 3, H, W) normalised with (mean, std) -> (N, 3, S, S) normalised with ImageNet's."""
    x = x * torch.as_tensor(std).reshape(1, -1, 1, 1) + torch.as_tensor(mean).reshape(1, -1, 1, 1)  # [0, 1]
    x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
    if x.shape[-2:] != (image_size, image_size):
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)
    mean_in, std_in = torch.tensor(IMAGENET_MEAN).reshape(1, 3, 1, 1), torch.tensor(IMAGENET_STD).reshape(1, 3, 1, 1)
    return ((x - mean_in) / std_in).contiguous()


def take_classes(split: Split, classes, per_class: int = 0) -> Split:
    """The images of ``classes`` (the first ``per_class`` of each when > 0), relabelled 0..k-1 in
    the order given."""
    keep = []
    for new, label in enumerate(classes):
        members = (split.y == label).nonzero().flatten()
        keep.append((members[:per_class] if per_class else members, new))
    index = torch.cat([m for m, _ in keep]).sort().values
    relabel = torch.full((int(split.y.max()) + 1,), -1, dtype=torch.int64)
    for label, (_, new) in zip(classes, keep):
        relabel[label] = new
    return Split(split.x[index], relabel[split.y[index]])


def class_halves(data: DataSplits, mean, std, image_size: int, names: list[str] | None = None,
                 per_class: int = 0, test_per_class: int = 0) -> tuple[ImageSet, ImageSet]:
    """(source, target): the first and the second half of the classes of an in-memory data set,
    in image-folder format (module docstring); ``mean`` / ``std`` are the data's normalisation."""
    names = names or [str(i) for i in range(data.num_classes)]
    half = data.num_classes // 2
    sets = []
    for classes in (range(half), range(half, data.num_classes)):
        train, test = take_classes(data.train, classes, per_class), take_classes(data.test, classes, test_per_class)
        splits = DataSplits(Split(to_imagenet_format(train.x, mean, std, image_size), train.y),
                            Split(to_imagenet_format(test.x, mean, std, image_size), test.y), None,
                            f"{data.source}:classes{classes.start}-{classes.stop - 1}", len(classes))
        sets.append(ImageSet(splits, [names[c] for c in classes]))
    return sets[0], sets[1]


# ----------------------------------------------------------------------------------------------
# Description: counts, bar chart, sample grid
# ----------------------------------------------------------------------------------------------


def class_counts(images: ImageSet):
    """A table: class, training images, validation images."""
    import pandas as pd
    counts = {split: torch.bincount(getattr(images.data, split).y, minlength=len(images.classes)).tolist()
              for split in ("train", "test")}
    return pd.DataFrame({"class": images.classes, "training images": counts["train"],
                         "validation images": counts["test"]})


def plot_counts(table, path, title: str):
    from models.shared.figures import new_figure, save
    fig, ax = new_figure((max(5.0, 0.45 * len(table) + 2), 4))
    positions = range(len(table))
    ax.bar([p - 0.2 for p in positions], table["training images"], width=0.4, label="training")
    ax.bar([p + 0.2 for p in positions], table["validation images"], width=0.4, label="validation")
    ax.set_xticks(list(positions), table["class"], rotation=45, ha="right")
    ax.set(ylabel="images", title=title)
    ax.legend()
    return save(fig, path)


def plot_samples(images: ImageSet, path, classes=(0, 1), per_class: int = 4, title: str = ""):
    """A grid: ``per_class`` training images of each of ``classes`` (one row per class)."""
    from models.data.augment import displayable
    from models.shared.figures import new_figure, save
    fig, axes = new_figure((2 * per_class, 2.2 * len(classes)), len(classes), per_class)
    axes = axes.reshape(len(classes), per_class)
    train = images.data.train
    for row, label in enumerate(classes):
        members = (train.y == label).nonzero().flatten()[:per_class]
        for col in range(per_class):
            axes[row, col].set(xticks=[], yticks=[])
            if col < len(members):
                axes[row, col].imshow(displayable(train.x[members[col]], IMAGENET_MEAN, IMAGENET_STD))
        axes[row, 0].set_ylabel(images.classes[label])
    fig.suptitle(title or "sample images")
    return save(fig, path)


def describe(images: ImageSet, out: Path, name: str) -> dict:
    """``NAME_classes.md`` / ``.csv`` (images per class), ``NAME_classes.png`` (bar chart) and
    ``NAME_samples.png`` (4 images of each of the first 2 classes) in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    table = class_counts(images)
    table.to_csv(out / f"{name}_classes.csv", index=False)
    (out / f"{name}_classes.md").write_text(
        f"{len(images.classes)} classes, {len(images.data.train)} training and {len(images.data.test)} "
        f"validation images ({images.data.source})\n\n" + table.to_markdown(index=False) + "\n")
    bars = plot_counts(table, out / f"{name}_classes.png", f"{name}: images per class")
    samples = plot_samples(images, out / f"{name}_samples.png", classes=tuple(range(min(2, len(images.classes)))),
                           title=f"{name}: 4 training images of 2 classes")
    return {"table": table, "bars": bars, "samples": samples}


if __name__ == "__main__":
    found = load_image_folder(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 64)
    print(f"source: {found.data.source}\n{class_counts(found).to_markdown(index=False)}")
