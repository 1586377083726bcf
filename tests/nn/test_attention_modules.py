"""GaussianRead / GaussianWrite: the modules compute what the functional ops compute, own their heads,
train, and reject ambiguous calls."""
import pytest
import torch

from fastgen.nn import GaussianRead, GaussianWrite
from fastgen.reference import attention as ref
from tests.helpers import assert_rel_close, fresh_generator


def test_read_with_params_matches_reference():
    gen = fresh_generator()
    x = torch.rand(4, 2, 28, 28, generator=gen)  # image and error image as two channels
    params = torch.randn(4, 5, generator=gen) * 0.5
    out = GaussianRead(N=5)(x, params=params)
    assert_rel_close(out, ref.attention_read(x.double(), params.double(), 5), 1e-5, "module read", gen.initial_seed())


def test_read_head_maps_hidden_state_to_window():
    gen = fresh_generator()
    torch.manual_seed(gen.initial_seed())
    module = GaussianRead(N=3, hidden_size=16)
    h = torch.randn(2, 16, generator=gen)
    x = torch.rand(2, 1, 10, 12, generator=gen)
    expected = ref.attention_read(x.double(), module.to_params(h).double(), 3)
    assert_rel_close(module(x, h=h), expected, 1e-5, "read head", gen.initial_seed())


def test_write_head_produces_patch_and_window_and_adds_canvas():
    gen = fresh_generator()
    torch.manual_seed(gen.initial_seed())
    module = GaussianWrite(N=4, height=12, width=10, channels=1, hidden_size=8)
    h = torch.randn(3, 8, generator=gen)
    canvas = torch.randn(3, 1, 12, 10, generator=gen)
    patch = module.to_patch(h).view(3, 1, 4, 4)
    expected = ref.attention_write(patch.double(), module.to_params(h).double(), 12, 10, canvas.double())
    assert_rel_close(module(h=h, canvas=canvas), expected, 1e-5, "write head", gen.initial_seed())


def test_heads_learn_a_glimpse():
    # A few Adam steps on the read head must reduce a simple regression loss: gradients reach it.
    torch.manual_seed(0)
    module = GaussianRead(N=2, hidden_size=4)
    h = torch.randn(8, 4)
    x = torch.rand(8, 1, 16, 16)
    target = torch.full((8, 1, 2, 2), 0.5)
    opt = torch.optim.Adam(module.parameters(), lr=0.05)
    losses = []
    for _ in range(30):
        loss = (module(x, h=h) - target).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


def test_ambiguous_or_missing_window_is_rejected():
    x = torch.rand(1, 1, 8, 8)
    with pytest.raises(ValueError, match="exactly one of h"):
        GaussianRead(N=2, hidden_size=3)(x)
    with pytest.raises(ValueError, match="exactly one of h"):
        GaussianRead(N=2, hidden_size=3)(x, h=torch.zeros(1, 3), params=torch.zeros(1, 5))
    with pytest.raises(ValueError, match="built without hidden_size"):
        GaussianRead(N=2)(x, h=torch.zeros(1, 3))
    with pytest.raises(ValueError, match="pass the patch w"):
        GaussianWrite(N=2, height=8, width=8)(params=torch.zeros(1, 5))
