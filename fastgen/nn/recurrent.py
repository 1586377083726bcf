"""Weight gradients of layers applied at every step of a loop, as one product per sequence.

Under plain autograd, a linear layer applied at each of T steps gets its weight gradient as T
products with K = batch (64 for DRAW: short, so well below the matmul peak) and T accumulations of a
weight-sized tensor. ``StepLinear`` instead records each step's input and output gradient in
[T, B, ...] buffers and forms dW = G^T X as one product with K = T * B once the whole backward pass
is done (the batching cuDNN's recurrent layers use). The forward values are the same products.

How "once the whole backward is done" is guaranteed without hooks: every use takes a token tensor
made by a root node that owns the weight and bias. Autograd runs a node only after every node that
feeds it a gradient, so the root's backward, which forms dW and db, runs after every step's.

``step_lstm`` and ``step_linears`` give a model one loop body for both: with fast=False they are the
plain nn.LSTMCell and nn.Linear (the reference twin), and tests compare the two paths' gradients.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from fastgen.nn.buffer_pool import give_back_buffer, take_buffer
from fastgen.ops.lstm import lstm_cell_pointwise


class StepLinear:
    """y_t = [x_t parts] W^T + b for steps t = 0..steps-1 of one forward pass.

    weight [out, in] and bias [out] may be computed tensors (e.g. concatenated parameters):
    their gradients flow on through autograd as usual. Call it with the parts of the input, whose
    widths sum to ``in``; they are concatenated straight into the step's buffer row. Without grad
    mode, or when weight needs no gradient, it is a plain addmm.
    """

    def __init__(self, weight: Tensor, bias: Tensor, steps: int):
        if weight.dim() != 2 or bias.shape != weight.shape[:1]:
            raise ValueError(f"StepLinear: weight must be [out, in] and bias [out], got {tuple(weight.shape)} and {tuple(bias.shape)}")
        self.weight, self.bias = weight, bias
        self.taped = torch.is_grad_enabled() and (weight.requires_grad or bias.requires_grad)
        if self.taped:
            self.tape = _Tape(weight.detach(), bias.detach(), steps)
            self.token = _Root.apply(self.tape, weight, bias)

    def __call__(self, *parts: Tensor) -> Tensor:
        width = sum(p.shape[1] for p in parts)
        if width != self.weight.shape[1]:
            raise ValueError(f"StepLinear: input parts have {width} features in all, the weight takes {self.weight.shape[1]}")
        if not self.taped:
            x = parts[0] if len(parts) == 1 else torch.cat(parts, 1)
            return F.linear(x, self.weight, self.bias)
        return _Use.apply(self.tape, self.tape.next_step(parts[0].shape[0]), self.token, *parts)


class _Tape:
    """One pass's per-step inputs and output gradients. The autograd nodes hold it and nothing
    holds them back, so it dies with the graph (no reference cycle waiting for the garbage
    collector) and its buffers go to the next pass."""

    def __init__(self, weight: Tensor, bias: Tensor, steps: int):
        self.weight, self.bias, self.steps = weight, bias, steps
        self.used = 0
        self.inputs = self.grads = None  # [steps, batch, in] and [steps, batch, out], at the first step
        self.has_grad = [False] * steps

    def next_step(self, batch: int) -> int:
        if self.used == self.steps:
            raise RuntimeError(f"StepLinear: called more than the {self.steps} steps it was made for")
        if self.used == 0:
            out_features, in_features = self.weight.shape
            self.inputs = take_buffer(self.weight, (self.steps, batch, in_features))
            self.grads = take_buffer(self.weight, (self.steps, batch, out_features))
        elif batch != self.inputs.shape[1]:
            raise ValueError(f"StepLinear: every step needs the first step's batch of {self.inputs.shape[1]}, got {batch}")
        self.used += 1
        return self.used - 1

    def __del__(self):
        if self.inputs is not None:
            give_back_buffer(self.inputs)
            give_back_buffer(self.grads)


class _Root(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tape: _Tape, weight: Tensor, bias: Tensor) -> Tensor:
        ctx.tape = tape
        return weight.new_zeros(())

    @staticmethod
    @once_differentiable
    def backward(ctx, _unused):
        tape = ctx.tape
        n = tape.used
        for step in range(n):  # a step whose output fed nothing got no gradient
            if not tape.has_grad[step]:
                tape.grads[step].zero_()
        G = tape.grads[:n].reshape(-1, tape.grads.shape[2])
        X = tape.inputs[:n].reshape(-1, tape.inputs.shape[2])
        grad_weight = G.t().mm(X) if ctx.needs_input_grad[1] else None
        grad_bias = G.sum(0) if ctx.needs_input_grad[2] else None
        return None, grad_weight, grad_bias


class _Use(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tape: _Tape, step: int, token: Tensor, *parts: Tensor) -> Tensor:
        ctx.tape, ctx.step = tape, step
        ctx.widths = [p.shape[1] for p in parts]
        x = tape.inputs[step]
        torch.cat(parts, 1, out=x)
        return torch.addmm(tape.bias, x, tape.weight.t())

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        tape, step = ctx.tape, ctx.step
        tape.grads[step].copy_(grad)
        tape.has_grad[step] = True
        needs = ctx.needs_input_grad[3:]
        grad_parts = [None] * len(needs)
        if any(needs):
            grad_x = grad.mm(tape.weight)
            grad_parts = [g if need else None for g, need in zip(grad_x.split(ctx.widths, 1), needs)]
        return (None, None, grad.new_zeros(()), *grad_parts)


def step_lstm(cell: nn.LSTMCell, steps: int, fast: bool) -> Callable[..., tuple[Tensor, Tensor]]:
    """``cell`` as f((h, c), *input_parts) -> (h', c') for a loop of ``steps`` steps.

    fast: the gate product is one StepLinear on [inputs, h] (one product per step instead of two,
    the weight gradient once per sequence) and the update is fastgen's fused lstm_cell_pointwise;
    otherwise the plain nn.LSTMCell on the concatenated inputs.
    """
    if not fast:
        return lambda state, *parts: cell(parts[0] if len(parts) == 1 else torch.cat(parts, 1), state)
    gates = StepLinear(*lstm_gate_weights(cell), steps)
    return lambda state, *parts: lstm_cell_pointwise(gates(*parts, state[0]), state[1])


def step_linears(linears: Sequence[nn.Linear], steps: int, fast: bool) -> Callable[[Tensor], list[Tensor]]:
    """Several nn.Linear heads on the same input as f(x) -> [head(x), ...] for a loop of ``steps``.

    fast: one StepLinear over the heads' stacked weights (a head without bias adds zeros), its
    output split per head; otherwise each head's own nn.Linear.
    """
    if not fast or not linears:
        return lambda x: [m(x) for m in linears]
    sizes = [m.out_features for m in linears]
    stacked = StepLinear(*stacked_linears(linears), steps)
    return lambda x: list(stacked(x).split(sizes, 1))


def lstm_gate_weights(cell: nn.LSTMCell) -> tuple[Tensor, Tensor]:
    """(weight [4D, in + D], bias [4D]): the cell's gate product as one map of [input, h]."""
    weight = torch.cat([cell.weight_ih, cell.weight_hh], 1)
    bias = cell.bias_ih + cell.bias_hh if cell.bias else weight.new_zeros(weight.shape[0])
    return weight, bias


def stacked_linears(linears: Sequence[nn.Linear]) -> tuple[Tensor, Tensor]:
    """(weight, bias) of heads on one input stacked into one map (a head without bias adds zeros)."""
    biases = [m.bias if m.bias is not None else m.weight.new_zeros(m.out_features) for m in linears]
    return torch.cat([m.weight for m in linears]), torch.cat(biases)
