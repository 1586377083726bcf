"""fastgen.nn.distributions against independent computations in float64: torch.distributions, brute-force
quadrature, and 50-digit mpmath evaluations of the plain formulas, in the extreme regimes too (logits of
+-1e4, tiny and huge scales), where a textbook implementation overflows or cancels."""
import math

import mpmath
import pytest
import torch
from torch.distributions import Categorical, Normal, kl_divergence

from fastgen.nn.distributions import (bernoulli_nll, categorical_nll, discretized_gaussian_nll,
                                      discretized_logistic_nll, gaussian_nll, kl_normal, kl_standard_normal,
                                      noise_per_step, sample_normal, standard_noise)
from tests.helpers import assert_rel_close, fresh_generator

mpmath.mp.dps = 50
F64 = torch.float64


def mp_reference(fn, *tensors) -> torch.Tensor:
    """fn applied elementwise in mpmath to the broadcast float64 tensors."""
    tensors = torch.broadcast_tensors(*tensors)
    flat = [t.reshape(-1).tolist() for t in tensors]
    values = [float(fn(*(mpmath.mpf(v) for v in args))) for args in zip(*flat)]
    return torch.tensor(values, dtype=F64).view(tensors[0].shape)


def assert_close_elementwise(actual, expected, rel, what):
    """Every element within rel of its reference (relative to max(|ref|, 1)): a norm-wise check would
    let the small elements next to a 1e4 one be wrong."""
    assert torch.isfinite(actual).all(), f"{what}: non-finite values {actual}"
    err = (actual - expected).abs() / expected.abs().clamp(min=1)
    print(f"{what}: max rel err {err.max().item():.2e}")
    assert err.max() < rel, f"{what}: max rel err {err.max().item():.2e} at {err.argmax().item()}"


# ---------------------------------------------------------------------------------------------
# KL


def test_kl_matches_torch_distributions():
    gen = fresh_generator()
    mu_q, mu_p = torch.randn(2, 7, 9, generator=gen, dtype=F64) * 2
    ls_q, ls_p = torch.randn(2, 7, 9, generator=gen, dtype=F64)
    q, p = Normal(mu_q, ls_q.exp()), Normal(mu_p, ls_p.exp())
    std = Normal(torch.zeros_like(mu_q), torch.ones_like(mu_q))
    assert_rel_close(kl_standard_normal(mu_q, ls_q), kl_divergence(q, std), 1e-12, "KL(q||N(0,1))", gen.initial_seed())
    assert_rel_close(kl_normal(mu_q, ls_q, mu_p, ls_p), kl_divergence(q, p), 1e-12, "KL(q||p)", gen.initial_seed())
    zero = torch.zeros(3, dtype=F64)
    assert torch.equal(kl_standard_normal(zero, zero), zero)  # the constant is exact: KL(N(0,1)||N(0,1)) = 0
    assert torch.equal(kl_normal(mu_q, ls_q, mu_q, ls_q), torch.zeros_like(mu_q))


def test_kl_by_quadrature():
    """Brute force: KL(q||p) = integral of q log(q/p) on a fine grid, for a few known (mu, sigma)."""
    z = torch.linspace(-30, 30, 400_001, dtype=F64)
    cases = [(0.0, 1.0, 0.0, 1.0), (1.5, 0.3, 0.0, 1.0), (-0.7, 2.0, 0.4, 0.5), (2.0, 0.8, -1.0, 1.7)]
    for mq, sq, mp, sp in cases:
        log_q = Normal(mq, sq).log_prob(z)
        log_p = Normal(mp, sp).log_prob(z)
        brute = torch.trapezoid(log_q.exp() * (log_q - log_p), z).item()
        t = lambda v: torch.tensor([v], dtype=F64)
        closed = kl_normal(t(mq), t(math.log(sq)), t(mp), t(math.log(sp))).item()
        assert abs(closed - brute) < 1e-6, (mq, sq, mp, sp, closed, brute)
        if (mp, sp) == (0.0, 1.0):
            assert abs(kl_standard_normal(t(mq), t(math.log(sq))).item() - brute) < 1e-6


