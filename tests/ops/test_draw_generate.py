"""The fused DRAW sampler against its plain-PyTorch twin and against DRAW's step-by-step sampling."""
import pytest
import torch

import fastgen
from fastgen.models import DRAW, DRAWConfig
from fastgen.ops import draw_generate
from fastgen.reference import draw as ref
from tests.cases import assert_bad_input, bad_inputs_for, params
from tests.cases import draw_generate as cases
from tests.helpers import assert_rel_close, fresh_generator

pytestmark = pytest.mark.skipif(not fastgen._extension.available(), reason="fastgen._C not built")


@pytest.mark.parametrize("case", params(cases.CASES))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_matches_reference(case, dtype):
    gen = fresh_generator()
    # Inputs rounded to the dtype under test, so the float64 reference sees the very same numbers and
    # the check measures the kernel's arithmetic alone. Six recurrent steps of random weights amplify
    # float32 rounding: over 300 seeds the largest error of the T6 case was 9.3e-6, hence 5e-5.
    noise, weights = case.draw(gen)
    noise, weights = noise.to(dtype), [w.to(dtype) for w in weights]
    exact = ref.draw_generate(noise.double(), *[w.double() for w in weights], case.C, case.H, case.W)
    fast = draw_generate(noise, *weights, case.C, case.H, case.W)
    assert fast.dtype == dtype
    assert_rel_close(fast, exact, 5e-5 if dtype == torch.float32 else 1e-12, "draw_generate", gen.initial_seed())


@pytest.mark.parametrize("case", params(cases.SATURATED))
def test_saturated_gates_stay_finite(case):
    """LSTM gates far into saturation (weights x100, noise x10), write heads as usual; float32 kernel on
    float64 inputs rounded on the way in, against the float64 reference."""
    gen = fresh_generator()
    noise, weights = case.draw(gen)
    out = draw_generate(noise.float(), *[w.float() for w in weights], case.C, case.H, case.W)
    exact = ref.draw_generate(noise, *weights, case.C, case.H, case.W)
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


@pytest.mark.parametrize("case", bad_inputs_for(cases.bad_inputs(draw_generate), "cpu"))
def test_bad_input_is_named(case):
    assert_bad_input(case, "cpu")
