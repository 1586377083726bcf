"""Triton kernels for the masked convolutions of PixelCNN and Gated PixelCNN (forward and backward).

Semantics are those of fastgen/reference/masked_conv.py: out = conv2d(x, weight * M, bias) with
padding (kh // 2, kw // 2), stride 1, odd kernel sizes, M = conv_mask(..., mask, color_groups).

The live taps of every mask form a prefix of the kernel in raster order (row-major (i, j)):
  "V"            rows i <= kh // 2, every column:             (kh // 2 + 1) * kw taps
  "A" / "B"      rows above the centre, then the centre row's taps left of the centre: kh // 2 * kw + kw // 2
                 taps, then the centre tap itself, which is
                   color_groups = 1: dead (A) or live for every channel (B): one more prefix tap;
                   color_groups = G > 1: live for input channels c < limit(o) of output channel o,
                     limit(o) = ceil((o * G // C_out + [B]) * C_in / G)  (groups are contiguous chunks,
                     channel c of C in group c * G // C; output group g sees input groups < g, or <= g
                     for B).
So the host passes the prefix length (_plan) and the kernels loop over those taps alone; the centre
tap, when partial, is one more pass whose weight loads are masked by limit(o) and whose channel loop
stops (forward, grad_weight) or starts (grad_x) where that limit says the block has no live pair.
No kernel reads a dead weight, and grad_weight's dead entries are never written (allocated as zeros;
exactly zero). Only rows <= the centre row are ever live, so the forward never reads rows below the
output pixel and grad_x never reads rows above it.

Design
  * Outputs are tiled [channels, pixels], the pixels of one image flattened (p = h * W + w); each
    program loops over the live taps and over blocks of the summed channels, and adds one small
    product of a weight tile and a shifted, zero-padded input tile per step. grad_weight tiles
    [C_out, C_in] per tap and sums over batch and pixels inside one program; grad_bias sums grad_out
    per channel. No atomics anywhere: the backward is deterministic.
  * Products use tl.dot for float32 (input_precision="ieee": no TF32) and for float16 / bfloat16 (the
    operands stay in that dtype; their products are exact in the float32 accumulator); float64 uses
    a broadcast-multiply-and-sum over smaller tiles.

Launchers make their inputs contiguous, allocate the outputs and check only what they need to plan
(the mask name): argument validation is the job of fastgen/ops/masked_conv.py. They run on CUDA
tensors, or on CPU tensors when TRITON_INTERPRET=1 was set before triton was imported.
masked_conv2d_fwd / masked_conv2d_bwd take the arguments of the ops fastgen::masked_conv2d /
fastgen::masked_conv2d_backward (csrc/registration.cpp), so they can be registered as those ops' CUDA
kernels.
"""
from __future__ import annotations

import os
from typing import Sequence

import torch
import triton
import triton.language as tl
from torch import Tensor

__all__ = ["masked_conv2d_fwd", "masked_conv2d_bwd", "masked_conv2d"]

# Input dtypes whose tile products use tl.dot (float64 takes the broadcast-sum form).
_DOT_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
# Those whose tiles enter tl.dot as they are (tensor cores; the products are exact in float32); the
# others are converted to float32 first. The interpreter's dot has no bfloat16 (numpy lacks it).
_NATIVE_DOT = {torch.float16: tl.float16}
if os.environ.get("TRITON_INTERPRET") != "1":
    _NATIVE_DOT[torch.bfloat16] = tl.bfloat16


# ----------------------------------------------------------------------------------------------
# The mask, planned on the host.
# ----------------------------------------------------------------------------------------------
def _plan(mask: str, color_groups: int, kh: int, kw: int) -> dict:
    """N_FULL: live taps for every channel pair, a raster prefix; CENTRE: the centre tap (index
    N_FULL) follows with the colour-group channel limit; IS_B: the limit's [B] term."""
    ci, cj = kh // 2, kw // 2
    if mask == "V":
        return dict(N_FULL=(ci + 1) * kw, CENTRE=False, GROUPS=1, IS_B=0)
    if mask not in ("A", "B"):
        raise ValueError(f"masked_conv2d: mask must be 'A', 'B' or 'V', got {mask!r}")
    before = ci * kw + cj
    if color_groups == 1:
        return dict(N_FULL=before + (mask == "B"), CENTRE=False, GROUPS=1, IS_B=0)
    return dict(N_FULL=before, CENTRE=True, GROUPS=color_groups, IS_B=int(mask == "B"))


