"""Reader (and a small writer) for the IDX format used by MNIST and Fashion-MNIST.

An IDX file is a 4-byte magic number ``00 00 <dtype code> <number of dims>``, then one big-endian
uint32 per dimension, then the payload in C order, big-endian. Files may be gzip-compressed; that is
detected from the gzip magic bytes (1f 8b), never from the file name.

The reader checks everything it can and raises :class:`fastgen.data.DataError` naming the file and
the problem: a short header, a bad magic number, an unknown dtype code, zero dimensions, and a payload
whose length does not match the dimensions exactly (truncated downloads, or trailing bytes).
"""
from __future__ import annotations

import gzip
import os
import struct
import zlib
from typing import Union

import numpy as np

from .errors import DataError

PathLike = Union[str, "os.PathLike[str]"]

# IDX dtype code -> big-endian numpy dtype of the payload.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dt.newbyteorder("="): code for code, dt in IDX_DTYPES.items()}

_GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise DataError(f"{path}: IDX file not found") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read IDX file ({e.strerror or e})") from e
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except EOFError as e:
            raise DataError(f"{path}: gzip stream is truncated ({e}); the file is incomplete") from e
        except (OSError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
            raise DataError(f"{path}: corrupt gzip stream ({e})") from e
    return raw


def read_idx(path: PathLike) -> np.ndarray:
    """Read an IDX file (plain or gzip-compressed) into a native-byte-order numpy array.

    Returns a writable array of the file's own dtype (uint8 for MNIST images and labels) and shape.
    Raises :class:`DataError` on any malformed or truncated file.
    """
    path = os.fspath(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise DataError(f"{path}: file too short for an IDX header ({len(raw)} bytes, need at least 4)")
    zero0, zero1, code, ndim = raw[0], raw[1], raw[2], raw[3]
    if zero0 != 0 or zero1 != 0:
        raise DataError(
            f"{path}: bad IDX magic number 0x{raw[:4].hex()} (the first two bytes must be zero); "
            "not an IDX file"
        )
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02x}" for c in IDX_DTYPES)
        raise DataError(f"{path}: unknown IDX dtype code 0x{code:02x} (known: {known})")
    if ndim == 0:
        raise DataError(f"{path}: IDX header declares 0 dimensions")
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise DataError(
            f"{path}: truncated IDX header: {ndim} dims need {header_len} header bytes, file has {len(raw)}"
        )
    dims = struct.unpack(f">{ndim}I", raw[4:header_len])
    dtype = IDX_DTYPES[code]
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    got = len(raw) - header_len
    if got != expected:
        problem = "truncated payload" if got < expected else "trailing bytes after payload"
        raise DataError(
            f"{path}: {problem}: dims {tuple(dims)} of {dtype.newbyteorder('=').name} need "
            f"{expected} payload bytes, file has {got}"
        )
    arr = np.frombuffer(raw, dtype=dtype, count=expected // dtype.itemsize, offset=header_len)
    # astype copies: a writable array in native byte order (torch.from_numpy wants both).
    return arr.astype(dtype.newbyteorder("="), copy=True).reshape(dims)


def write_idx(path: PathLike, array: np.ndarray, compress: bool | None = None) -> None:
    """Write ``array`` as an IDX file; gzip-compressed when ``compress`` (default: name ends in .gz)."""
    path = os.fspath(path)
    array = np.ascontiguousarray(array)
    native = array.dtype.newbyteorder("=")
    if native not in _CODES:
        raise ValueError(f"write_idx: dtype {array.dtype} has no IDX code (use one of "
                         f"{', '.join(dt.name for dt in _CODES)})")
    if not 1 <= array.ndim <= 255:
        raise ValueError(f"write_idx: IDX needs 1 to 255 dimensions, got {array.ndim}")
    header = bytes([0, 0, _CODES[native], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(IDX_DTYPES[_CODES[native]], copy=False).tobytes()
    if compress is None:
        compress = path.endswith(".gz")
    if compress:
        data = gzip.compress(data)
    with open(path, "wb") as f:
        f.write(data)
