"""WaveNet sampling where the softmax is far from uniform: logits spread by 10, 100 and 1,000 nats and
temperatures from 0.05 to 2. (logit - peak) / T then reaches -2e4, far below where float exp leaves
the normal range; every path must still draw the same tokens as the reference (the C++ sampler once
drew class 0 or C-1 there: wrapped exponent bits in its vector exp). The Triton kernel's twin of this
test is in tests/triton/test_wavenet_triton.py."""
import pytest
import torch

import fastgen
from fastgen.models import WaveNet
from tests.helpers import fresh_generator

pytestmark = pytest.mark.skipif(not fastgen._extension.available(), reason="fastgen._C not built")

SPREADS = [10.0, 100.0, 1000.0]
TEMPERATURES = [0.05, 0.3, 1.0, 2.0]
CONFIG = dict(classes=40, residual_channels=8, skip_channels=16, head_channels=16, kernel_size=2,
              layers_per_stack=3, stacks=2)


def spread_model(spread: float, gen: torch.Generator, **config) -> WaveNet:
    """A random WaveNet whose output logits span about `spread` nats (max - min, per sample)."""
    torch.manual_seed(gen.initial_seed())
    model = WaveNet(**{**CONFIG, **config}).eval()
    with torch.no_grad():
        tokens = torch.randint(0, model.config.classes, (4, 64), generator=gen)
        logits = model(tokens)  # [B, C, T]
        measured = (logits.amax(dim=1) - logits.amin(dim=1)).median().item()
        model.head2.weight.mul_(spread / measured)
        model.head2.bias.mul_(spread / measured)
    return model


@pytest.mark.parametrize("temperature", TEMPERATURES, ids=lambda t: f"T{t}")
@pytest.mark.parametrize("spread", SPREADS, ids=lambda s: f"spread{s:g}")
def test_every_cpu_path_draws_the_same_tokens(spread, temperature):
    gen = fresh_generator()
    model = spread_model(spread, gen)
    B, n = 2, 40
    u = torch.rand(B, n, generator=gen)
    paths = {name: model.generate(n, B, uniforms=u, temperature=temperature, backend=name)
             for name in ("naive", "reference", "cpu")}
    for name, tokens in paths.items():
        assert torch.equal(tokens, paths["reference"]), (
            f"seed {gen.initial_seed()}: {name} differs from the reference at "
            f"{(tokens != paths['reference']).nonzero()[:3].tolist()}")
