"""The fused DRAW sampler: DRAW's whole generative pass (decoder LSTM, write heads, Gaussian write)
for T steps in one op call, so batch-1 sampling pays no per-step dispatch or Python overhead.

    draw_generate(noise [T,B,Z], w_ih [4D,Z], w_hh [4D,D], bias [4D], w_patch [C*N*N,D], b_patch,
                  w_window [5,D], b_window [5], channels, height, width) -> canvas logits [B,C,H,W]

fastgen.models.DRAW.sample uses it when no gradient is needed; fastgen.reference.draw states the
computation. One C++ CPU kernel (float32, float64), routed by fastgen.ops._route: anything else
runs the twin under "auto"; not differentiable (sampling).
"""
from __future__ import annotations

import torch
from torch import Tensor

from fastgen import _extension
from fastgen.ops import _route
from fastgen.reference import draw as reference

KERNELS = _route.OpKernels("draw_generate", cpu=(torch.float32, torch.float64))


def draw_generate(noise: Tensor, w_ih: Tensor, w_hh: Tensor, bias: Tensor, w_patch: Tensor, b_patch: Tensor,
                  w_window: Tensor, b_window: Tensor, channels: int, height: int, width: int) -> Tensor:
    """canvas logits c_T of DRAW's generative pass from pre-drawn noise (see the module docstring)."""
    if not isinstance(noise, Tensor) or noise.dim() != 3:
        raise ValueError(f"draw_generate: noise must be a [T, B, Z] tensor, got {getattr(noise, 'shape', noise)!r}")
    if _route.resolve(KERNELS, noise.device, noise.dtype) == "reference":
        return reference.draw_generate(noise, w_ih, w_hh, bias, w_patch, b_patch, w_window, b_window,
                                       channels, height, width)
    return torch.ops.fastgen.draw_generate(noise, w_ih, w_hh, bias, w_patch, b_patch, w_window, b_window,
                                           channels, height, width)


if _extension.available():

    @torch.library.register_fake("fastgen::draw_generate")
    def _(noise, w_ih, w_hh, bias, w_patch, b_patch, w_window, b_window, channels, height, width):
        return noise.new_empty(noise.shape[1], channels, height, width)
