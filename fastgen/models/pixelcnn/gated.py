"""Gated PixelCNN (van den Oord, Kalchbrenner, Vinyals, Espeholt, Graves & Kavukcuoglu 2016,
"Conditional Image Generation with PixelCNN Decoders", sec. 2.1-2.3 and Figure 2).

Layer l = 0..L-1 carries a vertical map v (p channels; v_0 = the image) and a horizontal map h
(h_0 = the image)::

    a   = convkxk_V(v)                                   rows above and the current one, all columns
    b   = conv1xk_{A if l = 0 else B}(h) + 1x1(down(a))  current row up to the pixel, plus the link
    v'  = tanh(a_f + c_f) * sigmoid(a_g + c_g)           gated units (c: the label's embedding, per layer)
    h'  = 1x1_B(tanh(b_f + c_f) * sigmoid(b_g + c_g)) + (h if l > 0 else 0)   residual on h only
    logits = 1x1_B(relu(1x1_B(relu(h_L))))

down() shifts a map one row down (zero row on top): the vertical map at row r has seen the image's
row r whole, so the horizontal stack takes it from the row above; the next vertical layer takes v'
unshifted. The vertical stack then covers every row above in a cone that widens by k // 2 columns
per layer to either side, and the horizontal stack the current row to the left: no blind spot.

Colour images are supported: the horizontal stack and the output head keep R, G, B channel thirds
(colour groups; each gate pairs tanh and sigmoid channels of the same third), the vertical stack and
the link need none (they only carry rows above). Class conditioning: ``classes`` > 0 adds a learned
embedding of the label to every gate's pre-activation (both stacks, every layer).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fastgen.models.config_utils import check_model_fits, resolve_config
from fastgen.models.pixelcnn.model import OutputHead, PixelModel, check_image_config, logits_per_subpixel
from fastgen.nn.masked_conv import MaskedConv2d


@dataclass
class GatedPixelCNNConfig:
    """Gated PixelCNN's sizes. Defaults: a colour model on the scale of PixelCNNConfig's (32x32x3,
    256-way softmax, 15 layers of 126 units, 5x5 stack kernels); ``GatedPixelCNNConfig.mnist()`` is
    fastgen's small binary-MNIST configuration.

    layers: gated layers; hidden: p, each stack's channels; kernel: k (vertical k x k, horizontal 1 x k;
    odd); output_hidden: width of the first 1x1 output layer (None = 2p); classes: label classes for
    conditioning (0 = unconditional).
    """

    height: int = 32
    width: int = 32
    channels: int = 3
    levels: int = 256
    layers: int = 15
    hidden: int = 126
    kernel: int = 5
    output_hidden: Optional[int] = None
    classes: int = 0

    def __post_init__(self):
        if self.output_hidden is None:
            self.output_hidden = 2 * self.hidden
        check_image_config(self, "GatedPixelCNNConfig", ("hidden", "output_hidden"))
        k = self.kernel
        if isinstance(k, bool) or not isinstance(k, int) or k < 1 or k % 2 == 0:
            raise ValueError(f"GatedPixelCNNConfig: kernel must be an odd positive int, got {k!r}")
        if isinstance(self.classes, bool) or not isinstance(self.classes, int) or self.classes < 0:
            raise ValueError(f"GatedPixelCNNConfig: classes must be an int >= 0, got {self.classes!r}")
        p, oh = self.hidden, self.output_hidden
        outputs = self.channels * logits_per_subpixel(self.levels)
        per_layer = 2 * p * (p * (k * k + k) + 2 * p) + p * p
        weights = self.layers * per_layer + self.classes * self.layers * 4 * p + p * oh + oh * outputs
        # per example, what a training step keeps: both stacks' pre-activations and outputs per layer
        check_model_fits("GatedPixelCNNConfig", weights, self.height * self.width * (8 * p * self.layers + oh + 2 * outputs))

    @classmethod
    def mnist(cls, **overrides) -> "GatedPixelCNNConfig":
        """fastgen's binary-MNIST Gated PixelCNN: 28x28x1, one Bernoulli logit per pixel, 7 layers of
        32 units, 5x5 kernels (our size for a CPU budget)."""
        return cls(**{**dict(height=28, width=28, channels=1, levels=2, layers=7, hidden=32, kernel=5), **overrides})


def gate(pre: Tensor, color_groups: int) -> Tensor:
    """tanh(f) * sigmoid(g) over [B, 2p, ...] -> [B, p, ...]; within each of the colour groups' channel
    blocks the first half is f and the second g, so output third c comes from input third c."""
    B, two_p = pre.shape[:2]
    parts = pre.reshape(B, color_groups, 2, two_p // (2 * color_groups), *pre.shape[2:])
    return (torch.tanh(parts[:, :, 0]) * torch.sigmoid(parts[:, :, 1])).reshape(B, two_p // 2, *pre.shape[2:])


def shift_down(a: Tensor) -> Tensor:
    """Row r of the result is row r - 1 of a (row 0 is zero)."""
    return F.pad(a, (0, 0, 1, 0))[:, :, :-1]


class GatedLayer(nn.Module):
    """One layer of both stacks (see the module docstring)."""

    def __init__(self, first: bool, in_channels: int, hidden: int, kernel: int, color_groups: int):
        super().__init__()
        self.first = first
        self.vertical = MaskedConv2d(in_channels, 2 * hidden, kernel, "V")
        self.horizontal = MaskedConv2d(in_channels, 2 * hidden, (1, kernel), "A" if first else "B", color_groups)
        self.link = MaskedConv2d(2 * hidden, 2 * hidden, 1, "B")
        self.out = MaskedConv2d(hidden, hidden, 1, "B", color_groups)

    def forward(self, v: Tensor, h: Tensor, cond_v: Optional[Tensor], cond_h: Optional[Tensor],
                color_groups: int) -> tuple[Tensor, Tensor]:
        a = self.vertical(v)
        b = self.horizontal(h) + self.link(shift_down(a))
        if cond_v is not None:
            a, b = a + cond_v, b + cond_h
        h_new = self.out(gate(b, color_groups))
        return gate(a, 1), h_new if self.first else h + h_new


class GatedPixelCNN(PixelModel, kind="gated-pixelcnn", config_class=GatedPixelCNNConfig):
    """Gated PixelCNN, optionally class-conditional (see the module docstring)."""

    def __init__(self, config: Optional[GatedPixelCNNConfig] = None, **overrides):
        super().__init__()
        self.config = cfg = resolve_config("GatedPixelCNN", GatedPixelCNNConfig, config, overrides)
        G, p = self.color_groups, cfg.hidden
        self.layers = nn.ModuleList(GatedLayer(l == 0, cfg.channels if l == 0 else p, p, cfg.kernel, G)
                                    for l in range(cfg.layers))
        # every layer's vertical and horizontal gate offsets in one table: [classes, L * 2 * 2p]
        self.class_embed = nn.Embedding(cfg.classes, cfg.layers * 4 * p) if cfg.classes else None
        self.head = OutputHead(p, cfg.output_hidden, cfg.channels * logits_per_subpixel(cfg.levels), G)

    def conditioning(self, labels: Optional[Tensor]) -> list[tuple[Optional[Tensor], Optional[Tensor]]]:
        """Per layer, the (vertical, horizontal) gate offsets [B, 2p, 1, 1] of the labels (None, None
        when unconditional)."""
        L = self.config.layers
        if self.class_embed is None:
            return [(None, None)] * L
        table = self.class_embed(labels).view(labels.shape[0], L, 2, -1, 1, 1)
        return [(table[:, l, 0], table[:, l, 1]) for l in range(L)]

    def network(self, inputs: Tensor, labels: Optional[Tensor] = None) -> Tensor:
        v = h = inputs
        for layer, (cond_v, cond_h) in zip(self.layers, self.conditioning(labels)):
            v, h = layer(v, h, cond_v, cond_h, self.color_groups)
        return self.head(h)
