"""Fast cached PixelCNN / Gated PixelCNN sampling as a functional op: a chunk of pixels of every image
in one kernel call.

    pixelcnn_sample(caches, levels, position, weights, dims, cond, uniforms, pixels, backend=None)
        -> logits [n, pixels, C, K] when teacher-forced (uniforms None), else an empty [n, 0, C, K]

draws pixels position .. position + pixels - 1 (raster order, R -> G -> B) of every image from
uniforms [n, C, pixels] by fastgen.models.pixelcnn.sampling.draw_levels' rule, writing levels
[n, C, H, W] (int64); with uniforms None it reads those levels instead and returns their logits.
The state (caches: per-layer input rings; levels; position [1] int64) is advanced in place. weights
and dims are the packed plan of fastgen.models.pixelcnn.plan; cond the packed class conditioning of a
Gated PixelCNN, or None. fastgen.models.pixelcnn.fast_sampling (SamplerCache, sample_fast) is where
users call this from.

Kernels (routed by fastgen.ops._route), float32: "cpu" the C++ kernel (csrc/cpu/pixelcnn_sampler_kernels_impl.h);
"triton" fastgen.triton.pixelcnn_sampler (CUDA tensors, or CPU tensors under TRITON_INTERPRET=1), which
is also the op's CUDA kernel: there is no CUDA C++ one, so "cuda" refuses and "auto" on CUDA tensors
runs Triton. The op's reference twin works on a model, not on packed weights
(fastgen.models.pixelcnn.sampling.sample_cached, which sample_fast runs when the rule picks it).
Argument checks are each kernel's (csrc/cpu/pixelcnn_sampler.cpp; the Triton launcher): each names
the argument.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor

from fastgen import _extension
from fastgen.ops import _pixel_sampler, _route

OP = "pixelcnn_sample"
# The CUDA dispatch slot holds the Triton kernel (registered below), so a CUDA C++ kernel counts as
# built only when that slot holds something else (none is written yet).
KERNELS = _route.OpKernels(OP, cpu=(torch.float32,), cuda=(torch.float32,), triton=(torch.float32,),
                           triton_runs_on_cpu=True,
                           cuda_built=lambda: _extension.has_kernel(OP, "CUDA") and not _TRITON_IS_CUDA_KERNEL)


def pixelcnn_sample(caches: Sequence[Tensor], levels: Tensor, position: Tensor, weights: Sequence[Tensor],
                    dims: Sequence[int], cond: Optional[Tensor], uniforms: Optional[Tensor], pixels: int,
                    backend: Optional[str] = None) -> Tensor:
    """Advances the sampler state by ``pixels`` pixels; see the module docstring."""
    route = _pixel_sampler.kernel_route(KERNELS, levels, backend, "fastgen.models.pixelcnn.sampling.sample_cached")
    if route == "triton":
        from fastgen.triton import pixelcnn_sampler as triton_sampler

        return triton_sampler.pixelcnn_sample(caches, levels, position, weights, dims, cond, uniforms, pixels)
    return torch.ops.fastgen.pixelcnn_sample(list(caches), levels, position, list(weights), list(dims), cond,
                                             uniforms, int(pixels))


_TRITON_IS_CUDA_KERNEL = False

if _extension.available() and hasattr(torch.ops.fastgen, OP):  # a stale build still imports

    @torch.library.register_fake("fastgen::pixelcnn_sample")
    def _(caches, levels, position, weights, dims, cond, uniforms, pixels):
        return _pixel_sampler.fake_logits(levels, dims, uniforms, pixels)

    # Without a CUDA C++ kernel, the Triton kernel is the op's CUDA implementation.
    if torch.version.cuda is not None and not _extension.has_kernel(OP, "CUDA"):
        try:
            from fastgen.triton import pixelcnn_sampler as _triton
        except ImportError:  # triton missing: CUDA tensors then need the reference (sample_cached)
            _triton = None
        if _triton is not None:
            torch.library.register_kernel("fastgen::pixelcnn_sample", "cuda", _triton.pixelcnn_sample)
            _TRITON_IS_CUDA_KERNEL = True
