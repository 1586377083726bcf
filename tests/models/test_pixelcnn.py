"""PixelCNN (fastgen.models.pixelcnn.model): causality over sub-pixels, its documented blind spot,
shapes, config and input errors, exact loss values, save / load, training. The causality helpers
here serve tests/models/test_gated_pixelcnn.py too."""
import math

import pytest
import torch

from fastgen.models import PixelCNN, PixelCNNConfig
from fastgen.models.pixelcnn import loss_fn
from fastgen.nn import MaskedConv2d
from tests.helpers import fresh_generator

TINY = dict(height=6, width=7, layers=2, hidden=6)


def random_levels(model, n, gen):
    cfg = model.config
    return torch.randint(0, cfg.levels, (n, cfg.channels, cfg.height, cfg.width), generator=gen)


def future_of(cfg, ch, r, c):
    """BoolTensor [C, H, W]: the sub-pixels a prediction of sub-pixel (ch, r, c) must not see: itself,
    the later colours of its pixel, and every later pixel in raster order."""
    C, H, W = cfg.channels, cfg.height, cfg.width
    pixel = (torch.arange(H).view(H, 1) * W + torch.arange(W).view(1, W)).expand(C, H, W)
    here = r * W + c
    return (pixel > here) | ((pixel == here) & (torch.arange(C).view(C, 1, 1) >= ch))


def random_subpixels(cfg, gen, count):
    return [(int(torch.randint(0, cfg.channels, (), generator=gen)), int(torch.randint(0, cfg.height, (), generator=gen)),
             int(torch.randint(0, cfg.width, (), generator=gen))) for _ in range(count)]


def check_future_is_unseen(model, gen, labels=None, count=12):
    """Change every future sub-pixel of random sub-pixels to fresh random levels: their logits must stay
    bit-identical."""
    cfg = model.config
    x = random_levels(model, 2, gen)
    logits = model(x, labels)
    for ch, r, c in random_subpixels(cfg, gen, count):
        future = future_of(cfg, ch, r, c)
        changed = torch.where(future, random_levels(model, 2, gen), x)
        changed[:, future] = (changed[:, future] + 1) % cfg.levels  # every future value differs
        assert torch.equal(model(changed, labels)[:, ch, r, c], logits[:, ch, r, c]), \
            f"logits of sub-pixel {(ch, r, c)} see the future (seed {gen.initial_seed()})"


def input_gradient(model, gen, ch, r, c, labels=None):
    """sum over a few random images of |d logit(ch, r, c) / d input| [C, H, W] (every level's logit,
    randomly weighted): several images, so a ReLU that happens to be off for one image hides no path."""
    n = 4 if labels is None else labels.shape[0]
    inputs = model.network_input(random_levels(model, n, gen)).requires_grad_()
    logits = model.split_logits(model.network(inputs, labels))[:, ch, r, c]
    weights = torch.randn(logits.shape[1:], generator=gen, dtype=logits.dtype)
    (grad,) = torch.autograd.grad((logits * weights).sum(), inputs)
    return grad.abs().sum(0)