def test_kl_extreme_scales():
    """sigma from e^-30 to e^30 (posterior collapse, a runaway prior): the closed forms against mpmath."""
    log_sigmas = torch.tensor([-30.0, -5.0, 0.0, 5.0, 30.0], dtype=F64)
    mu_q = torch.tensor([1e3, -2.0, 0.5, 0.0, -7.0], dtype=F64)
    mu_p = torch.tensor([0.0, 3.0, 0.5, -1e2, 1.0], dtype=F64)
    ls_p = log_sigmas.flip(0)
    kl = lambda mq, lq, mp, lp: lp - lq + (mpmath.exp(2 * lq) + (mq - mp) ** 2) / (2 * mpmath.exp(2 * lp)) - 0.5
    assert_close_elementwise(kl_normal(mu_q, log_sigmas, mu_p, ls_p),
                             mp_reference(kl, mu_q, log_sigmas, mu_p, ls_p), 1e-12, "KL(q||p) extreme")
    zeros = torch.zeros_like(mu_q)
    assert_close_elementwise(kl_standard_normal(mu_q, log_sigmas),
                             mp_reference(kl, mu_q, log_sigmas, zeros, zeros), 1e-12, "KL(q||N(0,1)) extreme")


# ---------------------------------------------------------------------------------------------
# noise


def test_noise_comes_from_the_generator_only():
    gen = fresh_generator()
    like = torch.empty(4, 5, dtype=F64)
    a = standard_noise(like, torch.Generator().manual_seed(gen.initial_seed()))
    b = standard_noise(like, torch.Generator().manual_seed(gen.initial_seed()))
    assert a.dtype == F64 and a.shape == (4, 5) and torch.equal(a, b)
    torch.manual_seed(0)  # the global generator must not matter
    assert torch.equal(standard_noise(like, torch.Generator().manual_seed(gen.initial_seed())), a)


def test_noise_per_step_is_what_a_step_loop_draws():
    seed = fresh_generator().initial_seed()
    eps = noise_per_step(torch.full((6, 3, 40), math.nan, dtype=F64), torch.Generator().manual_seed(seed))
    loop_gen = torch.Generator().manual_seed(seed)
    expected = torch.stack([torch.randn(3, 40, generator=loop_gen, dtype=F64) for _ in range(6)])
    assert torch.equal(eps, expected)
    assert not torch.equal(eps[0], eps[1])  # fresh numbers every step


def test_sample_normal_is_reparameterised():
    gen = fresh_generator()
    mu = torch.tensor([[-3.0, 0.0, 2.5]], dtype=F64).expand(200_000, 3).clone().requires_grad_()
    log_sigma = torch.tensor([[-4.0, 0.0, 1.0]], dtype=F64).expand(200_000, 3).clone().requires_grad_()
    z = sample_normal(mu, log_sigma, torch.Generator().manual_seed(gen.initial_seed()))
    eps = standard_noise(mu, torch.Generator().manual_seed(gen.initial_seed()))
    assert torch.equal(z, mu + log_sigma.exp() * eps)
    sigma = log_sigma[0].exp().detach()
    assert ((z.mean(0) - mu[0]).abs() < 5 * sigma / math.sqrt(z.shape[0])).all(), (z.mean(0), gen.initial_seed())
    assert ((z.std(0) / sigma - 1).abs() < 0.02).all(), z.std(0)
    z.sum().backward()  # dz/dmu = 1, dz/dlog sigma = sigma * eps
    assert torch.equal(mu.grad, torch.ones_like(mu))
    assert torch.allclose(log_sigma.grad, log_sigma.exp().detach() * eps, rtol=1e-15, atol=0)


# ---------------------------------------------------------------------------------------------
# Bernoulli and Gaussian


def test_bernoulli_nll_matches_mpmath_up_to_huge_logits():
    gen = fresh_generator()
    logits = torch.cat([torch.randn(50, generator=gen, dtype=F64) * 5,
                        torch.tensor([1e4, -1e4, 800.0, -800.0, 40.0, -40.0, 0.0], dtype=F64)])
    for target in (0.0, 1.0, 0.3):  # binary targets, and the soft cross-entropy on a grey value
        x = torch.full_like(logits, target)
        # -[x log p + (1 - x) log(1 - p)] with p = 1 / (1 + e^-l), in 50 digits
        ref = mp_reference(lambda l, xv: -(xv * mpmath.log(1 / (1 + mpmath.exp(-l)))
                                           + (1 - xv) * mpmath.log(1 / (1 + mpmath.exp(l)))), logits, x)
        assert_close_elementwise(bernoulli_nll(logits, x), ref, 1e-12, f"bernoulli x={target}")
    assert torch.isfinite(bernoulli_nll(torch.tensor([1e4, -1e4]), torch.tensor([0.0, 1.0]))).all()  # float32 too


