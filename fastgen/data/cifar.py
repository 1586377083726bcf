"""CIFAR-10 in its **binary** distribution (``cifar-10-binary.tar.gz``), never the pickled one:
unpickling a downloaded file can run arbitrary code, and the binary batches are plain bytes.

A batch file is a run of 3,073-byte records: one label byte (0..9), then 3,072 pixel bytes: the red
plane, then green, then blue, each 32x32 row-major. The training split is ``data_batch_1.bin`` ..
``data_batch_5.bin`` (10,000 records each), the test split ``test_batch.bin``. CIFAR-10 cannot be
downloaded on this machine; the loader reads the files a user has and :func:`write_cifar10_batch`
writes small ones for tests.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import numpy as np
import torch
from torch import Tensor

from .errors import DataError

PathArg = Union[str, "os.PathLike[str]"]

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
IMAGE_BYTES = 3 * 32 * 32
RECORD_BYTES = 1 + IMAGE_BYTES
SPLIT_FILES = {"train": tuple(f"data_batch_{i}.bin" for i in range(1, 6)), "test": ("test_batch.bin",)}
_SUBFOLDER = "cifar-10-batches-bin"  # what the official archive unpacks to


def read_cifar10_batch(path: PathArg) -> tuple[Tensor, Tensor]:
    """One binary batch file as (uint8 images [N, 3, 32, 32], int64 labels [N]); DataError naming the
    file when it is missing, empty, truncated (size not a multiple of 3,073) or holds a label > 9."""
    path = Path(path)
    try:
        raw = np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError:
        raise DataError(f"CIFAR-10: {path} does not exist") from None
    except OSError as e:
        raise DataError(f"CIFAR-10: cannot read {path}: {e}") from None
    if raw.size == 0 or raw.size % RECORD_BYTES:
        raise DataError(f"CIFAR-10: {path} is truncated or not a binary batch: {raw.size:,} bytes is not a "
                        f"positive multiple of the {RECORD_BYTES:,}-byte record (1 label + {IMAGE_BYTES:,} "
                        "pixel bytes); the pickled 'python version' is not read, use cifar-10-binary.tar.gz")
    records = raw.reshape(-1, RECORD_BYTES)
    labels = records[:, 0]
    bad = np.flatnonzero(labels > 9)
    if bad.size:
        raise DataError(f"CIFAR-10: {path} record {int(bad[0]):,} has label byte {int(labels[bad[0]])} (> 9): a "
                        "corrupt file, or not a CIFAR-10 binary batch (CIFAR-100's records are 3,074 bytes)")
    images = records[:, 1:].reshape(-1, 3, 32, 32)
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))


def cifar10_folder(root: PathArg) -> Path:
    """``root`` or its ``cifar-10-batches-bin`` subfolder, whichever holds ``test_batch.bin``."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"CIFAR-10: folder {root} does not exist; give the folder cifar-10-binary.tar.gz "
                        f"unpacks to ({_SUBFOLDER}/)")
    inner = root / _SUBFOLDER
    return inner if not (root / "test_batch.bin").is_file() and inner.is_dir() else root


def load_cifar10(root: PathArg, split: str = "train") -> tuple[Tensor, Tensor]:
    """CIFAR-10 ``split`` ("train": the five data batches, "test": test_batch.bin) from ``root`` (the
    unpacked folder or the folder holding it), as (uint8 [N, 3, 32, 32], int64 [N])."""
    if split not in SPLIT_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    folder = cifar10_folder(root)
    names = SPLIT_FILES[split]
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise DataError(f"CIFAR-10 {split} split: {folder} lacks {', '.join(missing)} (the binary version's "
                        "files; CIFAR-10 cannot be downloaded on this machine)")
    parts = [read_cifar10_batch(folder / n) for n in names]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def write_cifar10_batch(path: PathArg, images: Tensor, labels: Tensor) -> None:
    """Write uint8 images [N, 3, 32, 32] and labels [N] (0..9) as one binary batch file."""
    if images.dtype != torch.uint8 or tuple(images.shape[1:]) != (3, 32, 32):
        raise ValueError(f"write_cifar10_batch: images must be uint8 [N, 3, 32, 32], got {images.dtype} "
                         f"{tuple(images.shape)}")
    if labels.shape != (images.shape[0],) or bool(((labels < 0) | (labels > 9)).any()):
        raise ValueError("write_cifar10_batch: labels must be [N] values in 0..9")
    records = torch.cat([labels.to(torch.uint8)[:, None], images.reshape(len(images), -1)], dim=1)
    Path(path).write_bytes(records.contiguous().numpy().tobytes())
