"""Annealed importance sampling (Neal 2001) of log p(x) = log ∫ p(x|z) p(z) dz for latent-variable
decoders, with Hamiltonian Monte Carlo transitions: the protocol of Wu, Burda, Salakhutdinov &
Grosse 2017 ("On the quantitative analysis of decoder-based generative models"), which the AVB paper
(Mescheder et al. 2017) uses for its log-likelihoods.

* Prior p(z) = N(0, I) in ``latent_dim`` dimensions; the decoder enters only through
  ``log_likelihood_fn(x, z) -> [n]`` (log p(x|z) per row, differentiable in z), so any model with a
  tractable decoder works (VAE, AVB, VAE-GAN, DRAW-style decoders).
* Geometric path f_t(z) = p(z) p(x|z)^β_t from β_0 = 0 (the prior) to β_T = 1 (the unnormalised
  posterior); ``schedule`` "sigmoid" (Wu et al.'s: dense at both ends) or "linear".
* Each chain starts at a prior sample; step t adds (β_t − β_{t−1}) log p(x|z) to its log weight at
  the current state, then moves z by one HMC transition (``leapfrog_steps`` leapfrog steps, then a
  Metropolis accept/reject) that leaves f_t invariant.
* Step size: one per data row, shared by its chains, multiplied by ``1 + adapt_rate`` after a
  transition whose mean acceptance over the row's chains exceeds ``target_acceptance``, divided by it
  otherwise (Wu et al.'s adaptation toward 0.65).
* ``n_chains`` chains per row, all rows and chains of a batch advanced together as one [rows·chains,
  latent_dim] tensor; log p(x) ≈ log-mean-exp of the chains' final log weights (an estimate biased
  low in expectation: a stochastic lower bound).

Defaults: 16 chains, 500 intermediate distributions, 10 leapfrog steps, initial step size 0.1,
target acceptance 0.65. Cost: n · n_chains · n_steps · (leapfrog_steps + 1) evaluations of the
decoder with its gradient; the progress bar counts annealing steps of each batch.
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import torch
from torch import Tensor
from tqdm import tqdm

LogLikelihoodFn = Callable[[Tensor, Tensor], Tensor]
SCHEDULES = ("sigmoid", "linear")
_SIGMOID_WIDTH = 4.0  # Wu et al.'s sigmoid schedule spans [-4, 4] before rescaling to [0, 1]


def annealing_schedule(n_steps: int, schedule: str = "sigmoid", dtype: torch.dtype = torch.float64) -> Tensor:
    """β_0 = 0 < β_1 < ... < β_T = 1, ``n_steps + 1`` values."""
    if not isinstance(n_steps, int) or n_steps < 1:
        raise ValueError(f"n_steps must be an int >= 1, got {n_steps!r}")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
    t = torch.linspace(0.0, 1.0, n_steps + 1, dtype=torch.float64)
    if schedule == "sigmoid":
        s = torch.sigmoid(_SIGMOID_WIDTH * (2 * t - 1))
        t = (s - s[0]) / (s[-1] - s[0])
    return t.to(dtype)


def log_mean_exp(values: Tensor, dim: int) -> Tensor:
    return torch.logsumexp(values, dim) - math.log(values.shape[dim])


def _standard_normal_log_prob(z: Tensor) -> Tensor:
    return -0.5 * (z.square().sum(-1) + z.shape[-1] * math.log(2 * math.pi))


def _check(log_likelihood_fn, x: Tensor, latent_dim: int, counts: dict, rates: Optional[dict] = None) -> None:
    if not callable(log_likelihood_fn):
        raise TypeError(f"log_likelihood_fn must be callable (x, z) -> [n], got {type(log_likelihood_fn).__name__}")
    if not isinstance(x, Tensor) or x.dim() < 1 or x.shape[0] == 0:
        raise ValueError(f"x must be a tensor with a non-empty leading batch dimension, got "
                         f"{tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}")
    for name, value in {"latent_dim": latent_dim, **counts}.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    rates = rates or {}
    for name, value in rates.items():
        if not (isinstance(value, (int, float)) and 0 < value and math.isfinite(value)):
            raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    if not rates.get("target_acceptance", 0.5) < 1:
        raise ValueError(f"target_acceptance must lie in (0, 1), got {rates['target_acceptance']!r}")


class _Path:
    """log p(x|z) and its gradient in z for the rows x (chains repeated); the annealed energy
    U_β(z) = −log p(z) − β log p(x|z) follows from them for any β without another decoder call."""

    def __init__(self, fn: LogLikelihoodFn, x: Optional[Tensor]):
        self.fn, self.x = fn, x

    def log_likelihood(self, z: Tensor) -> Tensor:
        out = self.fn(self.x, z)
        if not isinstance(out, Tensor) or out.shape != z.shape[:1]:
            raise ValueError(f"log_likelihood_fn(x, z) must return a tensor of shape [{z.shape[0]}] (one log p(x|z) "
                             f"per row), got {tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__}")
        return out

    def evaluate(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """(log p(x|z), ∂ log p(x|z)/∂z), detached."""
        with torch.enable_grad():
            z = z.detach().requires_grad_(True)
            ll = self.log_likelihood(z)
            grad, = torch.autograd.grad(ll.sum(), z)
        return ll.detach(), grad


def _energy(z: Tensor, ll: Tensor, beta: Tensor) -> Tensor:
    return -(_standard_normal_log_prob(z) + beta * ll)


def _hmc(path: _Path, z: Tensor, ll: Tensor, grad_ll: Tensor, beta: Tensor, step: Tensor, leapfrog_steps: int,
         generator: Optional[torch.Generator]):
    """One HMC transition leaving f_β invariant: (z, log p(x|z), its gradient, acceptance probability)."""
    p = torch.randn(z.shape, generator=generator, dtype=z.dtype, device=z.device)
    h0 = _energy(z, ll, beta) + 0.5 * p.square().sum(-1)
    eps = step[:, None]
    z_new, ll_new, grad_new = z, ll, grad_ll
    p = p - 0.5 * eps * (z - beta * grad_ll)  # ∂U/∂z = z − β ∂ log p(x|z)/∂z
    for i in range(leapfrog_steps):
        z_new = z_new + eps * p
        ll_new, grad_new = path.evaluate(z_new)
        p = p - (eps if i < leapfrog_steps - 1 else 0.5 * eps) * (z_new - beta * grad_new)
    h1 = _energy(z_new, ll_new, beta) + 0.5 * p.square().sum(-1)
    accept_prob = torch.nan_to_num(torch.exp(torch.clamp(h0 - h1, max=0.0)), nan=0.0)  # diverged: rejected
    accepted = torch.rand(accept_prob.shape, generator=generator, dtype=z.dtype, device=z.device) < accept_prob
    return (torch.where(accepted[:, None], z_new, z), torch.where(accepted, ll_new, ll),
            torch.where(accepted[:, None], grad_new, grad_ll), accept_prob)


def _ais_batch(fn: LogLikelihoodFn, x: Tensor, latent_dim: int, n_chains: int, betas: Tensor, leapfrog_steps: int,
               step_size: float, target_acceptance: float, adapt_rate: float, generator, dtype,
               bar: tqdm) -> tuple[Tensor, Tensor]:
    rows, device = x.shape[0], x.device
    path = _Path(fn, x.repeat_interleave(n_chains, dim=0))  # row r's chains are rows r*K .. r*K + K-1
    z = torch.randn(rows * n_chains, latent_dim, generator=generator, dtype=dtype, device=device)
    step = torch.full((rows,), float(step_size), dtype=dtype, device=device)
    log_w = torch.zeros(rows * n_chains, dtype=dtype, device=device)
    ll, grad_ll = path.evaluate(z)
    acceptance = torch.zeros((), dtype=dtype, device=device)
    for t in range(1, len(betas)):
        # the weight takes f_t(z) / f_{t-1}(z) at the state the chain holds before its move under f_t
        log_w = log_w + (betas[t] - betas[t - 1]) * ll
        z, ll, grad_ll, accept_prob = _hmc(path, z, ll, grad_ll, betas[t], step.repeat_interleave(n_chains),
                                           leapfrog_steps, generator)
        row_accept = accept_prob.view(rows, n_chains).mean(1)
        step = torch.where(row_accept > target_acceptance, step * (1 + adapt_rate), step / (1 + adapt_rate))
        acceptance = acceptance + row_accept.mean()
        bar.update(1)
    return log_mean_exp(log_w.view(rows, n_chains), 1), acceptance / (len(betas) - 1)


def ais_log_likelihood(log_likelihood_fn: LogLikelihoodFn, x: Tensor, latent_dim: int, *, n_chains: int = 16,
                       n_steps: int = 500, leapfrog_steps: int = 10, step_size: float = 0.1,
                       target_acceptance: float = 0.65, adapt_rate: float = 0.02, schedule: str = "sigmoid",
                       batch_size: Optional[int] = None, generator: Optional[torch.Generator] = None,
                       dtype: Optional[torch.dtype] = None, progress: bool = False,
                       return_acceptance: bool = False):
    """AIS estimate of log p(x) for every row of ``x`` (see the module docstring): a tensor [n].

    ``log_likelihood_fn(x_rows, z) -> [m]`` gets ``m`` rows of x (each repeated for its chains) and
    latents [m, latent_dim] of ``dtype`` (default: x's floating dtype, else float32).
    ``batch_size``: data rows advanced together (default: all). ``return_acceptance``: also return
    the mean HMC acceptance rate over all transitions (a diagnostic: near ``target_acceptance``
    once the step size has adapted)."""
    _check(log_likelihood_fn, x, latent_dim, {"n_chains": n_chains, "n_steps": n_steps,
                                              "leapfrog_steps": leapfrog_steps},
           {"step_size": step_size, "target_acceptance": target_acceptance, "adapt_rate": adapt_rate})
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"batch_size must be an int >= 1 or None, got {batch_size!r}")
    dtype = dtype or (x.dtype if x.is_floating_point() else torch.float32)
    betas = annealing_schedule(n_steps, schedule, dtype).to(x.device)
    n = x.shape[0]
    batch_size = batch_size or n
    out, accept = [], []
    with torch.no_grad(), tqdm(total=n_steps * math.ceil(n / batch_size), desc="AIS", unit="step",
                               leave=False, disable=not progress) as bar:
        for start in range(0, n, batch_size):
            estimate, rate = _ais_batch(log_likelihood_fn, x[start:start + batch_size], latent_dim, n_chains, betas,
                                        leapfrog_steps, step_size, target_acceptance, adapt_rate, generator, dtype, bar)
            out.append(estimate)
            accept.append(rate * min(batch_size, n - start))
    result = torch.cat(out)
    return (result, float(sum(accept) / n)) if return_acceptance else result


def prior_importance_log_likelihood(log_likelihood_fn: LogLikelihoodFn, x: Tensor, latent_dim: int,
                                    n_samples: int, *, batch_size: int = 4096,
                                    generator: Optional[torch.Generator] = None,
                                    dtype: Optional[torch.dtype] = None) -> Tensor:
    """log p(x) ≈ log-mean-exp over ``n_samples`` prior samples z of log p(x|z), per row of x: plain
    importance sampling with the prior as proposal. Accurate in very few latent dimensions (the
    AVB toy's two) and the baseline AIS must beat elsewhere; ``batch_size`` samples per call."""
    _check(log_likelihood_fn, x, latent_dim, {"n_samples": n_samples, "batch_size": batch_size})
    dtype = dtype or (x.dtype if x.is_floating_point() else torch.float32)
    path = _Path(log_likelihood_fn, None)
    out = []
    with torch.no_grad():
        for row in x:
            parts = []
            for start in range(0, n_samples, batch_size):
                m = min(batch_size, n_samples - start)
                z = torch.randn(m, latent_dim, generator=generator, dtype=dtype, device=x.device)
                path.x = row.unsqueeze(0).expand(m, *row.shape)
                parts.append(path.log_likelihood(z))
            out.append(torch.logsumexp(torch.cat(parts), 0) - math.log(n_samples))
    return torch.stack(out)


__all__ = ["SCHEDULES", "annealing_schedule", "ais_log_likelihood", "log_mean_exp", "prior_importance_log_likelihood"]
