"""LETOR 4.0 text files (MQ2007 / MQ2008, and their -semi sets), and a synthetic set in that format.

One document per line::

    2 qid:10032 1:0.056537 2:0.000000 ... 46:0.076923 #docid = GX029-35-5894638 inc = 0.0119 prob = 0.1394

``label`` is the graded relevance (0, 1, 2; -1 marks an unlabelled document of the -semi sets),
``qid`` the query, then ``index:value`` features (46 in LETOR 4.0; any count is read, indices from
1, each line listing them in increasing order) and an optional comment whose ``docid`` is kept.

MQ2008 is not on this machine and cannot be downloaded here: read a copy you hold
(``Fold1/train.txt`` etc.) or write a synthetic set with :func:`write_synthetic_letor`.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import torch
from torch import Tensor

from .errors import DataError

N_FEATURES = 46  # LETOR 4.0
_DOCID = re.compile(r"docid\s*=\s*(\S+)")


@dataclass(frozen=True)
class LetorQueries:
    """Documents grouped by query, in file order: query ``q`` owns rows ``ptr[q]:ptr[q + 1]``."""

    features: Tensor   # float32 [N, F]
    labels: Tensor     # int64 [N]; -1: unlabelled
    ptr: Tensor        # int64 [Q + 1]
    qids: list[str]
    docids: list[str]  # "" where the line has none

    @property
    def n_queries(self) -> int:
        return len(self.qids)

    @property
    def query_of_row(self) -> Tensor:
        return torch.repeat_interleave(torch.arange(self.n_queries), self.ptr.diff())

    def subset(self, queries: Tensor) -> "LetorQueries":
        """The queries ``queries`` (indices, in that order) as their own set."""
        rows = torch.cat([torch.arange(int(self.ptr[q]), int(self.ptr[q + 1])) for q in queries.tolist()]) \
            if len(queries) else torch.zeros(0, dtype=torch.long)
        counts = self.ptr.diff()[queries]
        return LetorQueries(self.features[rows], self.labels[rows],
                            torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)]),
                            [self.qids[q] for q in queries.tolist()], [self.docids[r] for r in rows.tolist()])


def read_letor(path: Union[str, os.PathLike], n_features: int = N_FEATURES) -> LetorQueries:
    """Read a LETOR text file; a query's lines must be contiguous (as in every LETOR file)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such LETOR file (MQ2008 is not offline here: give your copy's "
                        "Fold*/train.txt, or write a synthetic set with fastgen.data.letor.write_synthetic_letor)")
    labels, features, qids, docids, counts = [], [], [], [], []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            body, _, comment = line.partition("#")
            fields = body.split()
            if not fields:
                continue
            where = f"{path}:{number}"
            if len(fields) < 2 or not fields[1].startswith("qid:") or len(fields[1]) == 4:
                raise DataError(f"{where}: expected 'label qid:<id> 1:<value> ...', got {body.strip()[:60]!r}")
            try:
                label = int(fields[0])
            except ValueError:
                raise DataError(f"{where}: the label {fields[0]!r} is not an integer") from None
            qid = fields[1][4:]
            if not qids or qids[-1] != qid:
                if qid in qids:
                    raise DataError(f"{where}: query {qid} appears again after other queries (a query's lines "
                                    "must be contiguous)")
                qids.append(qid)
                counts.append(0)
            counts[-1] += 1
            labels.append(label)
            features.append(_features(fields[2:], n_features, where))
            found = _DOCID.search(comment)
            docids.append(found.group(1) if found else "")
    if not labels:
        raise DataError(f"{path}: no documents")
    ptr = torch.cat([torch.zeros(1, dtype=torch.long), torch.tensor(counts).cumsum(0)])
    return LetorQueries(torch.tensor(features, dtype=torch.float32), torch.tensor(labels), ptr, qids, docids)


def _features(items: list[str], n_features: int, where: str) -> list[float]:
    row, last = [0.0] * n_features, 0
    for item in items:
        index, sep, value = item.partition(":")
        try:
            i, v = int(index), float(value)
        except ValueError:
            raise DataError(f"{where}: the feature {item!r} is not index:value") from None
        if not sep or not last < i <= n_features:
            raise DataError(f"{where}: feature index {index} out of order or outside 1..{n_features}")
        if not math.isfinite(v):  # float() accepts 'nan' and 'inf'; one would poison every score it meets
            raise DataError(f"{where}: the feature {item!r} is not a finite number")
        row[i - 1], last = v, i
    return row


def write_letor(path: Union[str, os.PathLike], data: LetorQueries) -> Path:
    """Write ``data`` as a LETOR text file (features with 6 decimals, as the released files)."""
    path = Path(path)
    lines = []
    for q, qid in enumerate(data.qids):
        for r in range(int(data.ptr[q]), int(data.ptr[q + 1])):
            values = " ".join(f"{i + 1}:{v:.6f}" for i, v in enumerate(data.features[r].tolist()))
            docid = f" #docid = {data.docids[r]}" if data.docids[r] else ""
            lines.append(f"{int(data.labels[r])} qid:{qid} {values}{docid}\n")
    path.write_text("".join(lines), encoding="utf-8")
    return path


def synthetic_letor(n_queries: int = 60, docs_per_query: int = 40, n_features: int = N_FEATURES,
                    seed: int = 0) -> LetorQueries:
    """A stand-in with LETOR's shape (not MQ2008): features in [0, 1]; each document's graded label
    (0, 1, 2) comes from a hidden linear score of its features (shared by all queries) plus noise,
    cut at per-query quantiles so that every query has relevant documents; every 5th is unlabelled (-1)."""
    g = torch.Generator().manual_seed(seed)
    weights = torch.randn(n_features, generator=g)
    features = torch.rand(n_queries * docs_per_query, n_features, generator=g)
    score = ((features - 0.5) @ weights + 0.5 * torch.randn(len(features), generator=g)).view(n_queries, -1)
    cuts = torch.quantile(score, torch.tensor([0.7, 0.9]), dim=1).T          # [Q, 2]
    labels = (score > cuts[:, :1]).long() + (score > cuts[:, 1:]).long()
    labels.view(-1)[torch.arange(labels.numel()) % 5 == 4] = -1
    ptr = torch.arange(n_queries + 1) * docs_per_query
    docids = [f"SYN-{q}-{d}" for q in range(n_queries) for d in range(docs_per_query)]
    return LetorQueries(features, labels.view(-1), ptr, [str(1000 + q) for q in range(n_queries)], docids)


def write_synthetic_letor(path: Union[str, os.PathLike], seed: int = 0, **sizes) -> Path:
    return write_letor(path, synthetic_letor(seed=seed, **sizes))


__all__ = ["LetorQueries", "N_FEATURES", "read_letor", "synthetic_letor", "write_letor", "write_synthetic_letor"]
