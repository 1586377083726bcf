"""Image-folder patches: raster order and content of the patches, the seeded split, the offline
default (the scikit-image / scikit-learn sample photographs) and the errors."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from PIL import Image

from fastgen.data import DataError, load_image_patches, patch_split
from fastgen.data import image_patches as patches_module


def _save(path, array, mode=None):
    Image.fromarray(array, mode).save(path)


def test_patches_and_order(tmp_path):
    rng = np.random.default_rng()
    a = rng.integers(0, 256, size=(70, 100, 3), dtype=np.uint8)   # 2 x 3 patches, strips dropped
    b = rng.integers(0, 256, size=(32, 40), dtype=np.uint8)       # grey: 1 patch, repeated to RGB
    _save(tmp_path / "b.png", b)
    _save(tmp_path / "a.png", a)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "small.png").write_bytes(b"")  # an image suffix: read, and must fail clearly
    with pytest.raises(DataError, match="small.png"):
        load_image_patches(tmp_path)
    (tmp_path / "small.png").unlink()
    _save(tmp_path / "small.png", rng.integers(0, 256, size=(20, 50, 3), dtype=np.uint8))  # no patch
    got = load_image_patches(tmp_path)
    assert got.images.dtype == torch.uint8 and got.images.shape == (7, 3, 32, 32)
    assert [p.rsplit("/", 1)[-1] for p in got.files] == ["a.png", "b.png", "small.png"]
    expected = [(0, 0, 0), (0, 0, 32), (0, 0, 64), (0, 32, 0), (0, 32, 32), (0, 32, 64), (1, 0, 0)]
    assert got.origin.tolist() == [list(e) for e in expected]
    for patch, (index, top, left) in zip(got.images, expected):
        source = a if index == 0 else np.repeat(b[:, :, None], 3, axis=2)
        np.testing.assert_array_equal(patch.permute(1, 2, 0).numpy(), source[top:top + 32, left:left + 32])
    assert torch.equal(load_image_patches(tmp_path).images, got.images)  # deterministic
    assert load_image_patches(tmp_path, size=16).images.shape == (4 * 6 + 2 * 2 + 3, 3, 16, 16)


def test_split_is_a_seeded_partition():
    n = 101
    parts = {s: patch_split(n, s, seed=3) for s in ("train", "val", "test")}
    assert [len(parts[s]) for s in ("train", "val", "test")] == [81, 10, 10]
    assert sorted(torch.cat(list(parts.values())).tolist()) == list(range(n))
    assert torch.equal(patch_split(n, "test", seed=3), parts["test"])
    assert not torch.equal(patch_split(n, "test", seed=4), parts["test"])
    assert parts["test"].tolist() != list(range(10))  # shuffled, not the first rows
    with pytest.raises(ValueError, match="split must be one of"):
        patch_split(n, "validation")
    with pytest.raises(ValueError, match="sum < 1"):
        patch_split(n, "train", val_fraction=0.5, test_fraction=0.5)


def test_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_image_patches(tmp_path / "nowhere")
    with pytest.raises(DataError, match="holds no image files"):
        load_image_patches(tmp_path)
    _save(tmp_path / "tiny.png", np.zeros((8, 8, 3), dtype=np.uint8))
    with pytest.raises(DataError, match="none of the 1 images .* is 32x32 pixels or larger"):
        load_image_patches(tmp_path)


def test_missing_package_names_the_pip_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(patches_module.importlib.util, "find_spec",
                        lambda name, *a: None if name == "sklearn" else real(name, *a))
    with pytest.raises(DataError, match="pip install --no-deps scikit-image scikit-learn"):
        patches_module.default_photo_paths()


@pytest.mark.skipif(importlib.util.find_spec("skimage") is None or importlib.util.find_spec("sklearn") is None,
                    reason="scikit-image / scikit-learn not installed (scripts/install.sh installs them)")
def test_default_photographs():
    got = load_image_patches()
    assert len(got.files) == 10 and len(got) > 4000
    assert got.images.float().std() > 30  # photographs, not blank patches
    astronaut = np.asarray(Image.open(got.files[0]).convert("RGB"))
    np.testing.assert_array_equal(got.images[1].permute(1, 2, 0).numpy(), astronaut[:32, 32:64])
