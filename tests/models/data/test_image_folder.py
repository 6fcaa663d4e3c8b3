"""models.data.image_folder on small folders of PNGs written here: both layouts load, and a
damaged image is refused by name."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from models.data.datasets import DataError
from models.data.image_folder import load_image_folder


@pytest.fixture
def folder(tmp_path):
    """DIR/<class>/<image>.png: 2 classes of 3 RGB images, 12 x 9 (non-square)."""
    rng = np.random.default_rng(0)
    for name in ("cat", "dog"):
        (tmp_path / name).mkdir()
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (9, 12, 3), dtype=np.uint8)).save(tmp_path / name / f"{i}.png")
    return tmp_path


def test_a_plain_folder_is_split_per_class(folder):
    images = load_image_folder(folder, image_size=8, val_fraction=0.34)
    assert images.classes == ["cat", "dog"]
    assert images.data.train.x.shape == (4, 3, 8, 8) and images.data.test.x.shape == (2, 3, 8, 8)
    assert sorted(images.data.test.y.tolist()) == [0, 1]


@pytest.mark.parametrize("damage", ["truncated", "not an image"])
def test_a_damaged_image_is_named(folder, damage):
    target = folder / "dog" / "1.png"
    raw = target.read_bytes()
    target.write_bytes(raw[:len(raw) // 2] if damage == "truncated" else b"not a png at all" * 10)
    with pytest.raises(DataError, match=rf"{target}: .*(delete|replace)"):
        load_image_folder(folder, image_size=8)
