"""Plain-PyTorch statement of the two recurrent layers of PixelRNN (van den Oord, Kalchbrenner &
Kavukcuoglu 2016, "Pixel Recurrent Neural Networks" sec. 3.1-3.2): the ground truth for tests and
the "eager" column of the benchmarks. Explicit loops, an explicit skew and unskew: readable, slow.

Both take the input-to-state pre-activations of the whole image, pre [B, 4h, H, W], gate channels
in the order [o, f, i, g] (h channels each), and run the LSTM

    [o, f, i] = sigmoid(K_ss * h_prev + pre),  g = tanh(K_ss * h_prev + pre),
    c = f c_prev + i g,  h = o tanh(c)                         -> h [B, h, H, W]

from zero states. They differ in what "previous" means:

  row_lstm(pre, w_ss [4h, h, k], bias [4h] | None)
      row by row from the top; K_ss * h_prev is the k x 1 convolution (k odd >= 3, unmasked, zero
      padding) of the previous row's h along the row, plus bias; c_prev is the cell above.
  diagonal_lstm(pre, w_ss [4h, h, 2], reverse=False)
      column by column over the skewed image (row r shifted right by r), so a step is one diagonal of
      the image; K_ss * h_prev is the 2 x 1 convolution of the previous skewed column:
      w_ss[:, :, 0] takes the cell above, w_ss[:, :, 1] the cell to the left; c_prev is the cell to
      the left. reverse=True runs the right-to-left direction: mirror the columns, run, un-mirror.
  bilstm_combine(left, right)
      the Diagonal BiLSTM's output: left + right shifted down by one row, so no pixel sees the
      right direction's view of its own row (which includes pixels to its right, the future).

The skewed image has H (W + H - 1) cells of which H W are pixels. Cells left of the pixels (column
< row) start from zero states and zero pre-activations and stay exactly zero; cells right of them
never feed a pixel. So computing only the pixels, as the kernels do, gives the same values.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _lstm_step(gates: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    """(h, c) from pre-activation gates [B, 4h, ...] ordered o, f, i, g and the previous cell c."""
    o, f, i, g = gates.chunk(4, 1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def row_lstm(pre: Tensor, w_ss: Tensor, bias: Tensor | None = None) -> Tensor:
    """The Row LSTM over pre [B, 4h, H, W] with state-to-state weight w_ss [4h, h, k] (module doc)."""
    B, _, H, W = pre.shape
    hidden, k = w_ss.shape[1], w_ss.shape[2]
    h = pre.new_zeros(B, hidden, W)
    c = pre.new_zeros(B, hidden, W)
    rows = []
    for r in range(H):
        h, c = _lstm_step(pre[:, :, r] + F.conv1d(h, w_ss, bias, padding=k // 2), c)
        rows.append(h)
    return torch.stack(rows, 2)


def skew(x: Tensor) -> Tensor:
    """[B, C, H, W] -> [B, C, H, W + H - 1]: row r shifted right by r, zeros elsewhere (the paper's skew)."""
    B, C, H, W = x.shape
    rows = [torch.cat([x.new_zeros(B, C, 1, r), x[:, :, r:r + 1], x.new_zeros(B, C, 1, H - 1 - r)], 3)
            for r in range(H)]
    return torch.cat(rows, 2)


def unskew(x: Tensor, width: int) -> Tensor:
    """Inverse of skew: [B, C, H, width + H - 1] -> [B, C, H, width]."""
    return torch.cat([x[:, :, r:r + 1, r:r + width] for r in range(x.shape[2])], 2)


def diagonal_lstm(pre: Tensor, w_ss: Tensor, reverse: bool = False) -> Tensor:
    """One direction of the Diagonal BiLSTM over pre [B, 4h, H, W], w_ss [4h, h, 2] (module doc)."""
    if reverse:
        return diagonal_lstm(pre.flip(3), w_ss).flip(3)
    B, _, H, W = pre.shape
    hidden = w_ss.shape[1]
    skewed = skew(pre)
    h = pre.new_zeros(B, hidden, H)
    c = pre.new_zeros(B, hidden, H)
    columns = []
    for j in range(skewed.shape[3]):
        # padding one row on top: output row r = w_ss[..., 0] h[r - 1] + w_ss[..., 1] h[r]
        h, c = _lstm_step(skewed[:, :, :, j] + F.conv1d(F.pad(h, (1, 0)), w_ss), c)
        columns.append(h)
    return unskew(torch.stack(columns, 3), W)


def shift_down(x: Tensor) -> Tensor:
    """[B, C, H, W] moved down one row: row 0 zero, row r = x's row r - 1."""
    return F.pad(x, (0, 0, 1, 0))[:, :, :-1]


def bilstm_combine(left: Tensor, right: Tensor) -> Tensor:
    """The Diagonal BiLSTM's output from its two directions (both [B, h, H, W], right un-mirrored)."""
    return left + shift_down(right)


def diagonal_bilstm(pre_left: Tensor, pre_right: Tensor, w_left: Tensor, w_right: Tensor) -> Tensor:
    """Both directions and their combination: the whole recurrence of one Diagonal BiLSTM layer."""
    return bilstm_combine(diagonal_lstm(pre_left, w_left), diagonal_lstm(pre_right, w_right, reverse=True))
