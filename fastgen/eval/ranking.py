"""Ranking metrics for recommendation and retrieval, per user (or query) and averaged.

* :func:`precision_at_k`, :func:`ndcg_at_k`: from a ranked list's binary relevance (``hits`` [U, K],
  rank 0 first) and each user's count of relevant items. NDCG@k = DCG@k / ideal DCG@k with
  DCG = sum rel_r / log2(r + 2) and the ideal DCG over min(#relevant, k) relevant items at the top.
* :func:`graded_ndcg_at_k`, :func:`average_precision`: per query with graded labels (LETOR: gain
  2^label - 1) and the mean average precision over the binary "label > 0"; :func:`query_metrics`
  all of them per query of a LETOR set.
* :func:`paired_difference`: the mean per-user difference of two systems measured on the same users,
  with a bootstrap percentile interval and the paired t interval.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

KS = (3, 5, 10)


def _discounts(k: int) -> Tensor:
    return 1.0 / torch.log2(torch.arange(k, dtype=torch.float64) + 2)


def precision_at_k(hits: Tensor, k: int) -> Tensor:
    """[U]: the fraction of the top ``k`` that is relevant."""
    if hits.shape[1] < k:
        raise ValueError(f"hits has {hits.shape[1]} ranks, fewer than k={k}")
    return hits[:, :k].double().sum(1) / k


def ndcg_at_k(hits: Tensor, n_relevant: Tensor, k: int) -> Tensor:
    """[U]: binary NDCG@k (ideal DCG over min(n_relevant, k) hits); 0 for a user with none relevant."""
    if hits.shape[1] < k:
        raise ValueError(f"hits has {hits.shape[1]} ranks, fewer than k={k}")
    disc = _discounts(k)
    dcg = (hits[:, :k].double() * disc).sum(1)
    ideal = torch.cat([torch.zeros(1, dtype=torch.float64), disc.cumsum(0)])[n_relevant.clamp(max=k).long()]
    return torch.where(ideal > 0, dcg / ideal.clamp(min=1e-300), torch.zeros_like(dcg))


def ranking_metrics(ranked: Tensor, relevant_mask: Tensor, users: Tensor, ks: Sequence[int] = KS) -> dict[str, Tensor]:
    """Per-user P@k and NDCG@k of ``ranked`` ([len(users), K] items, best first) against
    ``relevant_mask`` ([U, I] bool), for ``users``: {"P@3": [n], ..., "NDCG@10": [n]}."""
    hits = relevant_mask[users.unsqueeze(1), ranked]
    n_relevant = relevant_mask[users].sum(1)
    out = {f"P@{k}": precision_at_k(hits, k) for k in ks}
    out.update({f"NDCG@{k}": ndcg_at_k(hits, n_relevant, k) for k in ks})
    return out


def means(per_user: dict[str, Tensor]) -> dict[str, float]:
    return {name: float(v.mean()) for name, v in per_user.items()}


def graded_ndcg_at_k(labels_in_rank_order: Tensor, k: int) -> float:
    """NDCG@k of one query's graded labels in the ranked order (gain 2^label - 1); 0 without a
    relevant document."""
    labels = labels_in_rank_order.double()
    gains = 2.0 ** labels - 1
    n = min(k, len(labels))
    disc = _discounts(n)
    ideal = (gains.sort(descending=True).values[:n] * disc).sum()
    return float((gains[:n] * disc).sum() / ideal) if ideal > 0 else 0.0


def average_precision(labels_in_rank_order: Tensor) -> float:
    """Mean of the precision at each relevant (label > 0) document's rank; 0 without one."""
    rel = (labels_in_rank_order > 0).double()
    if rel.sum() == 0:
        return 0.0
    precision = rel.cumsum(0) / torch.arange(1, len(rel) + 1, dtype=torch.float64)
    return float((precision * rel).sum() / rel.sum())


