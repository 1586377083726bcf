"""Sampling PixelCNN and Gated PixelCNN (fastgen.models.pixelcnn.sampling): the inverse-CDF draw, the
naive and cached paths giving the same images for the same uniforms, the cached pass reproducing the
full forward's logits, and the cached pass computing each layer only where it must."""
import pytest
import torch

from fastgen.models import GatedPixelCNN, PixelCNN
from fastgen.models.pixelcnn import cached_logits, draw_levels, sample_cached, sample_naive
from fastgen.models.pixelcnn.sampling import run_cached
from tests.helpers import assert_rel_close, fresh_generator
from tests.models.test_pixelcnn import random_levels, zero_weights

MODELS = {  # small images keep the naive path (one forward per sub-pixel) cheap
    "pixelcnn-binary": (PixelCNN, dict(height=5, width=6, channels=1, levels=2, layers=2, hidden=4)),
    "pixelcnn-colour-256": (PixelCNN, dict(height=4, width=5, channels=3, levels=256, layers=2, hidden=6)),
    "pixelcnn-5x5": (PixelCNN, dict(height=5, width=4, channels=1, levels=256, layers=2, hidden=4, first_kernel=3,
                                    kernel=5)),
    "gated-binary": (GatedPixelCNN, dict(height=5, width=6, channels=1, levels=2, layers=3, hidden=4, kernel=3)),
    "gated-colour-256-conditional": (GatedPixelCNN, dict(height=4, width=5, channels=3, levels=256, layers=3,
                                                         hidden=6, kernel=5, classes=3)),
}


def build(name, dtype=torch.float64, spread=1.0):
    cls, fields = MODELS[name]
    model = cls(**fields).to(dtype)
    with torch.no_grad():  # spread > 1: saturated, near-deterministic output distributions
        model.head.out.weight.mul_(spread)
    labels = torch.tensor([2, 0]) if model.num_classes else None
    return model, labels


def uniforms_for(model, n, gen):
    cfg = model.config
    return torch.rand(n, cfg.channels, cfg.height, cfg.width, generator=gen, dtype=model.dtype)


def test_draw_levels_is_the_inverse_cdf():
    logits = torch.log(torch.tensor([[0.25, 0.0, 0.5, 0.25]], dtype=torch.float64))  # level 1 impossible
    cases = {0.0: 0, 0.2499: 0, 0.25: 2, 0.7499: 2, 0.75: 3, 0.9999999: 3}
    for u, level in cases.items():
        assert draw_levels(logits, torch.tensor([u], dtype=torch.float64)).item() == level, u
    gen = fresh_generator()
    probs = torch.softmax(torch.randn(5, generator=gen, dtype=torch.float64) * 3, 0)
    u = torch.rand(200_000, generator=gen, dtype=torch.float64)
    counts = torch.bincount(draw_levels(probs.log().expand(len(u), 5), u), minlength=5) / len(u)
    assert (counts - probs).abs().max() < 0.01
    # Bernoulli: 1 exactly when u < sigmoid(logit); logits of any size stay exact
    assert draw_levels(torch.tensor([0.0, 0.0, -800.0, 800.0]), torch.tensor([0.49, 0.5, 0.0, 0.999])).tolist() == \
        [1, 0, 0, 1]
    # a cdf that rounds to just under 1 still yields a level
    spread = torch.tensor([[0.0, -1e4, 3.0]], dtype=torch.float32)
    assert draw_levels(spread, torch.tensor([1 - 2 ** -24])).item() == 2


@pytest.mark.parametrize("spread", [1.0, 40.0])
@pytest.mark.parametrize("name", list(MODELS))
def test_naive_and_cached_give_the_same_images(name, spread):
    gen = fresh_generator()
    model, labels = build(name, spread=spread)
    u = uniforms_for(model, 2, gen)
    naive = sample_naive(model, 2, u, labels=labels)
    cached = sample_cached(model, 2, u, labels=labels)
    assert torch.equal(naive, cached), f"seed {gen.initial_seed()}"
    levels = naive * (model.config.levels - 1)
    assert torch.equal(levels, levels.round()) and naive.min() >= 0 and naive.max() <= 1
    assert torch.equal(model.sample(2, uniforms=u, labels=labels), cached)


