"""The fast sampler of PixelRNN (Row LSTM and Diagonal BiLSTM): the cached algorithm of issue #14 in
one C++ call per chunk of pixels for a whole batch (fastgen.ops.pixelrnn_sampler), drawing inside the
kernel from the caller's uniforms by draw_levels' rule, so the same uniforms give the same images as
the naive sampler (one full forward per sub-pixel).

Cached: each layer keeps the states its next cells need, so a pixel costs one cell per layer and
colour. The Row LSTM keeps the row above's h and c and the layer input along the current row (its
1 x k mask-B input-to-state reads columns up to the pixel); the Diagonal BiLSTM's left direction
advances pixel by pixel (the cell above and the cell to the left), its right direction sees the whole
row, so it runs once per completed row and is read one row down (the BiLSTM's shift).

    cache = RnnSamplerCache(model, n)   # state: per-layer rows of inputs and states, levels, position
    cache.step(uniforms[:, :, :k])      # the next k pixels (uniforms [n, C, k], raster order)
    cache.images()                      # [n, C, H, W] float in [0, 1]

sample_fast(model, n, ...) does the whole image (optionally in chunks, with a progress bar);
fast_logits(model, images) runs the kernel teacher-forced and returns forward()'s logits. Where the
backend rule (fastgen.ops._route) picks the reference (the model is not float32, the extension is
missing, fastgen.set_backend("reference")), sample_fast runs sampling.sample_naive.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from fastgen.models.pixelcnn import sampling
from fastgen.models.pixelcnn.fast_sampling import SamplerCache, drive_sampler
from fastgen.models.pixelcnn.plan import weights_key
from fastgen.models.pixelrnn.model import PixelRNN
from fastgen.models.pixelrnn.plan import plan_of
from fastgen.ops import _route
from fastgen.ops import pixelrnn_sampler as ops


class RnnSamplerCache(SamplerCache):
    """The fast sampler's state for n images of one PixelRNN. Stepping, teacher forcing, the images
    and the model check are PixelCNN's SamplerCache's; the plan, the caches and the op are PixelRNN's."""

    def __init__(self, model: PixelRNN, n: int):  # not super().__init__(): that packs a PixelCNN plan
        where = f"{type(model).__name__} RnnSamplerCache"
        if not isinstance(model, PixelRNN):
            raise TypeError(f"{where}: expected a PixelRNN, got {type(model).__name__}")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"{where}: n must be a positive int, got {n!r}")
        # the C++ kernel is the only one: refuse here (model not float32 or on the CPU, no extension)
        _route.resolve(ops.KERNELS, next(model.parameters()).device, model.dtype, "cpu")
        self.plan = plan_of(model)
        self.key, self.config, self.n = weights_key(model), model.config, n
        cfg = model.config
        self.caches = [torch.zeros(n, *shape) for shape in self.plan.cache_shapes]
        self.levels = torch.zeros(n, cfg.channels, cfg.height, cfg.width, dtype=torch.long)
        self.position = torch.zeros(1, dtype=torch.long)
        self._levels = cfg.levels

    def _run(self, uniforms: Optional[Tensor], pixels: int) -> Tensor:
        return ops.pixelrnn_sample(self.caches, self.levels, self.position, self.plan.weights, self.plan.dims,
                                   uniforms, pixels, backend="cpu")


@torch.no_grad()
def sample_fast(model: PixelRNN, n: int, uniforms: Optional[Tensor] = None,
                generator: Optional[torch.Generator] = None, labels: Optional[Tensor] = None,
                chunk: Optional[int] = None, progress: bool = False, backend: Optional[str] = None) -> Tensor:
    """n images [n, C, H, W] (float in [0, 1]) by the fast sampler, ``chunk`` pixels per kernel call
    (default: the whole image); the same images as sample_naive for the same uniforms."""
    return drive_sampler(model, n, ops.KERNELS, lambda: RnnSamplerCache(model, n), sampling.sample_naive,
                         uniforms, generator, labels, chunk, progress, backend)


@torch.no_grad()
def fast_logits(model: PixelRNN, images: Tensor) -> Tensor:
    """The fast sampler's logits for every sub-pixel of real images (teacher forcing), in forward()'s
    layout: equal to model(images) up to rounding."""
    levels = model.levels_of(images, f"{type(model).__name__} fast_logits")
    return RnnSamplerCache(model, levels.shape[0]).teacher_logits(levels)
