"""fastgen.models.avb: shapes, the adversary's optimum, gradient routing through the Trainer's phases, the
toy posterior, bad input."""
from __future__ import annotations

import math

import pytest
import torch

from fastgen.models.avb import (AVB, AVBConfig, adversary_loss, avb_phases, elbo_via_adversary, joint_losses,
                                posterior_separation, primal_loss, toy_data)
from fastgen.train import Phase, TrainConfig, Trainer, derive_seed, epoch_permutation, seed_everything


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny networks: a second OpenMP thread only adds synchronisation on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


SMALL = dict(data_dim=6, latent_dim=3, hidden=8, layers=2, noise_dim=2, adversary_hidden=8)


@pytest.mark.parametrize("encoder, ac", [("implicit", False), ("implicit", True), ("gaussian", False)])
def test_shapes(encoder, ac):
    model = AVB(AVBConfig(**SMALL, encoder=encoder, adaptive_contrast=ac, ac_samples=3))
    x = torch.bernoulli(torch.full((5, 6), 0.5))
    g = torch.Generator().manual_seed(0)
    z = model.posterior_samples(x, 4, g)
    assert z.shape == (5, 4, 3)
    assert model.log_likelihood(x.unsqueeze(1), z).shape == (5, 4)
    assert model.sample(7, g).shape == (7, 6)
    assert (model.adversary is None) == (encoder == "gaussian")
    if model.adversary is not None:
        assert model.adversary(x, z[:, 0]).shape == (5,)
        # noise enters the implicit encoder: two draws for the same x differ
        assert not torch.equal(z[:, 0], z[:, 1])
    losses = [p.loss_fn(model, x, g) for p in avb_phases(model)]
    assert all(torch.isfinite(loss[0]) for loss in losses)


@pytest.mark.parametrize("encoder, ac", [("implicit", False), ("implicit", True), ("gaussian", False)])
def test_batched_elbo_estimate_keeps_each_rows_draws_apart(encoder, ac):
    """elbo_via_adversary draws all z in one forward; a batch that interleaved the rows' draws wrongly (repeat
    for repeat_interleave) would swap or average the two rows' estimates, which differ here by ~0.45 nats."""
    torch.manual_seed(0)
    model = AVB(AVBConfig(**SMALL, encoder=encoder, adaptive_contrast=ac, ac_samples=3))
    x = torch.stack([torch.zeros(6), torch.ones(6)])
    g = torch.Generator().manual_seed(0)
    batched = elbo_via_adversary(model, x, 30_000, g)
    one_by_one = torch.cat([elbo_via_adversary(model, x[i:i + 1], 30_000, g) for i in range(2)])
    assert batched.shape == (2,) and (one_by_one[0] - one_by_one[1]).abs() > 0.3
    assert torch.allclose(batched, one_by_one, atol=0.05)


class _KnownEncoder(AVB):
    """q(z|x) = N(μ(x), s²) with μ(x) = 2x₀ − 1 (x one-hot in R²): a density the adversary can be checked
    against. The implicit encoder's weights stay in the model (unused)."""

    S = 0.5

    def posterior_samples(self, x, n=1, generator=None):
        mu = (2 * x[:, :1] - 1).unsqueeze(1).expand(-1, n, -1)
        return mu + self.S * torch.randn(mu.shape, generator=generator, dtype=mu.dtype)


def test_adversary_approaches_log_q_minus_log_p_for_a_known_encoder():
    seed_everything(0)
    model = _KnownEncoder(AVBConfig(data_dim=2, latent_dim=1, hidden=4, layers=2, noise_dim=1, adversary_hidden=32))
    data = torch.eye(2).repeat(256, 1)
    Trainer(model, phases=[Phase("adversary", model.adversary, adversary_loss, lr=3e-3)],
            config=TrainConfig(batch_size=256, max_steps=600, epochs=1000, progress=False)).fit(data)
    # T*(x, z) = log N(z; μ(x), s²) − log N(z; 0, 1), compared where q puts its mass (μ ± 1.5 s)
    x = torch.eye(2).repeat_interleave(50, 0)
    mu = 2 * x[:, :1] - 1
    z = mu + torch.linspace(-1.5, 1.5, 50).repeat(2)[:, None] * _KnownEncoder.S
    optimum = (-math.log(_KnownEncoder.S) - 0.5 * ((z - mu) / _KnownEncoder.S).square() + 0.5 * z.square()).squeeze(1)
    with torch.no_grad():
        t = model.adversary(x, z)
    error = (t - optimum).abs().mean().item()
    print(f"mean |T - (log q - log p)| = {error:.3f} over q's bulk (T* ranges {optimum.min():.2f} .. {optimum.max():.2f})")
    assert error < 0.25  # a sign-flipped or untrained adversary is off by ~2


