"""The 100 grey faces of scikit-image's ``data.lfw_subset()`` (Labeled Faces in the Wild, cropped to
25 x 25; Huang et al. 2012), read from the installed wheel's ``skimage/data/lfw_subset.npy`` without
importing scikit-image (the file is what ``lfw_subset()`` returns: 100 faces, then 100 non-faces).

Images come back as float32 [N, 1, size, size] grey values in [0, 1], resized from 25 x 25 to ``size``
(default 28, the Fashion-MNIST networks' input) by bilinear interpolation (``align_corners=False``, no
antialiasing: an enlargement), so the whole face is kept. Splits: a seeded validation part of the 100
faces (fastgen.data.splits.carve_validation: 10, permutation seed 0) and the 90 left for training;
there are too few faces for a test split, so figures from them are pictures, not measurements.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .errors import DataError
from .splits import carve_description, carve_validation

LFW_FACES = 100            # the first 100 images of lfw_subset.npy are faces
LFW_SIDE = 25
LFW_FILE = "data/lfw_subset.npy"
INSTALL_SKIMAGE = "pip install --no-deps scikit-image"
SPLITS = ("train", "val", "all")


def lfw_subset_path() -> Path:
    """The installed scikit-image's lfw_subset.npy (the package is located, never imported)."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"lfw-faces: scikit-image is not installed; its data.lfw_subset() holds the faces "
                        f"({INSTALL_SKIMAGE})")
    path = Path(list(spec.submodule_search_locations)[0]) / LFW_FILE
    if not path.is_file():
        raise DataError(f"lfw-faces: scikit-image at {path.parent.parent} lacks {LFW_FILE} (the data of "
                        f"data.lfw_subset()); reinstall it ({INSTALL_SKIMAGE})")
    return path


def load_lfw_faces(split: str = "train", size: int = 28) -> Tensor:
    """The faces of ``split`` ("train", "val" or "all") as float32 [N, 1, size, size] in [0, 1]."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ValueError(f"size must be a positive int, got {size!r}")
    path = lfw_subset_path()
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DataError(f"lfw-faces: cannot read {path}: {e}") from None
    if array.ndim != 3 or array.shape[0] < LFW_FACES or array.shape[1:] != (LFW_SIDE, LFW_SIDE):
        raise DataError(f"lfw-faces: {path} holds an array of shape {array.shape}, expected "
                        f"[>= {LFW_FACES}, {LFW_SIDE}, {LFW_SIDE}]")
    faces = torch.from_numpy(np.ascontiguousarray(array[:LFW_FACES], dtype=np.float32)).unsqueeze(1)
    if not (torch.isfinite(faces).all() and faces.min() >= 0 and faces.max() <= 1):
        raise DataError(f"lfw-faces: {path} holds values outside [0, 1]")
    if split != "all":
        faces = faces[carve_validation(LFW_FACES, "val" if split == "val" else "train")]
    if size != LFW_SIDE:
        faces = F.interpolate(faces, size=(size, size), mode="bilinear", align_corners=False).clamp_(0, 1)
    return faces


def lfw_faces_description(split: str, size: int = 28) -> str:
    part = "all 100" if split == "all" else carve_description(split)
    return (f"scikit-image lfw_subset faces ({part}), 25x25 grey resized to {size}x{size} (bilinear), values in "
            f"[0, 1]")


__all__ = ["LFW_FACES", "lfw_faces_description", "lfw_subset_path", "load_lfw_faces"]
