"""Fast cached PixelRNN sampling (Row LSTM and Diagonal BiLSTM) as a functional op: a chunk of pixels
of every image in one kernel call.

    pixelrnn_sample(caches, levels, position, weights, dims, uniforms, pixels, backend=None)
        -> logits [n, pixels, C, K] when teacher-forced (uniforms None), else an empty [n, 0, C, K]

draws pixels position .. position + pixels - 1 (raster order, R -> G -> B) of every image from
uniforms [n, C, pixels] by fastgen.models.pixelcnn.sampling.draw_levels' rule, writing levels
[n, C, H, W] (int64); with uniforms None it reads those levels instead and returns their logits.
The state (caches: the image ring and every layer's input row, h and c rows; levels; position [1]
int64) is advanced in place. weights and dims are the packed plan of fastgen.models.pixelrnn.plan.
fastgen.models.pixelrnn.fast_sampling (sample_fast, fast_logits) is where users call this from.

Kernels (routed by fastgen.ops._route): "cpu" the C++ kernel (csrc/cpu/pixelrnn_sampler_kernels_impl.h,
float32). The op's reference twin works on a model, not on packed weights: the naive sampler
(fastgen.models.pixelcnn.sampling.sample_naive, one full forward per sub-pixel), which sample_fast
runs when the rule picks the reference. Argument checks are the kernel's (csrc/cpu/pixelrnn_sampler.cpp).
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor

from fastgen import _extension
from fastgen.ops import _pixel_sampler, _route

KERNELS = _route.OpKernels("pixelrnn_sample", cpu=(torch.float32,))


def pixelrnn_sample(caches: Sequence[Tensor], levels: Tensor, position: Tensor, weights: Sequence[Tensor],
                    dims: Sequence[int], uniforms: Optional[Tensor], pixels: int,
                    backend: Optional[str] = None) -> Tensor:
    """Advances the sampler state by ``pixels`` pixels; see the module docstring."""
    _pixel_sampler.kernel_route(KERNELS, levels, backend, "fastgen.models.pixelcnn.sampling.sample_naive")
    return torch.ops.fastgen.pixelrnn_sample(list(caches), levels, position, list(weights), list(dims), uniforms,
                                             int(pixels))


if _extension.available() and hasattr(torch.ops.fastgen, "pixelrnn_sample"):  # a stale build still imports

    @torch.library.register_fake("fastgen::pixelrnn_sample")
    def _(caches, levels, position, weights, dims, uniforms, pixels):
        return _pixel_sampler.fake_logits(levels, dims, uniforms, pixels)
