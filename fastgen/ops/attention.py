"""DRAW's Gaussian-filterbank attention as differentiable ops (Gregor et al. 2015, sec. 3.2).

    attention_read(x [B,C,H,W], params [B,5], N)         -> gamma * Fy x Fx^T        [B,C,N,N]
    attention_write(w [B,C,N,N], params [B,5], H, W,
                    canvas=None)                         -> (1/gamma) Fy^T w Fx (+ canvas) [B,C,H,W]

params[b] = (g~X, g~Y, log sigma^2, log delta~, log gamma); fastgen.reference.attention states the
exact equations. Each op is registered with torch.library (schema in csrc/registration.cpp) with a
fake implementation here for torch.compile; autograd is registered in C++ (csrc/autograd/), and each
backward is its own op, which recomputes the filterbanks instead of saving them.

Backends (fastgen.set_backend, resolved by fastgen.ops._route's rule): "reference" runs the
plain-PyTorch twin; "cpu" the C++ kernels (float32, float64); "cuda" the CUDA C++ kernels when built;
"triton" the Triton kernels (the CUDA implementation of the ops when fastgen was built without CUDA
C++ kernels, else fastgen.triton.attention's autograd functions); "auto" the fastest available for
the device.
"""
from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from fastgen import _extension
from fastgen.ops import _route
from fastgen.reference import attention as reference

_CPU_DTYPES = (torch.float32, torch.float64)
_GPU_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


# ---------------------------------------------------------------------------------------------
# argument checks: every message names the op and the argument


