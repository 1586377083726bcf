"""The masked convolutions of PixelCNN / Gated PixelCNN as one differentiable op.

    masked_conv2d(x [B,Cin,H,W], weight [Cout,Cin,kh,kw], bias [Cout] | None = None,
                  mask="B", color_groups=1)                                  -> [B,Cout,H,W]

The result of F.conv2d(x, weight * M, bias, padding=(kh // 2, kw // 2)) for the raster-order causal
mask M ("A", "B", optionally with R,G,B colour groups) or the vertical-stack mask "V";
fastgen.reference.masked_conv states M exactly and is the twin. The kernels skip the masked taps
instead of multiplying a dense weight by M; the gradient of a masked weight entry is exactly zero.
The op is registered with torch.library (schema in csrc/registration.cpp, autograd in
csrc/autograd/masked_conv.cpp over its own backward op) with fake implementations here.

Backends (fastgen.ops._route): "reference" the twin; "cpu" the C++ kernel (float32, float64); "cuda"
the CUDA C++ kernels when built; "triton" fastgen.triton.masked_conv (CUDA tensors, or CPU tensors
under TRITON_INTERPRET=1), which is also the op's CUDA kernel when the C++ ones were not built.
"""
from __future__ import annotations

import torch
from torch import Tensor

from fastgen import _extension
from fastgen.ops import _route
from fastgen.reference import masked_conv as reference

OP = "masked_conv2d"
_CPU_DTYPES = (torch.float32, torch.float64)
_GPU_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)

# Without CUDA C++ kernels the op's CUDA slot holds the Triton kernels (registered below), so the C++
# ones count as built only when that slot holds something else.
KERNELS = _route.OpKernels(OP, cpu=_CPU_DTYPES, cuda=_GPU_DTYPES, triton=_GPU_DTYPES, triton_runs_on_cpu=True,
                           cuda_built=lambda: _extension.has_kernel(OP, "CUDA") and not _TRITON_IS_CUDA_KERNEL)


def _check(x: Tensor, weight: Tensor, bias: Tensor | None, mask: str, color_groups: int) -> None:
    for arg, name in ((x, "x"), (weight, "weight")):
        if not isinstance(arg, Tensor):
            raise TypeError(f"{OP}: {name} must be a torch.Tensor, got {type(arg).__name__}")
    if bias is not None and not isinstance(bias, Tensor):
        raise TypeError(f"{OP}: bias must be a torch.Tensor or None, got {type(bias).__name__}")
    if not isinstance(mask, str) or mask not in reference.MASKS:
        raise ValueError(f"{OP}: unknown mask {mask!r}; choose one of {', '.join(reference.MASKS)}")
    if isinstance(color_groups, bool) or not isinstance(color_groups, int) or color_groups not in reference.COLOR_GROUPS:
        raise ValueError(f"{OP}: color_groups must be 1 or 3, got {color_groups!r}")
    if mask == "V" and color_groups != 1:
        raise ValueError(f"{OP}: mask 'V' (vertical stack) takes no colour groups; color_groups must be 1, "
                         f"got {color_groups}")
    if x.dim() != 4:
        raise ValueError(f"{OP}: x must be 4-D [B, Cin, H, W], got shape {tuple(x.shape)}")
    if weight.dim() != 4:
        raise ValueError(f"{OP}: weight must be 4-D [Cout, Cin, kh, kw], got shape {tuple(weight.shape)}")
    cout, cin, kh, kw = weight.shape
    if x.shape[1] != cin:
        raise ValueError(f"{OP}: x has {x.shape[1]} channels but weight expects Cin = {cin} "
                         f"(weight shape {tuple(weight.shape)})")
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"{OP}: the kernel size must be odd (the centre tap is the current pixel), "
                         f"got kh x kw = {kh} x {kw}")
    if min(x.shape) < 1 or cout < 1:
        raise ValueError(f"{OP}: x and weight must be non-empty, got x {tuple(x.shape)}, weight {tuple(weight.shape)}")
    if color_groups == 3 and (cin % 3 or cout % 3):
        raise ValueError(f"{OP}: with color_groups=3 the input and output channels must be divisible by 3, "
                         f"got Cin = {cin}, Cout = {cout}")
    if bias is not None and tuple(bias.shape) != (cout,):
        raise ValueError(f"{OP}: bias must be [Cout] = [{cout}], got shape {tuple(bias.shape)}")
    for arg, name in ((weight, "weight"), (bias, "bias")):
        if arg is None:
            continue
        if arg.device != x.device:
            raise ValueError(f"{OP}: {name} is on {arg.device} but x is on {x.device}")
        if arg.dtype != x.dtype:
            raise TypeError(f"{OP}: {name} dtype {arg.dtype} differs from x dtype {x.dtype}")
    if not x.is_floating_point():
        raise TypeError(f"{OP}: x must be a floating-point tensor, got {x.dtype}")


def masked_conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, mask: str = "B",
                  color_groups: int = 1) -> Tensor:
    """F.conv2d(x, weight * M, bias, padding=(kh // 2, kw // 2)) with M the mask (see the module doc)."""
    _check(x, weight, bias, mask, color_groups)
    route = _route.resolve(KERNELS, x.device, x.dtype)
    if route == "reference":
        return reference.masked_conv2d(x, weight, bias, mask, color_groups)
    if route == "triton":
        from fastgen.triton import masked_conv as triton_masked_conv

        return triton_masked_conv.masked_conv2d(x, weight, bias, mask, color_groups)
    return torch.ops.fastgen.masked_conv2d(x, weight, bias, mask, color_groups)


_TRITON_IS_CUDA_KERNEL = False

if _extension.available():

    @torch.library.register_fake("fastgen::masked_conv2d")
    def _(x, weight, bias, mask, color_groups):
        return x.new_empty(x.shape[0], weight.shape[0], x.shape[2], x.shape[3])

    @torch.library.register_fake("fastgen::masked_conv2d_backward")
    def _(grad_out, x, weight, mask, color_groups, output_mask):
        # the kernel's gradients are contiguous whatever the inputs' strides (empty_like keeps them)
        return (x.new_empty(x.shape) if output_mask[0] else None,
                weight.new_empty(weight.shape) if output_mask[1] else None,
                grad_out.new_empty(weight.shape[0]) if output_mask[2] else None)

    # Without CUDA C++ kernels, the Triton kernels are the op's CUDA implementation.
    if torch.version.cuda is not None and not _extension.has_kernel(OP, "CUDA"):
        try:
            from fastgen.triton import masked_conv as _triton
        except ImportError:  # triton missing: CUDA tensors then need the reference backend
            _triton = None
        if _triton is not None:
            torch.library.register_kernel("fastgen::masked_conv2d", "cuda", _triton.masked_conv2d_fwd)
            torch.library.register_kernel("fastgen::masked_conv2d_backward", "cuda", _triton.masked_conv2d_bwd)
            _TRITON_IS_CUDA_KERNEL = True
