"""PixelRNN's recurrent layers as differentiable ops: one call runs the whole recurrence of a layer.

    row_lstm(pre [B,4h,H,W], w_ss [4h,h,k], bias [4h] | None = None)         -> h [B,h,H,W]
    diagonal_lstm(pre [B,4h,H,W], w_ss [4h,h,2], reverse=False)              -> h [B,h,H,W]
    diagonal_bilstm(pre_left, pre_right, w_left, w_right)                     -> h [B,h,H,W]

pre holds the input-to-state pre-activations of every pixel (gates o, f, i, g); fastgen.reference.
pixel_lstm states the recurrences and is the twin. The Diagonal LSTM's CPU kernel runs the skewed
recurrence on the image itself (index arithmetic, only the H W pixels; reverse mirrors the columns
the same way), and diagonal_bilstm adds the right-to-left direction shifted down one row.
The ops are registered with torch.library (schemas in csrc/registration.cpp, autograd in
csrc/autograd/pixel_lstm.cpp over their backward ops) with fake implementations here. The CPU
kernels return h as a channels-last [B,h,H,W] tensor (the layout they compute in).

Backends (fastgen.ops._route): "reference" the twin; "cpu" the C++ kernels (float32, float64); "cuda"
the CUDA C++ kernels when built; "triton" fastgen.triton.pixel_lstm (persistent kernels, float32 and
float64; CUDA tensors, or CPU tensors under TRITON_INTERPRET=1), which is also the ops' CUDA kernel
when the C++ ones were not built.
"""
from __future__ import annotations

import torch
from torch import Tensor

from fastgen import _extension
from fastgen.ops import _route
from fastgen.reference import pixel_lstm as reference

_CPU_DTYPES = (torch.float32, torch.float64)
_GPU_DTYPES = (torch.float32, torch.float64)
_OPS = ("row_lstm", "diagonal_lstm")


def _kernels(op: str) -> _route.OpKernels:
    # Without CUDA C++ kernels the ops' CUDA slots hold the Triton kernels (registered below), so the C++
    # ones count as built only when those slots hold something else.
    return _route.OpKernels(op, cpu=_CPU_DTYPES, cuda=_GPU_DTYPES, triton=_GPU_DTYPES, triton_runs_on_cpu=True,
                            cuda_built=lambda: _extension.has_kernel(op, "CUDA") and not _TRITON_IS_CUDA_KERNEL)


ROW_KERNELS = _kernels("row_lstm")
DIAGONAL_KERNELS = _kernels("diagonal_lstm")


def _check(op: str, pre: Tensor, w_ss: Tensor, taps: int | None, extra: tuple = ()) -> None:
    """taps: the required kernel width (2 for the Diagonal LSTM), None for odd >= 3 (Row LSTM); extra:
    (tensor or None, name) pairs checked like w_ss (device, dtype)."""
    for arg, name in ((pre, "pre"), (w_ss, "w_ss")):
        if not isinstance(arg, Tensor):
            raise TypeError(f"{op}: {name} must be a torch.Tensor, got {type(arg).__name__}")
    for arg, name in extra:  # optional tensors
        if arg is not None and not isinstance(arg, Tensor):
            raise TypeError(f"{op}: {name} must be a torch.Tensor or None, got {type(arg).__name__}")
    if pre.dim() != 4:
        raise ValueError(f"{op}: pre must be 4-D [B, 4h, H, W], got shape {tuple(pre.shape)}")
    if w_ss.dim() != 3 or w_ss.shape[0] != 4 * w_ss.shape[1] or w_ss.shape[1] < 1:
        raise ValueError(f"{op}: w_ss must be [4h, h, k] with h >= 1, got shape {tuple(w_ss.shape)}")
    hidden, k = w_ss.shape[1], w_ss.shape[2]
    if taps is None and (k < 3 or k % 2 == 0):
        raise ValueError(f"{op}: the state-to-state kernel width k must be odd and >= 3 (w_ss [4h, h, k]), got k = {k}")
    if taps is not None and k != taps:
        raise ValueError(f"{op}: w_ss must be [4h, h, {taps}] (the cell above, the cell to the left), "
                         f"got shape {tuple(w_ss.shape)}")
    if pre.shape[1] != 4 * hidden:
        raise ValueError(f"{op}: pre has {pre.shape[1]} channels but w_ss expects 4h = {4 * hidden}")
    if min(pre.shape) < 1:
        raise ValueError(f"{op}: pre must be non-empty, got shape {tuple(pre.shape)}")
    if not pre.is_floating_point():
        raise TypeError(f"{op}: pre must be a floating-point tensor, got {pre.dtype}")
    for arg, name in ((w_ss, "w_ss"), *extra):
        if arg is None:
            continue
        if arg.device != pre.device:
            raise ValueError(f"{op}: {name} is on {arg.device} but pre is on {pre.device}")
        if arg.dtype != pre.dtype:
            raise TypeError(f"{op}: {name} dtype {arg.dtype} differs from pre dtype {pre.dtype}")


