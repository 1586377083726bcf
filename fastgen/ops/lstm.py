"""nn.LSTMCell's pointwise update as one differentiable op (fastgen.reference.lstm is its twin).

    lstm_cell_pointwise(gates [B, 4D], c [B, D]) -> (h' [B, D], c' [B, D])

Unfused, the update is ~10 elementwise kernels forward and as many autograd nodes backward, which
at DRAW's 64 x 256 cells cost more than the arithmetic. The CPU kernel does it in one pass each way:
the forward also stores the five activations, so the backward is a few multiplies per element
(csrc/cpu/lstm_kernels_impl.h). There is no GPU kernel: CUDA tensors, like the "reference"
backend, run the twin (fastgen.ops._route: "cuda" and "triton" do not concern this op, while "cpu"
on CUDA tensors or on a dtype other than float32/float64 raises).
"""
from __future__ import annotations

import torch
from torch import Tensor

from fastgen import _extension
from fastgen.ops import _route
from fastgen.reference import lstm as reference

KERNELS = _route.OpKernels("lstm_cell_pointwise", cpu=(torch.float32, torch.float64))


def _check(gates: Tensor, c: Tensor) -> None:
    op = "lstm_cell_pointwise"
    for arg, name in ((gates, "gates"), (c, "c")):
        if not isinstance(arg, Tensor):
            raise TypeError(f"{op}: {name} must be a torch.Tensor, got {type(arg).__name__}")
    if c.dim() != 2:
        raise ValueError(f"{op}: c must be [B, D], got shape {tuple(c.shape)}")
    if tuple(gates.shape) != (c.shape[0], 4 * c.shape[1]):
        raise ValueError(f"{op}: gates must be [B, 4D] = {[c.shape[0], 4 * c.shape[1]]} for c of shape {tuple(c.shape)}, got {tuple(gates.shape)}")
    if gates.device != c.device:
        raise ValueError(f"{op}: gates is on {gates.device} but c is on {c.device}")
    if not gates.is_floating_point() or gates.dtype != c.dtype:
        raise TypeError(f"{op}: gates and c must share one floating dtype, got {gates.dtype} and {c.dtype}")


def lstm_cell_pointwise(gates: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    """(h', c') = nn.LSTMCell's update from its pre-activation gates (order i, f, g, o) and cell c."""
    _check(gates, c)
    if _route.resolve(KERNELS, c.device, c.dtype) == "reference":
        return reference.lstm_cell_pointwise(gates, c)
    h, c_out, _activations = torch.ops.fastgen.lstm_cell_pointwise(gates, c)
    return h, c_out


if _extension.available():

    @torch.library.register_fake("fastgen::lstm_cell_pointwise")
    def _(gates, c):
        # the kernel returns contiguous tensors whatever c's strides (empty_like would keep them)
        return c.new_empty(c.shape), c.new_empty(c.shape), c.new_empty(c.shape[0], 5 * c.shape[1])

    @torch.library.register_fake("fastgen::lstm_cell_pointwise_backward")
    def _(grad_h, grad_c, act, c):
        return c.new_empty(c.shape[0], 4 * c.shape[1]), c.new_empty(c.shape)
