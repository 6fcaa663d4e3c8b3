"""CIFAR-10 from its standard python-pickle batches, verified, as whole in-memory tensors.

The files are those of https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz, extracted:
``cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}``. Each data batch is a pickled
dict with ``data`` (10000, 3072) uint8 (rows: 1024 red, 1024 green, 1024 blue values of a 32x32
image, row-major) and ``labels`` (10000 ints in 0..9); ``batches.meta`` holds the 10
``label_names``. They are looked for, in this order:
  1. an explicit directory (``--data-dir`` / ``data_dir=``), the folder holding the seven files;
  2. ``$SYSDL_CIFAR10``;
  3. the cache (``$XDG_CACHE_HOME/sysdl`` or ``~/.cache/sysdl``)/cifar-10-batches-py, where
     torchvision downloads it once, only with ``download=True``.
An explicit directory that lacks a file is an error, never silently skipped.

Verification, before anything is used:
  * every file's MD5 against the official one (torchvision's list), *before* it is unpickled:
    a pickle can run code, so only known bytes reach the unpickler;
  * the unpickler itself accepts only numpy arrays and plain containers (no other globals);
  * shapes and labels: ``data`` is (n, 3072) uint8 with n = 10000 per batch, ``labels`` n ints
    in 0..9, 10 label names.
Tests pass their own ``checksums`` and ``images_per_batch`` for small batches written in the
same format.

    python -m models.data.cifar10 [DIR]    # prints where the data came from and its shapes
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import sys
from pathlib import Path

import numpy as np
import torch

from models.data.datasets import (ChecksumError, DataError, DataNotFoundError, DataSplits, Split, default_cache_dir,
                         named_directory)

FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
META = "batches.meta"
# MD5 of the official files (as torchvision.datasets.CIFAR10 lists them).
CIFAR10_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}
IMAGES_PER_BATCH = 10_000
NUM_CLASSES = 10
PIXELS = 3 * 32 * 32            # one row of ``data``: (C, H, W) = (3, 32, 32), channel-major

# The only globals a CIFAR-10 pickle needs: numpy arrays (numpy 2 renamed numpy.core to numpy._core),
# and _codecs.encode, with which Python 3 writes bytes at the official files' protocol 2.
_ALLOWED_GLOBALS = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}


class _ArraysOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a CIFAR-10 batch holds only "
                                         f"numpy arrays, lists, strings and numbers")
        return super().find_class(module, name)


def _md5(raw: bytes) -> str:
    return hashlib.md5(raw, usedforsecurity=False).hexdigest()


def read_batch(path: Path, md5: str | None) -> dict:
    """The dict one pickle file holds, its keys as ``str``; checked against ``md5`` first (None: not)."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(f"{path}: cannot be read ({err})") from err
    if md5 is not None and _md5(raw) != md5:
        raise ChecksumError(f"{path}: checksum mismatch (md5 {_md5(raw)}, expected {md5}); the file is "
                            f"truncated, corrupt or not the official CIFAR-10 batch. It was left untouched: "
                            f"delete it and extract cifar-10-python.tar.gz again.")
    try:
        # The official files were written by Python 2: latin1 turns their byte strings back into
        # the same bytes, which numpy's array reconstruction needs.
        content = _ArraysOnlyUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except Exception as err:       # pickle raises many types for damaged input
        raise DataError(f"{path}: not a readable CIFAR-10 pickle batch ({type(err).__name__}: {err}); "
                        f"the file is truncated or corrupt: extract it again") from err
    if not isinstance(content, dict):
        raise DataError(f"{path}: holds a {type(content).__name__}, expected the dict of a CIFAR-10 batch")
    return {key.decode() if isinstance(key, bytes) else key: value for key, value in content.items()}