def row_lstm(pre: Tensor, w_ss: Tensor, bias: Tensor | None = None) -> Tensor:
    """The Row LSTM over the whole image, row by row from the top (fastgen.reference.pixel_lstm)."""
    _check("row_lstm", pre, w_ss, None, ((bias, "bias"),))
    if bias is not None and tuple(bias.shape) != (w_ss.shape[0],):
        raise ValueError(f"row_lstm: bias must be [4h] = [{w_ss.shape[0]}], got shape {tuple(bias.shape)}")
    route = _route.resolve(ROW_KERNELS, pre.device, pre.dtype)
    if route == "reference":
        return reference.row_lstm(pre, w_ss, bias)
    if route == "triton":
        from fastgen.triton import pixel_lstm as triton_pixel_lstm

        return triton_pixel_lstm.row_lstm(pre, w_ss, bias)
    return torch.ops.fastgen.row_lstm(pre, w_ss, bias)[0]


def diagonal_lstm(pre: Tensor, w_ss: Tensor, reverse: bool = False) -> Tensor:
    """One direction of the Diagonal BiLSTM: left to right, or right to left with reverse=True."""
    _check("diagonal_lstm", pre, w_ss, 2)
    if not isinstance(reverse, bool):
        raise TypeError(f"diagonal_lstm: reverse must be a bool, got {type(reverse).__name__}")
    route = _route.resolve(DIAGONAL_KERNELS, pre.device, pre.dtype)
    if route == "reference":
        return reference.diagonal_lstm(pre, w_ss, reverse)
    if route == "triton":
        from fastgen.triton import pixel_lstm as triton_pixel_lstm

        return triton_pixel_lstm.diagonal_lstm(pre, w_ss, reverse)
    return torch.ops.fastgen.diagonal_lstm(pre, w_ss, reverse)[0]


def diagonal_bilstm(pre_left: Tensor, pre_right: Tensor, w_left: Tensor, w_right: Tensor) -> Tensor:
    """The recurrence of one Diagonal BiLSTM layer: the left-to-right map plus the right-to-left map
    shifted down one row (fastgen.reference.pixel_lstm.bilstm_combine), so no pixel sees the future."""
    return reference.bilstm_combine(diagonal_lstm(pre_left, w_left), diagonal_lstm(pre_right, w_right, reverse=True))


def _channels_last(t: Tensor, *shape: int) -> Tensor:
    """An empty [B, C, H, W] with the kernels' channels-last strides."""
    B, C, H, W = shape
    return t.new_empty(B, H, W, C).permute(0, 3, 1, 2)


_TRITON_IS_CUDA_KERNEL = False

if _extension.available():

    def _forward_fake(pre, w_ss):
        B, _, H, W = pre.shape
        hidden = w_ss.shape[1]
        return _channels_last(pre, B, hidden, H, W), pre.new_empty(B, H, W, 5 * hidden), pre.new_empty(B, H, W, hidden)

    def _backward_fake(h, w_ss):
        B, hidden, H, W = h.shape
        return _channels_last(h, B, 4 * hidden, H, W), w_ss.new_empty(w_ss.shape)

    torch.library.register_fake("fastgen::row_lstm")(lambda pre, w_ss, bias: _forward_fake(pre, w_ss))
    torch.library.register_fake("fastgen::diagonal_lstm")(lambda pre, w_ss, reverse: _forward_fake(pre, w_ss))
    torch.library.register_fake("fastgen::row_lstm_backward")(
        lambda grad_h, h, act, c, w_ss: _backward_fake(h, w_ss))
    torch.library.register_fake("fastgen::diagonal_lstm_backward")(
        lambda grad_h, h, act, c, w_ss, reverse: _backward_fake(h, w_ss))

    # Without CUDA C++ kernels, the Triton kernels are the ops' CUDA implementation.
    if torch.version.cuda is not None and not any(_extension.has_kernel(op, "CUDA") for op in _OPS):
        try:
            from fastgen.triton import pixel_lstm as _triton
        except ImportError:  # triton missing: CUDA tensors then need the reference backend
            _triton = None
        if _triton is not None:
            for _op, _fwd, _bwd in (("row_lstm", _triton.row_lstm_fwd, _triton.row_lstm_bwd),
                                    ("diagonal_lstm", _triton.diagonal_lstm_fwd, _triton.diagonal_lstm_bwd)):
                torch.library.register_kernel(f"fastgen::{_op}", "cuda", _fwd)
                torch.library.register_kernel(f"fastgen::{_op}_backward", "cuda", _bwd)
            _TRITON_IS_CUDA_KERNEL = True
