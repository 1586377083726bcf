"""Plain-PyTorch twin of the fused DRAW sampler (fastgen.ops.draw_generate).

The generative pass of DRAW (Gregor et al. 2015, eqs. 3-8 at generation time) with write attention:
for t = 1..T, h_t = LSTM(z_t, h_{t-1}) (torch.nn.LSTMCell's gate order i, f, g, o), then
c_t = c_{t-1} + write(h_t), with write = (1/gamma) Fy^T w Fx from the patch head w = W_patch h + b and
the window head W_window h + b. Returns the canvas logits c_T.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from fastgen.reference.attention import attention_write


def draw_generate(noise: Tensor, w_ih: Tensor, w_hh: Tensor, bias: Tensor, w_patch: Tensor, b_patch: Tensor,
                  w_window: Tensor, b_window: Tensor, channels: int, height: int, width: int) -> Tensor:
    T, B, _ = noise.shape
    N = math.isqrt(w_patch.shape[0] // channels)
    h = noise.new_zeros(B, w_hh.shape[1])
    c = torch.zeros_like(h)
    canvas = noise.new_zeros(B, channels, height, width)
    for t in range(T):
        i, f, g, o = (noise[t] @ w_ih.T + h @ w_hh.T + bias).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        patch = (h @ w_patch.T + b_patch).view(B, channels, N, N)
        canvas = attention_write(patch, h @ w_window.T + b_window, height, width, canvas)
    return canvas
