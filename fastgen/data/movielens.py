"""MovieLens-100k: ratings, the official u1 split rebuilt exactly, a validation split carved from it, a
seeded random split, and item titles.

Offline the data ship inside PyPI's ``recbole`` wheel (``recbole/dataset_example/ml-100k/``: the
ratings as ``ml-100k.inter``, titles and years as ``ml-100k.item``). The wheel is located through its
installed file list (``importlib.metadata``); recbole itself is never imported (it would pull in its
whole training stack). A user's own ``u.data`` (tab-separated ``user item rating timestamp``), ``u.item``
(``|``-separated, Latin-1) and official ``u1.base`` / ``u1.test`` files are read too.

The u1 split: MovieLens' ``mku.sh`` makes ``u1.test`` from the first 20,000 lines of ``u.data`` and
``u1.base`` from the other 80,000, each sorted by user then item. recbole's file keeps ``u.data``'s row
order (100,000 rows, first row ``196 242 3 881250949``), so the same rule rebuilds u1 from it.

Ids are 1-based in the files and 0-based here (user ``u`` is row ``u - 1``). Relevant means a rating of
at least :data:`RELEVANT_RATING`.
"""
from __future__ import annotations

import importlib.metadata
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch
from torch import Tensor

from .errors import DataError

PathArg = Union[str, "os.PathLike[str]"]

N_USERS, N_ITEMS, N_RATINGS = 943, 1682, 100_000
U1_TEST_ROWS = 20_000          # mku.sh: head -20000 u.data | sort > u1.test
FIRST_ROW = (196, 242, 3, 881250949)  # the first line of u.data
RELEVANT_RATING = 4
VAL_FRACTION = 0.1             # of each user's u1.base ratings, held out for model selection
VAL_SEED = 0
RECBOLE_DIR = "recbole/dataset_example/ml-100k"
INSTALL_HINT = "install it with `pip install --no-deps recbole==1.2.1` (only its data files are read)"


@dataclass(frozen=True)
class Ratings:
    """Rating rows (0-based users and items) in file order, and the sizes of the id spaces."""

    users: Tensor       # int64 [N]
    items: Tensor       # int64 [N]
    ratings: Tensor     # int64 [N], 1..5
    timestamps: Tensor  # int64 [N]
    n_users: int
    n_items: int
    source: str

    def __len__(self) -> int:
        return len(self.users)

    def rows(self, index: Tensor, source: str) -> "Ratings":
        return Ratings(self.users[index], self.items[index], self.ratings[index], self.timestamps[index],
                       self.n_users, self.n_items, source)

    def sorted_by_user_item(self) -> "Ratings":
        order = torch.from_numpy(np.lexsort((self.items.numpy(), self.users.numpy())))
        return self.rows(order, self.source)

    def relevant(self) -> tuple[Tensor, Tensor]:
        """(users, items) of the relevant rows (rating >= RELEVANT_RATING)."""
        keep = self.ratings >= RELEVANT_RATING
        return self.users[keep], self.items[keep]


def recbole_file(name: str) -> Path:
    """A file of recbole's ml-100k example data set, located without importing recbole; DataError
    saying how to install it when the wheel is absent."""
    try:
        files = importlib.metadata.files("recbole") or []
    except importlib.metadata.PackageNotFoundError:
        raise DataError(f"MovieLens-100k: the recbole wheel that ships it is not installed; {INSTALL_HINT}") from None
    for f in files:
        if str(f).replace("\\", "/") == f"{RECBOLE_DIR}/{name}":
            path = Path(f.locate())
            if path.is_file():
                return path
            raise DataError(f"MovieLens-100k: recbole lists {name} but {path} is missing; reinstall it: {INSTALL_HINT}")
    raise DataError(f"MovieLens-100k: the installed recbole has no {RECBOLE_DIR}/{name}; {INSTALL_HINT}")


