"""models.data.cifar10 on small batches this test writes in the real format (pickled dicts with byte-string
keys, ``data`` (n, 3072) uint8 channel-major, ``labels`` a list): loading, layout, normalisation,
and every refusal (checksum, truncation, shape, labels, a missing file, a pickle carrying code).
Nothing is downloaded."""

from __future__ import annotations

import hashlib
import pickle

import numpy as np
import pytest
import torch

from models.data import cifar10
from models.data.datasets import ChecksumError, DataError, DataNotFoundError

N = 7            # images per batch: small and odd


def write_batch(path, data: np.ndarray, labels: list[int]) -> None:
    batch = {b"batch_label": path.name.encode(), b"labels": labels, b"data": data,
             b"filenames": [f"img_{i}.png".encode() for i in range(len(labels))]}
    path.write_bytes(pickle.dumps(batch, protocol=2))      # Python 2's cPickle wrote protocol 2


@pytest.fixture
def cifar_dir(tmp_path):
    """Seven files like cifar-10-batches-py/, N images per batch; returns (dir, md5s, raw arrays)."""
    rng = np.random.default_rng(0)
    folder = tmp_path / cifar10.FOLDER
    folder.mkdir()
    arrays = {}
    for name in (*cifar10.TRAIN_BATCHES, cifar10.TEST_BATCH):
        data = rng.integers(0, 256, size=(N, cifar10.PIXELS), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=N)]
        write_batch(folder / name, data, labels)
        arrays[name] = (data, labels)
    meta = {b"num_cases_per_batch": N, b"label_names": [f"class{i}".encode() for i in range(10)], b"num_vis": 3072}
    (folder / cifar10.META).write_bytes(pickle.dumps(meta, protocol=2))
    md5 = {path.name: hashlib.md5(path.read_bytes()).hexdigest() for path in folder.iterdir()}
    return folder, md5, arrays


def load(folder, md5, **kwargs):
    return cifar10.load_cifar10(folder, checksums=md5, images_per_batch=N, **kwargs)


def test_written_batches_load_with_layout_labels_and_normalisation(cifar_dir):
    folder, md5, arrays = cifar_dir
    data = load(folder, md5)
    assert data.train.x.shape == (5 * N, 3, 32, 32) and data.test.x.shape == (N, 3, 32, 32)
    assert data.train.x.dtype == torch.float32 and data.train.y.dtype == torch.int64
    assert data.train.y.tolist() == [label for name in cifar10.TRAIN_BATCHES for label in arrays[name][1]]
    assert data.test.y.tolist() == arrays[cifar10.TEST_BATCH][1]
    # Each channel of the training set is standardised with the training set's own statistics.
    assert torch.allclose(data.train.x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(data.train.x.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-4)
    # Row layout: the first 1024 values are the red plane, row-major; the order of pixels is kept.
    raw = arrays["data_batch_1"][0][0]
    red = torch.from_numpy(raw[:1024].reshape(32, 32).astype(np.float32))
    ranks = data.train.x[0, 0].flatten().argsort(stable=True)
    assert torch.equal(ranks, red.flatten().argsort(stable=True))
    assert data.num_classes == 10 and str(folder) in data.source


def test_official_checksums_are_checked_by_default(cifar_dir):
    folder, _, _ = cifar_dir
    with pytest.raises(ChecksumError, match="batches.meta: checksum mismatch"):
        cifar10.load_cifar10(folder, images_per_batch=N)          # these are not the official files


def test_corrupt_file_is_reported_by_name_and_left_alone(cifar_dir):
    folder, md5, _ = cifar_dir
    path = folder / "data_batch_3"
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ChecksumError, match=r"data_batch_3: checksum mismatch.*left untouched"):
        load(folder, md5)
    assert path.read_bytes() == bytes(raw)


def test_truncated_pickle_is_refused_without_checksums(cifar_dir):
    folder, _, _ = cifar_dir
    path = folder / "test_batch"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(DataError, match="test_batch: not a readable CIFAR-10 pickle batch"):
        cifar10.load_cifar10(folder, checksums=None, images_per_batch=N)


@pytest.mark.parametrize("data, labels, message", [
    (np.zeros((N, 3071), np.uint8), [0] * N, r"expected uint8 \(7, 3072\)"),
    (np.zeros((N, 3072), np.float32), [0] * N, "expected uint8"),
    (np.zeros((N, 3072), np.uint8), [0] * (N - 1), "expected 7 integers"),
    (np.zeros((N, 3072), np.uint8), [0] * (N - 1) + [10], r"labels span 0..10, expected 0..9"),
])
def test_bad_shapes_and_labels_are_refused(cifar_dir, data, labels, message):
    folder, _, _ = cifar_dir
    write_batch(folder / "data_batch_2", data, labels)
    with pytest.raises(DataError, match=message):
        cifar10.load_cifar10(folder, checksums=None, images_per_batch=N)


def test_a_pickle_carrying_code_is_never_run(cifar_dir, tmp_path):
    folder, _, _ = cifar_dir
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (folder / "data_batch_1").write_bytes(pickle.dumps({b"data": Payload()}, protocol=2))
    with pytest.raises(DataError, match="refusing to load"):
        cifar10.load_cifar10(folder, checksums=None, images_per_batch=N)
    assert not marker.exists()


def test_missing_data_says_where_it_looked_and_what_to_do(cifar_dir, tmp_path, monkeypatch):
    folder, md5, _ = cifar_dir
    (folder / "data_batch_5").unlink()
    with pytest.raises(DataNotFoundError, match="missing data_batch_5"):
        load(folder, md5)
    monkeypatch.delenv("SYSDL_CIFAR10", raising=False)
    with pytest.raises(DataNotFoundError, match="--dataset fashion-mnist"):
        cifar10.find_cifar10(cache_dir=tmp_path / "empty-cache", download=False)
