"""AVB's two-player objective and the VAE's ELBO as fastgen.train loss functions and Phases.

Adversary (logistic loss, Eq. 3 of the paper): maximise E[log σ(T(x, z_q))] + E[log(1 − σ(T(x, z_p)))]
with z_q ~ q(z|x) and z_p ~ p(z) (adaptive contrast: z̃ and N(0, I)); its loss is the negative.
Primal (Eq. 9): maximise E_q[log p(x|z) − T(x, z)] over encoder and decoder, z reparameterised so the
gradient reaches the encoder through z (adaptive contrast: E[log p(x|z) − T(x, z̃) − log r(z|x) + log p(z)]).
The adversary's parameters get no gradient from the primal loss and the encoder and decoder none from
the adversary's: the Trainer back-propagates each phase's loss into its own parameters only
(fastgen.train.phases), and the alternating adversary loss detaches z besides.

Schedules (:func:`avb_phases`): "alternate" runs ``adversary_steps`` adversary updates (each on a fresh
draw of z) before each primal update, two forwards; "simultaneous" updates both from one forward.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from fastgen.models.avb.model import AVB, standard_normal_log_prob
from fastgen.train import Phase

SCHEDULES = ("alternate", "simultaneous")


def _contrast(model: AVB, z: Tensor) -> tuple[Tensor, Tensor]:
    """Adaptive contrast over z [B, m, D]: (z̃, log r(z|x)) with r = N(μ, σ²), μ and σ the moments of
    the m draws of each x (gradients flow through them, as through z)."""
    mu = z.mean(1, keepdim=True)
    sigma = (z.var(1, keepdim=True) + 1e-6).sqrt()
    z_tilde = (z - mu) / sigma
    return z_tilde, standard_normal_log_prob(z_tilde) - sigma.log().sum(-1)


def _adversary_inputs(model: AVB, x: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(x repeated per draw, z, what the adversary sees of z, log r(z|x) or None) for a batch."""
    m = model.config.samples_per_x
    z = model.posterior_samples(x, m, generator)
    xs = x.unsqueeze(1).expand(-1, m, -1)
    if not model.config.adaptive_contrast:
        return xs, z, z, None
    z_tilde, log_r = _contrast(model, z)
    return xs, z, z_tilde, log_r


def _logistic_loss(t_q: Tensor, t_p: Tensor) -> Tensor:
    return F.softplus(-t_q).mean() + F.softplus(t_p).mean()


def _contrast_samples(like: Tensor, generator: torch.Generator) -> Tensor:
    """z_p from p(z) = N(0, I), or with adaptive contrast from r̃ = N(0, I): the same draw."""
    return torch.randn(like.shape, generator=generator, dtype=like.dtype, device=like.device)


def _kl(t_q: Tensor, z: Tensor, log_r: Optional[Tensor]) -> Tensor:
    """Per-draw estimate of log q(z|x) − log p(z): T, plus log r − log p with adaptive contrast."""
    return t_q if log_r is None else t_q + log_r - standard_normal_log_prob(z)


def _terms(model: AVB, x: Tensor, generator: torch.Generator) -> dict[str, Tensor]:
    xs, z, z_seen, log_r = _adversary_inputs(model, x, generator)
    t_q = model.adversary(xs, z_seen)
    kl = _kl(t_q, z, log_r)
    reconstruction = model.log_likelihood(xs, z)
    return {"xs": xs, "z_seen": z_seen, "t_q": t_q, "kl": kl, "reconstruction": reconstruction}


def _primal_out(terms: dict) -> tuple[Tensor, dict]:
    elbo = terms["reconstruction"] - terms["kl"]
    metrics = {"elbo": elbo.mean(), "reconstruction": terms["reconstruction"].mean(), "kl": terms["kl"].mean()}
    return -elbo.mean(), metrics


def adversary_loss(model: AVB, x: Tensor, generator: torch.Generator):
    """The adversary's logistic loss on detached draws of z (alternating schedule)."""
    with torch.no_grad():
        xs, _, z_seen, _ = _adversary_inputs(model, x, generator)
    t_q = model.adversary(xs, z_seen)
    t_p = model.adversary(xs, _contrast_samples(z_seen, generator))
    return _logistic_loss(t_q, t_p), {"accuracy": 0.5 * ((t_q > 0).float().mean() + (t_p < 0).float().mean())}