def _read_lines(path: Path, encoding: str = "utf-8") -> list[str]:
    try:
        return path.read_text(encoding=encoding).splitlines()
    except FileNotFoundError:
        raise DataError(f"MovieLens: {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"MovieLens: cannot read {path}: {e}") from None


def read_ratings(path: PathArg, n_users: int = N_USERS, n_items: int = N_ITEMS) -> Ratings:
    """Rating rows of ``u.data`` / ``u1.base`` / ``u1.test`` (tab-separated ``user item rating
    timestamp``) or recbole's ``ml-100k.inter`` (the same with a header line). DataError naming the
    file and line for a short line, a non-integer field, an id outside 1..n or a rating outside 1..5."""
    path = Path(path)
    lines = _read_lines(path)
    start = 1 if lines and ":" in lines[0].split("\t")[0] else 0  # recbole's header: user_id:token ...
    rows = np.empty((len(lines) - start, 4), dtype=np.int64)
    for n, line in enumerate(lines[start:]):
        fields = line.split("\t")
        try:
            if len(fields) != 4:
                raise ValueError(f"{len(fields)} tab-separated fields, expected 4 (user item rating timestamp)")
            rows[n] = [int(float(f)) if "." in f else int(f) for f in fields]
        except ValueError as e:
            raise DataError(f"MovieLens: {path} line {n + start + 1}: {e}: {line[:60]!r}") from None
    if len(rows) == 0:
        raise DataError(f"MovieLens: {path} holds no ratings")
    for column, name, high in ((0, "user", n_users), (1, "item", n_items), (2, "rating", 5)):
        bad = np.flatnonzero((rows[:, column] < 1) | (rows[:, column] > high))
        if len(bad):
            raise DataError(f"MovieLens: {path} line {bad[0] + start + 1}: {name} {rows[bad[0], column]} is "
                            f"outside 1..{high}")
    t = torch.from_numpy(rows)
    return Ratings(t[:, 0] - 1, t[:, 1] - 1, t[:, 2].clone(), t[:, 3].clone(), n_users, n_items, str(path))


def load_ratings(path: Optional[PathArg] = None) -> Ratings:
    """All 100,000 MovieLens-100k ratings in ``u.data``'s order: recbole's copy, or ``path`` (a u.data
    file or a folder holding one). DataError unless there are 100,000 rows starting with u.data's first."""
    if path is None:
        file = recbole_file("ml-100k.inter")
    else:
        file = Path(path)
        file = file / "u.data" if file.is_dir() else file
    ratings = read_ratings(file)
    if len(ratings) != N_RATINGS:
        raise DataError(f"MovieLens-100k: {file} holds {len(ratings):,} ratings, expected {N_RATINGS:,}")
    first = (int(ratings.users[0]) + 1, int(ratings.items[0]) + 1, int(ratings.ratings[0]),
             int(ratings.timestamps[0]))
    if first != FIRST_ROW:
        raise DataError(f"MovieLens-100k: {file} starts with {first}, u.data with {FIRST_ROW}: not u.data's row "
                        "order, so the u1 split cannot be rebuilt from it")
    return ratings


@dataclass(frozen=True)
class Split:
    """Train / validation / test ratings and how they were made."""

    train: Ratings
    val: Ratings
    test: Ratings
    description: str


def u1_split(ratings: Ratings) -> tuple[Ratings, Ratings]:
    """(u1.base, u1.test) rebuilt from the 100,000 rows in u.data's order, as mku.sh does."""
    if len(ratings) != N_RATINGS:
        raise ValueError(f"ratings: u1 needs all {N_RATINGS:,} rows of u.data, got {len(ratings):,}")
    rows = torch.arange(len(ratings))
    test = ratings.rows(rows[:U1_TEST_ROWS], "u1.test").sorted_by_user_item()
    base = ratings.rows(rows[U1_TEST_ROWS:], "u1.base").sorted_by_user_item()
    return base, test


def read_u1(folder: PathArg) -> tuple[Ratings, Ratings]:
    """(u1.base, u1.test) from a folder holding the official files."""
    folder = Path(folder)
    return read_ratings(folder / "u1.base"), read_ratings(folder / "u1.test")


def carve_validation(base: Ratings, fraction: float = VAL_FRACTION, seed: int = VAL_SEED) -> tuple[Ratings, Ratings]:
    """(train, val): of each user's rows, ``round(fraction * n)`` drawn at random (seeded) go to val;
    both keep ``base``'s order."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    generator = torch.Generator().manual_seed(seed)
    noise = torch.rand(len(base), generator=generator)
    # rank of each row within its user by the noise: the lowest round(fraction * count) go to validation
    order = torch.from_numpy(np.lexsort((noise.numpy(), base.users.numpy())))
    counts = torch.bincount(base.users, minlength=base.n_users)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty(len(base), dtype=torch.long)
    rank[order] = torch.arange(len(base)) - starts[base.users[order]]
    is_val = rank < torch.round(counts.double() * fraction).long()[base.users]
    return base.rows(torch.nonzero(~is_val).squeeze(1), base.source), base.rows(torch.nonzero(is_val).squeeze(1), "validation")


def movielens_split(kind: str = "u1", path: Optional[PathArg] = None, seed: int = VAL_SEED,
                    test_fraction: float = 0.2) -> Split:
    """``kind`` "u1": the official u1 split (from ``path``'s u1.base / u1.test when it is a folder
    holding them, else rebuilt from u.data / recbole's copy); "random": ``test_fraction`` of every
    user's ratings drawn with ``seed``. Validation: VAL_FRACTION of each user's training ratings."""
    folder = Path(path) if path is not None else None
    if kind == "u1":
        if folder is not None and (folder / "u1.base").is_file():
            base, test = read_u1(folder)
            made = f"official u1.base / u1.test from {folder}"
        else:
            base, test = u1_split(load_ratings(path))
            made = "u1 rebuilt as mku.sh does (test: the first 20,000 rows of u.data)"
    elif kind == "random":
        base, test = carve_validation(load_ratings(path), test_fraction, seed + 1)
        made = f"random: {test_fraction:.0%} of each user's ratings as test (seed {seed + 1})"
    else:
        raise ValueError(f"kind must be 'u1' or 'random', got {kind!r}")
    train, val = carve_validation(base, VAL_FRACTION, seed)
    return Split(train, val, test, f"{made}; validation: {VAL_FRACTION:.0%} of each user's training "
                                   f"ratings (seed {seed}); relevant: rating >= {RELEVANT_RATING}")


def load_titles(path: Optional[PathArg] = None) -> list[str]:
    """Title (with year) of every item, by 0-based item: recbole's ml-100k.item, or a user's u.item
    (``path``: the file or its folder; ``id|title|date|...``, Latin-1)."""
    titles = [""] * N_ITEMS
    if path is None:
        file, sep, encoding, start = recbole_file("ml-100k.item"), "\t", "utf-8", 1
    else:
        file = Path(path)
        file, sep, encoding, start = (file / "u.item" if file.is_dir() else file), "|", "latin-1", 0
    for n, line in enumerate(_read_lines(file, encoding)[start:], start + 1):
        fields = line.split(sep)
        try:
            item = int(fields[0])
            title = fields[1]
        except (ValueError, IndexError):
            raise DataError(f"MovieLens: {file} line {n}: expected id{sep}title{sep}..., got {line[:60]!r}") from None
        if not 1 <= item <= N_ITEMS:
            raise DataError(f"MovieLens: {file} line {n}: item {item} is outside 1..{N_ITEMS}")
        year = fields[2] if sep == "\t" and len(fields) > 2 else ""
        titles[item - 1] = f"{title} ({year})" if year else title
    return titles


__all__ = ["FIRST_ROW", "N_ITEMS", "N_RATINGS", "N_USERS", "RELEVANT_RATING", "Ratings", "Split", "U1_TEST_ROWS",
           "carve_validation", "load_ratings", "load_titles", "movielens_split", "read_ratings", "read_u1",
           "recbole_file", "u1_split"]