def _config(dtype: torch.dtype, c_out: int, c_in: int, hw: int) -> dict:
    """Tile sizes: tl.dot needs every dimension >= 16; the broadcast form holds a [BO, BC, BP] product
    in registers, so its tiles stay small."""
    np2 = triton.next_power_of_2
    if dtype in _DOT_DTYPES:
        op = _NATIVE_DOT.get(dtype, tl.float32)
        return dict(BO=max(16, min(np2(c_out), 64)), BC=max(16, min(np2(c_in), 32)), BP=max(16, min(np2(hw), 64)),
                    OP=op, ACC=tl.float32, USE_DOT=True, num_warps=4)
    acc = tl.float64 if dtype == torch.float64 else tl.float32
    return dict(BO=min(np2(c_out), 16), BC=min(np2(c_in), 8), BP=min(np2(hw), 32), OP=acc, ACC=acc, USE_DOT=False,
                num_warps=4)


# ----------------------------------------------------------------------------------------------
# Helpers.
# ----------------------------------------------------------------------------------------------
@triton.jit
def _mm(a, b, OP: tl.constexpr, ACC: tl.constexpr, USE_DOT: tl.constexpr):
    """a [M, K] @ b [K, N] in ACC, the operands (loaded tiles) first converted to OP."""
    if not USE_DOT:
        r = tl.sum(a.to(ACC)[:, :, None] * b.to(ACC)[None, :, :], axis=1)
    elif OP == tl.float32:
        r = tl.dot(a.to(OP), b.to(OP), input_precision="ieee", out_dtype=ACC)
    else:
        r = tl.dot(a.to(OP), b.to(OP), out_dtype=ACC)
    return r


