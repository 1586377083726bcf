"""Probability helpers shared by the generative models: Gaussian KL terms, reparameterised Gaussian
noise, and the negative log-likelihoods of the usual output distributions.

Everything is elementwise, in nats, with no reduction (a model sums over its own event dimensions).
Distribution parameters come first, the observed value last. Every random draw takes an optional
torch.Generator, so a seeded generator fixes a model's loss (fastgen.train's loss_fn contract).
"""
from __future__ import annotations

import math
from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor

_LOG_2PI = math.log(2 * math.pi)
_LOG_2 = math.log(2)
PIXEL_LEVELS = 256  # 8-bit pixels: the discretised likelihoods' values 0..255


# ---------------------------------------------------------------------------------------------
# Gaussian KL terms


def kl_standard_normal(mu: Tensor, log_sigma: Tensor) -> Tensor:
    """KL(N(mu, sigma^2) || N(0, 1)) = 0.5 * (mu^2 + sigma^2 - 2 log sigma - 1)."""
    return 0.5 * (mu.square() + torch.exp(2 * log_sigma) - 2 * log_sigma - 1)


def kl_normal(mu_q: Tensor, log_sigma_q: Tensor, mu_p: Tensor, log_sigma_p: Tensor) -> Tensor:
    """KL(N(mu_q, sigma_q^2) || N(mu_p, sigma_p^2)), exact:

    log sigma_p - log sigma_q + (sigma_q^2 + (mu_q - mu_p)^2) / (2 sigma_p^2) - 1/2
    """
    inv_var_p = torch.exp(-2 * log_sigma_p)
    return (
        log_sigma_p
        - log_sigma_q
        + 0.5 * (torch.exp(2 * (log_sigma_q - log_sigma_p)) + (mu_q - mu_p).square() * inv_var_p)
        - 0.5
    )


# ---------------------------------------------------------------------------------------------
# reparameterised noise


def standard_noise(like: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
    """eps ~ N(0, I) shaped like ``like`` (its dtype and device), drawn from ``generator``."""
    return torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)