def _check_int(op: str, name: str, value, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{op}: {name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{op}: {name} must be >= {minimum}, got {value}")


def _check_tensors(op: str, t: Tensor, name: str, params: Tensor) -> None:
    for arg, label in ((t, name), (params, "params")):
        if not isinstance(arg, Tensor):
            raise TypeError(f"{op}: {label} must be a torch.Tensor, got {type(arg).__name__}")
    if t.dim() != 4:
        raise ValueError(f"{op}: {name} must be 4-D [B, C, H, W], got shape {tuple(t.shape)}")
    if params.dim() != 2 or params.shape[1] != 5:
        raise ValueError(
            f"{op}: params must be [B, 5] (g~X, g~Y, log sigma^2, log delta~, log gamma), got shape {tuple(params.shape)}"
        )
    if params.shape[0] != t.shape[0]:
        raise ValueError(f"{op}: params has batch {params.shape[0]} but {name} has batch {t.shape[0]}")
    if t.device != params.device:
        raise ValueError(f"{op}: {name} is on {t.device} but params is on {params.device}")
    allowed = _CPU_DTYPES if t.device.type == "cpu" else _GPU_DTYPES
    if t.dtype not in allowed:
        names = ", ".join(str(d) for d in allowed)
        raise TypeError(f"{op}: {name} has dtype {t.dtype}; on {t.device.type} it must be one of {names}")
    if params.dtype != t.dtype:
        raise TypeError(f"{op}: params dtype {params.dtype} differs from {name} dtype {t.dtype}")
    if t.shape[1] < 1 or t.shape[2] < 1 or t.shape[3] < 1:
        raise ValueError(f"{op}: {name} needs at least one channel and one pixel, got shape {tuple(t.shape)}")


def _check_read(x: Tensor, params: Tensor, N: int) -> None:
    _check_tensors("attention_read", x, "x", params)
    _check_int("attention_read", "N", N)


def _check_write(w: Tensor, params: Tensor, H: int, W: int, canvas: Tensor | None) -> None:
    op = "attention_write"
    _check_tensors(op, w, "w", params)
    if w.shape[2] != w.shape[3]:
        raise ValueError(f"{op}: w must be a square patch [B, C, N, N], got shape {tuple(w.shape)}")
    _check_int(op, "H", H)
    _check_int(op, "W", W)
    if canvas is not None:
        if not isinstance(canvas, Tensor):
            raise TypeError(f"{op}: canvas must be a torch.Tensor or None, got {type(canvas).__name__}")
        expected = (w.shape[0], w.shape[1], H, W)
        if tuple(canvas.shape) != expected:
            raise ValueError(f"{op}: canvas must have shape {expected}, got {tuple(canvas.shape)}")
        if canvas.dtype != w.dtype or canvas.device != w.device:
            raise TypeError(f"{op}: canvas is {canvas.dtype} on {canvas.device}, w is {w.dtype} on {w.device}")


# ---------------------------------------------------------------------------------------------
# backend choice (fastgen.ops._route): what the ops have, and how each route is called


# Without CUDA C++ kernels the ops' CUDA slot holds the Triton kernels (registered below), so the
# C++ ones count as built only when that slot holds something else.
READ_KERNELS = _route.OpKernels(
    "attention_read", cpu=_CPU_DTYPES, cuda=_GPU_DTYPES, triton=_GPU_DTYPES,
    cuda_built=lambda: _extension.has_kernel("attention_read", "CUDA") and not _TRITON_IS_CUDA_KERNEL)
WRITE_KERNELS = dataclasses.replace(READ_KERNELS, op="attention_write")


def _resolve_backend(device: torch.device, kernels: _route.OpKernels = READ_KERNELS,
                     dtype: torch.dtype | None = None) -> str:
    """"reference", "triton" (fastgen.triton.attention's autograd functions) or "cpu" / "compiled"
    (torch.ops.fastgen, whose CUDA slot holds the C++ kernels or, without them, the Triton ones).
    dtype only words refusals: _check_tensors admits per device exactly the kernels' dtypes."""
    route = _route.resolve(kernels, device, dtype)
    if route == "cuda" or (route == "triton" and _TRITON_IS_CUDA_KERNEL):
        return "compiled"
    return route


# ---------------------------------------------------------------------------------------------
# public ops


def attention_read(x: Tensor, params: Tensor, N: int) -> Tensor:
    """Read an N x N glimpse from every channel of x: gamma * Fy x Fx^T, [B,C,H,W] -> [B,C,N,N]."""
    _check_read(x, params, N)
    route = _resolve_backend(x.device, READ_KERNELS, x.dtype)
    if route == "reference":
        return reference.attention_read(x, params, N)
    if route == "triton":
        from fastgen.triton import attention as triton_attention

        return triton_attention.read(x, params, N)
    return torch.ops.fastgen.attention_read(x, params, N)


def attention_write(w: Tensor, params: Tensor, H: int, W: int, canvas: Tensor | None = None) -> Tensor:
    """Write N x N patches onto H x W images: (1/gamma) Fy^T w Fx, plus canvas when given (fused)."""
    _check_write(w, params, H, W, canvas)
    route = _resolve_backend(w.device, WRITE_KERNELS, w.dtype)
    if route == "reference":
        return reference.attention_write(w, params, H, W, canvas)
    if route == "triton":
        from fastgen.triton import attention as triton_attention

        return triton_attention.write(w, params, H, W, canvas)
    return torch.ops.fastgen.attention_write(w, params, H, W, canvas)


# ---------------------------------------------------------------------------------------------
# torch.library registrations: fake tensors (torch.compile, meta)

_TRITON_IS_CUDA_KERNEL = False

if _extension.available():

    @torch.library.register_fake("fastgen::attention_read")
    def _(x, params, N):
        return x.new_empty(x.shape[0], x.shape[1], N, N)

    @torch.library.register_fake("fastgen::attention_read_backward")
    def _(grad_out, x, params, N):
        return torch.empty_like(x), torch.empty_like(params)

    @torch.library.register_fake("fastgen::attention_write")
    def _(w, params, H, W, canvas=None):
        return w.new_empty(w.shape[0], w.shape[1], H, W)

    @torch.library.register_fake("fastgen::attention_write_backward")
    def _(grad_out, w, params, H, W):
        return torch.empty_like(w), torch.empty_like(params)

    # Without CUDA C++ kernels, the Triton kernels are the CUDA implementation of the ops.
    if torch.version.cuda is not None and not _extension.has_kernel("attention_read", "CUDA"):
        try:
            from fastgen.triton import attention as _triton
        except ImportError:  # triton missing: CUDA tensors then need the reference backend
            _triton = None
        if _triton is not None:
            torch.library.register_kernel("fastgen::attention_read", "cuda", _triton.read_forward)
            torch.library.register_kernel("fastgen::attention_read_backward", "cuda", _triton.read_backward)
            torch.library.register_kernel("fastgen::attention_write", "cuda", _triton.write_forward)
            torch.library.register_kernel("fastgen::attention_write_backward", "cuda", _triton.write_backward)
            _TRITON_IS_CUDA_KERNEL = True
