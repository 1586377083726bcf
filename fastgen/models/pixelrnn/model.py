"""PixelRNN (van den Oord, Kalchbrenner & Kavukcuoglu 2016, "Pixel Recurrent Neural Networks",
sec. 3.1-3.3 and 4): the Row LSTM and Diagonal BiLSTM networks over fastgen.ops' recurrences.

Over images x [B, C, H, W] (C = 1 or 3) in raster order, sub-pixels R -> G -> B::

    y_0 = conv7x7_A(x)                                        -> 2h channels
    y_l = y_{l-1} + 1x1_B(LSTM_l(y_{l-1}))                    residual: 2h in, h per gate, 1x1 back to 2h
    logits = 1x1_B(relu(1x1_B(relu(y_L [+ sum_l skip_l(h_l)]))))  -> C * K channels

LSTM_l is the Row LSTM (input-to-state a 1 x k mask-B convolution along the row, state-to-state a
k x 1 convolution of the row above, fastgen.ops.row_lstm) or the Diagonal BiLSTM (a 1x1 mask-B
input-to-state per direction, fastgen.ops.diagonal_bilstm: the right direction shifted down one row).
With C = 3 the mask-B input-to-state convolutions keep R, G, B groups *within every gate*: the
convolution's outputs are ordered colour-major (its contiguous thirds are the groups) and permuted
to gate-major [o | f | i | g], each gate's h channels again R, G, B thirds, so that hidden channel j
belongs to colour j * 3 // h in every gate and in c and h. The state-to-state weights mix all
channels, but only of cells already complete (the row above, the pixel to the left). The image
handling, likelihood, loss and naive sampling are PixelCNN's (fastgen.models.pixelcnn.PixelModel).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor, nn

from fastgen.models.config_utils import check_model_fits, resolve_config
from fastgen.models.pixelcnn.model import OutputHead, PixelModel, check_image_config, logits_per_subpixel
from fastgen.nn.masked_conv import MaskedConv2d
from fastgen.ops import diagonal_bilstm, row_lstm

LAYERS = ("row", "diagonal")


@dataclass
class PixelRNNConfig:
    """PixelRNN's sizes. Defaults: the paper's colour model (32x32x3, 256-way softmax, 12 Diagonal
    BiLSTM layers) with h = 126 (the paper's 128 rounded down to a multiple of 3 for the colour groups).
    ``PixelRNNConfig.mnist()`` is the paper's binary-MNIST model (7 layers, h = 16).

    layer: "row" or "diagonal"; layers: LSTM layers after the 7x7 mask-A layer; hidden: h (the
    residual stream carries 2h); row_kernel: the Row LSTM's k (odd >= 3); skips: learnable 1x1 skip
    connections from every layer to the output; output_hidden: the first output layer's width (None = 2h).
    """

    height: int = 32
    width: int = 32
    channels: int = 3
    levels: int = 256
    layer: str = "diagonal"
    layers: int = 12
    hidden: int = 126
    row_kernel: int = 3
    skips: bool = False
    output_hidden: Optional[int] = None
    first_kernel: int = 7

    def __post_init__(self):
        if self.output_hidden is None:
            self.output_hidden = 2 * self.hidden
        check_image_config(self, "PixelRNNConfig", ("hidden", "output_hidden"))
        if self.layer not in LAYERS:
            raise ValueError(f"PixelRNNConfig: layer must be 'row' or 'diagonal', got {self.layer!r}")
        for field, least in (("row_kernel", 3), ("first_kernel", 1)):
            k = getattr(self, field)
            if isinstance(k, bool) or not isinstance(k, int) or k < least or k % 2 == 0:
                raise ValueError(f"PixelRNNConfig: {field} must be an odd int >= {least}, got {k!r}")
        h, C, oh = self.hidden, self.channels, self.output_hidden
        row = self.layer == "row"
        directions, taps_in, taps_ss = (1, self.row_kernel, self.row_kernel) if row else (2, 1, 2)
        per_layer = directions * (2 * h * 4 * h * taps_in + 4 * h * h * taps_ss) + 2 * h * h * (2 if self.skips else 1)
        weights = C * 2 * h * self.first_kernel ** 2 + self.layers * per_layer
        weights += 2 * h * oh + oh * C * logits_per_subpixel(self.levels)
        # per example and layer the recurrences keep pre-activations, gates, cells and h: about 16h
        check_model_fits("PixelRNNConfig", weights, self.height * self.width * 16 * h * self.layers)

    @classmethod
    def mnist(cls, **overrides) -> "PixelRNNConfig":
        """The paper's binary-MNIST PixelRNN: 28x28x1, one Bernoulli logit per pixel, 7 layers, h = 16."""
        return cls(**{**dict(height=28, width=28, channels=1, levels=2, layers=7, hidden=16), **overrides})


def gate_major(hidden: int, color_groups: int) -> Tensor:
    """Index [4h]: gate-major channel q h + c h/G + j <- colour-major channel c 4h/G + q h/G + j."""
    third = hidden // color_groups
    return torch.tensor([c * 4 * third + q * third + j
                         for q in range(4) for c in range(color_groups) for j in range(third)])


class LSTMLayer(nn.Module):
    """One residual PixelRNN layer (module doc): y [B, 2h, H, W] -> (y + 1x1_B(h), h)."""

    def __init__(self, hidden: int, layer: str, row_kernel: int, color_groups: int):
        super().__init__()
        self.layer = layer
        directions = 1 if layer == "row" else 2
        kernel = (1, row_kernel) if layer == "row" else 1
        self.input_to_state = nn.ModuleList(MaskedConv2d(2 * hidden, 4 * hidden, kernel, "B", color_groups)
                                            for _ in range(directions))
        taps = row_kernel if layer == "row" else 2
        bound = (hidden * taps) ** -0.5
        self.state_to_state = nn.ParameterList(nn.Parameter(torch.empty(4 * hidden, hidden, taps).uniform_(-bound, bound))
                                               for _ in range(directions))
        self.register_buffer("gate_order", gate_major(hidden, color_groups), persistent=False)
        self.output = MaskedConv2d(hidden, 2 * hidden, 1, "B", color_groups)

    def forward(self, y: Tensor) -> tuple[Tensor, Tensor]:
        pre = [conv(y)[:, self.gate_order] for conv in self.input_to_state]
        if self.layer == "row":
            h = row_lstm(pre[0], self.state_to_state[0])
        else:
            h = diagonal_bilstm(pre[0], pre[1], self.state_to_state[0], self.state_to_state[1])
        return y + self.output(h), h


class PixelRNN(PixelModel, kind="pixelrnn", config_class=PixelRNNConfig):
    """PixelRNN with Row LSTM or Diagonal BiLSTM layers (see the module docstring)."""

    def __init__(self, config: Optional[PixelRNNConfig] = None, **overrides):
        super().__init__()
        self.config = cfg = resolve_config("PixelRNN", PixelRNNConfig, config, overrides)
        G, h = self.color_groups, cfg.hidden
        self.input_conv = MaskedConv2d(cfg.channels, 2 * h, cfg.first_kernel, "A", G)
        self.layers = nn.ModuleList(LSTMLayer(h, cfg.layer, cfg.row_kernel, G) for _ in range(cfg.layers))
        self.skips = nn.ModuleList(MaskedConv2d(h, 2 * h, 1, "B", G) for _ in range(cfg.layers)) if cfg.skips else None
        self.head = OutputHead(2 * h, cfg.output_hidden, cfg.channels * logits_per_subpixel(cfg.levels), G)

    def network(self, inputs: Tensor, labels: Optional[Tensor] = None) -> Tensor:
        y = self.input_conv(inputs)
        skipped = 0
        for i, layer in enumerate(self.layers):
            y, h = layer(y)
            if self.skips is not None:
                skipped = skipped + self.skips[i](h)
        return self.head(y + skipped)

    @torch.no_grad()
    def sample(self, n: int, generator: Optional[torch.Generator] = None, uniforms: Optional[Tensor] = None,
               labels: Optional[Tensor] = None, method: str = "fastgen", progress: bool = False) -> Tensor:
        """n images [n, C, H, W] float in [0, 1]: "fastgen" (the C++ cached sampler,
        fastgen.models.pixelrnn.fast_sampling; the naive path where the backend rule picks the reference)
        or "naive" (one full forward per sub-pixel); same uniforms, same images."""
        if method not in ("fastgen", "naive"):
            raise ValueError(f"PixelRNN.sample: method must be 'fastgen' or 'naive' (there is no plain-PyTorch cached "
                             f"twin: only method='naive' is plain PyTorch), got {method!r}")
        if method == "fastgen":
            from fastgen.models.pixelrnn.fast_sampling import sample_fast  # it imports this module
            return sample_fast(self, n, uniforms=uniforms, generator=generator, labels=labels, progress=progress)
        return super().sample(n, generator=generator, uniforms=uniforms, labels=labels, method="naive")
