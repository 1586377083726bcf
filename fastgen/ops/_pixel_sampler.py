"""What the fast pixel samplers' ops share (fastgen.ops.pixelcnn_sampler, fastgen.ops.pixelrnn_sampler):
the same state-advancing signature, so the same routing rule and the same fake logits."""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor

from fastgen.ops import _route


def kernel_route(kernels: _route.OpKernels, levels: Tensor, backend: Optional[str], twin: str) -> str:
    """The kernel a call runs ("cpu", "cuda", "triton"): the op's reference twin works on a model, not on
    packed weights, so where the rule picks it the call raises ValueError naming ``twin``."""
    if not isinstance(levels, Tensor):
        raise TypeError(f"{kernels.op}: levels must be a tensor, got {type(levels).__name__}")
    route = _route.resolve(kernels, levels.device, torch.float32, backend)
    if route == "reference":
        raise ValueError(f"{kernels.op}: the reference works on a model, not on packed weights: use {twin}")
    return route


def fake_logits(levels: Tensor, dims: Sequence[int], uniforms: Optional[Tensor], pixels: int) -> Tensor:
    """The op's output for FakeTensors: logits [n, pixels, C, K] when teacher-forced, else [n, 0, C, K]."""
    n, C, K = levels.shape[0], dims[3], dims[4]
    return levels.new_empty(n, 0 if uniforms is not None else pixels, C, K, dtype=torch.float32)
