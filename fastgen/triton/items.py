"""Triton kernels for IRGAN's sample_items and topk_items (semantics: fastgen/reference/items.py).

Neither kernel forms the [users x items] score matrix: a program scores one chunk of BLOCK_I items for
one user (the item rows [BLOCK_I, d] times the user vector, plus the bias) and keeps per-chunk results.

sample_items
  1. _chunk_stats, grid (U, chunks): m_c = max score of the chunk, S_c = sum exp((s - m_c) / T) in
     float64.
  2. host, on [U, chunks] tensors: M = max m_c, W_c = S_c exp((m_c - M) / T), the target u_j * sum W of
     every draw, its chunk (the first whose inclusive prefix of W exceeds it) and its offset inside it
     in units of the chunk's weights exp((s - m_c) / T); draws sorted by (user, chunk).
  3. _walk, one program per (user, chunk) that some draw lands in: recomputes the chunk's weights, their
     running sum (float64) and, for blocks of its draws, the first item whose running sum exceeds the
     offset. A draw whose offset the running sum never exceeds (the chunk's sum, rounded differently
     from S_c: a near-tie with the next chunk) takes the chunk's last item of positive weight; in the
     last chunk, item I - 1 (the reference's clamp).
topk_items
  _chunk_topk, grid (U, chunks): the chunk's top K (k rounds of max, ties to the lower index), items the
  user's sorted exclusion list holds (a vectorised binary search) set to -inf first; the host merges
  the U x chunks x k candidates by (score descending, item ascending).

Launchers take the arguments of fastgen.ops.items (already checked there) and run on CUDA tensors, or
on CPU tensors when TRITON_INTERPRET=1 was set before triton was imported.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

__all__ = ["sample_items", "topk_items"]

BLOCK_I = 128   # items per chunk
BLOCK_K = 32    # draws per step of _walk


@triton.jit
def _chunk_scores(user_ptr, item_ptr, bias_ptr, u, c, I, d, BLOCK_I: tl.constexpr, BLOCK_D: tl.constexpr):
    """Scores of items [c * BLOCK_I, ...) for user u (-inf past I), and those item indices."""
    items = c * BLOCK_I + tl.arange(0, BLOCK_I)
    dims = tl.arange(0, BLOCK_D)
    valid = items < I
    user = tl.load(user_ptr + u * d + dims, mask=dims < d, other=0.0)
    rows = tl.load(item_ptr + items[:, None] * d + dims[None, :], mask=valid[:, None] & (dims < d)[None, :], other=0.0)
    s = tl.sum(rows * user[None, :], axis=1) + tl.load(bias_ptr + items, mask=valid, other=0.0)
    return tl.where(valid, s, float("-inf")), items, valid


@triton.jit
def _chunk_weights(user_ptr, item_ptr, bias_ptr, u, c, I, d, inv_t_ptr, BLOCK_I: tl.constexpr, BLOCK_D: tl.constexpr):
    s, items, valid = _chunk_scores(user_ptr, item_ptr, bias_ptr, u, c, I, d, BLOCK_I, BLOCK_D)
    m = tl.max(s, axis=0)
    return tl.where(valid, tl.exp((s - m) * tl.load(inv_t_ptr)), 0.0), m, items, valid


@triton.jit
def _chunk_stats(user_ptr, item_ptr, bias_ptr, max_ptr, sum_ptr, I, d, chunks, inv_t_ptr,
                 BLOCK_I: tl.constexpr, BLOCK_D: tl.constexpr):
    u, c = tl.program_id(0), tl.program_id(1)
    e, m, _, _ = _chunk_weights(user_ptr, item_ptr, bias_ptr, u, c, I, d, inv_t_ptr, BLOCK_I, BLOCK_D)
    tl.store(max_ptr + u * chunks + c, m)
    tl.store(sum_ptr + u * chunks + c, tl.sum(e.to(tl.float64), axis=0))


@triton.jit
def _walk(user_ptr, item_ptr, bias_ptr, pair_user_ptr, pair_chunk_ptr, pair_start_ptr, target_ptr, dest_ptr, out_ptr,
          I, d, chunks, inv_t_ptr, BLOCK_I: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_K: tl.constexpr):
    p = tl.program_id(0)
    u, c = tl.load(pair_user_ptr + p), tl.load(pair_chunk_ptr + p)
    start, end = tl.load(pair_start_ptr + p), tl.load(pair_start_ptr + p + 1)
    e, _, items, valid = _chunk_weights(user_ptr, item_ptr, bias_ptr, u, c, I, d, inv_t_ptr, BLOCK_I, BLOCK_D)
    running = tl.cumsum(e.to(tl.float64), axis=0)
    n = tl.sum(valid.to(tl.int32), axis=0)
    last_positive = tl.max(tl.where(e > 0, items, -1), axis=0)
    fallback = tl.where(c == chunks - 1, I - 1, last_positive)
    for k0 in range(start, end, BLOCK_K):
        draws = k0 + tl.arange(0, BLOCK_K)
        live = draws < end
        target = tl.load(target_ptr + draws, mask=live, other=0.0)
        # items whose running sum is still <= the target: the drawn item is the next one
        passed = tl.sum(((running[None, :] <= target[:, None]) & valid[None, :]).to(tl.int32), axis=1)
        item = tl.where(passed < n, c * BLOCK_I + passed, fallback)
        tl.store(out_ptr + tl.load(dest_ptr + draws, mask=live, other=0), item.to(tl.int64), mask=live)


def _block_d(d: int) -> int:
    return max(16, triton.next_power_of_2(d))


def sample_items(user_emb: Tensor, item_emb: Tensor, item_bias: Tensor, uniforms: Tensor,
                 temperature: float) -> Tensor:
    """Items [U, k] by inverse CDF on uniforms (see the module doc and fastgen.reference.items)."""
    user_emb, item_emb, item_bias = user_emb.contiguous(), item_emb.contiguous(), item_bias.contiguous()
    (U, d), I, k = user_emb.shape, item_emb.shape[0], uniforms.shape[1]
    chunks, inv_t = triton.cdiv(I, BLOCK_I), 1.0 / temperature
    # a tensor, not a scalar argument: Triton would pass a Python float as float32
    inv_t_dev = torch.tensor([inv_t], dtype=user_emb.dtype, device=user_emb.device)
    out = torch.empty(U, k, dtype=torch.int64, device=user_emb.device)
    if out.numel() == 0:
        return out
    tile_max = torch.empty(U, chunks, dtype=user_emb.dtype, device=user_emb.device)
    tile_sum = torch.empty(U, chunks, dtype=torch.float64, device=user_emb.device)
    _chunk_stats[(U, chunks)](user_emb, item_emb, item_bias, tile_max, tile_sum, I, d, chunks, inv_t_dev,
                              BLOCK_I=BLOCK_I, BLOCK_D=_block_d(d))
    m = tile_max.double()
    scale = torch.exp((m - m.max(dim=1, keepdim=True).values) * inv_t_dev.double())
    inclusive = torch.cumsum(tile_sum * scale, dim=1)
    targets = uniforms.double() * inclusive[:, -1:]
    chunk = torch.searchsorted(inclusive, targets, right=True).clamp_max(chunks - 1)
    before = torch.gather(inclusive, 1, chunk) - torch.gather(tile_sum * scale, 1, chunk)
    local = (targets - before) / torch.gather(scale, 1, chunk)
    # draws sorted by (user, chunk): one _walk program per distinct pair
    key = (torch.arange(U, device=chunk.device).view(-1, 1) * chunks + chunk).flatten()
    key, order = torch.sort(key, stable=True)
    pairs, counts = torch.unique_consecutive(key, return_counts=True)
    starts = torch.zeros(pairs.numel() + 1, dtype=torch.int64, device=key.device)
    starts[1:] = torch.cumsum(counts, 0)
    _walk[(pairs.numel(),)](user_emb, item_emb, item_bias, pairs // chunks, pairs % chunks, starts,
                            local.flatten()[order].contiguous(), order, out, I, d, chunks, inv_t_dev,
                            BLOCK_I=BLOCK_I, BLOCK_D=_block_d(d), BLOCK_K=BLOCK_K)
    return out


@triton.jit
def _chunk_topk(user_ptr, item_ptr, bias_ptr, indptr_ptr, excluded_ptr, search_steps, score_out, item_out, I, d,
                chunks, k, BLOCK_I: tl.constexpr, BLOCK_D: tl.constexpr):
    u, c = tl.program_id(0), tl.program_id(1)
    s, items, valid = _chunk_scores(user_ptr, item_ptr, bias_ptr, u, c, I, d, BLOCK_I, BLOCK_D)
    # lower_bound of each item in the user's sorted exclusion list
    first, last = tl.load(indptr_ptr + u), tl.load(indptr_ptr + u + 1)
    lo = tl.zeros([BLOCK_I], dtype=tl.int64) + first
    hi = tl.zeros([BLOCK_I], dtype=tl.int64) + last
    for _ in range(search_steps):
        active = lo < hi
        mid = (lo + hi) // 2
        right = active & (tl.load(excluded_ptr + mid, mask=active, other=0) < items)
        lo = tl.where(right, mid + 1, lo)
        hi = tl.where(active & ~right, mid, hi)
    hit = (lo < last) & (tl.load(excluded_ptr + lo, mask=lo < last, other=-1) == items)
    s = tl.where(hit, float("-inf"), s)
    base = (u * chunks + c) * k
    for j in range(k):
        best = tl.max(s, axis=0)
        pick = tl.min(tl.where(s == best, items, I + BLOCK_I), axis=0)
        tl.store(score_out + base + j, best)
        tl.store(item_out + base + j, tl.where(best == float("-inf"), -1, pick).to(tl.int64))
        s = tl.where(items == pick, float("-inf"), s)


def topk_items(user_emb: Tensor, item_emb: Tensor, item_bias: Tensor, k: int,
               exclude: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
    """(scores [U, k], items [U, k]) (see the module doc and fastgen.reference.items)."""
    user_emb, item_emb, item_bias = user_emb.contiguous(), item_emb.contiguous(), item_bias.contiguous()
    (U, d), I = user_emb.shape, item_emb.shape[0]
    device = user_emb.device
    chunks, per_chunk = triton.cdiv(I, BLOCK_I), min(k, BLOCK_I)
    if exclude is None:
        indptr, excluded = torch.zeros(U + 1, dtype=torch.int64, device=device), torch.zeros(1, dtype=torch.int64,
                                                                                              device=device)
    else:
        indptr, indices = exclude
        users = torch.repeat_interleave(torch.arange(U, device=device), indptr.diff())
        excluded = torch.sort(users * I + indices).values % I  # each user's run sorted
        excluded = excluded if excluded.numel() else torch.zeros(1, dtype=torch.int64, device=device)
    steps = int(indptr.diff().max().item()).bit_length() if U else 0
    cand_scores = torch.empty(U, chunks * per_chunk, dtype=user_emb.dtype, device=device)
    cand_items = torch.empty(U, chunks * per_chunk, dtype=torch.int64, device=device)
    _chunk_topk[(U, chunks)](user_emb, item_emb, item_bias, indptr, excluded, steps, cand_scores, cand_items, I, d,
                             chunks, per_chunk, BLOCK_I=BLOCK_I, BLOCK_D=_block_d(d))
    # candidates come in item order within each chunk's equal scores; order by item, then stably by score
    by_item = torch.argsort(torch.where(cand_items < 0, I, cand_items), dim=1, stable=True)
    cand_scores, cand_items = cand_scores.gather(1, by_item), cand_items.gather(1, by_item)
    best = torch.sort(cand_scores, dim=1, descending=True, stable=True).indices[:, :k]
    return cand_scores.gather(1, best), cand_items.gather(1, best)
