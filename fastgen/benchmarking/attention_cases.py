"""What the attention benchmark measures: shapes, workloads, providers, inputs, and the work
each call must do at least (the FLOP and byte floors fastgen.benchmarking.attention reports).

FLOP count (matmul FLOPs only, 2 per multiply-add, counted per (b, c) and multiplied by B*C;
the O(B*N*(H+W)) filterbank cost, the gamma scaling and the final sum are ignored). Shapes:
Fy [N,H], Fx [N,W], x [H,W], patch [N,N], image [H,W].
  read forward     T = Fy x  (N*H*W),   patch = T Fx^T  (N*W*N)
                   -> 2*(N*H*W + N*N*W)
  write forward    U = Fy^T w  (H*N*N), image = U Fx  (H*N*W)
                   -> 2*(H*N*N + H*N*W)              (= 2*(N*H*W + N*N*W) when H = W)
  read backward    dT = dP Fx (N*N*W), dx = Fy^T dT (H*N*W), dFy = dT x^T (N*W*H),
                   T recomputed (N*H*W), dFx = dP^T T (N*N*W)
                   -> 2*(N*N*W + H*N*W + N*W*H + N*H*W + N*N*W)
  write backward   dU = dI Fx^T (H*W*N), dw = Fy dU (N*H*N), dFy = w dU^T (N*N*H),
                   U recomputed (H*N*N), dFx = U^T dI (N*H*W)
                   -> 2*(H*W*N + N*H*N + N*N*H + H*N*N + N*H*W)
                   (= 2*(N*H*W + N*W*N + N*N*W + N*W*H + N*N*W) when H = W)
  forward = read fwd + write fwd; forward+backward = all four.

Minimum bytes (float32, 4 bytes): every op's tensor inputs read once and outputs written once,
with the tensors the two-op graph must pass between ops (the patch is materialised):
  forward           x, image (2*B*C*H*W); patch written + read (2*B*C*N*N); 2 params reads (2*5*B)
  forward+backward  x twice, image written, image read by sum, grad_x written (5*B*C*H*W);
                    patch out/in, patch again in write backward, grad_patch out/in (5*B*C*N*N);
                    params read 4 times, 2 param grads written (6*5*B). The incoming gradient of
                    image.sum() is a broadcast scalar and is not counted.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

# --------------------------------------------------------------------------------------------
# cases
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    """One benchmark row: batch B, channels C, image H x W, N x N attention patch."""

    B: int
    C: int
    H: int
    W: int
    N: int

    @property
    def label(self) -> str:
        return f"{self.B}×{self.C}×{self.H}×{self.W}, N={self.N}"

    @property
    def id(self) -> str:
        """Identifier without spaces, for pytest ids."""
        return f"B{self.B}-C{self.C}-{self.H}x{self.W}-N{self.N}"


DEFAULT_SHAPES: tuple[Shape, ...] = (
    Shape(64, 2, 28, 28, 2),
    Shape(64, 2, 28, 28, 5),
    Shape(64, 2, 28, 28, 12),
    Shape(64, 2, 60, 60, 12),
    Shape(64, 3, 32, 32, 12),
)
QUICK_SHAPES: tuple[Shape, ...] = (Shape(64, 2, 28, 28, 12),)
WORKLOADS: tuple[str, ...] = ("forward", "forward+backward")
CPU_PROVIDERS: tuple[str, ...] = ("eager", "compile", "fastgen-cpu")
GPU_PROVIDERS: tuple[str, ...] = ("eager-cuda", "compile-cuda", "fastgen-triton", "fastgen-cuda")
ALL_PROVIDERS: tuple[str, ...] = CPU_PROVIDERS + GPU_PROVIDERS
FASTGEN_BACKEND = {"fastgen-cpu": "cpu", "fastgen-triton": "triton", "fastgen-cuda": "cuda"}
#: the ratio columns: each fastgen provider against the plain-PyTorch providers on its own device
BASELINES = {"fastgen-cpu": ("eager", "compile"), "fastgen-triton": ("eager-cuda", "compile-cuda"),
             "fastgen-cuda": ("eager-cuda", "compile-cuda")}
#: relative error vs the eager reference above which a provider is flagged in the notes
REL_ERR_WARN = 1e-4


def default_providers() -> tuple[str, ...]:
    """eager, compile, fastgen-cpu; plus the triton and cuda columns when a GPU is present."""
    return ALL_PROVIDERS if torch.cuda.is_available() else CPU_PROVIDERS


def as_shape(s: Shape | Sequence[int]) -> Shape:
    if isinstance(s, Shape):
        return s
    if len(s) != 5:
        raise ValueError(f"fastgen.benchmarking.attention: shape must be (B, C, H, W, N), got {s!r}")
    return Shape(*map(int, s))


# --------------------------------------------------------------------------------------------
# work counts
# --------------------------------------------------------------------------------------------

def read_forward_flops(s: Shape) -> int:
    return s.B * s.C * 2 * (s.N * s.H * s.W + s.N * s.N * s.W)


def write_forward_flops(s: Shape) -> int:
    return s.B * s.C * 2 * (s.H * s.N * s.N + s.H * s.N * s.W)


def read_backward_flops(s: Shape) -> int:
    N, H, W = s.N, s.H, s.W
    return s.B * s.C * 2 * (N * N * W + H * N * W + N * W * H + N * H * W + N * N * W)


def write_backward_flops(s: Shape) -> int:
    N, H, W = s.N, s.H, s.W
    return s.B * s.C * 2 * (H * W * N + N * H * N + N * N * H + H * N * N + N * H * W)


def workload_flops(s: Shape, workload: str) -> int:
    """Matmul FLOPs of one call of the workload (formulas in the module docstring)."""
    fwd = read_forward_flops(s) + write_forward_flops(s)
    if workload == "forward":
        return fwd
    if workload == "forward+backward":
        return fwd + read_backward_flops(s) + write_backward_flops(s)
    raise ValueError(f"fastgen.benchmarking.attention: unknown workload {workload!r}; "
                     f"choose one of {', '.join(WORKLOADS)}")


def workload_min_bytes(s: Shape, workload: str, itemsize: int = 4) -> int:
    """Minimum bytes moved by one call of the workload (accounting in the module docstring)."""
    img, patch, par = s.B * s.C * s.H * s.W, s.B * s.C * s.N * s.N, s.B * 5
    if workload == "forward":
        return itemsize * (2 * img + 2 * patch + 2 * par)
    if workload == "forward+backward":
        return itemsize * (5 * img + 5 * patch + 6 * par)
    raise ValueError(f"fastgen.benchmarking.attention: unknown workload {workload!r}; "
                     f"choose one of {', '.join(WORKLOADS)}")


# --------------------------------------------------------------------------------------------
# providers
# --------------------------------------------------------------------------------------------

class ProviderUnavailable(Exception):
    """This provider cannot run here; str(exc) is the reason shown in the table."""


def short_reason(exc: BaseException, limit: int = 160) -> str:
    msg = str(exc).strip().splitlines()
    first = msg[0] if msg else ""
    text = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def make_inputs(s: Shape, device: str = "cpu", requires_grad: bool = False,
                seed: int = 0) -> tuple[Tensor, Tensor, Tensor]:
    """Random float32 (x [B,C,H,W], p_read [B,5], p_write [B,5]) with typical DRAW parameters."""
    g = torch.Generator().manual_seed(seed)

    def params() -> Tensor:
        lo = torch.tensor([-0.6, -0.6, -0.5, -0.5, -0.3])
        hi = torch.tensor([0.6, 0.6, 1.0, 0.5, 0.3])
        return lo + (hi - lo) * torch.rand(s.B, 5, generator=g)

    x = torch.randn(s.B, s.C, s.H, s.W, generator=g)
    p_read, p_write = params(), params()
    out = tuple(t.to(device).requires_grad_(requires_grad) for t in (x, p_read, p_write))
    return out  # type: ignore[return-value]


def relative_error(got: Sequence[Tensor], want: Sequence[Tensor]) -> float:
    """max over tensors of ||got - want|| / ||want|| (in float64, on the CPU)."""
    worst = 0.0
    for a, b in zip(got, want):
        if a is None or b is None:
            return float("inf")
        a, b = a.detach().double().cpu(), b.detach().double().cpu()
        if a.shape != b.shape:
            return float("inf")
        denom = b.norm().item() or 1.0
        worst = max(worst, (a - b).norm().item() / denom)
    return worst


__all__ = [
    "ALL_PROVIDERS", "BASELINES", "CPU_PROVIDERS", "DEFAULT_SHAPES", "FASTGEN_BACKEND", "GPU_PROVIDERS",
    "ProviderUnavailable", "QUICK_SHAPES", "REL_ERR_WARN", "Shape", "WORKLOADS", "as_shape",
    "default_providers", "make_inputs", "read_backward_flops", "read_forward_flops", "relative_error",
    "short_reason", "workload_flops", "workload_min_bytes", "write_backward_flops", "write_forward_flops",
]