def _one_step_updates(schedule: str):
    """(model before, model after one Trainer step with SGD lr=1, the step's batch, its noise generator)."""
    seed_everything(3)
    model = AVB(AVBConfig(**SMALL, adaptive_contrast=schedule == "simultaneous")).double()
    before = AVB(model.config).double()
    before.load_state_dict(model.state_dict())
    data = torch.bernoulli(torch.full((16, 6), 0.4, dtype=torch.float64), generator=torch.Generator().manual_seed(1))
    sgd = lambda params: torch.optim.SGD(params, lr=1.0)  # noqa: E731 - update = -gradient
    phases = [Phase(p.name, p.params, p.loss_fn, optimizer=sgd) for p in avb_phases(model, schedule)]
    Trainer(model, phases=phases, config=TrainConfig(batch_size=16, max_steps=1, seed=4, progress=False)).fit(data)
    batch = data[epoch_permutation(4, 0, 16)[:16]]
    return before, model, batch, torch.Generator().manual_seed(derive_seed(4, "noise", 0))


def _grads(loss, params):
    return torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)


def _assert_moved_by(after_params, before_params, grads, name):
    for p_after, p_before, g in zip(after_params, before_params, grads):
        expected = p_before.detach() - (0 if g is None else g)
        torch.testing.assert_close(p_after.detach(), expected, rtol=0, atol=1e-12, msg=name)


def test_simultaneous_step_routes_each_loss_to_its_own_network():
    before, after, batch, generator = _one_step_updates("simultaneous")
    losses, _ = joint_losses(before, batch, generator)
    adversary, primal = list(before.adversary.parameters()), before.primal_parameters()
    # the primal loss runs through T, so a plain backward would write into the adversary: the routing matters
    assert any(g is not None and g.abs().sum() > 0 for g in _grads(losses["primal"], adversary))
    _assert_moved_by(after.adversary.parameters(), adversary, _grads(losses["adversary"], adversary), "adversary")
    _assert_moved_by(after.primal_parameters(), primal, _grads(losses["primal"], primal), "encoder/decoder")


def test_alternating_step_adversary_first_then_primal_on_the_new_adversary():
    before, after, batch, generator = _one_step_updates("alternate")
    adversary, primal = list(before.adversary.parameters()), before.primal_parameters()
    a_loss, _ = adversary_loss(before, batch, generator)
    assert all(g is None for g in _grads(a_loss, primal))  # z detached: the encoder gets nothing
    _assert_moved_by(after.adversary.parameters(), adversary, _grads(a_loss, adversary), "adversary")
    with torch.no_grad():
        for p, q in zip(before.adversary.parameters(), after.adversary.parameters()):
            p.copy_(q)  # the primal phase sees the updated adversary
    p_loss, _ = primal_loss(before, batch, generator)
    _assert_moved_by(after.primal_parameters(), primal, _grads(p_loss, primal), "encoder/decoder")


def test_toy_posterior_separates_the_four_points_after_a_short_run():
    seed_everything(0)
    model = AVB(AVBConfig.toy())
    assert posterior_separation(model, generator=torch.Generator().manual_seed(1)) < 0.6
    Trainer(model, phases=avb_phases(model, lr=3e-3),
            config=TrainConfig(batch_size=256, max_steps=TOY_STEPS, epochs=1000, progress=False)).fit(toy_data(1024))
    separation = posterior_separation(model, generator=torch.Generator().manual_seed(1))
    print(f"toy: {separation:.3f} of the draws z ~ q(z|x) decode to their own x after {TOY_STEPS} steps")
    assert separation > 0.9


TOY_STEPS = 300


@pytest.mark.parametrize("kwargs, message", [
    (dict(encoder="flow"), "encoder must be one of"), (dict(likelihood="gaussian"), "likelihood must be one of"),
    (dict(latent_dim=0), "latent_dim must be a positive int"),
    (dict(encoder="gaussian", adaptive_contrast=True), "implicit"),
    (dict(adaptive_contrast=True, ac_samples=1), "ac_samples must be >= 2"),
])
def test_bad_config(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AVBConfig(**{**SMALL, **kwargs})


def test_bad_input():
    model = AVB(AVBConfig(**SMALL))
    with pytest.raises(ValueError, match=r"x must have shape \[batch, 6\]"):
        model.posterior_samples(torch.zeros(2, 5))
    with pytest.raises(TypeError, match="floating-point"):
        model.posterior_samples(torch.zeros(2, 6, dtype=torch.long))
    with pytest.raises(ValueError, match="schedule must be one of"):
        avb_phases(model, "interleaved")
    with pytest.raises(ValueError, match="adversary_steps must be"):
        avb_phases(model, adversary_steps=0)
    with pytest.raises(TypeError, match="must be an AVB"):
        avb_phases(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="multiple of 4"):
        toy_data(10)
