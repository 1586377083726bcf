"""Cases of the fast PixelRNN sampler (torch.ops.fastgen.pixelrnn_sample, through
fastgen.models.pixelrnn.fast_sampling): small models of every kind the kernel distinguishes (Row LSTM
and Diagonal BiLSTM; binary and 256-level colour with colour groups; skips; k = 5), and the regimes
that stress it. Models are random and float32 (the kernel's dtype)."""
from __future__ import annotations

import torch

from fastgen.models import PixelRNN
from tests.helpers import fresh_generator

# name -> config fields: widths that are not multiples of 8 (padding in every layout), H != W.
MODELS = {
    "row-binary": dict(height=5, width=6, channels=1, levels=2, layers=2, hidden=5, layer="row"),
    "diagonal-binary": dict(height=5, width=6, channels=1, levels=2, layers=3, hidden=5, layer="diagonal"),
    "row-colour-256-k5-skips": dict(height=4, width=5, channels=3, levels=256, layers=2, hidden=6, layer="row",
                                    row_kernel=5, skips=True, first_kernel=3),
    "diagonal-colour-256-skips": dict(height=4, width=5, channels=3, levels=256, layers=2, hidden=6,
                                      layer="diagonal", skips=True),
}


def build(name: str, gen: torch.Generator, spread: float = 1.0, gain: float = 1.0) -> PixelRNN:
    """A model in float32: spread scales the logits (saturated draws), gain every LSTM weight (saturated
    gates and cells)."""
    torch.manual_seed(gen.initial_seed())
    model = PixelRNN(**MODELS[name]).eval()
    with torch.no_grad():
        model.head.out.weight.mul_(spread)
        for layer in model.layers:
            for p in [*layer.input_to_state.parameters(), *layer.state_to_state]:
                p.mul_(gain)
    return model


def uniforms_for(model, n: int, gen: torch.Generator) -> torch.Tensor:
    cfg = model.config
    return torch.rand(n, cfg.channels, cfg.height, cfg.width, generator=gen)


# -- the op's public call for tests/ops/test_route.py (through sample_fast) ----------------------


def route_call(dtype=torch.float32):
    from fastgen.models.pixelrnn.fast_sampling import sample_fast
    model = build("diagonal-binary", fresh_generator()).to(dtype)
    return lambda: sample_fast(model, 2, generator=torch.Generator().manual_seed(0))


ROUTE_CALLS = {"pixelrnn_sample": route_call}
ROUTE_TWINS = {"pixelrnn_sample": ("fastgen.models.pixelcnn.sampling", "sample_naive")}
