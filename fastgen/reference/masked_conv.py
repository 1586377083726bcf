"""Plain-PyTorch statement of the masked convolutions of PixelCNN and Gated PixelCNN (van den Oord et
al. 2016, "Pixel Recurrent Neural Networks" sec. 3.4-3.5; "Conditional Image Generation with PixelCNN
Decoders" sec. 2.1-2.2): the ground truth for tests and the "eager" column of the benchmarks.

    masked_conv2d(x [B,Cin,H,W], weight [Cout,Cin,kh,kw], bias [Cout] | None, mask, color_groups)
        = F.conv2d(x, weight * M, bias, padding=(kh // 2, kw // 2))          -> [B,Cout,H,W]

kh and kw are odd (the centre tap is the current pixel), stride 1, zero padding. M = conv_mask(...):
  "A" / "B"  raster-order causal: every tap in the rows above the centre row, the taps left of the
             centre in its row, none right of it or below. At the centre tap with color_groups=3, the
             channels are split into R, G, B contiguous thirds (channel c of C is in group c * 3 // C)
             and output group g sees input groups < g ("A", the first layer) or <= g ("B"); with one
             group "A" drops the centre tap and "B" keeps it.
  "V"        the Gated PixelCNN's vertical stack: every tap in the rows up to and including the
             centre row, all columns (the paper's (k//2+1) x k convolution). color_groups must be 1.
The horizontal stack is a 1 x k kernel with mask "A" or "B".
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

MASKS = ("A", "B", "V")
COLOR_GROUPS = (1, 3)


def channel_groups(channels: int, color_groups: int) -> Tensor:
    """The colour group (0..color_groups-1) of each of `channels` channels: contiguous blocks."""
    return torch.arange(channels) * color_groups // channels


def conv_mask(out_channels: int, in_channels: int, kh: int, kw: int, mask: str, color_groups: int = 1) -> Tensor:
    """BoolTensor [out_channels, in_channels, kh, kw]: True where the weight is live (see module doc)."""
    cy, cx = kh // 2, kw // 2
    rows = torch.arange(kh).view(kh, 1)
    cols = torch.arange(kw).view(1, kw)
    if mask == "V":
        spatial = (rows <= cy).expand(kh, kw)
        return spatial.expand(out_channels, in_channels, kh, kw).clone()
    before = (rows < cy) | ((rows == cy) & (cols < cx))  # strictly before the centre in raster order
    m = before.expand(out_channels, in_channels, kh, kw).clone()
    g_out = channel_groups(out_channels, color_groups).view(-1, 1)
    g_in = channel_groups(in_channels, color_groups).view(1, -1)
    m[:, :, cy, cx] = (g_in < g_out) if mask == "A" else (g_in <= g_out)
    return m


def masked_conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, mask: str = "B",
                  color_groups: int = 1) -> Tensor:
    """F.conv2d(x, weight * conv_mask(...), bias, padding=(kh // 2, kw // 2)); see the module doc."""
    out_channels, in_channels, kh, kw = weight.shape
    m = conv_mask(out_channels, in_channels, kh, kw, mask, color_groups).to(weight.device)
    # where, not a product: a masked inf/NaN weight must not leak (inf * 0 = NaN), and its gradient is 0
    return F.conv2d(x, torch.where(m, weight, 0), bias, padding=(kh // 2, kw // 2))
