"""Cases of the fast PixelCNN sampler (torch.ops.fastgen.pixelcnn_sample, through
fastgen.models.pixelcnn.fast_sampling): small models of every kind the kernel distinguishes, the
spread-logits regime, and wrong op arguments with the message each gives. Models are random and
float32 (the kernel's dtype); tests compare images between paths for the same uniforms."""
from __future__ import annotations

import torch

from fastgen.models import GatedPixelCNN, PixelCNN
from tests.helpers import fresh_generator

# name -> (class, config): binary and 256-level, grey and colour (colour groups), odd kernels, a
# class-conditional Gated model, widths that are not multiples of 8 (padding in every layout).
MODELS = {
    "pixelcnn-binary": (PixelCNN, dict(height=5, width=6, channels=1, levels=2, layers=2, hidden=5)),
    "pixelcnn-colour-256": (PixelCNN, dict(height=4, width=5, channels=3, levels=256, layers=2, hidden=6)),
    "pixelcnn-grey-256-5x5": (PixelCNN, dict(height=5, width=4, channels=1, levels=256, layers=2, hidden=4,
                                             first_kernel=3, kernel=5)),
    "gated-binary": (GatedPixelCNN, dict(height=5, width=6, channels=1, levels=2, layers=3, hidden=5, kernel=3)),
    "gated-colour-256-conditional": (GatedPixelCNN, dict(height=4, width=5, channels=3, levels=256, layers=3,
                                                         hidden=6, kernel=5, classes=3)),
}
# Tinier ones for the Triton twin under the interpreter (a kernel launch per layer per colour pass of
# a pixel, each costing milliseconds there): an MNIST-like binary PixelCNN, a labelled binary Gated
# model (row starts, links, class offsets), and colour 256-level models of both kinds.
TRITON_MODELS = {
    "pixelcnn-binary-tiny": (PixelCNN, dict(height=3, width=4, channels=1, levels=2, layers=1, hidden=5)),
    "gated-binary-labelled-tiny": (GatedPixelCNN, dict(height=3, width=4, channels=1, levels=2, layers=2, hidden=5,
                                                       kernel=3, classes=3)),
    "pixelcnn-colour-256-tiny": (PixelCNN, dict(height=2, width=3, channels=3, levels=256, layers=1, hidden=6)),
    "gated-colour-256-tiny": (GatedPixelCNN, dict(height=2, width=3, channels=3, levels=256, layers=2, hidden=6,
                                                  kernel=3, classes=2)),
}


def build(name: str, gen: torch.Generator, spread: float = 1.0, n: int = 2):
    """(model in float32, labels for n images or None); spread scales the logits (saturated draws)."""
    cls, fields = {**MODELS, **TRITON_MODELS}[name]
    torch.manual_seed(gen.initial_seed())
    model = cls(**fields).eval()
    with torch.no_grad():
        model.head.out.weight.mul_(spread)
    labels = torch.randint(0, model.num_classes, (n,), generator=gen) if model.num_classes else None
    return model, labels


def uniforms_for(model, n: int, gen: torch.Generator) -> torch.Tensor:
    cfg = model.config
    return torch.rand(n, cfg.channels, cfg.height, cfg.width, generator=gen)


# -- the op's public call for tests/ops/test_route.py (through sample_fast) ----------------------


def route_call(dtype=torch.float32):
    from fastgen.models.pixelcnn.fast_sampling import sample_fast
    model, _ = build("pixelcnn-binary", fresh_generator())
    model = model.to(dtype)
    return lambda: sample_fast(model, 2, generator=torch.Generator().manual_seed(0))


ROUTE_CALLS = {"pixelcnn_sample": route_call}
ROUTE_TWINS = {"pixelcnn_sample": ("fastgen.models.pixelcnn.sampling", "sample_cached")}
