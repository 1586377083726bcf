"""Checked, atomic downloads (exercised with file:// URLs) and the MNIST / Fashion-MNIST checksum table."""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
import struct
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from fastgen.data import DATASETS, DataError, download, ensure_mnist, load_fashion_mnist, load_mnist, write_idx
from fastgen.data.mnist import FASHION_MNIST_ROOT


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


@pytest.fixture
def source(tmp_path):
    data = np.random.default_rng().bytes(3 * 1024 * 1024 + 17)  # spans several read chunks
    path = tmp_path / "src" / "blob.bin"
    path.parent.mkdir()
    path.write_bytes(data)
    return path, data


def test_good_checksum(source, tmp_path):
    path, data = source
    dest = tmp_path / "out" / "nested" / "blob.bin"
    got = download(path.as_uri(), dest, _sha256(data))
    assert got == dest and dest.read_bytes() == data
    assert _leftovers(dest.parent) == []


def test_md5_only_and_both(source, tmp_path):
    path, data = source
    assert download(path.as_uri(), tmp_path / "a", None, md5=_md5(data)).read_bytes() == data
    assert download(path.as_uri(), tmp_path / "b", _sha256(data).upper(), md5=_md5(data)).read_bytes() == data


def test_bad_checksum_discards_the_data(source, tmp_path):
    path, data = source
    dest = tmp_path / "out" / "blob.bin"
    wrong = "0" * 64
    with pytest.raises(DataError) as info:
        download(path.as_uri(), dest, wrong)
    message = str(info.value)
    assert "checksum mismatch" in message and _sha256(data) in message and wrong in message
    assert f"placed manually at {dest}" in message and path.as_uri() in message
    assert not dest.exists() and _leftovers(dest.parent) == []


def test_bad_checksum_leaves_an_existing_file_untouched(source, tmp_path):
    path, data = source
    dest = tmp_path / "blob.bin"
    dest.write_bytes(b"old contents")
    with pytest.raises(DataError, match="checksum mismatch"):
        download(path.as_uri(), dest, "f" * 64)
    assert dest.read_bytes() == b"old contents" and _leftovers(tmp_path) == []


def test_md5_mismatch_is_named(source, tmp_path):
    path, data = source
    with pytest.raises(DataError, match=r"md5 [0-9a-f]{32} \(expected 00000000000000000000000000000000\)"):
        download(path.as_uri(), tmp_path / "x", _sha256(data), md5="0" * 32)


def test_missing_source(tmp_path):
    dest = tmp_path / "out" / "file.gz"
    url = (tmp_path / "no-such-file.gz").as_uri()
    with pytest.raises(DataError) as info:
        download(url, dest, "a" * 64)
    message = str(info.value)
    assert f"download of {url} failed" in message and "No such file" in message
    assert f"placed manually at {dest}" in message and "a" * 64 in message
    assert not dest.exists() and _leftovers(dest.parent) == []


def test_unreachable_host_is_a_data_error(tmp_path):
    # An unknown URL scheme fails inside urllib without touching the network.
    with pytest.raises(DataError, match="failed: .*placed manually"):
        download("nosuchscheme://example.invalid/x.gz", tmp_path / "x.gz", "a" * 64)


def test_http_download_and_http_error(source, tmp_path):
    path, data = source

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(path.parent)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        dest = tmp_path / "http" / "blob.bin"
        assert download(f"{base}/blob.bin", dest, _sha256(data)).read_bytes() == data
        with pytest.raises(DataError, match=r"failed: HTTP 404 .*placed manually at"):
            download(f"{base}/missing.bin", tmp_path / "http" / "missing.bin", _sha256(data))
        assert _leftovers(dest.parent) == []
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_existing_verified_file_is_not_fetched_again(source, tmp_path):
    path, data = source
    dest = tmp_path / "blob.bin"
    dest.write_bytes(data)
    missing = (tmp_path / "gone").as_uri()
    assert download(missing, dest, _sha256(data)) == dest


def test_checksum_arguments_are_checked(source, tmp_path):
    path, _ = source
    with pytest.raises(ValueError, match="unverified downloads are not supported"):
        download(path.as_uri(), tmp_path / "x", None)
    with pytest.raises(ValueError, match="sha256 must be 64 hexadecimal characters"):
        download(path.as_uri(), tmp_path / "x", "abc")
    with pytest.raises(ValueError, match="md5 must be 32 hexadecimal characters"):
        download(path.as_uri(), tmp_path / "x", None, md5="z" * 32)


# ---------------------------------------------------------------------------------------- ensure_mnist


def _fake_mnist(folder: Path, monkeypatch) -> dict[str, bytes]:
    """Four small IDX .gz files in ``folder`` and a DATASETS["mnist"] entry whose checksums are theirs."""
    rng = np.random.default_rng()
    folder.mkdir(parents=True, exist_ok=True)
    blobs = {}
    for prefix, n in (("train", 6), ("t10k", 3)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, n, dtype=np.uint8))
    files = []
    for remote in DATASETS["mnist"].files:
        data = (folder / remote.filename).read_bytes()
        blobs[remote.filename] = data
        files.append(dataclasses.replace(remote, size=len(data), sha256=_sha256(data), md5=_md5(data)))
    fake = dataclasses.replace(DATASETS["mnist"], files=tuple(files))
    monkeypatch.setitem(DATASETS, "mnist", fake)  # the table ensure_mnist reads
    return blobs


