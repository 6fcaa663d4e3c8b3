"""Data sets as whole in-memory tensors: Fashion-MNIST (checksum-verified) and a synthetic set.

Fashion-MNIST is looked for, in this order:
  1. an explicit directory (``--data-dir`` / ``data_dir=``),
  2. ``$SYSDL_DATA``,
  3. Debian's package ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``),
  4. a cache directory (``$XDG_CACHE_HOME/sysdl`` or ``~/.cache/sysdl``) where torchvision
     downloads it once, only when ``download=True``.
An explicit directory (1 or 2) that lacks the files is an error, never silently skipped.
Every file is verified against the SHA-256 of its *decompressed* IDX bytes, so Debian's
re-compressed ``.gz`` files and torchvision's extracted copies check the same way. A file that
fails the check is reported, never re-downloaded over.

The whole set is 47 MB of uint8, so it lives in memory as float32 tensors normalised with the
training set's mean and standard deviation: the training loop slices batches, no per-sample
Python code runs in the hot path.

    python -m models.data.datasets            # prints where the data came from and its shapes
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from models.shared.errors import UserError

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
APT_HINT = "sudo apt-get install -y dataset-fashion-mnist"

# SHA-256 of the decompressed IDX files (same bytes whatever the gzip level used).
FASHION_MNIST_FILES = {
    "train_images": ("train-images-idx3-ubyte", "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
    "train_labels": ("train-labels-idx1-ubyte", "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
    "test_images": ("t10k-images-idx3-ubyte", "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
    "test_labels": ("t10k-labels-idx1-ubyte", "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
}
# Mean and standard deviation of the 60,000 training images' pixels scaled to [0, 1].
FASHION_MNIST_MEAN = 0.2860
FASHION_MNIST_STD = 0.3530

# IDX type codes (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT").
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class DataError(RuntimeError, UserError):
    """A data set could not be loaded; the message says what to do."""


class DataNotFoundError(DataError):
    """No source holds the data set."""


class ChecksumError(DataError):
    """A data file exists but its content is not the expected one."""


def parse_idx(raw: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse the bytes of one IDX file into an array of its declared dtype and shape."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{name}: not an IDX file (the first two bytes must be zero)")
    type_code, ndim = raw[2], raw[3]
    if type_code not in _IDX_DTYPES:
        raise DataError(f"{name}: unknown IDX type code 0x{type_code:02x}")
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise DataError(f"{name}: truncated IDX header ({len(raw)} bytes, need {header_len})")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[type_code])
    expected = header_len + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise DataError(f"{name}: IDX header declares shape {shape} ({expected} bytes) "
                        f"but the file holds {len(raw)} bytes (truncated or corrupt)")
    return np.frombuffer(raw, dtype=dtype, offset=header_len).reshape(shape)


def _locate(directory: Path, stem: str) -> Path | None:
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _read_verified(path: Path, sha256: str) -> bytes:
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as err:   # OSError covers gzip.BadGzipFile
        raise ChecksumError(f"{path}: checksum mismatch: the file cannot be decompressed ({err}); "
                            f"it is truncated or corrupt. Delete it and fetch it again.") from err
    digest = hashlib.sha256(raw).hexdigest()
    if digest != sha256:
        raise ChecksumError(f"{path}: checksum mismatch (sha256 of its content is {digest}, "
                            f"expected {sha256}); the file is truncated or corrupt. "
                            f"It was left untouched: delete or replace it yourself.")
    return raw


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "sysdl"


def _missing(directory: Path) -> list[str]:
    return [stem for stem, _ in FASHION_MNIST_FILES.values() if _locate(directory, stem) is None]


def named_directory(candidates, missing, dataset: str, hint: str) -> Path | None:
    """The first directory the user named ((label, value) pairs: a flag, an environment variable),
    or None; one that lacks files is an error, never silently skipped."""
    for label, value in candidates:
        if value:
            directory = Path(value).expanduser()
            absent = missing(directory)
            if absent:
                raise DataNotFoundError(f"{label}={directory} does not hold {dataset}: missing "
                                        f"{', '.join(absent)} ({hint}). Fix the path or unset it.")
            return directory
    return None


def find_fashion_mnist(data_dir: str | os.PathLike | None = None, download: bool = False,
                       cache_dir: str | os.PathLike | None = None) -> Path:
    """Return the directory that holds all four Fashion-MNIST files, following the module's order."""
    named = named_directory([("--data-dir", data_dir), ("$SYSDL_DATA", os.environ.get("SYSDL_DATA"))],
                            _missing, "Fashion-MNIST", "plain or .gz")
    if named is not None:
        return named
    cache_root = Path(cache_dir) if cache_dir else default_cache_dir()
    torchvision_dir = cache_root / "FashionMNIST" / "raw"
    for directory in (DEBIAN_DIR, torchvision_dir):
        if not _missing(directory):
            return directory
    if download:
        from torchvision.datasets import FashionMNIST  # only needed for the one-time download
        FashionMNIST(root=str(cache_root), train=True, download=True)
        FashionMNIST(root=str(cache_root), train=False, download=True)
        if not _missing(torchvision_dir):
            return torchvision_dir
    raise DataNotFoundError(
        "Fashion-MNIST was not found. Looked in, in order:\n"
        "  1. --data-dir (not given)\n"
        "  2. $SYSDL_DATA (not set)\n"
        f"  3. {DEBIAN_DIR} (Debian package dataset-fashion-mnist; install it with: {APT_HINT})\n"
        f"  4. {torchvision_dir} (torchvision download cache; "
        f"{'download failed' if download else 'download not allowed here'})\n"
        "Install the Debian package, point --data-dir or $SYSDL_DATA at the four IDX files, "
        "or allow the one-time download (sysdl train --download).")


