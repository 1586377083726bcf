"""CIFAR-10 binary batches: the record layout (label byte, then R, G, B planes, row-major), the
split files, and one clear DataError for every kind of broken file. The files are written here."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fastgen.data import DataError, load_cifar10, read_cifar10_batch, write_cifar10_batch
from fastgen.data.cifar import RECORD_BYTES


def _records(n: int, rng) -> tuple[bytes, np.ndarray, np.ndarray]:
    """n records built byte by byte from the format's definition (not through write_cifar10_batch)."""
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    planes = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)  # [record, R/G/B, row, column]
    raw = bytearray()
    for i in range(n):
        raw.append(int(labels[i]))
        for channel in range(3):
            raw += planes[i, channel].tobytes(order="C")  # row-major: byte r * 32 + c is pixel (r, c)
    return bytes(raw), planes, labels


def test_record_layout(tmp_path):
    rng = np.random.default_rng()
    raw, planes, labels = _records(5, rng)
    path = tmp_path / "test_batch.bin"
    path.write_bytes(raw)
    images, got_labels = read_cifar10_batch(path)
    assert images.dtype == torch.uint8 and images.shape == (5, 3, 32, 32)
    assert got_labels.dtype == torch.int64 and got_labels.tolist() == labels.tolist()
    np.testing.assert_array_equal(images.numpy(), planes)
    # one explicit pixel: record 2, green plane, row 7, column 30
    offset = 2 * RECORD_BYTES + 1 + 1 * 1024 + 7 * 32 + 30
    assert int(images[2, 1, 7, 30]) == raw[offset]


def test_write_round_trip_and_splits(tmp_path):
    rng = np.random.default_rng()
    folder = tmp_path / "cifar-10-batches-bin"  # the archive's folder: the loader looks inside it
    folder.mkdir()
    written = []
    for i in range(1, 6):
        images = torch.from_numpy(rng.integers(0, 256, size=(i, 3, 32, 32), dtype=np.uint8))
        labels = torch.from_numpy(rng.integers(0, 10, size=i)).long()
        write_cifar10_batch(folder / f"data_batch_{i}.bin", images, labels)
        written.append((images, labels))
    raw, planes, test_labels = _records(3, rng)
    (folder / "test_batch.bin").write_bytes(raw)
    train_images, train_labels = load_cifar10(tmp_path, "train")
    assert torch.equal(train_images, torch.cat([w[0] for w in written]))  # batches 1..5 in order
    assert torch.equal(train_labels, torch.cat([w[1] for w in written]))
    test_images, _ = load_cifar10(folder, "test")
    np.testing.assert_array_equal(test_images.numpy(), planes)


@pytest.mark.parametrize("size", [0, RECORD_BYTES - 1, 2 * RECORD_BYTES + 5])
def test_truncated_file(tmp_path, size):
    path = tmp_path / "test_batch.bin"
    path.write_bytes(bytes(size))
    with pytest.raises(DataError, match=rf"{path.name} is truncated .* multiple of the 3,073-byte record"):
        read_cifar10_batch(path)


def test_bad_label(tmp_path):
    raw, _, _ = _records(3, np.random.default_rng())
    raw = bytearray(raw)
    raw[2 * RECORD_BYTES] = 10
    path = tmp_path / "test_batch.bin"
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="record 2 has label byte 10"):
        read_cifar10_batch(path)


def test_missing_files(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_cifar10(tmp_path / "nowhere")
    (tmp_path / "data_batch_1.bin").write_bytes(_records(1, np.random.default_rng())[0])
    with pytest.raises(DataError, match="lacks data_batch_2.bin, data_batch_3.bin"):
        load_cifar10(tmp_path, "train")
    with pytest.raises(DataError, match="lacks test_batch.bin"):
        load_cifar10(tmp_path, "test")
    with pytest.raises(ValueError, match="split must be"):
        load_cifar10(tmp_path, "val")
