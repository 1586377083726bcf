"""The paper's toy problem (Section 5.1): x uniform over the four one-hot vectors of R^4, z in R^2.

The best model puts each x's posterior on its own quarter of the prior's mass, so the best ELBO and the
best log-likelihood are both −log 4 ≈ −1.386 nats; a Gaussian q(z|x) cannot tile the plane that way
and its ELBO stays below. AVB's q(z|x) has no density, so its ELBO is reported three ways
(:func:`toy_bounds`):

* ``elbo_adversary``: the paper's estimate, E_q[log p(x|z)] − E_q[T] (as good as T is);
* ``elbo_entropy``: E_q[log p(x|z) + log p(z)] + H(q(z|x)) with the entropy from the Kozachenko–Leonenko
  nearest-neighbour estimator (Kozachenko & Leonenko 1987) on the 2-D draws: needs no adversary;
* ``log_px``: log p(x) by importance sampling from the prior (exact to ~0.01 nats in two dimensions),
  the likelihood the bound lies below.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

from fastgen.eval.ais import prior_importance_log_likelihood
from fastgen.models.avb.losses import elbo_via_adversary
from fastgen.models.avb.model import AVB, standard_normal_log_prob

TOY_POINTS = 4
OPTIMUM = -math.log(TOY_POINTS)
_SE_BATCHES = 10


def toy_data(n: int = 4096, dtype: torch.dtype = torch.float32) -> Tensor:
    """n rows, the four one-hot vectors in turn (n a multiple of 4: exactly uniform)."""
    if not isinstance(n, int) or n < TOY_POINTS or n % TOY_POINTS:
        raise ValueError(f"n must be a positive multiple of {TOY_POINTS}, got {n!r}")
    return torch.eye(TOY_POINTS, dtype=dtype).repeat(n // TOY_POINTS, 1)


def _points(model: AVB) -> Tensor:
    """The four one-hot x in the model's dtype, on its device."""
    p = next(model.parameters())
    return torch.eye(TOY_POINTS, dtype=p.dtype, device=p.device)


def nearest_neighbour_entropy(samples: Tensor, k: int = 5) -> Tensor:
    """Kozachenko–Leonenko estimate of the differential entropy (nats) of the distribution of ``samples``
    [n, d]: ψ(n) − ψ(k) + log V_d + (d/n) Σ log r_k(i), r_k the distance to the k-th nearest neighbour."""
    n, d = samples.shape
    if n <= k:
        raise ValueError(f"need more than k={k} samples, got {n}")
    x = samples.double()
    r = torch.cdist(x, x).fill_diagonal_(math.inf).kthvalue(k, 1).values
    log_unit_ball = 0.5 * d * math.log(math.pi) - math.lgamma(0.5 * d + 1)
    digamma = torch.special.digamma(torch.tensor([float(n), float(k)], dtype=torch.float64, device=x.device))
    return digamma[0] - digamma[1] + log_unit_ball + d * r.clamp_min(1e-300).log().mean()


@torch.no_grad()
def toy_bounds(model: AVB, samples: int = 2000, prior_samples: int = 200_000,
               generator: Optional[torch.Generator] = None) -> dict[str, float]:
    """The ELBO and log p(x) of a toy model, averaged over the four points (see the module docstring), from
    ``samples`` draws of z per x (``elbo_adversary_se``: the standard error of ``elbo_adversary`` over them) and
    ``prior_samples`` prior draws."""
    x = _points(model)
    z = model.posterior_samples(x, samples, generator)                        # [4, n, 2]
    cross = (model.log_likelihood(x.unsqueeze(1), z) + standard_normal_log_prob(z)).mean(1)
    entropy = torch.stack([nearest_neighbour_entropy(z[i]) for i in range(TOY_POINTS)]).to(cross.dtype)
    log_px = prior_importance_log_likelihood(model.log_likelihood, x, model.config.latent_dim, prior_samples,
                                             batch_size=50_000, generator=generator)
    # the estimate through T in independent batches of draws: their spread gives its sampling error
    batches = torch.stack([elbo_via_adversary(model, x, -(-samples // _SE_BATCHES), generator).mean()
                           for _ in range(_SE_BATCHES)])
    return {"elbo_adversary": float(batches.mean()), "elbo_adversary_se": float(batches.std() / _SE_BATCHES ** 0.5),
            "elbo_entropy": float((cross + entropy).mean()), "log_px": float(log_px.mean()),
            "reconstruction": float(model.log_likelihood(x.unsqueeze(1), z).mean())}


def posterior_separation(model: AVB, samples: int = 500, generator: Optional[torch.Generator] = None) -> float:
    """How well q(z|x) separates the four points: the share of draws z ~ q(z|x) whose most probable x under
    the decoder is their own x (0.25: no separation, 1: four disjoint clusters)."""
    with torch.no_grad():
        x = _points(model)
        z = model.posterior_samples(x, samples, generator)
        # the decoder's own reading: argmax_x p(x|z) for each draw
        labels = model.decoder(z).argmax(-1)  # the most probable of the four one-hot x (bernoulli or categorical)
    return float((labels == torch.arange(TOY_POINTS, device=x.device)[:, None]).float().mean())


__all__ = ["OPTIMUM", "TOY_POINTS", "nearest_neighbour_entropy", "posterior_separation", "toy_bounds", "toy_data"]