def query_metrics(scores: Tensor, labels: Tensor, ptr: Tensor, ks: Sequence[int] = KS) -> dict[str, Tensor]:
    """Per query (rows ``ptr[q]:ptr[q + 1]``) with a relevant document: P@k (label > 0), graded NDCG@k
    and average precision ("MAP" once averaged) of the documents ranked by ``scores``; unlabelled
    documents (label < 0) are left out of the ranking."""
    out: dict[str, list[float]] = {**{f"P@{k}": [] for k in ks}, **{f"NDCG@{k}": [] for k in ks}, "MAP": []}
    for q in range(len(ptr) - 1):
        s, l = scores[ptr[q]:ptr[q + 1]], labels[ptr[q]:ptr[q + 1]]
        s, l = s[l >= 0], l[l >= 0]
        if not bool((l > 0).any()):
            continue
        ranked = l[torch.argsort(s, descending=True, stable=True)]
        for k in ks:
            out[f"P@{k}"].append(float((ranked[:k] > 0).double().sum() / k))
            out[f"NDCG@{k}"].append(graded_ndcg_at_k(ranked, k))
        out["MAP"].append(average_precision(ranked))
    return {name: torch.tensor(values, dtype=torch.float64) for name, values in out.items()}


@dataclass(frozen=True)
class PairedDifference:
    """mean(a - b) over paired users, a bootstrap percentile interval and the paired t interval."""

    mean: float
    bootstrap: tuple[float, float]
    t_interval: tuple[float, float]
    n: int
    level: float

    def text(self, digits: int = 4) -> str:
        lo, hi = self.bootstrap
        tl, th = self.t_interval
        return (f"{self.mean:+.{digits}f} ({self.level:.0%} bootstrap CI {lo:+.{digits}f} .. {hi:+.{digits}f}; "
                f"t CI {tl:+.{digits}f} .. {th:+.{digits}f}; {self.n} users)")


def _t_quantile(p: float, dof: int) -> float:
    """Student's t quantile: bisection on the CDF, the density integrated numerically (no SciPy)."""
    log_norm = math.lgamma((dof + 1) / 2) - math.lgamma(dof / 2) - 0.5 * math.log(dof * math.pi)

    def cdf(t: float) -> float:
        xs = torch.linspace(0, abs(t), 4001, dtype=torch.float64)
        area = float(torch.trapezoid(torch.exp(log_norm - (dof + 1) / 2 * torch.log1p(xs ** 2 / dof)), xs))
        return 0.5 + math.copysign(area, t)

    lo, hi = -1e3, 1e3
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cdf(mid) < p else (lo, mid)
    return (lo + hi) / 2


def paired_difference(a: Tensor, b: Tensor, level: float = 0.95, resamples: int = 10_000,
                      seed: int = 0) -> PairedDifference:
    """Mean of ``a - b`` (per-user values of two systems on the same users) with a ``level`` bootstrap
    percentile interval (``resamples`` resamples of the users, seeded) and the paired t interval."""
    if a.shape != b.shape or a.dim() != 1 or len(a) < 2:
        raise ValueError(f"a and b must be 1-D, paired and of length >= 2, got {tuple(a.shape)} and {tuple(b.shape)}")
    diff = (a - b).double()
    n = len(diff)
    rows = torch.randint(0, n, (resamples, n), generator=torch.Generator().manual_seed(seed))
    boot = diff[rows].mean(1).sort().values
    tail = (1 - level) / 2
    lo, hi = boot[int(math.floor(tail * (resamples - 1)))], boot[int(math.ceil((1 - tail) * (resamples - 1)))]
    mean, se = float(diff.mean()), float(diff.std() / math.sqrt(n))
    q = _t_quantile(1 - tail, n - 1)
    return PairedDifference(mean, (float(lo), float(hi)), (mean - q * se, mean + q * se), n, level)


__all__ = ["KS", "PairedDifference", "average_precision", "graded_ndcg_at_k", "means", "ndcg_at_k",
           "paired_difference", "precision_at_k", "query_metrics", "ranking_metrics"]
