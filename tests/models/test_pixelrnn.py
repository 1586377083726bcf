"""fastgen.models.PixelRNN: causality of both layer types with colour groups (every future sub-pixel
leaves the chosen sub-pixel's logits bit-identical, and the past does reach them), the gate-major
colour order, the loss and a backward pass, naive sampling, and bad configs."""
import pytest
import torch

import fastgen
from fastgen.models.pixelrnn import PixelRNN, PixelRNNConfig
from fastgen.models.pixelrnn.model import gate_major
from tests.helpers import fresh_generator

pytestmark = pytest.mark.skipif(not fastgen._extension.available(), reason="fastgen._C not built")


def small(layer, **kw):
    cfg = dict(height=5, width=6, channels=3, levels=256, layer=layer, layers=2, hidden=6, output_hidden=12)
    torch.manual_seed(0)
    return PixelRNN(**{**cfg, **kw}).double()


@pytest.mark.parametrize("layer,skips", [("row", False), ("diagonal", False), ("diagonal", True), ("row", True)])
def test_every_future_subpixel_leaves_the_logits_bit_identical(layer, skips):
    """For chosen sub-pixels (r, x, colour): redraw every later sub-pixel (raster order, then R -> G -> B)
    and the logits there are bit-identical; redraw the ones before it and they change (the past is
    seen, so the test is not passing on a constant)."""
    model = small(layer, skips=skips)
    gen = fresh_generator()
    levels = torch.randint(0, 256, (2, 3, 5, 6), generator=gen)
    C, H, W = 3, 5, 6
    order = (torch.arange(H * W).view(1, H, W) * C + torch.arange(C).view(C, 1, 1))  # [C, H, W] sub-pixel order
    base = model(levels)
    for r, x, c in ((0, 0, 0), (2, 3, 1), (4, 5, 2), (3, 0, 0), (1, 5, 1)):
        here = r * W * C + x * C + c
        other = torch.randint(0, 256, levels.shape, generator=gen)
        future = torch.where(order > here, other, levels)
        assert torch.equal(model(future)[:, c, r, x], base[:, c, r, x]), f"future leaked into ({r}, {x}, {c})"
        if here > 0:
            past = torch.where(order < here, other, levels)
            assert not torch.equal(model(past)[:, c, r, x], base[:, c, r, x]), f"({r}, {x}, {c}) ignores its past"


def test_gate_major_keeps_each_gate_in_colour_thirds():
    # colour-major [R: o f i g | G: ... | B: ...], h = 6: each colour-gate block has 2 channels
    idx = gate_major(6, 3).tolist()
    assert idx[:6] == [0, 1, 8, 9, 16, 17]  # gate o: its R, G, B channels
    assert sorted(idx) == list(range(24))
    assert gate_major(4, 1).tolist() == list(range(16))


@pytest.mark.parametrize("layer", ["row", "diagonal"])
def test_binary_loss_backward_and_naive_sampling(layer):
    model = PixelRNN(PixelRNNConfig.mnist(height=4, width=3, layers=2, hidden=4, layer=layer))
    images = (torch.rand(3, 1, 4, 3, generator=fresh_generator()) > 0.5).float()
    loss, metrics = model.loss(images)
    loss.backward()
    assert torch.isfinite(loss) and metrics["bits_per_dim"] > 0
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    u = torch.rand(2, 1, 4, 3, generator=fresh_generator())
    a, b = model.sample(2, uniforms=u), model.sample(2, uniforms=u)
    assert torch.equal(a, b) and set(a.unique().tolist()) <= {0.0, 1.0}
    with pytest.raises(ValueError, match="only method='naive'"):
        model.sample(1, method="cached")


def test_kernels_and_reference_give_the_same_logits():
    model = small("diagonal")
    levels = torch.randint(0, 256, (2, 3, 5, 6), generator=fresh_generator())
    with fastgen.use_backend("reference"):
        want = model(levels)
    torch.testing.assert_close(model(levels), want, rtol=1e-10, atol=1e-10)


def test_bad_configs():
    with pytest.raises(ValueError, match="layer must be 'row' or 'diagonal'"):
        PixelRNNConfig(layer="column")
    with pytest.raises(ValueError, match="row_kernel must be an odd int >= 3"):
        PixelRNNConfig(layer="row", row_kernel=1)
    with pytest.raises(ValueError, match="hidden must be divisible by 3"):
        PixelRNNConfig(hidden=16)


def test_save_and_load_round_trip(tmp_path):
    model = small("row", skips=True)
    levels = torch.randint(0, 256, (1, 3, 5, 6), generator=fresh_generator())
    loaded = PixelRNN.from_pretrained(model.save_pretrained(tmp_path / "pixelrnn"))
    assert loaded.config == model.config
    assert torch.equal(loaded.double()(levels), model(levels))
