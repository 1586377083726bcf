"""Plain-PyTorch statement of IRGAN's score-and-sample and score-and-rank ops (Wang et al. 2017,
"IRGAN", sec. 2: the generator's p_theta(d | q) = softmax over the item pool of a matrix-factorisation
score): the ground truth for tests and the "eager" column of the benchmarks. It materialises the
[users x items] score matrix; the kernels stream over item tiles instead.

    scores(user_emb [U,d], item_emb [I,d], item_bias [I])   = user_emb @ item_emb.T + item_bias  [U,I]
    sample_items(..., uniforms [U,k], temperature)          -> LongTensor [U,k]
        item i of user u for uniform u_j: the first i at which the CDF of softmax(scores[u] / T), over
        the items in index order, exceeds u_j (inverse CDF), clamped to I - 1.
    topk_items(..., k, exclude=None)                        -> (scores [U,k], items [U,k] long)
        the k best scores of each user, descending, ties broken by the lower item index; exclude =
        (indptr [U+1], indices [nnz]) in CSR form lists items never returned for each user. A user with
        fewer than k eligible items gets score -inf and item -1 in the remaining places (an item whose
        score is -inf counts as not eligible).
"""
from __future__ import annotations

import torch
from torch import Tensor


def scores(user_emb: Tensor, item_emb: Tensor, item_bias: Tensor) -> Tensor:
    """[U, I] = user_emb @ item_emb.T + item_bias."""
    return user_emb @ item_emb.T + item_bias


def sample_items(user_emb: Tensor, item_emb: Tensor, item_bias: Tensor, uniforms: Tensor,
                 temperature: float) -> Tensor:
    """Inverse-CDF draws from softmax(scores / temperature), one per uniform (see the module doc)."""
    cdf = torch.cumsum(torch.softmax(scores(user_emb, item_emb, item_bias) / temperature, dim=1), dim=1)
    items = torch.searchsorted(cdf, uniforms.to(cdf.dtype).contiguous(), right=True)  # first cdf > u
    return items.clamp_max(item_emb.shape[0] - 1)


def exclusion_mask(exclude: tuple[Tensor, Tensor], num_users: int, num_items: int) -> Tensor:
    """BoolTensor [U, I]: True at every (user, item) the CSR pair (indptr, indices) lists."""
    indptr, indices = exclude
    rows = torch.repeat_interleave(torch.arange(num_users, device=indices.device), indptr.diff())
    mask = torch.zeros(num_users, num_items, dtype=torch.bool, device=indices.device)
    mask[rows, indices] = True
    return mask


def topk_items(user_emb: Tensor, item_emb: Tensor, item_bias: Tensor, k: int,
               exclude: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
    """The k best (score, item) of each user, excluded items never returned (see the module doc)."""
    s = scores(user_emb, item_emb, item_bias)
    if exclude is not None:
        s = s.masked_fill(exclusion_mask(exclude, *s.shape), float("-inf"))
    # a stable sort keeps equal scores in index order: ties go to the lower item index
    values, items = torch.sort(s, dim=1, descending=True, stable=True)
    values, items = values[:, :k], items[:, :k]
    return values, torch.where(values == float("-inf"), -1, items)
