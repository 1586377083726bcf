"""Plain-PyTorch statement of DRAW's Gaussian-filterbank attention (Gregor et al. 2015, sec. 3.2).

This module is the ground truth for tests and the "eager" column of the benchmarks, so it is
written for clarity, not speed. Every fast backend must agree with it.

Conventions (shared by every backend):
  params[b] = (g~X, g~Y, log sigma^2, log delta~, log gamma)
  pixel coordinates are 1-based, a = 1..W and b = 1..H, so g~ = 0 is the exact image centre
  gX = (W + 1)/2 * (g~X + 1),   gY = (H + 1)/2 * (g~Y + 1)
  delta = (max(H, W) - 1) / max(N - 1, 1) * exp(log delta~)      (N = 1: one filter at g)
  mu_i  = g + (i - N/2 - 0.5) * delta,  i = 1..N
  F[i, a] = softmax_a( -(a - mu_i)^2 / (2 sigma^2) )   -- each row sums to 1 exactly, also when the
            row's centre lies far outside the image (log-space normalisation, no epsilon)
  The raw parameters are clamped into PARAM_BOUNDS first (gradient 0 outside, as torch.clamp): the
  domain on which every backend computes the same finite values in float32.
  read  (x [B,C,H,W]) -> gamma * Fy x Fx^T            [B,C,N,N]
  write (w [B,C,N,N]) -> (1/gamma) * Fy^T w Fx        [B,C,H,W]   (+ canvas when given)
"""
from __future__ import annotations

import torch
from torch import Tensor


# Bounds of (g~X, g~Y, log sigma^2, log delta~, log gamma). Past them a window is already, to float
# precision, a one-hot filter at the pixel nearest mu (centres 1,000 half-images away, sigma <= 3e-7 px),
# a uniform filter (sigma >= 3e6 px), filters 2e4 images apart or all at g; gamma stays in [1e-13, 1e13].
# Inside them every float32 intermediate of every backend's forward and backward stays finite.
PARAM_BOUNDS = ((-1e3, 1e3), (-1e3, 1e3), (-30.0, 30.0), (-30.0, 10.0), (-30.0, 30.0))


def clamp_params(params: Tensor) -> Tensor:
    """params [B, 5] clamped into PARAM_BOUNDS."""
    lo, hi = (torch.tensor(b, dtype=params.dtype, device=params.device) for b in zip(*PARAM_BOUNDS))
    return torch.clamp(params, lo, hi)


def filterbank(centre: Tensor, delta: Tensor, log_var: Tensor, N: int, size: int) -> Tensor:
    """Row-normalised Gaussian filters [B, N, size] along one image axis."""
    i = torch.arange(1, N + 1, dtype=centre.dtype, device=centre.device)
    mu = (centre[:, None] + (i - N / 2 - 0.5) * delta[:, None])[:, :, None]  # [B, N, 1]
    a = torch.arange(1, size + 1, dtype=centre.dtype, device=centre.device)
    # The softmax's logits minus the largest one, that of the pixel m nearest mu:
    # -((a - mu)^2 - (m - mu)^2) / (2 sigma^2) = -(a - m)((a - mu) + (m - mu)) / (2 sigma^2).
    # Written this way nothing overflows or cancels when mu lies far outside the image (where
    # -(a - mu)^2 would be -inf for every a in float32, and the softmax NaN).
    m = torch.floor(mu + 0.5).clamp(1, size)
    logits = -(a - m) * ((a - mu) + (m - mu)) * (0.5 * torch.exp(-log_var))[:, None, None]
    return torch.softmax(logits, dim=-1)


def filterbanks(params: Tensor, N: int, H: int, W: int) -> tuple[Tensor, Tensor, Tensor]:
    """(Fx [B,N,W], Fy [B,N,H], gamma [B]) from raw parameters [B,5]."""
    gx_t, gy_t, log_var, log_delta_t, log_gamma = clamp_params(params).unbind(dim=1)
    gx = (W + 1) / 2 * (gx_t + 1)
    gy = (H + 1) / 2 * (gy_t + 1)
    delta = (max(H, W) - 1) / max(N - 1, 1) * torch.exp(log_delta_t)
    Fx = filterbank(gx, delta, log_var, N, W)
    Fy = filterbank(gy, delta, log_var, N, H)
    return Fx, Fy, torch.exp(log_gamma)


def attention_read(x: Tensor, params: Tensor, N: int) -> Tensor:
    """gamma * Fy x Fx^T for every channel: [B,C,H,W] -> [B,C,N,N]."""
    H, W = x.shape[-2:]
    Fx, Fy, gamma = filterbanks(params, N, H, W)
    patch = Fy[:, None] @ x @ Fx[:, None].transpose(-1, -2)
    return gamma[:, None, None, None] * patch


def attention_write(w: Tensor, params: Tensor, H: int, W: int, canvas: Tensor | None = None) -> Tensor:
    """(1/gamma) * Fy^T w Fx for every channel: [B,C,N,N] -> [B,C,H,W], added to canvas if given."""
    N = w.shape[-1]
    Fx, Fy, gamma = filterbanks(params, N, H, W)
    image = Fy[:, None].transpose(-1, -2) @ w @ Fx[:, None]
    image = image / gamma[:, None, None, None]
    return image if canvas is None else canvas + image
