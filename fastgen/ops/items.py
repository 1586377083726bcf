"""IRGAN's score-and-sample and score-and-rank ops over a user and an item embedding table.

    sample_items(user_emb [U,d], item_emb [I,d], item_bias [I], uniforms [U,k], temperature) -> [U,k] long
        inverse-CDF draws from softmax((user_emb @ item_emb.T + item_bias) / temperature), one item per
        uniform in [0, 1): deterministic given the uniforms.
    topk_items(user_emb, item_emb, item_bias, k, exclude=None) -> (scores [U,k], items [U,k] long)
        the k best items per user, descending, ties to the lower index, never an item that the CSR
        pair exclude = (indptr [U+1], indices [nnz]) lists for that user (missing places: -inf, -1).

fastgen.reference.items states both exactly and is the twin; it materialises the [U, I] score matrix,
which the kernels never do: they stream tiles of items past groups of users and keep O(U k + I)
state. Outputs carry no gradient (sampling and evaluation): inputs are detached.

Backends (fastgen.ops._route): "reference" the twin; "cpu" the C++ kernel (float32, float64,
contiguous); "cuda" the torch-free CUDA kernels when built; "triton" fastgen.triton.items (CUDA
tensors, or CPU tensors under TRITON_INTERPRET=1).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from fastgen import _extension
from fastgen.ops import _route
from fastgen.reference import items as reference

_DTYPES = (torch.float32, torch.float64)
SAMPLE = _route.OpKernels("sample_items", cpu=_DTYPES, cuda=_DTYPES, triton=_DTYPES, triton_runs_on_cpu=True)
TOPK = _route.OpKernels("topk_items", cpu=_DTYPES, cuda=_DTYPES, triton=_DTYPES, triton_runs_on_cpu=True)


def _check_tensor(op: str, t, name: str, dim: int, like: Tensor | None = None, dtype: torch.dtype | None = None):
    if not isinstance(t, Tensor):
        raise TypeError(f"{op}: {name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dim() != dim:
        raise ValueError(f"{op}: {name} must be {dim}-D, got shape {tuple(t.shape)}")
    if dtype is not None and t.dtype != dtype:
        raise TypeError(f"{op}: {name} must be {dtype}, got {t.dtype}")
    if like is not None:
        if dtype is None and t.dtype != like.dtype:
            raise TypeError(f"{op}: {name} dtype {t.dtype} differs from user_emb dtype {like.dtype}")
        if t.device != like.device:
            raise ValueError(f"{op}: {name} is on {t.device} but user_emb is on {like.device}")
    if not t.is_contiguous():
        raise ValueError(f"{op}: {name} must be contiguous (call .contiguous()), got strides {t.stride()}")


def _check_scores(op: str, user_emb, item_emb, item_bias) -> None:
    _check_tensor(op, user_emb, "user_emb", 2)
    if user_emb.dtype not in _DTYPES:
        raise TypeError(f"{op}: user_emb must be float32 or float64, got {user_emb.dtype}")
    _check_tensor(op, item_emb, "item_emb", 2, user_emb)
    _check_tensor(op, item_bias, "item_bias", 1, user_emb)
    (U, d), I = user_emb.shape, item_emb.shape[0]
    if item_emb.shape[1] != d:
        raise ValueError(f"{op}: user_emb has d = {d} but item_emb has d = {item_emb.shape[1]}")
    if item_bias.shape[0] != I:
        raise ValueError(f"{op}: item_bias must be [I] = [{I}], got shape {tuple(item_bias.shape)}")
    if U < 1 or I < 1 or d < 1:
        raise ValueError(f"{op}: user_emb and item_emb must be non-empty, got shapes {tuple(user_emb.shape)} "
                         f"and {tuple(item_emb.shape)}")


def sample_items(user_emb: Tensor, item_emb: Tensor, item_bias: Tensor, uniforms: Tensor,
                 temperature: float) -> Tensor:
    """Items [U, k] drawn from softmax(scores / temperature) by inverse CDF on uniforms (module doc)."""
    op = "sample_items"
    _check_scores(op, user_emb, item_emb, item_bias)
    _check_tensor(op, uniforms, "uniforms", 2, user_emb)
    if uniforms.shape[0] != user_emb.shape[0]:
        raise ValueError(f"{op}: uniforms must be [U, k] with U = {user_emb.shape[0]}, got shape "
                         f"{tuple(uniforms.shape)}")
    # value checks read the data: skipped inside torch.compile, where they would break the graph
    if uniforms.numel() and not torch.compiler.is_compiling() and not bool(((uniforms >= 0) & (uniforms < 1)).all()):
        raise ValueError(f"{op}: uniforms must lie in [0, 1), got values in "
                         f"[{uniforms.min().item()}, {uniforms.max().item()}]")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) \
            or not math.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"{op}: temperature must be a finite number > 0, got {temperature!r}")
    args = (user_emb.detach(), item_emb.detach(), item_bias.detach(), uniforms, float(temperature))
    route = _route.resolve(SAMPLE, user_emb.device, user_emb.dtype)
    if route == "reference":
        return reference.sample_items(*args)
    if route == "triton":
        from fastgen.triton import items as triton_items

        return triton_items.sample_items(*args)
    return torch.ops.fastgen.sample_items(*args)


def _check_exclude(op: str, exclude, user_emb: Tensor, num_items: int) -> None:
    if not isinstance(exclude, (tuple, list)) or len(exclude) != 2:
        raise TypeError(f"{op}: exclude must be a pair (indptr, indices) or None, got {type(exclude).__name__}")
    indptr, indices = exclude
    _check_tensor(op, indptr, "exclude indptr", 1, user_emb, torch.int64)
    _check_tensor(op, indices, "exclude indices", 1, user_emb, torch.int64)
    U = user_emb.shape[0]
    if indptr.shape[0] != U + 1:
        raise ValueError(f"{op}: exclude indptr must be [U + 1] = [{U + 1}], got shape {tuple(indptr.shape)}")
    if torch.compiler.is_compiling():
        return  # the value checks below read the data (the C++ kernel checks them again)
    if indptr[0].item() != 0 or indptr[-1].item() != indices.shape[0] or bool((indptr.diff() < 0).any()):
        raise ValueError(f"{op}: exclude indptr must start at 0, never decrease and end at nnz = "
                         f"{indices.shape[0]}, got {indptr[0].item()} ... {indptr[-1].item()}")
    if indices.numel() and not bool(((indices >= 0) & (indices < num_items)).all()):
        raise ValueError(f"{op}: exclude indices must be item indices in [0, {num_items}), got values in "
                         f"[{indices.min().item()}, {indices.max().item()}]")


def topk_items(user_emb: Tensor, item_emb: Tensor, item_bias: Tensor, k: int,
               exclude: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
    """(scores [U, k], items [U, k]): each user's k best items, excluded ones skipped (module doc)."""
    op = "topk_items"
    _check_scores(op, user_emb, item_emb, item_bias)
    I = item_emb.shape[0]
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= I:
        raise ValueError(f"{op}: k must be an int in [1, I = {I}], got {k!r}")
    if exclude is not None:
        _check_exclude(op, exclude, user_emb, I)
    args = (user_emb.detach(), item_emb.detach(), item_bias.detach(), k)
    route = _route.resolve(TOPK, user_emb.device, user_emb.dtype)
    if route == "reference":
        return reference.topk_items(*args, exclude)
    if route == "triton":
        from fastgen.triton import items as triton_items

        return triton_items.topk_items(*args, exclude)
    indptr, indices = exclude if exclude is not None else (None, None)
    return torch.ops.fastgen.topk_items(*args, indptr, indices)


# (a fastgen._C built before these ops existed lacks them: the package must still import)
if _extension.available() and hasattr(torch.ops.fastgen, "sample_items"):

    @torch.library.register_fake("fastgen::sample_items")
    def _(user_emb, item_emb, item_bias, uniforms, temperature):
        return uniforms.new_empty(uniforms.shape, dtype=torch.int64)

    @torch.library.register_fake("fastgen::topk_items")
    def _(user_emb, item_emb, item_bias, k, exclude_indptr=None, exclude_indices=None):
        return user_emb.new_empty(user_emb.shape[0], k), user_emb.new_empty(user_emb.shape[0], k, dtype=torch.int64)
