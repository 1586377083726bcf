"""VAE-GAN and its baselines: shapes, the routed step's gradients against the straightforward twin
and against each network's own loss (float64), who does not learn from what, balancing, bad input."""
import pytest
import torch

from fastgen.models.vaegan import (VAEGAN, VAEGANConfig, compute_losses, forward_pass, reference_gradients,
                                   routed_gradients, surrogate_losses)
from fastgen.models.vaegan.model import Losses, balance_updates

SMALL = dict(width=4, hidden=8, latent=4, image_size=12)  # small: float64 on 2 cores


def make(seed=0, **kwargs) -> VAEGAN:
    torch.manual_seed(seed)
    return VAEGAN(VAEGANConfig(**{**SMALL, **kwargs})).double()


def batch(model, b=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    cfg = model.config
    x = torch.rand(b, cfg.channels, cfg.image_size, cfg.image_size, generator=g, dtype=torch.float64)
    eps, z_prior = model.draw_noise(b, g, x)
    return x, eps, z_prior


def max_error(a: dict, b: dict) -> float:
    return max((p - q).abs().max().item() for n in a for p, q in zip(a[n], b[n]))


@pytest.mark.parametrize("variant, size, channels", [("vaegan", 28, 1), ("vae", 32, 3), ("gan", 25, 1),
                                                     ("vaegan", 13, 3)])
def test_shapes(variant, size, channels):
    model = make(variant=variant, image_size=size, channels=channels).eval()
    x = torch.rand(3, channels, size, size, dtype=torch.float64)
    assert model.sample(5).shape == (5, channels, size, size)
    assert set(model.networks()) == {"vaegan": {"encoder", "decoder", "discriminator"},
                                     "vae": {"encoder", "decoder"}, "gan": {"decoder", "discriminator"}}[variant]
    if variant != "gan":
        mu, logvar = model.encode(x)
        assert mu.shape == logvar.shape == (3, 4)
        out = model.reconstruct(x)
        assert out.shape == x.shape and 0 <= out.min() and out.max() <= 1


CASES = [dict(variant="vaegan"), dict(variant="vaegan", gan_loss="nonsaturating", fakes=("prior",)),
         dict(variant="vaegan", fakes=("recon",), feature_layer=2), dict(variant="vaegan", feature_layer=1, gamma=0.7),
         dict(variant="vae"), dict(variant="gan", gan_loss="nonsaturating")]


@pytest.mark.parametrize("kwargs", CASES, ids=lambda k: "-".join(f"{v}" for v in k.values()))
def test_routed_gradients_equal_the_twin(kwargs):
    model = make(**kwargs)
    x, eps, z_prior = batch(model)
    routed, twin = routed_gradients(model, x, eps, z_prior), reference_gradients(model, x, eps, z_prior)
    assert set(routed.grads) == set(model.networks())
    err = max_error(routed.grads, twin.grads)
    print(f"{kwargs}: max |routed - twin| over every parameter {err:.2e}")
    for name, grads in routed.grads.items():
        for (pname, _), g, t in zip(getattr(model, name).named_parameters(), grads, twin.grads[name]):
            torch.testing.assert_close(g, t, rtol=1e-9, atol=1e-12, msg=f"{name}.{pname}")


@pytest.mark.parametrize("gan_loss", ["minimax", "nonsaturating"])
def test_each_network_gets_the_gradient_of_its_own_loss_alone(gan_loss):
    model = make(gan_loss=gan_loss, gamma=0.3)
    x, eps, z_prior = batch(model, seed=5)
    routed = routed_gradients(model, x, eps, z_prior)
    losses = compute_losses(model, x, forward_pass(model, x, eps, z_prior))
    adversarial = losses.gen if gan_loss == "nonsaturating" else -losses.gan
    own = {"encoder": losses.kl + losses.recon, "decoder": 0.3 * losses.recon + adversarial,
           "discriminator": losses.gan}  # the paper's Algorithm 1, written out here
    for name, loss in own.items():
        expected = torch.autograd.grad(loss, list(getattr(model, name).parameters()), retain_graph=True)
        for g, e in zip(routed.grads[name], expected):
            torch.testing.assert_close(g, e, rtol=1e-9, atol=1e-12, msg=name)


def _grad(loss, net):
    params = list(net.parameters())
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return torch.cat([(torch.zeros_like(p) if g is None else g).flatten() for p, g in zip(params, grads)])


def test_llike_does_not_train_the_discriminator_and_gan_does_not_train_the_encoder():
    model = make(gamma=1.0)
    x, eps, z_prior = batch(model, seed=2)
    routed = routed_gradients(model, x, eps, z_prior)
    losses = compute_losses(model, x, forward_pass(model, x, eps, z_prior))
    got_dis = torch.cat([g.flatten() for g in routed.grads["discriminator"]])
    got_enc = torch.cat([g.flatten() for g in routed.grads["encoder"]])
    # the terms a wrong routing would add are far from zero, so the equalities below have teeth
    assert _grad(losses.recon, model.discriminator).norm() > 1e-2 * got_dis.norm()
    assert _grad(losses.gan, model.encoder).norm() > 1e-3 * got_enc.norm()
    torch.testing.assert_close(got_dis, _grad(losses.gan, model.discriminator), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(got_enc, _grad(losses.kl + losses.recon, model.encoder), rtol=1e-9, atol=1e-12)
    # gamma scales only the decoder's L_llike signal
    other = make(gamma=5.0)
    again = routed_gradients(other, x, eps, z_prior)
    assert max_error({"d": routed.grads["discriminator"]}, {"d": again.grads["discriminator"]}) < 1e-12
    assert max_error({"e": routed.grads["encoder"]}, {"e": again.grads["encoder"]}) < 1e-12
    assert max_error({"d": routed.grads["decoder"]}, {"d": again.grads["decoder"]}) > 1e-6


def test_surrogate_losses_carry_the_routed_gradients_and_the_own_loss_values():
    model = make()
    x, eps, z_prior = batch(model, seed=3)
    routed = routed_gradients(model, x, eps, z_prior)
    surrogates = surrogate_losses(model, routed)
    losses = routed.losses
    torch.testing.assert_close(surrogates["discriminator"], losses.gan.detach())
    torch.testing.assert_close(surrogates["encoder"], (losses.kl + losses.recon).detach())
    for name, loss in surrogates.items():
        for g, r in zip(torch.autograd.grad(loss, list(getattr(model, name).parameters())), routed.grads[name]):
            torch.testing.assert_close(g, r, rtol=0, atol=1e-15)


def _costs(real, fake):
    z = torch.zeros(())
    return Losses(z, z, z, z, torch.tensor(real), torch.tensor(fake))


def test_balancing_rule():
    model = make(balance=True)  # equilibrium 0.68, margin 0.4 (the authors' code)
    assert balance_updates(model, _costs(0.1, 0.7)) == dict(encoder=True, decoder=True, discriminator=False)
    assert balance_updates(model, _costs(0.7, 1.2)) == dict(encoder=True, decoder=False, discriminator=True)
    assert balance_updates(model, _costs(0.1, 1.2)) == dict(encoder=True, decoder=True, discriminator=True)
    assert balance_updates(model, _costs(0.6, 0.8)) == dict(encoder=True, decoder=True, discriminator=True)
    off = make()
    assert balance_updates(off, _costs(0.01, 0.01)) == dict(encoder=True, decoder=True, discriminator=True)


@pytest.mark.parametrize("far", ["ahead", "behind"])
def test_balancing_skips_the_network_in_the_routed_step(far):
    probe = make()
    x, eps, z_prior = batch(probe, seed=4)
    costs = routed_gradients(probe, x, eps, z_prior).losses
    high = max(costs.real_cost, costs.fake_cost).item()
    low = min(costs.real_cost, costs.fake_cost).item()
    # equilibrium placed so that both costs lie below (ahead) or above (behind) the band
    equilibrium = high + 1.0 if far == "ahead" else low - 0.3
    model = make(balance=True, equilibrium=max(equilibrium, 1e-3), margin=0.2)
    routed, twin = routed_gradients(model, x, eps, z_prior), reference_gradients(model, x, eps, z_prior)
    skipped = "discriminator" if far == "ahead" else "decoder"
    assert routed.grads[skipped] is None and twin.grads[skipped] is None
    assert not routed.updates[skipped] and all(v for k, v in routed.updates.items() if k != skipped)
    kept = {k: v for k, v in routed.grads.items() if v is not None}
    assert max_error(kept, {k: twin.grads[k] for k in kept}) < 1e-10


@pytest.mark.parametrize("kwargs, message", [
    (dict(variant="vqgan"), "variant must be one of"), (dict(feature_layer=4), "feature_layer must be 1..3"),
    (dict(fakes=("noise",)), "fakes must be a non-empty subset"), (dict(fakes=()), "fakes must be"),
    (dict(gamma=-1.0), "gamma must be a number >= 0"), (dict(gan_loss="hinge"), "gan_loss must be one of"),
    (dict(width=0), "width must be a positive int"), (dict(image_size=4), "image_size must be >= 8"),
])
def test_config_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        VAEGANConfig(**kwargs)


def test_bad_input():
    model = make()
    x, eps, z_prior = batch(model)
    with pytest.raises(ValueError, match=r"images must have shape \[B, 1, 12, 12\], got \[6, 1, 11, 12\]"):
        routed_gradients(model, x[..., 1:, :], eps, z_prior)
    with pytest.raises(TypeError, match="images must be a float tensor"):
        routed_gradients(model, (x * 255).long(), eps, z_prior)
    with pytest.raises(ValueError, match="at least 2 images"):
        routed_gradients(model, x[:1], eps[:1], z_prior[:1])
    with pytest.raises(ValueError, match=r"z must have shape \[B, 4\]"):
        model.decode(torch.zeros(2, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match="a GAN has no encoder"):
        make(variant="gan").encode(x)
    assert VAEGANConfig(variant="gan").fakes == ("prior",)  # no reconstructions without an encoder
