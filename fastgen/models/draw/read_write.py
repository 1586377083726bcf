"""DRAW's read and write blocks (with or without attention), shared with AlignDRAW."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from fastgen.nn.attention import GaussianRead, GaussianWrite


class Reader(nn.Module):
    """read(x, x^, h): GaussianRead on [x, x^] stacked as channels (one op call), or both flattened.

    Output [B, out_size]: 2*C*N*N with attention, 2*C*H*W without.
    """

    def __init__(self, N: Optional[int], channels: int, height: int, width: int, hidden_size: int):
        super().__init__()
        self.N = N
        self.attention = GaussianRead(N, hidden_size=hidden_size) if N is not None else None
        self.out_size = 2 * channels * (N * N if N is not None else height * width)

    @property
    def heads(self) -> list[nn.Linear]:
        """The linear heads from h to the window parameters (none without attention)."""
        return [] if self.attention is None else [self.attention.to_params]

    def forward(self, x: Tensor, x_hat: Tensor, h: Tensor) -> Tensor:
        return self.apply_heads(x, x_hat, [m(h) for m in self.heads])

    def apply_heads(self, x: Tensor, x_hat: Tensor, outputs: list[Tensor]) -> Tensor:
        """read(x, x^) with the window from the ``heads`` outputs (computed by the caller)."""
        both = torch.cat([x, x_hat], dim=1)  # [B, 2C, H, W]
        if self.attention is None:
            return both.flatten(1)
        return self.attention(both, params=outputs[0]).flatten(1)


class Writer(nn.Module):
    """canvas + write(h): GaussianWrite's patch and window heads with the fused canvas add, or a
    linear map from h to the whole canvas. Returns (new canvas, window params [B, 5] or None)."""

    def __init__(self, N: Optional[int], channels: int, height: int, width: int, hidden_size: int):
        super().__init__()
        self.N, self.shape = N, (channels, height, width)
        if N is not None:
            self.attention = GaussianWrite(N, height, width, channels, hidden_size=hidden_size)
            self.linear = None
        else:
            self.attention = None
            self.linear = nn.Linear(hidden_size, channels * height * width)

    @property
    def heads(self) -> list[nn.Linear]:
        """The linear heads from h: window parameters and patch, or the whole canvas."""
        return [self.linear] if self.attention is None else [self.attention.to_params, self.attention.to_patch]

    def forward(self, h: Tensor, canvas: Tensor) -> tuple[Tensor, Optional[Tensor]]:
        return self.apply_heads([m(h) for m in self.heads], canvas)

    def apply_heads(self, outputs: list[Tensor], canvas: Tensor) -> tuple[Tensor, Optional[Tensor]]:
        """canvas + write, from the ``heads`` outputs (computed by the caller)."""
        if self.attention is None:
            return canvas + outputs[0].view(canvas.shape), None
        head = self.attention
        params, patch = outputs
        patch = patch.view(patch.shape[0], head.channels, head.N, head.N)
        return head(w=patch, params=params, canvas=canvas), params
