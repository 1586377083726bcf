"""A PixelCNN's or Gated PixelCNN's weights exported once into the flat plan the fast sampler reads
(csrc/cpu/pixelcnn_sampler_kernels.h states the layouts), plus the shapes of its caches.

Every activation vector is laid out [G][S][pad8(C / (G S))]: G colour groups (3 for colour images;
1 for the Gated PixelCNN's vertical stack and link input), S = 2 for gate pre-activations (tanh half,
sigmoid half) and 1 otherwise. Padding entries are zero in every weight and bias, so they stay zero
in the activations. A k x k masked convolution keeps its rows up to the centre: every row above with
all k columns, the centre row up to its last live column; its masked entries are zero (the kernel
relies on that: a colour pass reads input groups that later passes will overwrite).

The plan of a model is made once per set of weight values (``plan_of`` keys it on the parameters'
storage and version counters, so an optimizer step or load_state_dict makes a new one).
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import Tensor

from fastgen.models.pixelcnn.gated import GatedPixelCNN
from fastgen.models.pixelcnn.model import PixelCNN, PixelModel, logits_per_subpixel
from fastgen.nn.masked_conv import MaskedConv2d

PIXELCNN_KIND, GATED_KIND = 0, 1


def pad8(n: int) -> int:
    return -(-n // 8) * 8


@dataclass(frozen=True)
class Layout:
    """Where each of ``channels`` channels sits in a [groups][halves][pad8(...)] vector."""

    positions: Tensor  # [channels] long
    width: int

    @classmethod
    def of(cls, channels: int, groups: int, halves: int = 1) -> "Layout":
        per_group, quarter = channels // groups, channels // (groups * halves)
        padded = pad8(quarter)
        ch = torch.arange(channels)
        group, rest = ch // per_group, ch % per_group
        return cls(group * halves * padded + (rest // quarter) * padded + rest % quarter, groups * halves * padded)


def _place(values: Tensor, rows: Layout, cols: Layout) -> Tensor:
    """values [cout, cin] (a 1x1 tap) as the [rows.width, cols.width] block the kernel multiplies by."""
    block = values.new_zeros(rows.width, cols.width)
    block[rows.positions[:, None], cols.positions[None, :]] = values.t()
    return block


def _bias(layer: MaskedConv2d, out: Layout) -> Tensor:
    b = torch.zeros(out.width, dtype=torch.float32)
    if layer.bias is not None:
        b[out.positions] = layer.bias.detach().float()
    return b


def dense(layer: MaskedConv2d, inp: Layout, out: Layout) -> list[Tensor]:
    """A 1x1 layer: [weight [in, out], bias [out]]."""
    return [_place(layer.masked_weight().detach().float()[:, :, 0, 0], inp, out), _bias(layer, out)]


def conv(layer: MaskedConv2d, inp: Layout, out: Layout) -> tuple[list[Tensor], tuple[int, int, int]]:
    """A masked conv: ([weight [taps * in, out], bias [out]], (rows, kw, centre)) with the kept taps in
    raster order (see the module docstring)."""
    kh, kw = layer.kernel_size
    rows = kh // 2 + 1
    live = layer.weight_mask[:, :, kh // 2].flatten(0, 1).any(0).nonzero()
    centre = int(live.max()) + 1 if len(live) else 0
    w = layer.masked_weight().detach().float()
    taps = [(i, j) for i in range(rows) for j in range(kw if i + 1 < rows else centre)]
    blocks = [_place(w[:, :, i, j], inp, out) for i, j in taps]
    weight = torch.cat(blocks) if blocks else w.new_zeros(0, out.width)
    return [weight, _bias(layer, out)], (rows, kw, centre)


@dataclass
class SamplerPlan:
    """What the kernel reads (weights, dims) and what a cache must hold (cache_shapes per image)."""

    kind: int
    weights: list[Tensor]
    dims: list[int]
    cache_shapes: list[tuple[int, ...]]  # without the leading batch dimension
    cond_layouts: Optional[tuple[Layout, Layout]]  # Gated with classes: vertical, horizontal gate offsets

    def pack_cond(self, model: PixelModel, labels: Optional[Tensor]) -> Optional[Tensor]:
        """[n, L, vertical width + horizontal width]: every layer's gate offsets of the labels, or None."""
        if self.cond_layouts is None or labels is None:
            return None
        v, h = self.cond_layouts
        per_layer = model.conditioning(labels)
        cond = torch.zeros(len(labels), len(per_layer), v.width + h.width)
        for l, (cv, ch) in enumerate(per_layer):
            cond[:, l, v.positions] = cv.detach().float().flatten(1)
            cond[:, l, v.width + h.positions] = ch.detach().float().flatten(1)
        return cond


