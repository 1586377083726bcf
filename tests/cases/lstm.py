"""Cases of lstm_cell_pointwise (gates [B, 4D], c [B, D] -> h', c'): shapes, layouts, the saturated
regime, and bad calls."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from tests.cases import BadInput
from tests.helpers import fresh_generator


@dataclass(frozen=True)
class Case:
    """B rows of width D; gates and c drawn as scale * randn (scale 60 saturates every gate); strided:
    gates a column slice of a wider tensor and c transposed."""

    B: int
    D: int
    scale: float = 3.0
    strided: bool = False

    @property
    def id(self) -> str:
        return f"B{self.B}D{self.D}" + ("-saturated" if self.scale > 10 else "") + ("-strided" if self.strided else "")

    def draw(self, gen: torch.Generator, device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """float64 (gates, c) on device."""
        gates = torch.randn(self.B, 4 * self.D, generator=gen, dtype=torch.float64) * self.scale
        c = torch.randn(self.B, self.D, generator=gen, dtype=torch.float64) * self.scale
        if self.strided:
            gates = torch.cat([gates, torch.randn(self.B, 3, generator=gen, dtype=torch.float64)], 1)[:, :4 * self.D]
            c = c.t().contiguous().t()
        return gates.to(device), c.to(device)


SHAPES = [(64, 256), (3, 13), (1, 1), (2, 9)]  # a layer's width, odd sizes, one unit, a short row
CASES = [Case(B, D, strided=s) for s in (False, True) for B, D in SHAPES] + [
    Case(8, 16, scale=60.0), Case(3, 13, scale=60.0, strided=True)]
GRADCHECK = [Case(3, 5, scale=1.0), Case(1, 1, scale=1.0), Case(2, 9, scale=1.0, strided=True)]


def _gates(d, dtype=torch.float32):
    return torch.randn(2, 8, device=d, dtype=dtype)


def _c(d, dtype=torch.float32):
    return torch.randn(2, 2, device=d, dtype=dtype)


def wrapper_bad_inputs(op) -> list[BadInput]:
    """Calls of fastgen.ops.lstm_cell_pointwise with a wrong argument."""
    return [
        BadInput("c-1d", lambda d: op(_gates(d), _c(d)[0]), ValueError, "lstm_cell_pointwise: c must be"),
        BadInput("gates-width", lambda d: op(_gates(d)[:, :7], _c(d)), ValueError, "gates must be"),
        BadInput("dtype-mismatch", lambda d: op(_gates(d).double(), _c(d)), TypeError, "dtype"),
        BadInput("int", lambda d: op(_gates(d).int(), _c(d).int()), TypeError, "dtype"),
        BadInput("c-none", lambda d: op(_gates(d), None), TypeError, "must be a torch.Tensor"),
    ]


def _ops():
    return torch.ops.fastgen


def _act(d):
    return _ops().lstm_cell_pointwise(_gates(d), _c(d))[2]


# The C++ checks of direct torch.ops.fastgen calls (CPU kernels).
TORCH_OPS_BAD_INPUTS = [
    BadInput("gates-width", lambda d: _ops().lstm_cell_pointwise(_gates(d)[:, :6], _c(d)), RuntimeError,
             "lstm_cell_pointwise: gates must have shape", devices=("cpu",)),
    BadInput("half", lambda d: _ops().lstm_cell_pointwise(_gates(d).half(), _c(d).half()), RuntimeError,
             "float32 or float64", devices=("cpu",)),
    BadInput("backward-grad-h-shape",
             lambda d: _ops().lstm_cell_pointwise_backward(torch.randn(3, 2, device=d), None, _act(d), _c(d)),
             RuntimeError, "lstm_cell_pointwise_backward: grad_h must have shape", devices=("cpu",)),
    BadInput("backward-act-shape", lambda d: _ops().lstm_cell_pointwise_backward(None, None, _gates(d), _c(d)),
             RuntimeError, "lstm_cell_pointwise_backward: act must have shape", devices=("cpu",)),
]


# -- the op's public call for tests/ops/test_route.py (fresh inputs per call of the builder) --------


def route_call(dtype=torch.float32):
    from fastgen.ops import lstm as ops
    gen = fresh_generator()
    gates, c = torch.randn(2, 12, generator=gen).to(dtype), torch.randn(2, 3, generator=gen).to(dtype)
    return lambda: ops.lstm_cell_pointwise(gates, c)


ROUTE_CALLS = {"lstm_cell_pointwise": route_call}
ROUTE_TWINS = {"lstm_cell_pointwise": ("fastgen.reference.lstm", "lstm_cell_pointwise")}
