"""MaskedConv2d: the drop-in layer over fastgen.ops.masked_conv2d (PixelCNN's mask A / mask B, with
R,G,B colour groups, and the Gated PixelCNN's vertical-stack mask "V"; fastgen.reference.masked_conv
states the masks)."""
from __future__ import annotations

import math
from typing import Union

import torch
from torch import Tensor, nn

from fastgen.ops.masked_conv import masked_conv2d
from fastgen.reference.masked_conv import COLOR_GROUPS, MASKS, conv_mask

_NAME = "MaskedConv2d"


def _kernel_pair(kernel_size) -> tuple[int, int]:
    pair = (kernel_size, kernel_size) if not isinstance(kernel_size, (tuple, list)) else tuple(kernel_size)
    if len(pair) != 2 or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 or k % 2 == 0 for k in pair):
        raise ValueError(f"{_NAME}: kernel_size must be an odd positive int or a pair (kh, kw) of them "
                         f"(the centre tap is the current pixel), got {kernel_size!r}")
    return pair


class MaskedConv2d(nn.Module):
    """A same-size (stride 1, zero padding k // 2) convolution whose weight is masked by ``mask``.

    Initialised like nn.Conv2d, then the masked weight entries are set to zero; they stay zero under
    training because the op's gradient there is exactly zero (and the op ignores their values anyway).
    ``mask`` (the mask letter) and ``weight_mask`` (the BoolTensor, a non-persistent buffer rebuilt from
    the constructor's arguments) describe the live taps.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Union[int, tuple[int, int]],
                 mask: str = "A", color_groups: int = 1, bias: bool = True):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{_NAME}: {name} must be a positive int, got {value!r}")
        kh, kw = _kernel_pair(kernel_size)
        if not isinstance(mask, str) or mask not in MASKS:
            raise ValueError(f"{_NAME}: unknown mask {mask!r}; choose one of {', '.join(MASKS)}")
        if isinstance(color_groups, bool) or color_groups not in COLOR_GROUPS:
            raise ValueError(f"{_NAME}: color_groups must be 1 or 3, got {color_groups!r}")
        if mask == "V" and color_groups != 1:
            raise ValueError(f"{_NAME}: mask 'V' (vertical stack) takes no colour groups, got color_groups={color_groups}")
        if color_groups == 3 and (in_channels % 3 or out_channels % 3):
            raise ValueError(f"{_NAME}: with color_groups=3 in_channels and out_channels must be divisible by 3, "
                             f"got {in_channels} and {out_channels}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.mask, self.color_groups = (kh, kw), mask, color_groups
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kh, kw))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.register_buffer("weight_mask", conv_mask(out_channels, in_channels, kh, kw, mask, color_groups),
                             persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """nn.Conv2d's initialisation (fan-in over the whole kernel), then zero the masked entries."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.weight[0].numel())
            nn.init.uniform_(self.bias, -bound, bound)
        with torch.no_grad():
            self.weight.masked_fill_(~self.weight_mask, 0)

    def masked_weight(self) -> Tensor:
        """The weight with its masked entries zero (what the op convolves with)."""
        return torch.where(self.weight_mask, self.weight, 0)

    def forward(self, x: Tensor) -> Tensor:
        return masked_conv2d(x, self.weight, self.bias, self.mask, self.color_groups)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, mask={self.mask!r}, "
                f"color_groups={self.color_groups}, bias={self.bias is not None}")


__all__ = ["MaskedConv2d"]