def test_gaussian_nll_matches_torch_and_survives_a_tiny_std():
    gen = fresh_generator()
    mean, x = torch.rand(2, 40, generator=gen, dtype=F64)
    for std in (0.25, 3.0, torch.rand(40, generator=gen, dtype=F64) + 0.1):
        assert_rel_close(gaussian_nll(mean, std, x), -Normal(mean, std).log_prob(x), 1e-12, "gaussian", gen.initial_seed())
    # std^2 underflows (float64 at 1e-200, float32 at 1e-30): squaring after dividing stays finite
    for dtype, std in ((F64, 1e-200), (torch.float32, 1e-30)):
        m, v = torch.tensor([0.5, 0.5], dtype=dtype), torch.tensor([0.5, 0.5 + 1e-3 * std], dtype=dtype)
        ref = mp_reference(lambda mv, xv: ((xv - mv) / std) ** 2 / 2 + mpmath.log(std) + mpmath.log(2 * mpmath.pi) / 2,
                           m.double(), v.double())
        out = gaussian_nll(m, std, v)
        assert torch.isfinite(out).all(), (dtype, out)
        assert_close_elementwise(out.double(), ref, 1e-12 if dtype == F64 else 1e-6, f"gaussian std {std}")
    with pytest.raises(ValueError, match="std must be > 0"):
        gaussian_nll(mean, 0.0, x)


# ---------------------------------------------------------------------------------------------
# categorical


def test_categorical_nll_matches_torch_and_mpmath_with_spread_logits():
    gen = fresh_generator()
    logits = torch.randn(3, 4, 7, generator=gen, dtype=F64) * 3
    target = torch.randint(0, 7, (3, 4), generator=gen)
    assert_rel_close(categorical_nll(logits, target), -Categorical(logits=logits).log_prob(target), 1e-12,
                     "categorical", gen.initial_seed())
    # logits 2e4 apart: exp overflows, so a softmax-then-log gets inf or -log 0
    spread = torch.tensor([[1e4, -1e4, 0.0, 9990.0], [-1e4, -1e4 + 3.0, -1e4 + 1.0, -1e4]], dtype=F64)
    for k in range(4):
        t = torch.full((2,), k)
        ref = torch.tensor([float(mpmath.log(sum(mpmath.exp(mpmath.mpf(v)) for v in row)) - mpmath.mpf(row[k]))
                            for row in spread.tolist()], dtype=F64)
        assert_close_elementwise(categorical_nll(spread, t), ref, 1e-12, f"categorical spread, class {k}")
        assert torch.isfinite(categorical_nll(spread.float(), t)).all()


