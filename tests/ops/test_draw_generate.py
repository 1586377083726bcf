"""The fused DRAW sampler against its plain-PyTorch twin and against DRAW's step-by-step sampling."""
import pytest
import torch

import fastgen
from fastgen.models import DRAW, DRAWConfig
from fastgen.ops import draw_generate
from fastgen.reference import draw as ref
from tests.helpers import assert_rel_close, fresh_generator

pytestmark = pytest.mark.skipif(not fastgen._extension.available(), reason="fastgen._C not built")


def random_weights(gen, Z, D, C, N, scale=0.3):
    """float64 LSTM, write-head and window weights of a fused-sampler call."""
    shapes = [(4 * D, Z), (4 * D, D), (4 * D,), (C * N * N, D), (C * N * N,), (5, D), (5,)]
    return [torch.randn(*s, generator=gen, dtype=torch.float64) * scale for s in shapes]


# (T, B, Z, D, C, N, H, W): batch 1, odd sizes whose rows are not whole vectors, 3 channels, N = 1.
SHAPES = [(4, 1, 10, 16, 1, 5, 28, 28), (3, 3, 7, 19, 2, 4, 13, 11), (2, 2, 9, 8, 3, 1, 9, 17), (6, 1, 100, 64, 1, 5, 28, 28)]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "T{}B{}Z{}D{}C{}N{}H{}W{}".format(*s))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_matches_reference(shape, dtype):
    T, B, Z, D, C, N, H, W = shape
    gen = fresh_generator()
    # Inputs rounded to the dtype under test, so the float64 reference sees the very same numbers and
    # the check measures the kernel's arithmetic alone. Six recurrent steps of random weights amplify
    # float32 rounding: over 300 seeds the largest error of the T6 case was 9.3e-6, hence 5e-5.
    noise = torch.randn(T, B, Z, generator=gen, dtype=torch.float64).to(dtype)
    weights = [w.to(dtype) for w in random_weights(gen, Z, D, C, N)]
    exact = ref.draw_generate(noise.double(), *[w.double() for w in weights], C, H, W)
    fast = draw_generate(noise, *weights, C, H, W)
    assert fast.dtype == dtype
    assert_rel_close(fast, exact, 5e-5 if dtype == torch.float32 else 1e-12, "draw_generate", gen.initial_seed())


def test_saturated_gates_stay_finite():
    gen = fresh_generator()
    weights = random_weights(gen, 6, 8, 1, 3)
    weights[:3] = [w * 100 for w in weights[:3]]  # LSTM gates far into saturation; write heads as usual
    noise = torch.randn(5, 2, 6, generator=gen) * 10
    out = draw_generate(noise, *[w.float() for w in weights], 1, 10, 10)
    exact = ref.draw_generate(noise.double(), *weights, 1, 10, 10)
    assert torch.isfinite(out).all()
    assert_rel_close(out, exact, 1e-4, "saturated", gen.initial_seed())


def test_draw_sample_uses_the_same_noise_as_the_step_loop():
    torch.manual_seed(0)
    model = DRAW(DRAWConfig(T=6, enc_size=32, dec_size=24, z_size=10, read_N=2, write_N=5)).eval()
    fused = model.sample(3, torch.Generator().manual_seed(11))
    looped = model.sample(3, torch.Generator().manual_seed(11), return_canvases=True)[0]  # extras: step loop
    assert model._can_fuse_sampling()
    assert_rel_close(fused, looped, 1e-5, "fused sample vs step loop")
    with fastgen.use_backend("reference"):
        assert not model._can_fuse_sampling()


def test_bad_input_is_named():
    gen = torch.Generator().manual_seed(0)
    w = [t.float() for t in random_weights(gen, 4, 8, 1, 3)]
    noise = torch.randn(2, 1, 4)
    with pytest.raises(ValueError, match=r"noise must be a \[T, B, Z\] tensor"):
        draw_generate(noise[0], *w, 1, 8, 8)
    with pytest.raises(RuntimeError, match=r"draw_generate: w_ih must have shape \[32, 4\]"):
        draw_generate(noise, w[0][:, :3], *w[1:], 1, 8, 8)
    with pytest.raises(RuntimeError, match=r"must be channels \* N \* N"):
        draw_generate(noise, *w[:3], w[3][:8], w[4][:8], *w[5:], 1, 8, 8)
    with pytest.raises(RuntimeError, match=r"b_window dtype"):
        draw_generate(noise, *w[:6], w[6].double(), 1, 8, 8)
