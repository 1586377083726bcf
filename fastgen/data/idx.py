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
import math
import os
import struct
import zlib
from typing import BinaryIO, Optional, Union

import numpy as np

from fastgen.memory import check_fits

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


_CHUNK = 1 << 24  # bytes per read: a stream is never read past what the header promises


def _read_upto(stream: BinaryIO, n: int) -> bytearray:
    """At most ``n`` bytes of ``stream`` (fewer only at its end), read in chunks so that memory grows
    with the bytes really there, not with ``n``."""
    buf = bytearray()
    while len(buf) < n:
        chunk = stream.read(min(_CHUNK, n - len(buf)))
        if not chunk:
            break
        buf += chunk
    return buf


def _parse(path: str, stream: BinaryIO, plain_size: Optional[int]) -> np.ndarray:
    """The array in ``stream`` (decompressed when the file is gzip; ``plain_size``: the file's size
    when it is not): header first, then exactly the payload it promises, then end of file."""
    head = _read_upto(stream, 4)
    if len(head) < 4:
        raise DataError(f"{path}: file too short for an IDX header ({len(head)} bytes, need at least 4)")
    zero0, zero1, code, ndim = head
    if zero0 != 0 or zero1 != 0:
        raise DataError(
            f"{path}: bad IDX magic number 0x{bytes(head).hex()} (the first two bytes must be zero); "
            "not an IDX file"
        )
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02x}" for c in IDX_DTYPES)
        raise DataError(f"{path}: unknown IDX dtype code 0x{code:02x} (known: {known})")
    if ndim == 0:
        raise DataError(f"{path}: IDX header declares 0 dimensions")
    header_len = 4 + 4 * ndim
    sizes = _read_upto(stream, 4 * ndim)
    if len(sizes) < 4 * ndim:
        raise DataError(f"{path}: truncated IDX header: {ndim} dims need {header_len} header bytes, file has "
                        f"{4 + len(sizes)}")
    dims = struct.unpack(f">{ndim}I", sizes)
    dtype = IDX_DTYPES[code]
    expected = math.prod(dims) * dtype.itemsize
    need = f"dims {tuple(dims)} of {dtype.newbyteorder('=').name} need {expected} payload bytes"
    if plain_size is not None and plain_size - header_len < expected:  # say so before reading it all
        raise DataError(f"{path}: truncated payload: {need}, file has {plain_size - header_len}")
    check_fits(expected, f"{path}: the payload its IDX header promises ({need})", DataError)
    payload = _read_upto(stream, expected)
    if len(payload) < expected:
        raise DataError(f"{path}: truncated payload: {need}, file has {len(payload)}")
    if stream.read(1):
        more = "more" if plain_size is None else plain_size - header_len
        raise DataError(f"{path}: trailing bytes after payload: {need}, file has {more}")
    # The bytearray makes the array writable (torch.from_numpy wants that); astype copies only to
    # swap bytes into native order.
    return np.frombuffer(payload, dtype=dtype).astype(dtype.newbyteorder("="), copy=False).reshape(dims)


def read_idx(path: PathLike) -> np.ndarray:
    """Read an IDX file (plain or gzip-compressed) into a native-byte-order numpy array.

    Returns a writable array of the file's own dtype (uint8 for MNIST images and labels) and shape.
    A gzip file is decompressed as a stream, never past the payload its header promises, so a small
    file cannot expand into gigabytes before the check. Raises :class:`DataError` on any malformed or
    truncated file, and for a header promising more than fits in memory.
    """
    path = os.fspath(path)
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise DataError(f"{path}: IDX file not found") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read IDX file ({e.strerror or e})") from e
    with f:
        compressed = f.read(2) == _GZIP_MAGIC
        f.seek(0)
        try:
            if not compressed:
                return _parse(path, f, os.fstat(f.fileno()).st_size)
            with gzip.GzipFile(fileobj=f, mode="rb") as stream:
                return _parse(path, stream, None)
        except EOFError as e:
            raise DataError(f"{path}: gzip stream is truncated ({e}); the file is incomplete") from e
        except (OSError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
            what = "corrupt gzip stream" if compressed else "cannot read IDX file"
            raise DataError(f"{path}: {what} ({e})") from e


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
