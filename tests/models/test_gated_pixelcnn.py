"""Gated PixelCNN (fastgen.models.pixelcnn.gated): causality, no blind spot, colour groups, class
conditioning, shapes, errors, loss values, save / load, training."""
import math

import pytest
import torch

from fastgen.models import GatedPixelCNN, GatedPixelCNNConfig
from fastgen.models.pixelcnn import gated, loss_fn
from tests.helpers import fresh_generator
from tests.models.test_pixelcnn import (check_future_is_unseen, check_gradient_is_causal, checkerboards, future_of,
                                        input_gradient, monotone, random_levels, train_steps, zero_weights)

TINY = dict(height=6, width=7, layers=2, hidden=6, kernel=3)

CONFIGS = {
    "binary-grey": dict(channels=1, levels=2),
    "256-colour": dict(channels=3, levels=256),
    "binary-colour": dict(channels=3, levels=2),
    "256-grey-5x5-conditional": dict(channels=1, levels=256, kernel=5, classes=4),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_logits_never_see_future_subpixels(name):
    gen = fresh_generator()
    model = GatedPixelCNN(**{**TINY, **CONFIGS[name]}).double()
    labels = torch.tensor([3, 0]) if model.num_classes else None
    check_future_is_unseen(model, gen, labels)
    check_gradient_is_causal(model, gen, labels)


def test_the_causality_check_catches_an_unshifted_vertical_stack(monkeypatch):
    gen = fresh_generator()
    model = GatedPixelCNN(**TINY, channels=1, levels=2).double()
    monkeypatch.setattr(gated, "shift_down", lambda a: a)  # the horizontal stack sees the current row whole
    with pytest.raises(AssertionError, match="see the future"):
        check_future_is_unseen(model, gen, count=40)


@pytest.mark.parametrize("channels, hidden", [(1, 4), (3, 6)])
def test_no_blind_spot_the_whole_past_is_seen(channels, hidden):
    # 5 layers of 3x3 reach 5 rows up and 5 columns either side: all of a 5x6 image's past. Binary
    # images into a monotone model: a zero gradient would mean a missing path.
    gen = fresh_generator()
    cfg = GatedPixelCNNConfig(height=5, width=6, channels=channels, levels=2, layers=5, hidden=hidden, kernel=3)
    model = monotone(GatedPixelCNN(cfg).double())
    subpixels = [(channels - 1, 4, 0), (channels - 1, 4, 5), (0, 3, 2), (channels - 1, 2, 3), (0, 0, 1)]
    for ch, r, c in subpixels:
        grad = input_gradient(model, gen, ch, r, c)
        future = future_of(cfg, ch, r, c)
        assert (grad[future] == 0).all()
        unseen = (~future & (grad == 0)).nonzero().tolist()
        assert not unseen, f"sub-pixel {(ch, r, c)} is blind to past sub-pixels {unseen} (seed {gen.initial_seed()})"


def test_gate_pairs_channels_within_each_colour_third():
    gen = fresh_generator()
    pre = torch.randn(2, 12, 3, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    out = gated.gate(pre, 3)
    assert out.shape == (2, 6, 3, 3)
    for third in range(3):
        (grad,) = torch.autograd.grad(out[:, 2 * third:2 * third + 2].sum(), pre, retain_graph=True)
        live = grad.abs().sum((0, 2, 3)) > 0
        assert live.tolist() == [4 * third <= i < 4 * third + 4 for i in range(12)]
    f, g = pre[:, 0:2], pre[:, 2:4]
    assert torch.equal(out[:, 0:2], torch.tanh(f) * torch.sigmoid(g))
    assert torch.equal(gated.gate(pre, 1), torch.tanh(pre[:, :6]) * torch.sigmoid(pre[:, 6:]))


def test_labels_condition_every_layer():
    gen = fresh_generator()
    model = GatedPixelCNN(**TINY, channels=1, levels=2, classes=5).double()
    x = random_levels(model, 1, gen).expand(5, -1, -1, -1)
    logits = model(x, torch.arange(5))
    assert not torch.equal(logits[0], logits[1])
    # the label reaches the first pixel (nothing else does) through every layer's gates
    assert len(set(logits[:, 0, 0, 0].tolist())) == 5
    assert model.class_embed.weight.shape == (5, 2 * 2 * 2 * 6)
    batch = (x.double(), torch.arange(5))
    assert torch.equal(loss_fn(model, batch, None)[0], model.loss(*batch)[0])
    assert torch.equal(loss_fn(model, {"images": batch[0], "labels": batch[1]}, None)[0], model.loss(*batch)[0])


@pytest.mark.parametrize("labels, error, words", [
    (None, ValueError, "class-conditional"),
    (torch.tensor([0, 5]), ValueError, r"labels must lie in \[0, 5\)"),
    (torch.tensor([0.0, 1.0]), TypeError, "int32/int64"),
    (torch.tensor([0, 1, 2]), ValueError, r"labels must have shape \[2\]"),
])
def test_bad_labels_raise(labels, error, words):
    model = GatedPixelCNN(**TINY, channels=1, levels=2, classes=5)
    x = random_levels(model, 2, fresh_generator())
    with pytest.raises(error, match=words) as info:
        model(x, labels)
    assert "GatedPixelCNN" in str(info.value)


@pytest.mark.parametrize("channels, levels, shape", [(1, 2, (2, 1, 6, 7)), (3, 256, (2, 3, 6, 7, 256))])
def test_logit_shapes(channels, levels, shape):
    model = GatedPixelCNN(**TINY, channels=channels, levels=levels)
    assert model(random_levels(model, 2, fresh_generator())).shape == shape


def test_presets_and_defaults():
    cfg = GatedPixelCNNConfig()
    assert (cfg.height, cfg.channels, cfg.levels, cfg.layers, cfg.hidden, cfg.kernel, cfg.classes) == \
        (32, 3, 256, 15, 126, 5, 0)
    mnist = GatedPixelCNNConfig.mnist()
    assert (mnist.height, mnist.channels, mnist.levels, mnist.layers, mnist.hidden) == (28, 1, 2, 7, 32)


@pytest.mark.parametrize("fields, words", [
    (dict(channels=3, hidden=8), "hidden must be divisible by 3"),
    (dict(kernel=2), "kernel must be an odd"),
    (dict(classes=-1), "classes must be an int >= 0"),
    (dict(levels=3), "levels must be 2"),
    (dict(layers=10**9), "more than this process can have"),
])
def test_bad_configs_raise(fields, words):
    with pytest.raises(ValueError, match=words) as info:
        GatedPixelCNNConfig(**{**TINY, **fields})
    assert "GatedPixelCNNConfig" in str(info.value)


@pytest.mark.parametrize("channels, levels", [(1, 2), (3, 256)])
def test_a_zero_weight_model_is_uniform(channels, levels):
    model = zero_weights(GatedPixelCNN(**TINY, channels=channels, levels=levels, classes=3)).double()
    x = random_levels(model, 3, fresh_generator())
    loss, metrics = model.loss(x, torch.tensor([0, 1, 2]))
    assert math.isclose(loss.item(), channels * 6 * 7 * math.log(levels), rel_tol=1e-14)
    assert math.isclose(metrics["bits_per_dim"].item(), math.log2(levels), rel_tol=1e-14)


def test_save_and_load_round_trip(tmp_path):
    gen = fresh_generator()
    model = GatedPixelCNN(**TINY, channels=3, levels=256, classes=3)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.1)
    loaded = GatedPixelCNN.from_pretrained(model.save_pretrained(tmp_path / "gated"))
    assert loaded.config == model.config
    x, labels = random_levels(model, 2, gen), torch.tensor([2, 0])
    assert torch.equal(loaded(x, labels), model(x, labels))


def test_training_steps_reduce_the_loss():
    model = GatedPixelCNN(**TINY, channels=1, levels=2)
    losses = train_steps(model, checkerboards(), steps=40, lr=3e-2)  # 25 steps left ~12% on some inits
    assert losses[-1] < 0.1 * losses[0], losses
