"""Triton kernels for DRAW's Gaussian-filterbank attention (read / write, forward / backward).

Conventions are those of fastgen/reference/attention.py: params[b] = (g~X, g~Y, log sigma^2,
log delta~, log gamma), 1-based pixel coordinates, every filterbank row a softmax. The per-element
formulas are those of csrc/include/fastgen/attention_math.h (filter_row, filter_row_backward,
window_grad_to_params), so the Triton, CPU and CUDA backends compute the same thing:

  F[i, a] = exp(-(a - m)(a + m - 2 mu_i) / (2 sigma^2)) / sum_a(...)
            with m the pixel nearest mu_i clamped to [1, size] (the row's largest logit), which has no
            cancellation when mu_i lies far outside the image; every row sums to 1, no NaN/Inf.
  The softmax backward uses the same m as the origin of the distances (see _filterbank_backward),
  a rewrite of filter_row_backward that is equal in exact arithmetic and more accurate in float32.

Design
  * One program per example b; the channels are looped over inside the program. The filterbanks
    Fx [N, W] and Fy [N, H] are built once per program as 2-D register tiles over power-of-two
    padded sizes (padded rows and columns get weight exactly 0) and are never written to memory.
  * grad_params are accumulated by the program that owns example b, over all of its channels, and
    written once: no atomics, so the backward is deterministic (bit-identical across runs).
  * The small matrix products are broadcast-multiply-and-sum reductions in general; when every
    padded dimension is >= 16 and the accumulation type is float32 they use tl.dot with
    input_precision="ieee" (no TF32, so float32 accuracy is kept).
  * Accumulation is in float32 for float16 / bfloat16 / float32 inputs and in float64 for float64
    inputs (the interpreter supports all four). Outputs have the input's dtype; grad_params has
    params' dtype.

Launchers make their inputs contiguous, allocate the outputs and check nothing beyond unpacking
shapes: argument validation is the job of fastgen/ops/attention.py. They run on CUDA tensors, or on
CPU tensors when TRITON_INTERPRET=1 was set before triton was imported. read / write are the same
forward/backward pairs as autograd functions: what use_backend("triton") runs in a build whose CUDA
ops are the C++ kernels (without those, the pairs are registered as the ops' CUDA kernels instead).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

__all__ = ["read_forward", "read_backward", "write_forward", "write_backward", "read", "write"]

_NUM_PARAMS = 5
# tl.dot needs every dimension >= 16; below that the broadcast-sum form is used.
_DOT_MIN = 16


# ----------------------------------------------------------------------------------------------
# Small matrix products on register tiles.
# ----------------------------------------------------------------------------------------------
@triton.jit
def _mm(a, b, USE_DOT: tl.constexpr):
    """a [M, K] @ b [K, N]."""
    if USE_DOT:
        r = tl.dot(a, b, input_precision="ieee", out_dtype=a.dtype)
    else:
        r = tl.sum(a[:, :, None] * b[None, :, :], axis=1)
    return r


@triton.jit
def _mm_nt(a, b, USE_DOT: tl.constexpr):
    """a [M, K] @ b[N, K]^T."""
    if USE_DOT:
        r = tl.dot(a, tl.trans(b), input_precision="ieee", out_dtype=a.dtype)
    else:
        r = tl.sum(a[:, None, :] * b[None, :, :], axis=2)
    return r


@triton.jit
def _mm_tn(a, b, USE_DOT: tl.constexpr):
    """a [K, M]^T @ b [K, N]."""
    if USE_DOT:
        r = tl.dot(tl.trans(a), b, input_precision="ieee", out_dtype=a.dtype)
    else:
        r = tl.sum(a[:, :, None] * b[:, None, :], axis=0)
    return r


# ----------------------------------------------------------------------------------------------
# Filterbanks (attention_math.h: window_from_params, filter_offset, filter_row, filter_row_backward).
# ----------------------------------------------------------------------------------------------
@triton.jit
def _filter_offsets(N: tl.constexpr, NP: tl.constexpr, ACC: tl.constexpr):
    """i + 0.5 - N/2 for i = 0..NP-1 (0-based filter index)."""
    n = tl.arange(0, NP)
    return n.to(ACC) + tl.full([NP], 1 - N, ACC) * 0.5


@triton.jit
def _filterbank(g, delta, itv, N: tl.constexpr, SIZE: tl.constexpr, NP: tl.constexpr, SP: tl.constexpr,
                ACC: tl.constexpr):
    """Row-normalised filters F [NP, SP] (zero outside [N, SIZE]) and the centres mu [NP]."""
    n = tl.arange(0, NP)
    a = tl.arange(0, SP)
    mu = g + _filter_offsets(N, NP, ACC) * delta
    m = tl.floor(mu + 0.5)
    m = tl.minimum(tl.maximum(m, tl.full([NP], 1, ACC)), tl.full([NP], SIZE, ACC))
    pos = (a + 1).to(ACC)
    valid = (n < N)[:, None] & (a < SIZE)[None, :]
    # logit(a) - logit(m) = -(a - m)(a + m - 2 mu) / (2 sigma^2) <= 0 on the valid tile.
    z = (pos[None, :] - m[:, None]) * ((pos[None, :] - mu[:, None]) + (m - mu)[:, None]) * itv
    z = tl.where(valid, z, 0.0)
    e = tl.where(valid, tl.exp(-z), 0.0)
    s = tl.sum(e, axis=1)  # >= 1 on real rows (the term at a = m is exp(0))
    s = tl.where(n < N, s, 1.0)
    return e / s[:, None], mu


@triton.jit
def _filterbank_backward(F, dF, mu, itv, N: tl.constexpr, SIZE: tl.constexpr, NP: tl.constexpr,
                         SP: tl.constexpr, ACC: tl.constexpr):
    """Softmax backward of one filterbank, reduced over its rows.

    Returns (sum_i dL/dmu_i, sum_i dL/dmu_i * (i + 0.5 - N/2), dL/dlog sigma^2 of this axis).

    dL/dlogit = F (dF - <F, dF>) sums to 0 over a row, so the distances a - mu of filter_row_backward
    are measured from m (the pixel nearest mu, clamped to the image) instead, which is exact in
    real arithmetic and keeps the rounding error of sum(dlogit) from being multiplied by |m - mu|
    (up to ~100x more accurate in float32 when mu lies far outside the image):
      sum dlogit (a - mu)   = S1 = sum dlogit (a - m)
      sum dlogit (a - mu)^2 = sum dlogit (a - m)^2 + 2 (m - mu) S1
    """
    n = tl.arange(0, NP)
    a = tl.arange(0, SP)
    valid = (n < N)[:, None] & (a < SIZE)[None, :]
    dot = tl.sum(F * dF, axis=1)
    dlogit = F * (dF - dot[:, None])
    m = tl.floor(mu + 0.5)
    m = tl.minimum(tl.maximum(m, tl.full([NP], 1, ACC)), tl.full([NP], SIZE, ACC))
    d = (a + 1).to(ACC)[None, :] - m[:, None]
    d = tl.where(valid, d, 0.0)
    s1 = tl.sum(dlogit * d, axis=1)
    dmu = 2.0 * itv * s1
    # itv * (m - mu) first: (m - mu) * s1 alone can overflow float32 (centres 1e14 px away, gamma e^80).
    dlv = itv * tl.sum(dlogit * d * d, axis=1) + 2.0 * (itv * (m - mu)) * s1
    dmu = tl.where(n < N, dmu, 0.0)
    dlv = tl.where(n < N, dlv, 0.0)
    off = _filter_offsets(N, NP, ACC)
    return tl.sum(dmu, axis=0), tl.sum(dmu * off, axis=0), tl.sum(dlv, axis=0)


@triton.jit
def _clamp(v, lo, hi):
    """v clamped into [lo, hi]; NaN stays NaN (as torch.clamp)."""
    return tl.where(v < lo, lo, tl.where(v > hi, hi, v))


@triton.jit
def _through_clamp(grad, p_ptr, k, lo, hi):
    """grad where raw parameter k lies inside its bounds, else exactly 0 (the clamp's gradient; a
    select, not a product, so an inf computed at the clamped value cannot make 0 * inf = NaN)."""
    v = tl.load(p_ptr + k).to(tl.float32)
    return tl.where((v >= lo) & (v <= hi), grad, 0.0)


@triton.jit
def _window(p_ptr, N: tl.constexpr, H: tl.constexpr, W: tl.constexpr, SCALE_NUM: tl.constexpr,
            SCALE_DEN: tl.constexpr, NP: tl.constexpr, HP: tl.constexpr, WP: tl.constexpr,
            ACC: tl.constexpr):
    """Fx [NP, WP], Fy [NP, HP], their centres, 1/(2 sigma^2), delta and log gamma of one example."""
    gx_t = _clamp(tl.load(p_ptr + 0).to(ACC), -1e3, 1e3)  # PARAM_BOUNDS of fastgen/reference/attention.py
    gy_t = _clamp(tl.load(p_ptr + 1).to(ACC), -1e3, 1e3)
    log_var = _clamp(tl.load(p_ptr + 2).to(ACC), -30.0, 30.0)
    log_delta_t = _clamp(tl.load(p_ptr + 3).to(ACC), -30.0, 10.0)
    log_gamma = _clamp(tl.load(p_ptr + 4).to(ACC), -30.0, 30.0)
    gx = tl.full([], W + 1, ACC) * 0.5 * (gx_t + 1.0)
    gy = tl.full([], H + 1, ACC) * 0.5 * (gy_t + 1.0)
    # (max(H, W) - 1) / max(N - 1, 1) * exp(log delta~), computed in ACC from exact integers.
    delta = tl.full([], SCALE_NUM, ACC) / tl.full([], SCALE_DEN, ACC) * tl.exp(log_delta_t)
    itv = 0.5 * tl.exp(-log_var)
    Fx, mux = _filterbank(gx, delta, itv, N, W, NP, WP, ACC)
    Fy, muy = _filterbank(gy, delta, itv, N, H, NP, HP, ACC)
    return Fx, Fy, mux, muy, itv, delta, log_gamma


@triton.jit
def _store_param_grads(gp_ptr, p_ptr, Fx, Fy, dFx, dFy, mux, muy, itv, delta, dlog_gamma, N: tl.constexpr,
                       H: tl.constexpr, W: tl.constexpr, NP: tl.constexpr, HP: tl.constexpr,
                       WP: tl.constexpr, ACC: tl.constexpr):
    """window_grad_to_params: filterbank gradients -> the 5 raw parameter gradients (0 where a raw
    parameter was clamped)."""
    dgx, ddx, dlvx = _filterbank_backward(Fx, dFx, mux, itv, N, W, NP, WP, ACC)
    dgy, ddy, dlvy = _filterbank_backward(Fy, dFy, muy, itv, N, H, NP, HP, ACC)
    ty = gp_ptr.dtype.element_ty
    tl.store(gp_ptr + 0, _through_clamp(dgx * (tl.full([], W + 1, ACC) * 0.5), p_ptr, 0, -1e3, 1e3).to(ty))
    tl.store(gp_ptr + 1, _through_clamp(dgy * (tl.full([], H + 1, ACC) * 0.5), p_ptr, 1, -1e3, 1e3).to(ty))
    tl.store(gp_ptr + 2, _through_clamp(dlvx + dlvy, p_ptr, 2, -30.0, 30.0).to(ty))
    tl.store(gp_ptr + 3, _through_clamp((ddx + ddy) * delta, p_ptr, 3, -30.0, 10.0).to(ty))
    tl.store(gp_ptr + 4, _through_clamp(dlog_gamma, p_ptr, 4, -30.0, 30.0).to(ty))


# ----------------------------------------------------------------------------------------------
# Kernels: one program per example b.
# ----------------------------------------------------------------------------------------------
@triton.jit
def _tile_offsets(N: tl.constexpr, H: tl.constexpr, W: tl.constexpr, NP: tl.constexpr, HP: tl.constexpr,
                  WP: tl.constexpr):
    """Offsets and masks of one [H, W] image plane and one [N, N] patch inside their padded tiles."""
    h = tl.arange(0, HP)
    w = tl.arange(0, WP)
    n = tl.arange(0, NP)
    img_off = h[:, None] * W + w[None, :]
    img_mask = (h < H)[:, None] & (w < W)[None, :]
    pat_off = n[:, None] * N + n[None, :]
    pat_mask = (n < N)[:, None] & (n < N)[None, :]
    return img_off, img_mask, pat_off, pat_mask


@triton.jit
def _read_fwd_kernel(x_ptr, p_ptr, out_ptr, C, N: tl.constexpr, H: tl.constexpr, W: tl.constexpr,
                     SCALE_NUM: tl.constexpr, SCALE_DEN: tl.constexpr, NP: tl.constexpr,
                     HP: tl.constexpr, WP: tl.constexpr, ACC: tl.constexpr, USE_DOT: tl.constexpr):
    b = tl.program_id(0).to(tl.int64)
    Fx, Fy, mux, muy, itv, delta, log_gamma = _window(p_ptr + b * 5, N, H, W, SCALE_NUM, SCALE_DEN,
                                                      NP, HP, WP, ACC)
    gamma = tl.exp(log_gamma)
    img_off, img_mask, pat_off, pat_mask = _tile_offsets(N, H, W, NP, HP, WP)
    for c in range(C):
        bc = b * C + c
        xc = tl.load(x_ptr + bc * (H * W) + img_off, mask=img_mask, other=0.0).to(ACC)
        t = _mm(Fy, xc, USE_DOT)  # Fy x      [NP, WP]
        p = _mm_nt(t, Fx, USE_DOT)  # Fy x Fx^T [NP, NP]
        tl.store(out_ptr + bc * (N * N) + pat_off, (gamma * p).to(out_ptr.dtype.element_ty), mask=pat_mask)


@triton.jit
def _read_bwd_kernel(g_ptr, x_ptr, p_ptr, gx_ptr, gp_ptr, C, N: tl.constexpr, H: tl.constexpr,
                     W: tl.constexpr, SCALE_NUM: tl.constexpr, SCALE_DEN: tl.constexpr, NP: tl.constexpr,
                     HP: tl.constexpr, WP: tl.constexpr, ACC: tl.constexpr, USE_DOT: tl.constexpr):
    b = tl.program_id(0).to(tl.int64)
    Fx, Fy, mux, muy, itv, delta, log_gamma = _window(p_ptr + b * 5, N, H, W, SCALE_NUM, SCALE_DEN,
                                                      NP, HP, WP, ACC)
    gamma = tl.exp(log_gamma)
    img_off, img_mask, pat_off, pat_mask = _tile_offsets(N, H, W, NP, HP, WP)
    dFx = tl.zeros([NP, WP], ACC)
    dFy = tl.zeros([NP, HP], ACC)
    dlg = tl.zeros([NP], ACC)
    for c in range(C):
        bc = b * C + c
        g = tl.load(g_ptr + bc * (N * N) + pat_off, mask=pat_mask, other=0.0).to(ACC)
        xc = tl.load(x_ptr + bc * (H * W) + img_off, mask=img_mask, other=0.0).to(ACC)
        u = _mm(g, Fx, USE_DOT)  # G Fx        [NP, WP]
        gxc = _mm_tn(Fy, u, USE_DOT)  # Fy^T G Fx   [HP, WP]
        tl.store(gx_ptr + bc * (H * W) + img_off, (gamma * gxc).to(gx_ptr.dtype.element_ty), mask=img_mask)
        t = _mm(Fy, xc, USE_DOT)  # Fy x        [NP, WP]
        dFy += _mm_nt(u, xc, USE_DOT)  # (G Fx) x^T  [NP, HP]
        dFx += _mm_tn(g, t, USE_DOT)  # G^T (Fy x)  [NP, WP]
        dlg += tl.sum(t * u, axis=1)  # <Fy x Fx^T, G> by rows
    dFx = dFx * gamma
    dFy = dFy * gamma
    dlog_gamma = gamma * tl.sum(dlg, axis=0)  # = sum(out * G)
    _store_param_grads(gp_ptr + b * 5, p_ptr + b * 5, Fx, Fy, dFx, dFy, mux, muy, itv, delta, dlog_gamma, N, H, W,
                       NP, HP, WP, ACC)


@triton.jit
def _write_fwd_kernel(w_ptr, p_ptr, canvas_ptr, out_ptr, C, N: tl.constexpr, H: tl.constexpr,
                      W: tl.constexpr, SCALE_NUM: tl.constexpr, SCALE_DEN: tl.constexpr, NP: tl.constexpr,
                      HP: tl.constexpr, WP: tl.constexpr, ACC: tl.constexpr, USE_DOT: tl.constexpr,
                      HAS_CANVAS: tl.constexpr):
    b = tl.program_id(0).to(tl.int64)
    Fx, Fy, mux, muy, itv, delta, log_gamma = _window(p_ptr + b * 5, N, H, W, SCALE_NUM, SCALE_DEN,
                                                      NP, HP, WP, ACC)
    inv_gamma = tl.exp(-log_gamma)
    img_off, img_mask, pat_off, pat_mask = _tile_offsets(N, H, W, NP, HP, WP)
    for c in range(C):
        bc = b * C + c
        wc = tl.load(w_ptr + bc * (N * N) + pat_off, mask=pat_mask, other=0.0).to(ACC)
        v = _mm(wc, Fx, USE_DOT)  # w Fx        [NP, WP]
        img = _mm_tn(Fy, v, USE_DOT) * inv_gamma  # Fy^T w Fx / gamma [HP, WP]
        if HAS_CANVAS:
            img += tl.load(canvas_ptr + bc * (H * W) + img_off, mask=img_mask, other=0.0).to(ACC)
        tl.store(out_ptr + bc * (H * W) + img_off, img.to(out_ptr.dtype.element_ty), mask=img_mask)


@triton.jit
def _write_bwd_kernel(g_ptr, w_ptr, p_ptr, gw_ptr, gp_ptr, C, N: tl.constexpr, H: tl.constexpr,
                      W: tl.constexpr, SCALE_NUM: tl.constexpr, SCALE_DEN: tl.constexpr, NP: tl.constexpr,
                      HP: tl.constexpr, WP: tl.constexpr, ACC: tl.constexpr, USE_DOT: tl.constexpr):
    b = tl.program_id(0).to(tl.int64)
    Fx, Fy, mux, muy, itv, delta, log_gamma = _window(p_ptr + b * 5, N, H, W, SCALE_NUM, SCALE_DEN,
                                                      NP, HP, WP, ACC)
    inv_gamma = tl.exp(-log_gamma)
    img_off, img_mask, pat_off, pat_mask = _tile_offsets(N, H, W, NP, HP, WP)
    dFx = tl.zeros([NP, WP], ACC)
    dFy = tl.zeros([NP, HP], ACC)
    dlg = tl.zeros([NP], ACC)
    for c in range(C):
        bc = b * C + c
        g = tl.load(g_ptr + bc * (H * W) + img_off, mask=img_mask, other=0.0).to(ACC)
        wc = tl.load(w_ptr + bc * (N * N) + pat_off, mask=pat_mask, other=0.0).to(ACC)
        t = _mm(Fy, g, USE_DOT)  # Fy G        [NP, WP]
        gwc = _mm_nt(t, Fx, USE_DOT)  # Fy G Fx^T   [NP, NP]
        gwc = gwc * inv_gamma
        tl.store(gw_ptr + bc * (N * N) + pat_off, gwc.to(gw_ptr.dtype.element_ty), mask=pat_mask)
        v = _mm(wc, Fx, USE_DOT)  # w Fx        [NP, WP]
        dFy += _mm_nt(v, g, USE_DOT)  # (w Fx) G^T  [NP, HP]
        dFx += _mm_tn(wc, t, USE_DOT)  # w^T (Fy G)  [NP, WP]
        dlg += tl.sum(v * t, axis=1)  # <Fy^T w Fx, G> by rows
    dFx = dFx * inv_gamma
    dFy = dFy * inv_gamma
    dlog_gamma = -inv_gamma * tl.sum(dlg, axis=0)  # = -sum(image * G), image without the canvas
    _store_param_grads(gp_ptr + b * 5, p_ptr + b * 5, Fx, Fy, dFx, dFy, mux, muy, itv, delta, dlog_gamma, N, H, W,
                       NP, HP, WP, ACC)


# ----------------------------------------------------------------------------------------------
# Launchers.
# ----------------------------------------------------------------------------------------------
def _config(dtype: torch.dtype, N: int, H: int, W: int) -> dict:
    NP = triton.next_power_of_2(max(N, 1))
    HP = triton.next_power_of_2(max(H, 1))
    WP = triton.next_power_of_2(max(W, 1))
    acc = tl.float64 if dtype == torch.float64 else tl.float32
    use_dot = acc == tl.float32 and min(NP, HP, WP) >= _DOT_MIN
    # The broadcast-sum form holds an [NP, HP, WP]-sized product in registers: give it more warps.
    largest = NP * max(HP, NP) * WP
    num_warps = 4 if (use_dot or largest <= 4096) else 8
    return dict(N=N, H=H, W=W, SCALE_NUM=max(H, W) - 1, SCALE_DEN=max(N - 1, 1), NP=NP, HP=HP, WP=WP,
                ACC=acc, USE_DOT=use_dot, num_warps=num_warps)


def read_forward(x: Tensor, params: Tensor, N: int) -> Tensor:
    """gamma * Fy x Fx^T for every channel: x [B,C,H,W], params [B,5] -> [B,C,N,N] (x's dtype)."""
    x = x.contiguous()
    params = params.contiguous()
    B, C, H, W = x.shape
    out = torch.empty((B, C, N, N), dtype=x.dtype, device=x.device)
    if B > 0 and C > 0 and N > 0:
        _read_fwd_kernel[(B,)](x, params, out, C, **_config(x.dtype, N, H, W))
    return out


def read_backward(grad_out: Tensor, x: Tensor, params: Tensor, N: int) -> tuple[Tensor, Tensor]:
    """(grad_x [B,C,H,W], grad_params [B,5]) of read_forward, given grad_out [B,C,N,N]."""
    grad_out = grad_out.contiguous()
    x = x.contiguous()
    params = params.contiguous()
    B, C, H, W = x.shape
    grad_x = torch.empty_like(x)
    grad_params = torch.zeros((B, _NUM_PARAMS), dtype=params.dtype, device=params.device)
    if B > 0 and N > 0:
        _read_bwd_kernel[(B,)](grad_out, x, params, grad_x, grad_params, C, **_config(x.dtype, N, H, W))
    elif x.numel() > 0:
        grad_x.zero_()
    return grad_x, grad_params


def write_forward(w: Tensor, params: Tensor, H: int, W: int, canvas: Tensor | None = None) -> Tensor:
    """(1/gamma) Fy^T w Fx (+ canvas) for every channel: w [B,C,N,N] -> [B,C,H,W] (w's dtype)."""
    w = w.contiguous()
    params = params.contiguous()
    B, C, N, _ = w.shape
    out = torch.empty((B, C, H, W), dtype=w.dtype, device=w.device)
    has_canvas = canvas is not None
    if has_canvas:
        canvas = canvas.to(dtype=w.dtype).contiguous()
    if B > 0 and C > 0 and H > 0 and W > 0:
        if N == 0:  # no filters: the image is empty
            out.copy_(canvas) if has_canvas else out.zero_()
        else:
            _write_fwd_kernel[(B,)](w, params, canvas if has_canvas else out, out, C,
                                    HAS_CANVAS=has_canvas, **_config(w.dtype, N, H, W))
    return out


def write_backward(grad_out: Tensor, w: Tensor, params: Tensor, H: int, W: int) -> tuple[Tensor, Tensor]:
    """(grad_w [B,C,N,N], grad_params [B,5]) of write_forward, given grad_out [B,C,H,W].

    The canvas' gradient is grad_out itself and is left to the caller.
    """
    grad_out = grad_out.contiguous()
    w = w.contiguous()
    params = params.contiguous()
    B, C, N, _ = w.shape
    grad_w = torch.empty_like(w)
    grad_params = torch.zeros((B, _NUM_PARAMS), dtype=params.dtype, device=params.device)
    if B > 0 and N > 0 and H > 0 and W > 0:
        _write_bwd_kernel[(B,)](grad_out, w, params, grad_w, grad_params, C, **_config(w.dtype, N, H, W))
    elif w.numel() > 0:
        grad_w.zero_()
    return grad_w, grad_params


# ----------------------------------------------------------------------------------------------
# Differentiable ops over the launcher pairs.
# ----------------------------------------------------------------------------------------------
class _Read(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, params, N):
        ctx.save_for_backward(x, params)
        ctx.N = N
        return read_forward(x, params, N)

    @staticmethod
    def backward(ctx, grad_out):
        x, params = ctx.saved_tensors
        grad_x, grad_params = read_backward(grad_out, x, params, ctx.N)
        return grad_x, grad_params, None


class _Write(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w, params, H, W, canvas):
        ctx.save_for_backward(w, params)
        ctx.size = (H, W)
        ctx.has_canvas = canvas is not None
        return write_forward(w, params, H, W, canvas)

    @staticmethod
    def backward(ctx, grad_out):
        w, params = ctx.saved_tensors
        grad_w, grad_params = write_backward(grad_out, w, params, *ctx.size)
        return grad_w, grad_params, None, None, grad_out if ctx.has_canvas else None


def read(x: Tensor, params: Tensor, N: int) -> Tensor:
    """read_forward with its gradient (read_backward) for x and params."""
    return _Read.apply(x, params, N)


def write(w: Tensor, params: Tensor, H: int, W: int, canvas: Tensor | None = None) -> Tensor:
    """write_forward with its gradient (write_backward) for w, params and the canvas."""
    return _Write.apply(w, params, H, W, canvas)