@pytest.mark.parametrize("sampler", [sample_naive, sample_cached])
@pytest.mark.parametrize("name", ["pixelcnn-colour-256", "gated-binary"])
def test_each_uniform_draws_its_own_subpixel(name, sampler):
    # a zero-weight model is uniform over the levels, so sub-pixel (ch, r, c) must be floor(K u[ch, r, c])
    # (binary: 1 when u < 1/2): catches a sampler that reads another sub-pixel's uniform
    gen = fresh_generator()
    model, labels = build(name)
    zero_weights(model)
    K = model.config.levels
    u = uniforms_for(model, 2, gen)
    expected = (u < 0.5).double() if K == 2 else torch.floor(u * K) / (K - 1)
    assert torch.equal(sampler(model, 2, u, labels=labels), expected)


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_cached_pass_fed_real_images_reproduces_the_forward_logits(name, dtype, tol):
    gen = fresh_generator()
    model, labels = build(name, dtype)
    images = random_levels(model, 2, gen)
    assert_rel_close(cached_logits(model, images, labels), model(images, labels), tol, name, gen.initial_seed())


def test_cached_pass_computes_each_layer_once_per_position():
    # The mechanism, not just the values: a PixelCNN runs each spatial convolution once per sub-pixel
    # (its first layer and the L blocks' kxk), not over the image; the Gated PixelCNN runs each
    # horizontal layer once per sub-pixel and each vertical layer once per pixel, row by row, skipping
    # the last row (nothing below it needs it).
    for name, expected in [("pixelcnn-colour-256", lambda C, H, W, L: C * H * W * (L + 1)),
                           ("gated-colour-256-conditional", lambda C, H, W, L: C * H * W * L + (H - 1) * W * L)]:
        model, labels = build(name)
        cfg = model.config
        _, positions = run_cached(model, 2, labels, lambda logits, ch, r, c: torch.zeros(2, dtype=torch.long))
        assert positions == expected(cfg.channels, cfg.height, cfg.width, cfg.layers), name


def test_labels_steer_the_samples():
    gen = fresh_generator()
    model, _ = build("gated-colour-256-conditional", spread=5.0)
    with torch.no_grad():
        model.class_embed.weight.mul_(20)
    u = uniforms_for(model, 1, gen).expand(3, -1, -1, -1)
    images = sample_cached(model, 3, u, labels=torch.tensor([0, 1, 2]))
    assert not torch.equal(images[0], images[1]) and not torch.equal(images[1], images[2])


def test_generator_draws_are_reproducible():
    model, labels = build("pixelcnn-binary", torch.float32)
    seed = fresh_generator().initial_seed()
    a = model.sample(3, torch.Generator().manual_seed(seed))
    b = sample_naive(model, 3, generator=torch.Generator().manual_seed(seed))
    assert torch.equal(a, b) and a.shape == (3, 1, 5, 6) and a.dtype == torch.float32


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(n=0), ValueError, "n must be a positive int"),
    (dict(uniforms=torch.rand(2, 1, 5, 5)), ValueError, r"uniforms must be \[2, 1, 5, 6\]"),
    (dict(uniforms=torch.ones(2, 1, 5, 6)), ValueError, r"uniforms must lie in \[0, 1\)"),
    (dict(uniforms=torch.zeros(2, 1, 5, 6, dtype=torch.long)), TypeError, "uniforms must be a float tensor"),
    (dict(uniforms=torch.rand(2, 1, 5, 6), generator=torch.Generator()), ValueError, "not both"),
    (dict(labels=torch.tensor([0, 1])), ValueError, "unconditional"),
])
@pytest.mark.parametrize("sampler", [sample_naive, sample_cached])
def test_bad_sampling_arguments_raise(sampler, kwargs, error, words):
    model, _ = build("pixelcnn-binary")
    kwargs = {"n": 2, **kwargs}
    with pytest.raises(error, match=words) as info:
        sampler(model, **kwargs)
    assert "PixelCNN sample_" in str(info.value)


def test_conditional_sampling_needs_labels_and_method_must_exist():
    model, _ = build("gated-colour-256-conditional")
    with pytest.raises(ValueError, match="class-conditional"):
        sample_cached(model, 2)
    with pytest.raises(ValueError, match="method must be one of fastgen, cached, naive"):
        model.sample(1, labels=torch.tensor([0]), method="fast")