def test_categorical_nll_rejects_bad_targets():
    logits = torch.zeros(2, 3, 5)
    with pytest.raises(TypeError, match="integer class ids"):
        categorical_nll(logits, torch.zeros(2, 3))
    with pytest.raises(ValueError, match="without the class dimension"):
        categorical_nll(logits, torch.zeros(2, 5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"0\.\.4, got 0\.\.5"):
        categorical_nll(logits, torch.tensor([[0, 1, 5], [0, 0, 0]]))
    with pytest.raises(ValueError, match=r"got -1\.\.0"):
        categorical_nll(logits, torch.tensor([[0, -1, 0], [0, 0, 0]]))


# ---------------------------------------------------------------------------------------------
# discretised logistic and Gaussian on 8-bit pixels

LEVELS = torch.arange(256)


def mp_logistic_bin(k, mean, log_scale):
    """P(k) = sigmoid(a) - sigmoid(b) with the end bins open, taken as sigmoid(-b) - sigmoid(-a) when the
    bin lies right of the mean, so that 50 digits suffice."""
    s = mpmath.exp(log_scale)
    a = mpmath.inf if k == 255 else ((2 * k + 1) / mpmath.mpf(255) - 1 - mean) / s
    b = -mpmath.inf if k == 0 else ((2 * k - 1) / mpmath.mpf(255) - 1 - mean) / s
    cdf = lambda t: 1 / (1 + mpmath.exp(-t))
    return -mpmath.log(cdf(-b) - cdf(-a) if b > 0 else cdf(a) - cdf(b))


def mp_gaussian_bin(k, mean, log_scale):
    """P(k) = Phi(a) - Phi(b), taken as Phi(-b) - Phi(-a) when the bin lies right of the mean, so that
    50 digits suffice."""
    s = mpmath.exp(log_scale)
    a = mpmath.inf if k == 255 else ((2 * k + 1) / mpmath.mpf(255) - 1 - mean) / s
    b = -mpmath.inf if k == 0 else ((2 * k - 1) / mpmath.mpf(255) - 1 - mean) / s
    p = mpmath.ncdf(-b) - mpmath.ncdf(-a) if b > 0 else mpmath.ncdf(a) - mpmath.ncdf(b)
    return -mpmath.log(p)


DISCRETISED = {"logistic": (discretized_logistic_nll, mp_logistic_bin),
               "gaussian": (discretized_gaussian_nll, mp_gaussian_bin)}
# (mean on the [-1, 1] scale, log scale): ordinary, tiny (bins far apart in scale units), huge, mean
# off the pixel range, mean on a bin edge
REGIMES = [(0.1, -3.0), (-0.37, -0.5), (0.9, -12.0), (0.0, -40.0), (-0.3, 5.0), (3.0, -5.0), (-1.2, -2.0),
           (1.0 / 255, -30.0)]


@pytest.mark.parametrize("family", list(DISCRETISED))
@pytest.mark.parametrize("mean,log_scale", REGIMES)
def test_discretised_nll_matches_mpmath_on_every_level(family, mean, log_scale):
    nll, reference = DISCRETISED[family]
    out = nll(torch.tensor(mean, dtype=F64), torch.tensor(log_scale, dtype=F64), LEVELS)
    ref = torch.tensor([float(reference(k, mpmath.mpf(mean), mpmath.mpf(log_scale))) for k in range(256)], dtype=F64)
    assert_close_elementwise(out, ref, 1e-9, f"{family} mean {mean} log scale {log_scale}")
    # the 256 bins tile the line: probabilities sum to 1
    assert abs(torch.logsumexp(-out, 0).item()) < 1e-12


@pytest.mark.parametrize("family", list(DISCRETISED))
def test_discretised_nll_shapes_gradients_and_float32(family):
    nll, _ = DISCRETISED[family]
    gen = fresh_generator()
    mean = (torch.rand(3, 1, 4, generator=gen, dtype=F64) * 2 - 1).requires_grad_()
    log_scale = (torch.rand(3, 1, 4, generator=gen, dtype=F64) * 2 - 3).requires_grad_()
    pixels = torch.tensor([0, 1, 127, 254, 255]).view(1, 5, 1).expand(3, 5, 4).to(torch.uint8)
    assert nll(mean, log_scale, pixels).shape == (3, 5, 4)
    assert torch.autograd.gradcheck(lambda m, s: nll(m, s, pixels), (mean, log_scale))
    # extreme regime: finite values and gradients, in float64 and float32, end levels included
    for dtype in (F64, torch.float32):
        m = torch.tensor([0.0, 0.999, -0.999, 5.0, -5.0], dtype=dtype).view(5, 1, 1).requires_grad_()
        s = torch.tensor([-15.0, 4.0], dtype=dtype).view(1, 2, 1).requires_grad_()
        out = nll(m, s, LEVELS[::51])
        out.sum().backward()
        assert torch.isfinite(out).all() and torch.isfinite(m.grad).all() and torch.isfinite(s.grad).all(), dtype


@pytest.mark.parametrize("nll", [discretized_logistic_nll, discretized_gaussian_nll])
def test_discretised_nll_rejects_non_pixels(nll):
    zero = torch.zeros(())
    with pytest.raises(TypeError, match="integers 0..255"):
        nll(zero, zero, torch.tensor([0.5]))
    with pytest.raises(ValueError, match=r"0\.\.255, got 0\.\.256"):
        nll(zero, zero, torch.tensor([0, 256]))
