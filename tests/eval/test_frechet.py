"""The Fréchet distance against closed forms."""
import pytest
import torch

from fastgen.eval.frechet import frechet_between, frechet_distance, gaussian_stats


def random_cov(d, seed):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    return a @ a.T + 0.1 * torch.eye(d, dtype=torch.float64)


def test_identical_gaussians_are_at_zero():
    cov, mu = random_cov(6, 0), torch.randn(6, dtype=torch.float64)
    assert frechet_distance(mu, cov, mu, cov) == pytest.approx(0, abs=1e-9)


def test_a_mean_shift_costs_its_squared_length():
    cov = random_cov(5, 1)
    mu = torch.randn(5, dtype=torch.float64)
    shift = torch.tensor([0.5, -1.0, 2.0, 0.0, 3.0], dtype=torch.float64)
    assert frechet_distance(mu, cov, mu + shift, cov) == pytest.approx(float(shift.square().sum()), rel=1e-9)


def test_non_commuting_covariances_match_the_closed_form():
    # 1-D: (s1 - s2)^2. Diagonal: sum (sqrt a - sqrt b)^2. Rotated (non-commuting) covariances: the
    # formula with the cross term tr((C1^1/2 C2 C1^1/2)^1/2); an element-wise sqrt, or sqrt(C1 C2) taken
    # as sqrt(C1) sqrt(C2), fails this case.
    one = torch.zeros(1, dtype=torch.float64)
    assert frechet_distance(one, torch.tensor([[4.0]]), one, torch.tensor([[9.0]])) == pytest.approx(1.0)
    a = torch.tensor([1.0, 4.0], dtype=torch.float64)
    b = torch.tensor([9.0, 1.0], dtype=torch.float64)
    zero = torch.zeros(2, dtype=torch.float64)
    assert frechet_distance(zero, torch.diag(a), zero, torch.diag(b)) == pytest.approx(
        float((a.sqrt() - b.sqrt()).square().sum()))
    t = torch.tensor(0.6)
    rot = torch.tensor([[t.cos(), -t.sin()], [t.sin(), t.cos()]], dtype=torch.float64)
    c1, c2 = torch.diag(a), rot @ torch.diag(b) @ rot.T
    # reference: scipy-free closed form for 2x2 PSD: tr(sqrt(M)) = sqrt(tr M + 2 sqrt(det M))
    m = c1.sqrt() @ c2 @ c1.sqrt()  # c1 diagonal: its square root is element-wise here
    tr_sqrt = torch.sqrt(m.trace() + 2 * torch.sqrt(torch.det(m)))
    expected = float(c1.trace() + c2.trace() - 2 * tr_sqrt)
    wrong = float(c1.trace() + c2.trace() - 2 * (c1.sqrt() @ c2.sqrt()).trace())
    got = frechet_distance(zero, c1, zero, c2)
    assert got == pytest.approx(expected, rel=1e-9) and abs(got - wrong) > 1e-3


def test_sample_statistics():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(20000, 3, generator=g, dtype=torch.float64)
    mu, cov = gaussian_stats(x * 2 + 1)
    torch.testing.assert_close(mu, torch.ones(3, dtype=torch.float64), atol=0.05, rtol=0)
    torch.testing.assert_close(cov, 4 * torch.eye(3, dtype=torch.float64), atol=0.15, rtol=0)
    assert frechet_between(x, x + 1.0) == pytest.approx(3.0, rel=1e-6)


def test_bad_input():
    with pytest.raises(ValueError, match=r"features must be a \[N, D\] tensor"):
        gaussian_stats(torch.zeros(5))
    with pytest.raises(ValueError, match="N >= 2"):
        gaussian_stats(torch.zeros(1, 3))
    with pytest.raises(ValueError, match="one D"):
        frechet_distance(torch.zeros(2), torch.eye(2), torch.zeros(3), torch.eye(3))
