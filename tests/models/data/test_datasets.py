"""models.data.datasets: IDX parsing, checksums, source order and its error messages, splits."""

from __future__ import annotations

import gzip
import hashlib
import struct

import numpy as np
import pytest
import torch

from models.data import datasets as data
from models.data.datasets import (ChecksumError, DataError, DataNotFoundError, carve_validation,
                         load_fashion_mnist, parse_idx)


def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    header = struct.pack(">BBBB", 0, 0, type_code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def test_parse_idx_images_and_labels():
    images = np.arange(3 * 5 * 4, dtype=np.uint8).reshape(3, 5, 4)  # non-square on purpose
    labels = np.array([7, 0, 9], dtype=np.uint8)
    np.testing.assert_array_equal(parse_idx(idx_bytes(images)), images)
    np.testing.assert_array_equal(parse_idx(idx_bytes(labels)), labels)


def test_parse_idx_other_dtypes():
    values = np.array([[1.5, -2.0], [3.25, 0.0]], dtype=np.float32)
    np.testing.assert_array_equal(parse_idx(idx_bytes(values, 0x0D)), values)
    ints = np.array([-5, 70000], dtype=np.int32)
    np.testing.assert_array_equal(parse_idx(idx_bytes(ints, 0x0C)), ints)


@pytest.mark.parametrize("raw, message", [
    (b"\x01\x00\x08\x01" + struct.pack(">I", 1) + b"\x00", "not an IDX file"),
    (b"\x00\x00\x42\x01" + struct.pack(">I", 1) + b"\x00", "unknown IDX type code"),
    (b"\x00\x00\x08\x03\x00\x00", "truncated IDX header"),
    (b"\x00\x00\x08\x01" + struct.pack(">I", 5) + b"\x00\x01", "truncated or corrupt"),
])
def test_parse_idx_rejects_bad_files(raw, message):
    with pytest.raises(DataError, match=message):
        parse_idx(raw)


@pytest.fixture
def fake_fashion(tmp_path, monkeypatch):
    """Four small IDX files in a directory, with the module's checksums pointed at them."""
    rng = np.random.default_rng(0)
    arrays = {
        "train_images": rng.integers(0, 256, (50, 28, 28), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, 50, dtype=np.uint8),
        "test_images": rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, 20, dtype=np.uint8),
    }
    files = {}
    for key, (stem, _) in data.FASHION_MNIST_FILES.items():
        raw = idx_bytes(arrays[key])
        # Two of the files gzipped (as Debian ships them), two plain (as torchvision extracts them).
        if key.endswith("images"):
            (tmp_path / f"{stem}.gz").write_bytes(gzip.compress(raw))
        else:
            (tmp_path / stem).write_bytes(raw)
        files[key] = (stem, hashlib.sha256(raw).hexdigest())
    monkeypatch.setattr(data, "FASHION_MNIST_FILES", files)
    monkeypatch.delenv("SYSDL_DATA", raising=False)
    return tmp_path, arrays


def test_load_from_explicit_dir(fake_fashion):
    directory, arrays = fake_fashion
    splits = load_fashion_mnist(directory)
    assert splits.source == str(directory)
    assert splits.train.x.shape == (50, 1, 28, 28) and splits.train.x.dtype == torch.float32
    np.testing.assert_array_equal(splits.test.y.numpy(), arrays["test_labels"])
    expected = (arrays["train_images"][3] / 255.0 - data.FASHION_MNIST_MEAN) / data.FASHION_MNIST_STD
    np.testing.assert_allclose(splits.train.x[3, 0].numpy(), expected, rtol=1e-6, atol=1e-6)


def test_sysdl_data_env_is_used(fake_fashion, monkeypatch):
    directory, _ = fake_fashion
    monkeypatch.setenv("SYSDL_DATA", str(directory))
    assert load_fashion_mnist().source == str(directory)


