"""torch.nn.LSTMCell's pointwise update, the plain-PyTorch twin of fastgen.ops.lstm_cell_pointwise."""
from __future__ import annotations

import torch
from torch import Tensor


def lstm_cell_pointwise(gates: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    """(h', c') from pre-activation gates [B, 4D] in nn.LSTMCell's order (i, f, g, o) and c [B, D]:
    c' = sigmoid(f) c + sigmoid(i) tanh(g), h' = sigmoid(o) tanh(c')."""
    i, f, g, o = gates.chunk(4, 1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c
