"""Score-and-sample over an item pool: IRGAN draws and ranks items only through the streaming ops
``fastgen.ops.sample_items`` (inverse-CDF draws from softmax((u . V + b) / T)) and
``fastgen.ops.topk_items`` (each user's best items, a CSR list of items left out), which never build the
[users x items] matrix; their plain-PyTorch twin is fastgen.reference.items. ``scores`` builds the
matrix, for analyses small enough to hold it.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from fastgen import ops
from fastgen.ops import topk_items

Exclude = Optional[tuple[Tensor, Tensor]]  # CSR (indptr [U + 1], indices) of items to leave out per user


@torch.no_grad()
def sample_items(user_emb: Tensor, item_emb: Tensor, item_bias: Tensor, uniforms: Tensor,
                 temperature: float) -> Tensor:
    """fastgen.ops.sample_items with the uniforms in the embeddings' dtype (IRGAN draws them in float64;
    those within 2^-25 of 1 round to 1.0 in float32, outside the op's [0, 1): they become its largest float below 1)."""
    below_one = 1 - torch.finfo(user_emb.dtype).eps / 2
    uniforms = uniforms.to(user_emb.dtype).clamp(max=below_one)
    return ops.sample_items(user_emb, item_emb, item_bias, uniforms, temperature)


def scores(user_emb: Tensor, item_emb: Tensor, item_bias: Tensor) -> Tensor:
    """u . v + b for every user and item: [U, I], float64."""
    if user_emb.dim() != 2 or item_emb.dim() != 2 or user_emb.shape[1] != item_emb.shape[1]:
        raise ValueError(f"user_emb [U, d] and item_emb [I, d] must share d, got {tuple(user_emb.shape)} and "
                         f"{tuple(item_emb.shape)}")
    if item_bias.shape != (item_emb.shape[0],):
        raise ValueError(f"item_bias must have shape [{item_emb.shape[0]}], got {tuple(item_bias.shape)}")
    return user_emb.double() @ item_emb.double().T + item_bias.double()


__all__ = ["Exclude", "sample_items", "scores", "topk_items"]