@dataclass
class Split:
    """Images (N, C, H, W) float32, normalised, and labels (N,) int64."""
    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)

    def head(self, n: int) -> "Split":
        return Split(self.x[:n], self.y[:n])


@dataclass
class DataSplits:
    train: Split
    test: Split
    val: Split | None
    source: str
    num_classes: int = 10


def normalise(images_uint8: np.ndarray) -> torch.Tensor:
    """(N, H, W) uint8 -> (N, 1, H, W) float32 with the training-set mean and std."""
    x = torch.from_numpy(images_uint8.astype(np.float32) / 255.0).unsqueeze(1)
    return (x - FASHION_MNIST_MEAN) / FASHION_MNIST_STD


def carve_validation(train: Split, val_size: int, seed: int) -> tuple[Split, Split | None]:
    """Split off a seeded random validation set of ``val_size`` images from ``train``."""
    if val_size == 0:
        return train, None
    if not 0 < val_size < len(train):
        raise ValueError(f"val_size must be in [0, {len(train) - 1}], got {val_size}")
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))
    val_idx, train_idx = order[:val_size].sort().values, order[val_size:].sort().values
    return Split(train.x[train_idx], train.y[train_idx]), Split(train.x[val_idx], train.y[val_idx])


def load_fashion_mnist(data_dir=None, download: bool = False, val_size: int = 0, seed: int = 0,
                       cache_dir=None) -> DataSplits:
    """Load train (60,000) and test (10,000) Fashion-MNIST, optionally carving a validation set."""
    directory = find_fashion_mnist(data_dir, download=download, cache_dir=cache_dir)
    arrays = {}
    for key, (stem, sha256) in FASHION_MNIST_FILES.items():
        path = _locate(directory, stem)
        arrays[key] = parse_idx(_read_verified(path, sha256), str(path))
    train = Split(normalise(arrays["train_images"]), torch.from_numpy(arrays["train_labels"].astype(np.int64)))
    test = Split(normalise(arrays["test_images"]), torch.from_numpy(arrays["test_labels"].astype(np.int64)))
    train, val = carve_validation(train, val_size, seed)
    return DataSplits(train=train, test=test, val=val, source=str(directory))


def synthetic_splits(n_train: int = 512, n_test: int = 256, num_classes: int = 10,
                     image_size: int = 28, val_size: int = 0, seed: int = 0) -> DataSplits:
    """A small learnable data set: each class is a fixed random pattern plus noise (for tests)."""
    g = torch.Generator().manual_seed(seed)
    prototypes = torch.randn(num_classes, 1, image_size, image_size, generator=g)

    def make(n: int) -> Split:
        y = torch.randint(0, num_classes, (n,), generator=g)
        x = prototypes[y] + 0.8 * torch.randn(n, 1, image_size, image_size, generator=g)
        return Split(x.float(), y)

    train, val = carve_validation(make(n_train + val_size), val_size, seed)
    return DataSplits(train=train, test=make(n_test), val=val, source="synthetic",
                      num_classes=num_classes)


def load_dataset(name: str, data_dir=None, download: bool = False, val_size: int = 0,
                 seed: int = 0) -> DataSplits:
    """Load a data set by name: ``fashion-mnist`` or ``synthetic``."""
    if name == "fashion-mnist":
        return load_fashion_mnist(data_dir, download=download, val_size=val_size, seed=seed)
    if name == "synthetic":
        return synthetic_splits(val_size=val_size, seed=seed)
    raise ValueError(f"unknown data set {name!r}; expected 'fashion-mnist' or 'synthetic'")


if __name__ == "__main__":
    splits = load_fashion_mnist()
    print(f"source: {splits.source}")
    print(f"train {tuple(splits.train.x.shape)}, test {tuple(splits.test.x.shape)}")