def primal_loss(model: AVB, x: Tensor, generator: torch.Generator):
    """−E_q[log p(x|z) − KL estimate] (alternating schedule); metrics: the ELBO estimate via T and its parts."""
    return _primal_out(_terms(model, x, generator))


def joint_losses(model: AVB, x: Tensor, generator: torch.Generator):
    """Both losses from one forward (simultaneous schedule): {"adversary": ..., "primal": ...}."""
    terms = _terms(model, x, generator)
    t_p = model.adversary(terms["xs"], _contrast_samples(terms["z_seen"], generator))
    primal, metrics = _primal_out(terms)
    return {"adversary": _logistic_loss(terms["t_q"], t_p), "primal": primal}, metrics


def gaussian_elbo(model: AVB, x: Tensor, generator: Optional[torch.Generator] = None) -> tuple[Tensor, Tensor]:
    """(ELBO per row with one reparameterised draw for log p(x|z), analytic KL per row) of the Gaussian encoder."""
    mu, log_sigma = model.encoder(x)
    z = mu + log_sigma.exp() * torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
    kl = 0.5 * (mu.square() + (2 * log_sigma).exp() - 2 * log_sigma - 1).sum(-1)
    return model.log_likelihood(x, z) - kl, kl


def vae_loss(model: AVB, x: Tensor, generator: torch.Generator):
    """The Gaussian VAE's negative ELBO (analytic KL)."""
    elbo, kl = gaussian_elbo(model, x, generator)
    return -elbo.mean(), {"elbo": elbo.mean(), "reconstruction": (elbo + kl).mean(), "kl": kl.mean()}


def avb_phases(model: AVB, schedule: str = "alternate", adversary_steps: int = 1, lr: Optional[float] = None,
               adversary_lr: Optional[float] = None, betas: Optional[tuple[float, float]] = None) -> list[Phase]:
    """The Trainer phases of ``model``: adversary then primal (AVB), or one "vae" phase (Gaussian encoder)."""
    if not isinstance(model, AVB):
        raise TypeError(f"avb_phases: model must be an AVB, got {type(model).__name__}")
    if not model.implicit:
        return [Phase("vae", model.primal_parameters(), vae_loss, lr=lr, betas=betas)]
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
    if not isinstance(adversary_steps, int) or adversary_steps < 1:
        raise ValueError(f"adversary_steps must be an int >= 1, got {adversary_steps!r}")
    if schedule == "simultaneous":
        if adversary_steps != 1:
            raise ValueError("adversary_steps applies to the alternate schedule (simultaneous updates share one forward)")
        return [Phase("adversary", model.adversary, joint_losses, lr=adversary_lr or lr, betas=betas),
                Phase("primal", model.primal_parameters(), joint_losses, lr=lr, betas=betas)]
    return [Phase("adversary", model.adversary, adversary_loss, lr=adversary_lr or lr, betas=betas,
                  repeat=adversary_steps),
            Phase("primal", model.primal_parameters(), primal_loss, lr=lr, betas=betas)]


@torch.no_grad()
def elbo_via_adversary(model: AVB, x: Tensor, samples: int = 1, generator: Optional[torch.Generator] = None) -> Tensor:
    """Per-row ELBO estimate: the paper's E_q[log p(x|z)] − KL estimate through T for AVB (a bound only as good
    as T), the exact-KL ELBO for the Gaussian VAE; ``samples`` draws of z per row."""
    # one batched forward: each x repeated k times, each repeat drawing the m z of one training step
    if not model.implicit:
        return gaussian_elbo(model, x.repeat_interleave(samples, 0), generator)[0].reshape(len(x), samples).mean(1)
    m, k = model.config.samples_per_x, math.ceil(samples / model.config.samples_per_x)
    terms = _terms(model, x.repeat_interleave(k, 0), generator)
    return (terms["reconstruction"] - terms["kl"]).reshape(len(x), k * m)[:, :samples].mean(1)


__all__ = ["SCHEDULES", "adversary_loss", "avb_phases", "elbo_via_adversary", "gaussian_elbo", "joint_losses",
           "primal_loss", "vae_loss"]