def check_batch(batch: dict, path: Path, images: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(images (n, 3, 32, 32) uint8, labels (n,) int64) of a data batch, after shape and label checks."""
    missing = {"data", "labels"} - batch.keys()
    if missing:
        raise DataError(f"{path}: no {sorted(missing)} entry; has {sorted(batch)}: not a CIFAR-10 data batch")
    data, labels = np.asarray(batch["data"]), np.asarray(batch["labels"])
    n = images if images is not None else len(data)
    if data.dtype != np.uint8 or data.shape != (n, PIXELS):
        raise DataError(f"{path}: data is {data.dtype} {data.shape}, expected uint8 ({n}, {PIXELS})")
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{path}: labels are {labels.dtype} {labels.shape}, expected {n} integers")
    if n and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise DataError(f"{path}: labels span {labels.min()}..{labels.max()}, expected 0..{NUM_CLASSES - 1}")
    return data.reshape(n, 3, 32, 32), labels.astype(np.int64)         # (N, C, H, W)


def _missing(directory: Path) -> list[str]:
    return [name for name in (*TRAIN_BATCHES, TEST_BATCH, META) if not (directory / name).is_file()]


def find_cifar10(data_dir=None, download: bool = False, cache_dir=None) -> Path:
    """The directory holding the seven CIFAR-10 files, following the module's order."""
    named = named_directory([("--data-dir", data_dir), ("$SYSDL_CIFAR10", os.environ.get("SYSDL_CIFAR10"))],
                            _missing, "CIFAR-10", f"the contents of {FOLDER}/")
    if named is not None:
        return named
    root = Path(cache_dir) if cache_dir else default_cache_dir()
    if _missing(root / FOLDER) and download:
        from torchvision.datasets import CIFAR10    # only for the one-time download
        CIFAR10(root=str(root), train=True, download=True)
    if not _missing(root / FOLDER):
        return root / FOLDER
    raise DataNotFoundError(
        f"CIFAR-10 was not found. Looked in --data-dir (not given), $SYSDL_CIFAR10 (not set) and "
        f"{root / FOLDER} ({'download failed' if download else 'download not allowed here'}). Point "
        f"--data-dir at an extracted {FOLDER}/, allow the one-time download (--download), or use "
        f"another data set (--dataset fashion-mnist).")


def load_cifar10(data_dir=None, download: bool = False, cache_dir=None, checksums: dict | None = CIFAR10_MD5,
                 images_per_batch: int | None = IMAGES_PER_BATCH) -> DataSplits:
    """Train (50,000) and test (10,000) CIFAR-10 as float32 (N, 3, 32, 32), each channel
    normalised with the training set's mean and standard deviation; labels int64."""
    directory = find_cifar10(data_dir, download, cache_dir)
    checksums = checksums or {}

    def batch(name: str) -> tuple[np.ndarray, np.ndarray]:
        path = directory / name
        return check_batch(read_batch(path, checksums.get(name)), path, images_per_batch)

    meta_path = directory / META
    names = read_batch(meta_path, checksums.get(META)).get("label_names")
    if names is None or len(names) != NUM_CLASSES:
        raise DataError(f"{meta_path}: expected {NUM_CLASSES} label_names, found {names!r}")
    train_parts = [batch(name) for name in TRAIN_BATCHES]
    train_x = torch.from_numpy(np.concatenate([x for x, _ in train_parts])).float() / 255.0
    test_x, test_y = batch(TEST_BATCH)
    mean = train_x.mean(dim=(0, 2, 3), keepdim=True)                    # (1, 3, 1, 1)
    std = train_x.std(dim=(0, 2, 3), keepdim=True)
    train = Split((train_x - mean) / std, torch.from_numpy(np.concatenate([y for _, y in train_parts])))
    test = Split((torch.from_numpy(test_x).float() / 255.0 - mean) / std, torch.from_numpy(test_y))
    return DataSplits(train=train, test=test, val=None, source=f"cifar10:{directory}", num_classes=NUM_CLASSES)


if __name__ == "__main__":
    splits = load_cifar10(sys.argv[1] if len(sys.argv) > 1 else None)
    print(f"source: {splits.source}")
    print(f"train {tuple(splits.train.x.shape)}, test {tuple(splits.test.x.shape)}")