def monotone(model):
    """The model with every weight >= 0 and every bias > 0: fed binary images (inputs >= 0) every ReLU is
    on and every path adds a positive term to a gradient, so a zero gradient means no path at all (not
    a switched-off unit or a cancellation)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.abs_().add_(0.01 if name.endswith("bias") else 0)
    return model


def check_gradient_is_causal(model, gen, labels=None, count=6):
    cfg = model.config
    for ch, r, c in random_subpixels(cfg, gen, count):
        grad = input_gradient(model, gen, ch, r, c, labels)
        assert (grad[future_of(cfg, ch, r, c)] == 0).all(), f"gradient of {(ch, r, c)} reaches the future"


CAUSAL_CONFIGS = {
    "binary-grey": dict(channels=1, levels=2),
    "256-colour": dict(channels=3, levels=256),
    "binary-colour": dict(channels=3, levels=2),
    "256-grey-5x5": dict(channels=1, levels=256, first_kernel=5, kernel=5),
}


@pytest.mark.parametrize("name", list(CAUSAL_CONFIGS))
def test_logits_never_see_future_subpixels(name):
    gen = fresh_generator()
    model = PixelCNN(**TINY, **CAUSAL_CONFIGS[name]).double()
    check_future_is_unseen(model, gen)
    check_gradient_is_causal(model, gen)


def test_the_causality_check_catches_mask_b_in_the_first_layer():
    gen = fresh_generator()
    model = PixelCNN(**TINY, channels=3, levels=2).double()
    # the current sub-pixel's own colour leaks into its prediction
    model.input_conv = MaskedConv2d(3, 12, 7, "B", 3).double()
    with pytest.raises(AssertionError, match="see the future"):
        check_future_is_unseen(model, gen, count=40)


def test_blind_spot_up_right_is_documented():
    # The paper's PixelCNN cannot see part of the past: a kxk mask-B layer moves its view at most one
    # column right per row up, so past pixels above-right of the 7x7 first layer's reach stay unseen
    # however deep the stack, while their mirror images on the left are seen (the Gated PixelCNN's
    # vertical stack removes this; tests/models/test_gated_pixelcnn.py).
    gen = fresh_generator()
    cfg = PixelCNNConfig(height=6, width=10, channels=1, levels=2, layers=2, hidden=4)
    model = monotone(PixelCNN(cfg).double())
    r, c = 5, 4
    grad = input_gradient(model, gen, 0, r, c)[0]
    past = ~future_of(cfg, 0, r, c)[0]
    blind = past & (grad == 0)
    assert blind[r - 1, c + 4] and grad[r - 1, c - 4] > 0
    rows, cols = blind.nonzero(as_tuple=True)
    assert (cols > c + 1).all() and (rows < r).all(), f"unseen past pixels outside the up-right: {blind}"


@pytest.mark.parametrize("channels, levels, shape", [(1, 2, (3, 1, 6, 7)), (3, 256, (3, 3, 6, 7, 256)),
                                                     (3, 2, (3, 3, 6, 7)), (1, 256, (3, 1, 6, 7, 256))])
def test_logit_shapes(channels, levels, shape):
    model = PixelCNN(**TINY, channels=channels, levels=levels)
    x = random_levels(model, 3, fresh_generator())
    assert model(x).shape == shape
    assert model.config.output_hidden == 12


def test_presets_and_defaults():
    paper = PixelCNNConfig()
    assert (paper.height, paper.channels, paper.levels, paper.layers, paper.hidden) == (32, 3, 256, 15, 126)
    mnist = PixelCNNConfig.mnist()
    assert (mnist.height, mnist.width, mnist.channels, mnist.levels, mnist.layers, mnist.hidden) == (28, 28, 1, 2, 7, 32)
    assert PixelCNNConfig.mnist(hidden=16).hidden == 16


@pytest.mark.parametrize("fields, words", [
    (dict(channels=2), "channels must be 1"),
    (dict(levels=16), "levels must be 2"),
    (dict(hidden=8), "hidden must be divisible by 3"),
    (dict(hidden=6, output_hidden=10), "output_hidden must be divisible by 3"),
    (dict(kernel=4), "kernel must be an odd"),
    (dict(first_kernel=0), "first_kernel must be an odd"),
    (dict(layers=0), "layers must be a positive int"),
    (dict(height=-1), "height must be a positive int"),
    (dict(hidden=3 * 10**6), "more than this process can have"),
])
def test_bad_configs_raise(fields, words):
    with pytest.raises(ValueError, match=words) as info:
        PixelCNNConfig(**fields)
    assert "PixelCNNConfig" in str(info.value)


@pytest.mark.parametrize("levels, images, error, words", [
    (2, torch.zeros(2, 1, 6, 6), ValueError, r"images must be \[B, 1, 6, 7\]"),
    (2, torch.full((2, 1, 6, 7), 0.5), ValueError, "binary images must be 0 or 1"),
    (256, torch.full((2, 1, 6, 7), 1.5), ValueError, r"float images must lie in \[0, 1\]"),
    (256, torch.full((2, 1, 6, 7), float("nan")), ValueError, r"float images must lie in \[0, 1\]"),
    (256, torch.full((2, 1, 6, 7), 256), ValueError, "levels 0..255"),
    (2, torch.full((2, 1, 6, 7), -1), ValueError, "levels 0..1"),
    (2, [[0.0]], TypeError, "must be a torch.Tensor"),
])
def test_bad_images_raise(levels, images, error, words):
    model = PixelCNN(**TINY, channels=1, levels=levels)
    with pytest.raises(error, match=words) as info:
        model.loss(images)
    assert "PixelCNN" in str(info.value)


def test_unconditional_model_rejects_labels_but_loss_fn_drops_dataset_labels():
    model = PixelCNN(**TINY, channels=1, levels=2)
    x = random_levels(model, 2, fresh_generator())
    with pytest.raises(ValueError, match="unconditional"):
        model(x, torch.tensor([0, 1]))
    assert torch.equal(loss_fn(model, (x.float(), torch.tensor([0, 1])), None)[0], model.loss(x)[0])


def zero_weights(model):
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    return model


@pytest.mark.parametrize("channels, levels", [(1, 2), (3, 2), (3, 256), (1, 256)])
def test_a_zero_weight_model_is_uniform(channels, levels):
    model = zero_weights(PixelCNN(**TINY, channels=channels, levels=levels)).double()
    x = random_levels(model, 3, fresh_generator())
    loss, metrics = model.loss(x)
    dims = channels * 6 * 7
    assert torch.allclose(model.nll(x), torch.full((3,), dims * math.log(levels), dtype=torch.float64), rtol=1e-14)
    assert math.isclose(metrics["bits_per_dim"].item(), math.log2(levels), rel_tol=1e-14)
    assert math.isclose(loss.item(), dims * math.log(levels), rel_tol=1e-14)


@pytest.mark.parametrize("channels, levels", [(1, 2), (3, 256)])
def test_nll_is_the_sum_of_subpixel_log_likelihoods(channels, levels):
    gen = fresh_generator()
    model = PixelCNN(**TINY, channels=channels, levels=levels).double()
    with torch.no_grad():  # spread logits: the likelihood must stay exact far from uniform
        model.head.out.weight.mul_(30)
    x = random_levels(model, 3, gen)
    logits = model(x)
    if levels == 2:
        expected = -torch.distributions.Bernoulli(logits=logits).log_prob(x.double()).flatten(1).sum(1)
    else:
        expected = -torch.distributions.Categorical(logits=logits).log_prob(x).flatten(1).sum(1)
    assert torch.allclose(model.nll(x), expected, rtol=1e-12)
    # float images in [0, 1] and integer levels are the same data
    assert torch.equal(model.nll(x.double() / (levels - 1)), model.nll(x))


def test_first_layer_sees_256_levels_scaled_to_minus_one_one():
    model = PixelCNN(**TINY, channels=3, levels=256).double()
    assert torch.equal(model.network_input(torch.tensor([0, 255])), torch.tensor([-1.0, 1.0], dtype=torch.float64))
    binary = PixelCNN(**TINY, channels=1, levels=2)
    assert torch.equal(binary.network_input(torch.tensor([0, 1])), torch.tensor([0.0, 1.0]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_save_and_load_round_trip(tmp_path, dtype):
    gen = fresh_generator()
    model = PixelCNN(**TINY, channels=3, levels=256).to(dtype)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen, dtype=dtype) * 0.1)
    loaded = PixelCNN.from_pretrained(model.save_pretrained(tmp_path / "pixelcnn"))
    assert loaded.config == model.config and loaded.dtype == dtype
    x = random_levels(model, 2, gen)
    assert torch.equal(loaded(x), model(x))


def train_steps(model, batch, steps=25, lr=1e-2):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss, metrics = loss_fn(model, batch, torch.Generator())
        loss.backward()
        opt.step()
        losses.append(loss.item())
        assert set(metrics) == {"nll", "bits_per_dim"}
    return losses


def checkerboards(channels=1):
    """A batch a causal model can learn in a few steps: each pixel is the negation of its left neighbour."""
    return ((torch.arange(6).view(6, 1) + torch.arange(7)) % 2).float().expand(4, channels, 6, 7)


def test_training_steps_reduce_the_loss():
    model = PixelCNN(**TINY, channels=1, levels=2)
    losses = train_steps(model, checkerboards())
    assert losses[-1] < 0.3 * losses[0], losses
    for conv in [model.input_conv, *(b.conv for b in model.blocks)]:
        assert (conv.weight[~conv.weight_mask] == 0).all()
