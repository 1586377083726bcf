"""The data an IRGAN run trains, selects and reports on: relevant (user, item) pairs of MovieLens-100k's
train, validation and test splits as per-user item lists.

Training and model selection read :func:`load_train_val` only; the test positives come from
:func:`load_test`, which the recipe calls once, after every choice is made (tests spy on it)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

from fastgen.data.movielens import N_ITEMS, N_USERS, Ratings, movielens_split
from fastgen.models.irgan import UserItems

SPLITS = ("u1", "random")


@dataclass(frozen=True)
class DataSpec:
    """Which split: "u1" (official, default) or "random" (seeded); ``path``: a u.data file or a
    folder with u.data (and u1.base / u1.test) instead of recbole's copy; ``seed``: the validation
    carve (and the random split's draw)."""

    split: str = "u1"
    path: Optional[str] = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {self.split!r}")

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class TrainVal:
    train: UserItems        # relevant train items per user (what the models learn from and exclude)
    val: UserItems          # relevant validation items per user (model selection)
    rated_train: UserItems  # every item a user rated in training, relevant or not
    description: str


def positives(ratings: Ratings) -> UserItems:
    users, items = ratings.relevant()
    return UserItems.from_pairs(users, items, N_USERS, N_ITEMS)


def _all(ratings: Ratings) -> UserItems:
    return UserItems.from_pairs(ratings.users, ratings.items, N_USERS, N_ITEMS)


def load_train_val(spec: DataSpec) -> TrainVal:
    split = movielens_split(spec.split, spec.path, spec.seed)
    return TrainVal(positives(split.train), positives(split.val), _all(split.train), split.description)


def load_test(spec: DataSpec) -> tuple[UserItems, UserItems]:
    """(relevant test items, relevant items of train + validation: what test ranking leaves out)."""
    split = movielens_split(spec.split, spec.path, spec.seed)
    return positives(split.test), positives(split.train).union(positives(split.val))


__all__ = ["DataSpec", "SPLITS", "TrainVal", "load_test", "load_train_val", "positives"]
