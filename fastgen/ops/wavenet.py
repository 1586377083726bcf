"""Cached WaveNet generation as a functional op: every layer of every sample in one kernel call.

    wavenet_generate(queues, positions, last_tokens, weights, dilations, cond, uniforms, lengths,
                     temperature, backend=None) -> tokens [B, n]

runs n steps for each batch row (row b stops after lengths[b]; the rest of its row is -1), sampling
inside the kernel by fastgen.reference.wavenet.sample_tokens's rule from the caller's uniforms [B, n].
The state (per-layer ring-buffer queues [B, Q, pad8(R)] float32, each row's position and next input
token) is advanced in place. weights are the packed model weights and cond the packed conditioning
[B, n or 1, L*2*pad8(R)] or None, as fastgen.models.wavenet.generation packs them; that module (the
model-level driver: cache, streaming, mu-law output) is where users call this from.

Kernels (routed by fastgen.ops._route): "cpu" the C++ kernel (csrc/cpu/wavenet_kernels_impl.h), "cuda"
the persistent CUDA kernel (csrc/cuda/wavenet.cu) when built, "triton" fastgen.triton.wavenet (CUDA
tensors, or CPU tensors under TRITON_INTERPRET=1). The op's reference twin works on a model, not on
packed weights (fastgen.reference.wavenet.generate_queues, WaveNet.generate(backend="reference")).
Argument checks are the kernels' own (csrc/include/fastgen/wavenet_checks.h, fastgen.triton.wavenet),
shared so that every backend names a bad argument the same way.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor

from fastgen import _extension
from fastgen.ops import _route

# The generation state every kernel advances (queues); the packed weights are float32 or bfloat16.
STATE_DTYPE = torch.float32
KERNELS = _route.OpKernels("wavenet_generate", cpu=(STATE_DTYPE,), cuda=(STATE_DTYPE,), triton=(STATE_DTYPE,),
                           triton_runs_on_cpu=True)


def wavenet_generate(queues: Tensor, positions: Tensor, last_tokens: Tensor, weights: Sequence[Tensor],
                     dilations: Sequence[int], cond: Optional[Tensor], uniforms: Tensor, lengths: Tensor,
                     temperature: float, backend: Optional[str] = None) -> Tensor:
    """Tokens [B, n] from the state (advanced in place); see the module docstring."""
    route = _route.resolve(KERNELS, queues.device, queues.dtype, backend)
    if route == "reference":
        raise ValueError("wavenet_generate: the reference works on a model, not on packed weights: use "
                         "WaveNet.generate(backend='reference') or fastgen.reference.wavenet.generate_queues")
    args = (queues, positions, last_tokens, weights, dilations, cond, uniforms, lengths, float(temperature))
    if route == "triton":
        from fastgen.triton.wavenet import wavenet_generate as triton_generate

        return triton_generate(*args)
    return torch.ops.fastgen.wavenet_generate(*args)


if _extension.available():

    @torch.library.register_fake("fastgen::wavenet_generate")
    def _(queues, positions, last_tokens, weights, dilations, cond, uniforms, lengths, temperature):
        return uniforms.new_empty(uniforms.shape, dtype=torch.int64)