def test_checksum_mismatch_names_the_file_and_keeps_it(fake_fashion):
    directory, _ = fake_fashion
    target = directory / "t10k-labels-idx1-ubyte"
    corrupt = bytearray(target.read_bytes())
    corrupt[-1] ^= 0xFF
    target.write_bytes(bytes(corrupt))
    with pytest.raises(ChecksumError, match=r"t10k-labels-idx1-ubyte: checksum mismatch"):
        load_fashion_mnist(directory)
    assert target.read_bytes() == bytes(corrupt), "a corrupt file must be left as it was"


def test_truncated_gzip_is_a_checksum_error(fake_fashion):
    directory, _ = fake_fashion
    target = directory / "train-images-idx3-ubyte.gz"
    target.write_bytes(target.read_bytes()[:1000])
    with pytest.raises(ChecksumError, match=r"train-images-idx3-ubyte.gz: checksum mismatch"):
        load_fashion_mnist(directory)


def test_deflate_corrupt_gzip_is_a_checksum_error_naming_the_file(fake_fashion):
    directory, _ = fake_fashion
    target = directory / "t10k-images-idx3-ubyte.gz"
    # Compressible bytes, so deflate codes them (random pixels would be stored verbatim), then
    # damage the codes: the gzip header stays valid, the deflate stream does not (zlib.error).
    damaged = bytearray(gzip.compress(bytes(range(256)) * 200))
    for i in range(20, 60):
        damaged[i] ^= 0x55
    target.write_bytes(bytes(damaged))
    with pytest.raises(ChecksumError, match=r"t10k-images-idx3-ubyte.gz: checksum mismatch.*corrupt"):
        load_fashion_mnist(directory)
    assert target.read_bytes() == bytes(damaged), "a corrupt file must be left as it was"


def test_missing_data_message_names_every_source(tmp_path, monkeypatch):
    monkeypatch.delenv("SYSDL_DATA", raising=False)
    monkeypatch.setattr(data, "DEBIAN_DIR", tmp_path / "no-debian")
    with pytest.raises(DataNotFoundError) as err:
        load_fashion_mnist(cache_dir=tmp_path / "cache", download=False)
    text = str(err.value)
    for part in ("--data-dir", "$SYSDL_DATA", str(tmp_path / "no-debian"), str(tmp_path / "cache"),
                 "apt-get install -y dataset-fashion-mnist", "--download"):
        assert part in text


def test_explicit_dir_without_files_is_an_error(tmp_path, monkeypatch):
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"")
    with pytest.raises(DataNotFoundError, match=r"--data-dir=.*missing train-labels-idx1-ubyte"):
        load_fashion_mnist(tmp_path)
    monkeypatch.setenv("SYSDL_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(DataNotFoundError, match=r"\$SYSDL_DATA="):
        load_fashion_mnist()


def test_validation_split_is_seeded_and_disjoint():
    split = data.Split(torch.arange(100.0).reshape(100, 1, 1, 1), torch.arange(100))
    train, val = carve_validation(split, 30, seed=3)
    again_train, again_val = carve_validation(split, 30, seed=3)
    assert len(train) == 70 and len(val) == 30
    assert set(train.y.tolist()).isdisjoint(val.y.tolist())
    assert torch.equal(val.y, again_val.y) and torch.equal(train.y, again_train.y)
    assert not torch.equal(carve_validation(split, 30, seed=4)[1].y, val.y)
    with pytest.raises(ValueError, match="val_size"):
        carve_validation(split, 100, seed=0)


@pytest.mark.needs_data
def test_real_fashion_mnist(fashion_mnist):
    assert fashion_mnist.train.x.shape == (60_000, 1, 28, 28)
    assert fashion_mnist.test.x.shape == (10_000, 1, 28, 28)
    assert torch.bincount(fashion_mnist.train.y).tolist() == [6000] * 10
    assert torch.bincount(fashion_mnist.test.y).tolist() == [1000] * 10
    # Normalised with the training set's own statistics.
    assert abs(float(fashion_mnist.train.x.mean())) < 1e-3
    assert abs(float(fashion_mnist.train.x.std()) - 1) < 1e-3