def _head(model: PixelModel, inp: Layout, G: int) -> list[Tensor]:
    cfg = model.config
    hidden = Layout.of(cfg.output_hidden, G)
    logits = Layout.of(cfg.channels * logits_per_subpixel(cfg.levels), G)
    return dense(model.head.hidden, inp, hidden) + dense(model.head.out, hidden, logits)


def _pixelcnn(model: PixelCNN) -> SamplerPlan:
    cfg, G = model.config, model.color_groups
    image, y, h = Layout.of(cfg.channels, G), Layout.of(2 * cfg.hidden, G), Layout.of(cfg.hidden, G)
    weights, geometry = _head(model, y, G), []
    first, shape = conv(model.input_conv, image, y)
    weights += first
    geometry += shape
    for block in model.blocks:
        kxk, shape = conv(block.conv, h, h)
        weights += dense(block.reduce, y, h) + kxk + dense(block.expand, h, y)
        geometry += shape
    pf, pk = cfg.first_kernel // 2, cfg.kernel // 2
    caches = [(pf + 1, cfg.width + 2 * pf, image.width)] + [(pk + 1, cfg.width + 2 * pk, h.width)] * cfg.layers
    return SamplerPlan(PIXELCNN_KIND, weights, geometry, caches, None)


def _gated(model: GatedPixelCNN) -> SamplerPlan:
    cfg, G, L, p = model.config, model.color_groups, model.config.layers, model.config.hidden
    image = Layout.of(cfg.channels, G)
    v_pre, v = Layout.of(2 * p, 1, 2), Layout.of(p, 1)
    h_pre, h = Layout.of(2 * p, G, 2), Layout.of(p, G)
    weights, geometry = _head(model, h, G), []
    for l, layer in enumerate(model.layers):
        vertical, v_shape = conv(layer.vertical, image if l == 0 else v, v_pre)
        horizontal, h_shape = conv(layer.horizontal, image if l == 0 else h, h_pre)
        weights += vertical + horizontal + dense(layer.link, v_pre, h_pre) + dense(layer.out, h, h)
        geometry += v_shape + h_shape
    half = cfg.kernel // 2
    caches = ([(half + 1, cfg.width + 2 * half, image.width)] + [(half + 1, cfg.width + 2 * half, v.width)] * (L - 1)
              + [(1, cfg.width + 2 * half, h.width)] * (L - 1) + [(L, cfg.width, h_pre.width)])
    return SamplerPlan(GATED_KIND, weights, geometry, caches, (v_pre, h_pre) if cfg.classes else None)


def build_plan(model: PixelModel) -> SamplerPlan:
    """The plan of ``model``'s current weights (float32, whatever the model's dtype)."""
    if isinstance(model, GatedPixelCNN):
        plan = _gated(model)
    elif isinstance(model, PixelCNN):
        plan = _pixelcnn(model)
    else:
        raise TypeError(f"pixelcnn fast sampling: expected a PixelCNN or GatedPixelCNN, got {type(model).__name__}")
    cfg = model.config
    table = model.network_input(torch.arange(cfg.levels)).detach().float()
    plan.weights = [table] + [t.contiguous() for t in plan.weights]
    plan.dims = [plan.kind, cfg.height, cfg.width, cfg.channels, logits_per_subpixel(cfg.levels), cfg.layers] + plan.dims
    return plan


def weights_key(model: PixelModel) -> tuple:
    """Changes whenever a parameter's values may have changed (in-place updates bump _version)."""
    return tuple((p.data_ptr(), p._version, p.dtype) for p in model.parameters())


_PLANS: "weakref.WeakKeyDictionary[PixelModel, tuple[tuple, object]]" = weakref.WeakKeyDictionary()


def plan_of(model: PixelModel, build: Optional[Callable] = None):
    """``build(model)`` (default: build_plan, PixelCNN's), reused while the weights are unchanged."""
    key = weights_key(model)
    cached = _PLANS.get(model)
    if cached is None or cached[0] != key:
        with torch.no_grad():
            cached = (key, (build or build_plan)(model))
        _PLANS[model] = cached
    return cached[1]