@triton.jit
def _centre_limit(o, C_IN, C_OUT, GROUPS: tl.constexpr, IS_B: tl.constexpr):
    """Input channels [0, limit) that output channel o sees at the centre tap."""
    return (((o * GROUPS) // C_OUT + IS_B) * C_IN + GROUPS - 1) // GROUPS


@triton.jit
def _pixels(tile, H, W, BP: tl.constexpr):
    p = tile * BP + tl.arange(0, BP)
    return p, p // W, p % W, p < H * W


# ----------------------------------------------------------------------------------------------
# Kernels. grid of forward / grad_x: (B * pixel tiles, channel tiles).
# ----------------------------------------------------------------------------------------------
@triton.jit
def _fwd_tap(acc, x_b, w_ptr, o, o_ok, limit, h, w, p_ok, t, c_end, C_IN, H, W, KH: tl.constexpr,
             KW: tl.constexpr, BC: tl.constexpr, OP: tl.constexpr, ACC: tl.constexpr, USE_DOT: tl.constexpr):
    """acc [BO, BP] += W[o, :c_end, tap t] @ x shifted by tap t; weights of c >= limit[o] read as 0."""
    hh = h + t // KW - KH // 2  # <= h: live taps never lie below the centre row
    ww = w + t % KW - KW // 2
    ok = p_ok & (hh >= 0) & (ww >= 0) & (ww < W)
    src = hh * W + ww
    for c0 in range(0, c_end, BC):
        c = c0 + tl.arange(0, BC)
        xt = tl.load(x_b + c[:, None] * (H * W) + src[None, :], mask=(c < c_end)[:, None] & ok[None, :], other=0.0)
        wt = tl.load(w_ptr + (o[:, None] * C_IN + c[None, :]) * (KH * KW) + t,
                     mask=o_ok[:, None] & (c[None, :] < limit[:, None]), other=0.0)
        acc += _mm(wt, xt, OP, ACC, USE_DOT)
    return acc


@triton.jit
def _fwd_kernel(x_ptr, w_ptr, b_ptr, out_ptr, C_IN, C_OUT, H, W, N_FULL, KH: tl.constexpr, KW: tl.constexpr,
                CENTRE: tl.constexpr, GROUPS: tl.constexpr, IS_B: tl.constexpr, HAS_BIAS: tl.constexpr,
                BO: tl.constexpr, BC: tl.constexpr, BP: tl.constexpr, OP: tl.constexpr, ACC: tl.constexpr,
                USE_DOT: tl.constexpr):
    n_tiles = tl.cdiv(H * W, BP)
    b = (tl.program_id(0) // n_tiles).to(tl.int64)
    p, h, w, p_ok = _pixels(tl.program_id(0) % n_tiles, H, W, BP)
    o = tl.program_id(1) * BO + tl.arange(0, BO)
    o_ok = o < C_OUT
    x_b = x_ptr + b * C_IN * H * W
    acc = tl.zeros([BO, BP], ACC)
    every = tl.zeros([BO], tl.int32) + C_IN
    for t in range(N_FULL):
        acc = _fwd_tap(acc, x_b, w_ptr, o, o_ok, every, h, w, p_ok, t, C_IN, C_IN, H, W, KH, KW, BC, OP, ACC,
                       USE_DOT)
    if CENTRE:
        limit = _centre_limit(o, C_IN, C_OUT, GROUPS, IS_B)
        c_end = tl.max(tl.where(o_ok, limit, 0), axis=0)  # no channel past it is live for this tile
        acc = _fwd_tap(acc, x_b, w_ptr, o, o_ok, limit, h, w, p_ok, N_FULL, c_end, C_IN, H, W, KH, KW, BC, OP,
                       ACC, USE_DOT)
    if HAS_BIAS:
        acc += tl.load(b_ptr + o, mask=o_ok, other=0.0).to(ACC)[:, None]
    dst = out_ptr + b * C_OUT * H * W + o[:, None] * (H * W) + p[None, :]
    tl.store(dst, acc.to(out_ptr.dtype.element_ty), mask=o_ok[:, None] & p_ok[None, :])


@triton.jit
def _grad_x_tap(acc, g_b, w_ptr, c, c_ok, h, w, p_ok, t, o_begin, C_IN, C_OUT, H, W, KH: tl.constexpr,
                KW: tl.constexpr, CENTRE_TAP: tl.constexpr, GROUPS: tl.constexpr, IS_B: tl.constexpr,
                BO: tl.constexpr, OP: tl.constexpr, ACC: tl.constexpr, USE_DOT: tl.constexpr):
    """acc [BC, BP] += W[o_begin:, c, tap t]^T @ grad_out shifted back by tap t."""
    hh = h - (t // KW - KH // 2)  # >= h
    ww = w - (t % KW - KW // 2)
    ok = p_ok & (hh < H) & (ww >= 0) & (ww < W)
    src = hh * W + ww
    for o0 in range(o_begin, C_OUT, BO):
        o = o0 + tl.arange(0, BO)
        o_ok = o < C_OUT
        live = c_ok[:, None] & o_ok[None, :]
        if CENTRE_TAP:
            live = live & (c[:, None] < _centre_limit(o, C_IN, C_OUT, GROUPS, IS_B)[None, :])
        wt = tl.load(w_ptr + (o[None, :] * C_IN + c[:, None]) * (KH * KW) + t, mask=live, other=0.0)
        gt = tl.load(g_b + o[:, None] * (H * W) + src[None, :], mask=o_ok[:, None] & ok[None, :], other=0.0)
        acc += _mm(wt, gt, OP, ACC, USE_DOT)
    return acc


@triton.jit
def _grad_x_kernel(g_ptr, w_ptr, gx_ptr, C_IN, C_OUT, H, W, N_FULL, KH: tl.constexpr, KW: tl.constexpr,
                   CENTRE: tl.constexpr, GROUPS: tl.constexpr, IS_B: tl.constexpr, BO: tl.constexpr,
                   BC: tl.constexpr, BP: tl.constexpr, OP: tl.constexpr, ACC: tl.constexpr,
                   USE_DOT: tl.constexpr):
    n_tiles = tl.cdiv(H * W, BP)
    b = (tl.program_id(0) // n_tiles).to(tl.int64)
    p, h, w, p_ok = _pixels(tl.program_id(0) % n_tiles, H, W, BP)
    c_lo = tl.program_id(1) * BC
    c = c_lo + tl.arange(0, BC)
    c_ok = c < C_IN
    g_b = g_ptr + b * C_OUT * H * W
    acc = tl.zeros([BC, BP], ACC)
    for t in range(N_FULL):
        acc = _grad_x_tap(acc, g_b, w_ptr, c, c_ok, h, w, p_ok, t, 0, C_IN, C_OUT, H, W, KH, KW, False, GROUPS,
                          IS_B, BO, OP, ACC, USE_DOT)
    if CENTRE:
        # The first output channel whose group sees c_lo's: (c_lo's group + 1 - [B]) * C_OUT / GROUPS, rounded up.
        g_first = (c_lo * GROUPS) // C_IN + 1 - IS_B
        o_begin = tl.minimum((g_first * C_OUT + GROUPS - 1) // GROUPS, C_OUT)
        acc = _grad_x_tap(acc, g_b, w_ptr, c, c_ok, h, w, p_ok, N_FULL, o_begin, C_IN, C_OUT, H, W, KH, KW, True,
                          GROUPS, IS_B, BO, OP, ACC, USE_DOT)
    dst = gx_ptr + b * C_IN * H * W + c[:, None] * (H * W) + p[None, :]
    tl.store(dst, acc.to(gx_ptr.dtype.element_ty), mask=c_ok[:, None] & p_ok[None, :])


@triton.jit
def _grad_w_kernel(g_ptr, x_ptr, gw_ptr, B, C_IN, C_OUT, H, W, N_FULL, KH: tl.constexpr, KW: tl.constexpr,
                   CENTRE: tl.constexpr, GROUPS: tl.constexpr, IS_B: tl.constexpr, BO: tl.constexpr,
                   BC: tl.constexpr, BP: tl.constexpr, OP: tl.constexpr, ACC: tl.constexpr,
                   USE_DOT: tl.constexpr):
    """grid (live taps, output channel tiles, input channel tiles): one [BO, BC] tile of one tap, summed
    over the batch and every pixel."""
    t = tl.program_id(0)
    o = tl.program_id(1) * BO + tl.arange(0, BO)
    c_lo = tl.program_id(2) * BC
    c = c_lo + tl.arange(0, BC)
    o_ok = o < C_OUT
    c_ok = c < C_IN
    live = o_ok[:, None] & c_ok[None, :]
    n_batch = B
    if CENTRE:  # the centre tap (t == N_FULL) is live for c < limit(o) only
        limit = tl.where(t == N_FULL, _centre_limit(o, C_IN, C_OUT, GROUPS, IS_B), C_IN)
        live = live & (c[None, :] < limit[:, None])
        # a tile without a live pair has nothing to sum and nothing to store
        n_batch = tl.where(c_lo < tl.max(tl.where(o_ok, limit, 0), axis=0), B, 0)
    dy = t // KW - KH // 2
    dx = t % KW - KW // 2
    acc = tl.zeros([BO, BC], ACC)
    g_b = g_ptr
    x_b = x_ptr
    for _ in range(n_batch):
        for tile in range(tl.cdiv(H * W, BP)):
            p, h, w, p_ok = _pixels(tile, H, W, BP)
            hh = h + dy
            ww = w + dx
            ok = p_ok & (hh >= 0) & (ww >= 0) & (ww < W)
            gt = tl.load(g_b + o[:, None] * (H * W) + p[None, :], mask=o_ok[:, None] & p_ok[None, :], other=0.0)
            xt = tl.load(x_b + c[None, :] * (H * W) + (hh * W + ww)[:, None], mask=ok[:, None] & c_ok[None, :],
                         other=0.0)
            acc += _mm(gt, xt, OP, ACC, USE_DOT)
        g_b += C_OUT * H * W  # pointers advance in 64 bits: no int32 overflow on large batches
        x_b += C_IN * H * W
    if n_batch > 0:
        dst = gw_ptr + (o[:, None] * C_IN + c[None, :]) * (KH * KW) + t
        tl.store(dst, acc.to(gw_ptr.dtype.element_ty), mask=live)


@triton.jit
def _grad_bias_kernel(g_ptr, gb_ptr, B, C_OUT, HW, BO: tl.constexpr, BP: tl.constexpr, ACC: tl.constexpr):
    o = tl.program_id(0) * BO + tl.arange(0, BO)
    o_ok = o < C_OUT
    acc = tl.zeros([BO, BP], ACC)
    g_b = g_ptr
    for _ in range(B):
        for p0 in range(0, HW, BP):
            p = p0 + tl.arange(0, BP)
            acc += tl.load(g_b + o[:, None] * HW + p[None, :], mask=o_ok[:, None] & (p < HW)[None, :],
                           other=0.0).to(ACC)
        g_b += C_OUT * HW
    tl.store(gb_ptr + o, tl.sum(acc, axis=1).to(gb_ptr.dtype.element_ty), mask=o_ok)


# ----------------------------------------------------------------------------------------------
# Launchers.
# ----------------------------------------------------------------------------------------------
def _setup(x: Tensor, weight: Tensor, mask: str, color_groups: int) -> tuple[dict, dict]:
    c_out, c_in, kh, kw = weight.shape
    H, W = x.shape[2], x.shape[3]
    shape = dict(C_IN=c_in, C_OUT=c_out, H=H, W=W, KH=kh, KW=kw)
    return {**shape, **_plan(mask, color_groups, kh, kw)}, _config(x.dtype, c_out, c_in, H * W)


def masked_conv2d_fwd(x: Tensor, weight: Tensor, bias: Tensor | None, mask: str, color_groups: int) -> Tensor:
    """conv2d(x [B,C_in,H,W], weight * M [C_out,C_in,kh,kw], bias [C_out]) -> [B,C_out,H,W] (x's dtype)."""
    x, weight = x.contiguous(), weight.contiguous()
    spec, cfg = _setup(x, weight, mask, color_groups)
    B, H, W = x.shape[0], x.shape[2], x.shape[3]
    out = torch.empty((B, weight.shape[0], H, W), dtype=x.dtype, device=x.device)
    if out.numel() == 0:
        return out
    has_bias = bias is not None
    bias = bias.contiguous() if has_bias else weight  # any pointer: HAS_BIAS=False never reads it
    grid = (B * triton.cdiv(H * W, cfg["BP"]), triton.cdiv(weight.shape[0], cfg["BO"]))
    _fwd_kernel[grid](x, weight, bias, out, HAS_BIAS=has_bias, **spec, **cfg)
    return out


def masked_conv2d_bwd(grad_out: Tensor, x: Tensor, weight: Tensor, mask: str, color_groups: int,
                      output_mask: Sequence[bool]) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    """(grad_x, grad_weight, grad_bias) of masked_conv2d_fwd given grad_out [B,C_out,H,W], each only
    where output_mask asks for it (else None); grad_weight is exactly 0 at every masked entry."""
    want_x, want_weight, want_bias = output_mask
    grad_out, x, weight = grad_out.contiguous(), x.contiguous(), weight.contiguous()
    spec, cfg = _setup(x, weight, mask, color_groups)
    B, c_in, H, W = x.shape
    c_out = weight.shape[0]
    grad_x = torch.empty_like(x) if want_x else None
    grad_weight = torch.zeros_like(weight) if want_weight else None
    grad_bias = torch.zeros(c_out, dtype=weight.dtype, device=weight.device) if want_bias else None
    if x.numel() == 0:
        return grad_x if grad_x is None else grad_x.zero_(), grad_weight, grad_bias
    if want_x:
        grid = (B * triton.cdiv(H * W, cfg["BP"]), triton.cdiv(c_in, cfg["BC"]))
        _grad_x_kernel[grid](grad_out, weight, grad_x, **spec, **cfg)
    n_live = spec["N_FULL"] + spec["CENTRE"]
    if want_weight and n_live > 0:
        grid = (n_live, triton.cdiv(c_out, cfg["BO"]), triton.cdiv(c_in, cfg["BC"]))
        _grad_w_kernel[grid](grad_out, x, grad_weight, B, **spec, **cfg)
    if want_bias:
        _grad_bias_kernel[(triton.cdiv(c_out, cfg["BO"]),)](grad_out, grad_bias, B, c_out, H * W, BO=cfg["BO"],
                                                             BP=cfg["BP"], ACC=cfg["ACC"])
    return grad_x, grad_weight, grad_bias


# ----------------------------------------------------------------------------------------------
# Differentiable op over the launcher pair.
# ----------------------------------------------------------------------------------------------
class _MaskedConv2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, mask, color_groups):
        ctx.save_for_backward(x, weight)
        ctx.spec = (mask, color_groups)
        return masked_conv2d_fwd(x, weight, bias, mask, color_groups)

    @staticmethod
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        grads = masked_conv2d_bwd(grad_out, x, weight, *ctx.spec, ctx.needs_input_grad[:3])
        return *grads, None, None


def masked_conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, mask: str = "B",
                  color_groups: int = 1) -> Tensor:
    """masked_conv2d_fwd with its gradient (masked_conv2d_bwd) for x, weight and bias."""
    return _MaskedConv2d.apply(x, weight, bias, mask, color_groups)
