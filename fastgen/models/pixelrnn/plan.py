"""A PixelRNN's weights exported once into the flat plan the fast sampler reads
(csrc/cpu/pixelrnn_sampler_kernels.h states the layouts and the caches), plus the shapes of its caches.

The vectors are laid out as PixelCNN's plan lays them out (fastgen.models.pixelcnn.plan.Layout:
[G][pad8(C / G)], padding zero in every weight and bias): the residual stream (2h), h and c (h), and
the gates as [G][o, f, i, g][pad8(h / G)]. The input-to-state convolutions' outputs are colour-major
(each colour third holds that colour's o, f, i, g), which is exactly that gate layout; the
state-to-state weights are gate-major (the model's ``gate_order`` permutation) and are placed through
it. The plan is made once per set of weight values (``plan_of``, keyed like PixelCNN's).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from fastgen.models.pixelcnn.model import logits_per_subpixel
from fastgen.models.pixelcnn import plan as pixelcnn_plan
from fastgen.models.pixelcnn.plan import Layout, _place, conv, dense
from fastgen.models.pixelrnn.model import LSTMLayer, PixelRNN

ROW_KIND, DIAGONAL_KIND = 0, 1


@dataclass
class RnnSamplerPlan:
    """What the kernel reads (weights, dims) and what a cache must hold (cache_shapes per image)."""

    weights: list[Tensor]
    dims: list[int]
    cache_shapes: list[tuple[int, ...]]  # without the leading batch dimension


def _state_to_state(weight: Tensor, hidden: Layout, gate_major: Layout) -> Tensor:
    """w_ss [4h, h, taps] -> [taps * Hd, Gw]: one [Hd, Gw] block per tap, in tap order."""
    w = weight.detach().float()
    return torch.cat([_place(w[:, :, t], hidden, gate_major) for t in range(w.shape[2])])


def _layer(layer: LSTMLayer, skip, y: Layout, hidden: Layout, gates: Layout) -> tuple[list[Tensor], tuple[int, int]]:
    """One layer's weights in the kernel's order and its input-to-state (kw, centre)."""
    gate_major = Layout(gates.positions[layer.gate_order], gates.width)
    left, (rows, kw, centre) = conv(layer.input_to_state[0], y, gates)
    assert rows == 1, "PixelRNN input-to-state convolutions are one row"
    weights = left
    if layer.layer == "diagonal":
        weights += dense(layer.input_to_state[1], y, gates)
    weights += [_state_to_state(w, hidden, gate_major) for w in layer.state_to_state]
    weights += dense(layer.output, hidden, y)
    if skip is not None:
        weights += dense(skip, hidden, y)
    return weights, (kw, centre)


def build_plan(model: PixelRNN) -> RnnSamplerPlan:
    """The plan of ``model``'s current weights (float32, whatever the model's dtype)."""
    if not isinstance(model, PixelRNN):
        raise TypeError(f"pixelrnn fast sampling: expected a PixelRNN, got {type(model).__name__}")
    cfg, G, h = model.config, model.color_groups, model.config.hidden
    K = logits_per_subpixel(cfg.levels)
    image, y, hidden = Layout.of(cfg.channels, G), Layout.of(2 * h, G), Layout.of(h, G)
    gates, head = Layout.of(4 * h, G, 4), Layout.of(cfg.output_hidden, G)
    weights = [model.network_input(torch.arange(cfg.levels)).detach().float()]
    weights += dense(model.head.hidden, y, head) + dense(model.head.out, head, Layout.of(cfg.channels * K, G))
    first, (f_rows, f_kw, f_centre) = conv(model.input_conv, image, y)
    weights += first
    for l, layer in enumerate(model.layers):
        layer_weights, (in_kw, in_centre) = _layer(layer, None if model.skips is None else model.skips[l], y, hidden,
                                                   gates)
        weights += layer_weights
    row = cfg.layer == "row"
    taps = cfg.row_kernel if row else 2
    dims = [ROW_KIND if row else DIAGONAL_KIND, cfg.height, cfg.width, cfg.channels, K, cfg.layers,
            int(model.skips is not None), taps, f_rows, f_kw, f_centre, in_kw, in_centre]
    W, p = cfg.width, taps // 2
    if row:
        per_layer = [(1, W + 2 * p, y.width), (2, W + 2 * p, hidden.width), (2, W, hidden.width)]
    else:
        per_layer = [(1, W, y.width)] + [(2, W + 2, hidden.width), (1, W + 2, hidden.width)] * 2
    caches = [(f_rows, W + 2 * (f_kw // 2), image.width)] + per_layer * cfg.layers
    return RnnSamplerPlan([t.contiguous() for t in weights], dims, caches)


def plan_of(model: PixelRNN) -> RnnSamplerPlan:
    """build_plan(model), reused while the weights are unchanged (PixelCNN's plan cache)."""
    return pixelcnn_plan.plan_of(model, build_plan)
