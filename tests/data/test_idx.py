"""IDX reader: round trips, gzip detection by magic bytes, and a clear DataError for every defect."""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from fastgen.data import DataError, FASHION_MNIST_ROOT, load_fashion_mnist, read_idx, write_idx
from fastgen.data.idx import IDX_DTYPES


def _random(shape, dtype, rng):
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)


@pytest.mark.parametrize("dtype", [dt.newbyteorder("=") for dt in IDX_DTYPES.values()], ids=str)
@pytest.mark.parametrize("shape", [(7,), (3, 5), (4, 3, 2), (2, 1, 3, 2)], ids=str)
@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gz"])
def test_round_trip(tmp_path, dtype, shape, compress):
    rng = np.random.default_rng()
    array = _random(shape, dtype, rng)
    path = tmp_path / ("a.idx.gz" if compress else "a.idx")
    write_idx(path, array)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == compress
    back = read_idx(path)
    assert back.dtype == array.dtype and back.shape == array.shape
    np.testing.assert_array_equal(back, array)
    assert back.flags.writeable and back.dtype.isnative


def test_big_endian_on_disk(tmp_path):
    write_idx(tmp_path / "x", np.array([1, 256], dtype=np.int32))
    raw = (tmp_path / "x").read_bytes()
    assert raw == bytes([0, 0, 0x0C, 1]) + struct.pack(">I", 2) + struct.pack(">2i", 1, 256)


def test_gzip_detected_by_magic_not_extension(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    gz_named_plain = tmp_path / "looks-plain-idx3-ubyte"
    write_idx(gz_named_plain, array, compress=True)
    plain_named_gz = tmp_path / "looks-compressed.gz"
    write_idx(plain_named_gz, array, compress=False)
    np.testing.assert_array_equal(read_idx(gz_named_plain), array)
    np.testing.assert_array_equal(read_idx(plain_named_gz), array)


def _valid_bytes(shape=(2, 3, 4)) -> bytes:
    header = bytes([0, 0, 0x08, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)
    return header + bytes(i % 251 for i in range(int(np.prod(shape))))


def _expect_error(path: Path, *words: str) -> str:
    with pytest.raises(DataError) as info:
        read_idx(path)
    message = str(info.value)
    assert str(path) in message, message
    for word in words:
        assert word in message, message
    return message


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gz"])
def test_truncated_payload(tmp_path, compress):
    data = _valid_bytes()[:-5]
    path = tmp_path / "short"
    path.write_bytes(gzip.compress(data) if compress else data)
    _expect_error(path, "truncated payload", "(2, 3, 4)", "24 payload bytes", "has 19")


def test_trailing_bytes(tmp_path):
    path = tmp_path / "long"
    path.write_bytes(_valid_bytes() + b"\x00\x01")
    _expect_error(path, "trailing bytes", "has 26")


def test_truncated_header(tmp_path):
    path = tmp_path / "hdr"
    path.write_bytes(_valid_bytes()[:9])  # magic + one and a bit of three dims
    _expect_error(path, "truncated IDX header", "3 dims")


def test_too_short_for_magic(tmp_path):
    path = tmp_path / "tiny"
    path.write_bytes(b"\x00\x00")
    _expect_error(path, "too short")


def test_empty_file(tmp_path):
    path = tmp_path / "empty"
    path.write_bytes(b"")
    _expect_error(path, "too short", "0 bytes")


def test_wrong_magic(tmp_path):
    path = tmp_path / "magic"
    path.write_bytes(b"\x89PNG" + _valid_bytes()[4:])
    _expect_error(path, "magic", "0x89504e47")


def test_unknown_dtype_code(tmp_path):
    data = bytearray(_valid_bytes())
    data[2] = 0x07
    path = tmp_path / "dtype"
    path.write_bytes(bytes(data))
    _expect_error(path, "dtype code 0x07")


def test_zero_dims(tmp_path):
    path = tmp_path / "zero"
    path.write_bytes(bytes([0, 0, 0x08, 0]))
    _expect_error(path, "0 dimensions")


def test_wrong_dims(tmp_path):
    # The header claims 2x3x5 but the payload holds 2x3x4 values: caught as a length mismatch.
    data = bytes([0, 0, 0x08, 3]) + struct.pack(">3I", 2, 3, 5) + bytes(24)
    path = tmp_path / "dims"
    path.write_bytes(data)
    _expect_error(path, "(2, 3, 5)", "30 payload bytes", "has 24")


def test_wrong_number_of_dims(tmp_path):
    # A label file (1 dim) whose header byte says 3 dims: the "dims" swallow the payload.
    data = bytes([0, 0, 0x08, 3]) + struct.pack(">I", 4) + bytes(4)
    path = tmp_path / "ndim"
    path.write_bytes(data)
    _expect_error(path, "3 dims", "truncated IDX header")


def test_truncated_gzip_stream(tmp_path):
    path = tmp_path / "cut.gz"
    path.write_bytes(gzip.compress(_valid_bytes((50, 28, 28)))[:-40])
    _expect_error(path, "gzip", "truncated")


def test_corrupt_gzip_stream(tmp_path):
    blob = bytearray(gzip.compress(_valid_bytes()))
    blob[-8] ^= 0xFF  # break the CRC
    path = tmp_path / "crc.gz"
    path.write_bytes(bytes(blob))
    _expect_error(path, "gzip")


def test_missing_file(tmp_path):
    _expect_error(tmp_path / "nope", "not found")


def test_data_error_is_value_error():
    assert issubclass(DataError, ValueError)


@pytest.mark.skipif(not Path(FASHION_MNIST_ROOT).is_dir(),
                    reason="Debian package dataset-fashion-mnist not installed")
def test_real_fashion_mnist_test_split():
    images, labels = load_fashion_mnist("test")
    assert tuple(images.shape) == (10000, 28, 28) and images.dtype.is_floating_point is False
    assert str(images.dtype) == "torch.uint8" and str(labels.dtype) == "torch.int64"
    assert tuple(labels.shape) == (10000,)
    assert labels.bincount().tolist() == [1000] * 10  # the test split is balanced
    assert int(images.max()) == 255 and int(images.min()) == 0