def test_ensure_mnist_downloads_missing_files_trying_each_mirror(tmp_path, monkeypatch):
    blobs = _fake_mnist(tmp_path / "mirror", monkeypatch)
    root = tmp_path / "data"
    dead = (tmp_path / "dead").as_uri()
    assert ensure_mnist(root, mirrors=[dead, (tmp_path / "mirror").as_uri()]) == root
    for name, data in blobs.items():
        assert (root / name).read_bytes() == data
    images, labels = load_mnist(root, split="test")
    assert images.shape == (3, 28, 28) and labels.shape == (3,)


def test_ensure_mnist_leaves_present_files_alone(tmp_path, monkeypatch):
    _fake_mnist(tmp_path / "mirror", monkeypatch)
    root = tmp_path / "data"
    root.mkdir()
    # an uncompressed copy under the dotted name counts as present (load_mnist reads it)
    (root / "train-images.idx3-ubyte").write_bytes(b"user's own file")
    ensure_mnist(root, mirrors=[(tmp_path / "mirror").as_uri()])
    assert (root / "train-images.idx3-ubyte").read_bytes() == b"user's own file"
    assert not (root / "train-images-idx3-ubyte.gz").exists()
    assert (root / "t10k-labels-idx1-ubyte.gz").exists()


def test_ensure_mnist_failure_lists_urls_and_manual_placement(tmp_path, monkeypatch):
    _fake_mnist(tmp_path / "mirror", monkeypatch)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "train-images-idx3-ubyte.gz").write_bytes(b"corrupt")
    root = tmp_path / "data"
    mirrors = [(tmp_path / "nowhere").as_uri(), (tmp_path / "bad").as_uri()]
    with pytest.raises(DataError) as info:
        ensure_mnist(root, mirrors=mirrors)
    message = str(info.value)
    assert "could not obtain train-images-idx3-ubyte.gz" in message
    assert f"{mirrors[0]}/train-images-idx3-ubyte.gz: " in message and "checksum mismatch" in message
    assert f"manually at {root / 'train-images-idx3-ubyte.gz'}" in message
    assert "load_mnist_subset()" in message
    assert not (root / "train-images-idx3-ubyte.gz").exists() and _leftovers(root) == []


def test_ensure_mnist_bad_kind(tmp_path):
    with pytest.raises(ValueError, match="kind must be one of 'mnist', 'fashion-mnist'"):
        ensure_mnist(tmp_path, kind="emnist")


def test_checksum_table_is_well_formed():
    for kind, spec in DATASETS.items():
        names = [f.filename for f in spec.files]
        assert names == ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"], kind
        for f in spec.files:
            assert len(f.sha256) == 64 and len(f.md5) == 32 and f.size > 0
        assert all(m.endswith("/") for m in spec.mirrors)


# Upstream gzip headers of the Fashion-MNIST files (mtime, found by matching the published MD5s). The
# Debian package stores the same deflate streams under a normalised header.
_FASHION_MTIME = {"train": 1504176606, "t10k": 1504176627}


def _upstream_fashion_bytes(debian_file: Path) -> bytes:
    raw = debian_file.read_bytes()
    assert raw[:4] == b"\x1f\x8b\x08\x00", "expected a gzip member without a stored name"
    stem = debian_file.name[: -len(".gz")]
    mtime = _FASHION_MTIME[stem.split("-")[0]]
    return b"\x1f\x8b\x08\x08" + struct.pack("<I", mtime) + bytes([raw[8], 3]) + stem.encode() + b"\0" + raw[10:]


@pytest.mark.skipif(not Path(FASHION_MNIST_ROOT).is_dir(), reason="Debian package dataset-fashion-mnist absent")
def test_fashion_mnist_checksums_rederived_from_the_debian_files(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for remote in DATASETS["fashion-mnist"].files:
        data = _upstream_fashion_bytes(Path(FASHION_MNIST_ROOT) / remote.filename)
        assert len(data) == remote.size
        assert _md5(data) == remote.md5, "the published MD5 (Zalando's README)"
        assert _sha256(data) == remote.sha256
        assert gzip.decompress(data) == gzip.decompress((Path(FASHION_MNIST_ROOT) / remote.filename).read_bytes())
        (mirror / remote.filename).write_bytes(data)
    # and the whole path end to end, from a file:// mirror of those bytes
    root = ensure_mnist(tmp_path / "fm", kind="fashion-mnist", mirrors=[mirror.as_uri()])
    images, labels = load_fashion_mnist("test", root=root)
    assert images.shape == (10000, 28, 28) and int(labels.bincount().min()) == 1000
