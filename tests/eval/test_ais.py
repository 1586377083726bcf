"""fastgen.eval.ais on a model whose log p(x) is known in closed form: probabilistic PCA,
x = W z + b + σ ε with z ~ N(0, I_D), so p(x) = N(b, W Wᵀ + σ² I). float64 throughout."""
from __future__ import annotations

import math

import pytest
import torch

from fastgen.eval.ais import annealing_schedule, ais_log_likelihood, prior_importance_log_likelihood

D, P, SIGMA, ROWS = 5, 20, 0.5, 10


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: a second OpenMP thread only adds synchronisation (several-fold on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def ppca(scale: float = 2.0, device="cpu"):
    """W = scale · (orthonormal columns): the posterior N(m, I / (1 + scale²/σ²)) is tight (std 0.24),
    about 10 nats from the prior, so sampling from the prior alone struggles. The model and x on ``device``
    (drawn on the CPU: the same values everywhere), the exact log p(x) on the CPU."""
    g = torch.Generator().manual_seed(1)
    W = scale * torch.linalg.qr(torch.randn(P, D, generator=g, dtype=torch.float64))[0]
    b = 0.3 * torch.randn(P, generator=g, dtype=torch.float64)
    z = torch.randn(ROWS, D, generator=g, dtype=torch.float64)
    x = z @ W.T + b + SIGMA * torch.randn(ROWS, P, generator=g, dtype=torch.float64)
    exact = torch.distributions.MultivariateNormal(b, W @ W.T + SIGMA ** 2 * torch.eye(P, dtype=torch.float64)).log_prob(x)
    W, b, x = W.to(device), b.to(device), x.to(device)

    def log_likelihood(x_rows, z_rows):
        r = x_rows - z_rows @ W.T - b
        return -0.5 * r.square().sum(-1) / SIGMA ** 2 - P * math.log(SIGMA) - 0.5 * P * math.log(2 * math.pi)
    return log_likelihood, x, exact


def test_ais_matches_the_closed_form_and_beats_prior_sampling_on_the_same_budget():
    log_likelihood, x, exact = ppca()
    chains, steps, leapfrog = 128, 1000, 5
    estimate, acceptance = ais_log_likelihood(log_likelihood, x, D, n_chains=chains, n_steps=steps,
                                              leapfrog_steps=leapfrog, step_size=0.3, return_acceptance=True,
                                              generator=torch.Generator().manual_seed(2))
    # the same number of decoder evaluations, spent on plain importance sampling from the prior: what an
    # AIS with no annealing (or a weight update of the wrong sign, which drives the weights away) amounts to
    budget = chains * steps * (leapfrog + 1)
    naive = prior_importance_log_likelihood(log_likelihood, x, D, budget, batch_size=1 << 16,
                                            generator=torch.Generator().manual_seed(3))
    ais_error, naive_error = (estimate - exact).abs().mean().item(), (naive - exact).abs().mean().item()
    print(f"log p(x) exact {exact.mean():.3f}; AIS error {ais_error:.3f} (mean signed {(estimate - exact).mean():+.3f}, "
          f"acceptance {acceptance:.2f}); prior IS error {naive_error:.3f} ({budget:,} samples)")
    assert estimate.dtype == torch.float64 and estimate.shape == (ROWS,)
    assert ais_error < 0.05
    assert naive_error > 3 * ais_error and naive_error > 0.1
    assert abs(acceptance - 0.65) < 0.1  # the step size adapted toward its target


def test_a_decoder_that_ignores_z_gives_its_constant_exactly():
    # every weight increment is (β_t − β_{t−1}) · c, so each chain's weight is c whatever the moves:
    # an off-by-one schedule or a weight taken at the wrong β would still be caught by the PPCA case,
    # this one pins the bookkeeping (and the broadcasting over chains) exactly
    x = torch.randn(3, 4, dtype=torch.float64)
    estimate = ais_log_likelihood(lambda xr, z: xr.sum(-1) + 0 * z.sum(-1), x, 2, n_chains=3, n_steps=7,
                                  leapfrog_steps=2, batch_size=2, progress=True)
    torch.testing.assert_close(estimate, x.sum(-1), rtol=0, atol=1e-12)


@pytest.mark.parametrize("schedule", ["sigmoid", "linear"])
def test_schedule_runs_from_prior_to_posterior(schedule):
    betas = annealing_schedule(50, schedule)
    assert betas[0] == 0 and betas[-1] == 1 and len(betas) == 51 and bool((betas.diff() > 0).all())


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(latent_dim=0), ValueError, "latent_dim must be an int >= 1"),
    (dict(n_chains=0), ValueError, "n_chains must be"),
    (dict(n_steps=2.5), ValueError, "n_steps must be"),
    (dict(step_size=-1.0), ValueError, "step_size must be a finite number > 0"),
    (dict(target_acceptance=1.5), ValueError, "target_acceptance must lie in"),
    (dict(schedule="cosine"), ValueError, "schedule must be one of"),
    (dict(batch_size=0), ValueError, "batch_size must be"),
    (dict(fn=lambda x, z: z), ValueError, r"must return a tensor of shape \[6\]"),
    (dict(fn=3), TypeError, "log_likelihood_fn must be callable"),
    (dict(x=torch.zeros(0, 2)), ValueError, "non-empty leading batch"),
])
def test_bad_input(kwargs, error, message):
    args = dict(fn=lambda x, z: -z.square().sum(-1), x=torch.zeros(3, 2), latent_dim=2, n_chains=2, n_steps=3)
    args.update(kwargs)
    fn, x, latent_dim = args.pop("fn"), args.pop("x"), args.pop("latent_dim")
    with pytest.raises(error, match=message):
        ais_log_likelihood(fn, x, latent_dim, **args)
