"""WaveNet sampling where the softmax is far from uniform: logits spread by 10, 100 and 1,000 nats and
temperatures from 0.05 to 2. (logit - peak) / T then reaches -2e4, far below where float exp leaves
the normal range; every path must still draw the same tokens as the reference (the C++ sampler once
drew class 0 or C-1 there: wrapped exponent bits in its vector exp). The Triton kernel's twin of this
test is in tests/triton/test_wavenet_triton.py; both take their cases from tests/cases/wavenet_generate.py."""
import pytest
import torch

import fastgen
from tests.cases import wavenet_generate as cases
from tests.helpers import fresh_generator

pytestmark = pytest.mark.skipif(not fastgen._extension.available(), reason="fastgen._C not built")


@pytest.mark.parametrize("temperature", cases.TEMPERATURES, ids=lambda t: f"T{t}")
@pytest.mark.parametrize("spread", cases.SPREADS, ids=lambda s: f"spread{s:g}")
def test_every_cpu_path_draws_the_same_tokens(spread, temperature):
    gen = fresh_generator()
    model = cases.spread_model(spread, gen)
    B, n = 2, 40
    u = torch.rand(B, n, generator=gen)
    paths = {name: model.generate(n, B, uniforms=u, temperature=temperature, backend=name)
             for name in ("naive", "reference", "cpu")}
    for name, tokens in paths.items():
        assert torch.equal(tokens, paths["reference"]), (
            f"seed {gen.initial_seed()}: {name} differs from the reference at "
            f"{(tokens != paths['reference']).nonzero()[:3].tolist()}")