def noise_per_step(eps: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
    """eps [T, ...] filled with standard_noise one step at a time, in place: the numbers a step loop
    that draws each step's noise as it goes gets from the same generator (so a fused core and its
    step-by-step twin see the same noise)."""
    for t in range(eps.shape[0]):
        eps[t] = standard_noise(eps[t], generator)
    return eps


def sample_normal(mu: Tensor, log_sigma: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
    """z = mu + sigma * eps with eps ~ N(0, I): a sample of N(mu, sigma^2) that is differentiable in
    mu and log sigma (the reparameterisation trick)."""
    return mu + torch.exp(log_sigma) * standard_noise(mu, generator)


# ---------------------------------------------------------------------------------------------
# negative log-likelihoods


def bernoulli_nll(logits: Tensor, x: Tensor) -> Tensor:
    """-log Bernoulli(x | p = sigmoid(l)) = softplus(l) - x l, computed as
    max(l, 0) - x l + log1p(exp(-|l|)) (torch's binary cross-entropy with logits), which stays exact
    for logits of any size. For x in [0, 1] that are not binary this is the cross-entropy with soft
    targets: a fine loss, but not a normalised likelihood."""
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none")


def gaussian_nll(mean: Tensor, std: Union[float, Tensor], x: Tensor) -> Tensor:
    """-log N(x | mean, std^2) = 0.5 ((x - mean) / std)^2 + log std + 0.5 log(2 pi), std > 0 given
    (a fixed, not learned, scale is a float). Dividing before squaring keeps a tiny std finite."""
    if isinstance(std, Tensor):
        log_std = torch.log(std)
    else:
        if not std > 0:
            raise ValueError(f"gaussian_nll: std must be > 0, got {std!r}")
        log_std = math.log(std)
    return 0.5 * ((x - mean) / std).square() + log_std + 0.5 * _LOG_2PI


def categorical_nll(logits: Tensor, target: Tensor) -> Tensor:
    """-log softmax(logits)[target] = logsumexp_k(l_k) - l_target, over the last dimension.

    logits [..., K] float, target [...] integer class ids in 0..K-1; returns [...]. The
    logsumexp is shifted by the maximum, so logits of any spread stay exact."""
    if target.dtype.is_floating_point or target.dtype.is_complex or target.dtype == torch.bool:
        raise TypeError(f"categorical_nll: target must hold integer class ids, got {target.dtype}")
    if logits.dim() < 1 or target.shape != logits.shape[:-1]:
        raise ValueError(f"categorical_nll: target must be logits' shape without the class dimension, got "
                         f"logits {tuple(logits.shape)} and target {tuple(target.shape)}")
    K = logits.shape[-1]
    if target.numel() and (int(target.min()) < 0 or int(target.max()) >= K):
        raise ValueError(f"categorical_nll: target ids must lie in 0..{K - 1}, got "
                         f"{int(target.min())}..{int(target.max())}")
    log_probs = torch.log_softmax(logits, dim=-1)
    return -log_probs.gather(-1, target.long().unsqueeze(-1)).squeeze(-1)


def discretized_logistic_nll(mean: Tensor, log_scale: Tensor, pixels: Tensor) -> Tensor:
    """-log P(pixel) for 8-bit pixels under a logistic(mean, scale) binned to 256 levels (PixelCNN++,
    Salimans et al. 2017). Level k in 0..255 sits at y = 2k/255 - 1 in [-1, 1] (mean is on that
    scale) and owns [y - 1/255, y + 1/255], the end levels extended to -inf and +inf, so

        P(k) = sigmoid(a) - sigmoid(b),  a = (y + 1/255 - mean) / s,  b = (y - 1/255 - mean) / s
             = sigmoid(a) sigmoid(-b) (1 - exp(b - a)),

    taken in logs (log-sigmoids and log(1 - exp)), so any scale and offset stays finite."""
    upper, lower = _bin_bounds("discretized_logistic_nll", mean, log_scale, pixels)
    return -(F.logsigmoid(upper) + F.logsigmoid(-lower) + _log1mexp(lower - upper))


def discretized_gaussian_nll(mean: Tensor, log_scale: Tensor, pixels: Tensor) -> Tensor:
    """-log P(pixel) for 8-bit pixels under N(mean, s^2) binned to 256 levels, with the levels and
    bins of discretized_logistic_nll: P(k) = Phi(a) - Phi(b). Taken as
    log Phi(a) + log(1 - Phi(b) / Phi(a)), on the side of 0 where both are small tails (Phi(a) - Phi(b)
    = Phi(-b) - Phi(-a)), so any scale and offset stays finite."""
    upper, lower = _bin_bounds("discretized_gaussian_nll", mean, log_scale, pixels)
    flip = lower > 0  # both bounds in the upper tail: use the mirrored bin
    upper, lower = torch.where(flip, -lower, upper), torch.where(flip, -upper, lower)
    log_upper = torch.special.log_ndtr(upper)
    return -(log_upper + _log1mexp(torch.special.log_ndtr(lower) - log_upper))


def _bin_bounds(name: str, mean: Tensor, log_scale: Tensor, pixels: Tensor) -> tuple[Tensor, Tensor]:
    """(a, b): pixel k's bin [y - 1/255, y + 1/255] standardised by mean and scale, with level 0's
    lower and level 255's upper bound at -inf and +inf."""
    if pixels.dtype.is_floating_point or pixels.dtype.is_complex or pixels.dtype == torch.bool:
        raise TypeError(f"{name}: pixels must be integers 0..255, got {pixels.dtype}")
    if pixels.numel() and (int(pixels.min()) < 0 or int(pixels.max()) >= PIXEL_LEVELS):
        raise ValueError(f"{name}: pixels must lie in 0..255, got {int(pixels.min())}..{int(pixels.max())}")
    # Each edge (2k +- 1)/255 - 1 is computed the same way for the two bins that share it, so the 256
    # bins tile the line exactly even when a tiny scale magnifies rounding.
    twice = 2 * pixels.to(mean.dtype)
    inv_scale = torch.exp(-log_scale)
    edge = lambda odd: (odd / (PIXEL_LEVELS - 1) - 1 - mean) * inv_scale
    upper = torch.where(pixels == PIXEL_LEVELS - 1, math.inf, edge(twice + 1))
    lower = torch.where(pixels == 0, -math.inf, edge(twice - 1))
    return upper, lower


def _log1mexp(x: Tensor) -> Tensor:
    """log(1 - exp(x)) for x <= 0: log(-expm1(x)) near 0, log1p(-exp(x)) below -log 2 (Maechler,
    "Accurately computing log(1 - exp(-|a|))"). Each branch sees only its own range, so the unused
    one cannot send an infinite or NaN gradient."""
    near_zero = x > -_LOG_2
    return torch.where(near_zero, torch.log(-torch.expm1(x.clamp(min=-_LOG_2))),
                       torch.log1p(-torch.exp(x.clamp(max=-_LOG_2))))


__all__ = ["PIXEL_LEVELS", "bernoulli_nll", "categorical_nll", "discretized_gaussian_nll", "discretized_logistic_nll",
           "gaussian_nll", "kl_normal", "kl_standard_normal", "noise_per_step", "sample_normal", "standard_noise"]
