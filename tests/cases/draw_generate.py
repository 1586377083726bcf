"""Cases of the fused DRAW sampler draw_generate(noise [T, B, Z], LSTM and write-head weights, C, H, W):
shapes, the saturated regime, and bad calls."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from tests.cases import BadInput
from tests.helpers import fresh_generator


@dataclass(frozen=True)
class Case:
    """T steps, batch B, latent Z, LSTM width D, C channels, N x N write patches on H x W images.
    gate_scale multiplies the LSTM weights (100: gates far into saturation), noise_scale the noise."""

    T: int
    B: int
    Z: int
    D: int
    C: int
    N: int
    H: int
    W: int
    gate_scale: float = 1.0
    noise_scale: float = 1.0

    @property
    def id(self) -> str:
        name = "T{}B{}Z{}D{}C{}N{}H{}W{}".format(self.T, self.B, self.Z, self.D, self.C, self.N, self.H, self.W)
        return name + ("-saturated" if self.gate_scale > 1 else "")

    def draw(self, gen: torch.Generator, scale: float = 0.3) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """float64 noise and the seven weights (w_ih, w_hh, bias, w_patch, b_patch, w_window, b_window)."""
        Z, D, C, N = self.Z, self.D, self.C, self.N
        shapes = [(4 * D, Z), (4 * D, D), (4 * D,), (C * N * N, D), (C * N * N,), (5, D), (5,)]
        weights = [torch.randn(*s, generator=gen, dtype=torch.float64) * scale for s in shapes]
        weights[:3] = [w * self.gate_scale for w in weights[:3]]
        noise = torch.randn(self.T, self.B, Z, generator=gen, dtype=torch.float64) * self.noise_scale
        return noise, weights


# batch 1, odd sizes whose rows are not whole vectors, 3 channels, N = 1, DRAW's MNIST sampler.
CASES = [Case(4, 1, 10, 16, 1, 5, 28, 28), Case(3, 3, 7, 19, 2, 4, 13, 11), Case(2, 2, 9, 8, 3, 1, 9, 17),
         Case(6, 1, 100, 64, 1, 5, 28, 28)]
SATURATED = [Case(5, 2, 6, 8, 1, 3, 10, 10, gate_scale=100.0, noise_scale=10.0),
             Case(3, 3, 7, 19, 2, 4, 13, 11, gate_scale=100.0, noise_scale=10.0)]


def bad_inputs(op) -> list[BadInput]:
    """Calls of fastgen.ops.draw_generate with a wrong argument (the wrapper's and the C++ checks)."""
    noise, w = Case(2, 1, 4, 8, 1, 3, 8, 8).draw(torch.Generator().manual_seed(0))
    noise, w = noise.float(), [t.float() for t in w]
    return [
        BadInput("noise-2d", lambda d: op(noise[0], *w, 1, 8, 8), ValueError, r"noise must be a \[T, B, Z\] tensor"),
        BadInput("w_ih-shape", lambda d: op(noise, w[0][:, :3], *w[1:], 1, 8, 8), RuntimeError,
                 r"draw_generate: w_ih must have shape \[32, 4\]"),
        BadInput("patch-rows", lambda d: op(noise, *w[:3], w[3][:8], w[4][:8], *w[5:], 1, 8, 8), RuntimeError,
                 r"must be channels \* N \* N"),
        BadInput("b_window-dtype", lambda d: op(noise, *w[:6], w[6].double(), 1, 8, 8), RuntimeError,
                 r"b_window dtype"),
    ]


# -- the op's public call for tests/ops/test_route.py ------------------------------------------------


def route_call(dtype=torch.float32):
    from fastgen.ops import draw as ops
    gen = fresh_generator()
    shapes = [(3, 1, 4), (32, 4), (32, 8), (32,), (9, 8), (9,), (5, 8), (5,)]
    args = [(torch.randn(*s, generator=gen) * 0.3).to(dtype) for s in shapes]
    return lambda: ops.draw_generate(*args, 1, 6, 6)


ROUTE_CALLS = {"draw_generate": route_call}
ROUTE_TWINS = {"draw_generate": ("fastgen.reference.draw", "draw_generate")}
