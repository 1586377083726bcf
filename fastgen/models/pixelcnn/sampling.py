"""Sampling PixelCNN and Gated PixelCNN: the naive definition and its cached plain-PyTorch twin.

Both draw sub-pixels in raster order, R -> G -> B within a pixel, by inverse CDF from caller-supplied
uniforms u [n, C, H, W] (or ones drawn from a generator): a binary sub-pixel is 1 when
u < sigmoid(logit); a 256-level one is the first level whose cumulative softmax probability exceeds u.
Given the same weights and uniforms every path gives the same image.

naive   one full forward pass per sub-pixel (C * H * W passes): the definition.
cached  the "Fast PixelCNN++" idea (Ramachandran et al. 2017; PrajitR/fast-pixel-cnn): every layer
        whose kernel spans more than one pixel keeps its input map as a cache, and after a sub-pixel
        is drawn each layer is computed only where the next prediction needs it and its output can
        have changed. Every PixelCNN layer's output at pixel q depends only on the image before q
        (and q's earlier colours), so predicting q computes each layer at q alone, from the rows
        q.row - k//2 .. q.row of its cached input. The Gated PixelCNN's vertical stack sees the whole
        current row, but the horizontal stack reads it one row down: its row r - 1 is computed once,
        for the whole row, when row r starts; the horizontal stack runs at q alone.
        ``cached_logits`` runs the same computation fed a real image (teacher forcing): it must
        reproduce the full forward's logits.
fastgen the cached algorithm in one C++ call per chunk of pixels (fast_sampling.sample_fast); it runs
        ``sample_cached`` where the backend rule picks the reference (a model not in float32, say).

``sample(model, n, ..., method=)`` picks one of the three ("fastgen" by default).
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from fastgen.models.pixelcnn.gated import GatedPixelCNN, gate
from fastgen.models.pixelcnn.model import PixelCNN, PixelModel, logits_per_subpixel
from fastgen.nn.masked_conv import MaskedConv2d


def draw_levels(logits: Tensor, u: Tensor) -> Tensor:
    """Inverse-CDF draw: logits [n] (Bernoulli) or [n, K] (softmax), u [n] in [0, 1) -> levels [n] long."""
    if logits.dim() == 1:
        return (u < torch.sigmoid(logits)).long()
    cdf = torch.softmax(logits, dim=-1).cumsum(-1)
    # levels whose cdf <= u are passed over; rounding can leave cdf[-1] just under 1, hence the clamp
    level = torch.searchsorted(cdf, u.unsqueeze(-1).contiguous(), right=True).squeeze(-1)
    return level.clamp_(max=logits.shape[-1] - 1)


def _uniforms(model: PixelModel, n, uniforms: Optional[Tensor], generator: Optional[torch.Generator],
              where: str) -> Tensor:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{where}: n must be a positive int, got {n!r}")
    cfg = model.config
    shape = (n, cfg.channels, cfg.height, cfg.width)
    if uniforms is None:
        return torch.rand(shape, generator=generator, dtype=model.dtype)
    if generator is not None:
        raise ValueError(f"{where}: pass uniforms or a generator, not both")
    if not isinstance(uniforms, Tensor) or not uniforms.is_floating_point():
        raise TypeError(f"{where}: uniforms must be a float tensor {list(shape)}")
    if tuple(uniforms.shape) != shape:
        raise ValueError(f"{where}: uniforms must be {list(shape)}, got {list(uniforms.shape)}")
    if not ((uniforms >= 0) & (uniforms < 1)).all():
        raise ValueError(f"{where}: uniforms must lie in [0, 1)")
    return uniforms.to(model.dtype)


def _images(model: PixelModel, levels: Tensor) -> Tensor:
    """Levels -> float images in [0, 1] in the model's dtype."""
    return levels.to(model.dtype) / (model.config.levels - 1)


def _raster(model: PixelModel):
    cfg = model.config
    for r in range(cfg.height):
        for c in range(cfg.width):
            yield r, c


@torch.no_grad()
def sample_naive(model: PixelModel, n: int, uniforms: Optional[Tensor] = None,
                 generator: Optional[torch.Generator] = None, labels: Optional[Tensor] = None) -> Tensor:
    """n images [n, C, H, W] (float in [0, 1]), one full forward pass per sub-pixel."""
    where = f"{type(model).__name__} sample_naive"
    u = _uniforms(model, n, uniforms, generator, where)
    model.check_labels(labels, n, where)
    cfg = model.config
    levels = torch.zeros(n, cfg.channels, cfg.height, cfg.width, dtype=torch.long)
    for r, c in _raster(model):
        for ch in range(cfg.channels):
            logits = model.split_logits(model.network(model.network_input(levels), labels))
            levels[:, ch, r, c] = draw_levels(logits[:, ch, r, c], u[:, ch, r, c])
    return _images(model, levels)


# ---------------------------------------------------------------------------------------------
# the cached twin


class _Map:
    """A layer input's cache [n, C, top + H, side + W + side], zero where the convolution pads."""

    def __init__(self, n: int, channels: int, H: int, W: int, top: int, side: int, dtype: torch.dtype):
        self.data = torch.zeros(n, channels, top + H, W + 2 * side, dtype=dtype)
        self.top, self.side, self.W = top, side, W

    def put(self, r: int, c: int, value: Tensor) -> None:
        self.data[:, :, self.top + r, self.side + c] = value

    def put_row(self, r: int, value: Tensor) -> None:
        self.data[:, :, self.top + r, self.side:self.side + self.W] = value

    def window(self, r: int, c: int, rows: int, kw: int) -> Tensor:
        """Input rows r - rows + 1 .. r, columns c - kw//2 .. c + kw//2."""
        top, left = self.top + r - rows + 1, self.side + c - kw // 2
        return self.data[:, :, top:top + rows, left:left + kw]

    def rows(self, r: int, rows: int, kw: int) -> Tensor:
        """Input rows r - rows + 1 .. r, every column with kw//2 padding columns either side."""
        top, left = self.top + r - rows + 1, self.side - kw // 2
        return self.data[:, :, top:top + rows, left:left + self.W + kw - 1]


class _Taps:
    """A masked convolution evaluated at one position or along one row. Masks A, B and V leave every
    row below the centre empty, so only rows up to the centre are kept."""

    def __init__(self, layer: MaskedConv2d, counter: list):
        kh, self.kw = layer.kernel_size
        self.rows = kh // 2 + 1
        self.weight = layer.masked_weight()[:, :, :self.rows].contiguous()
        self.flat = self.weight.reshape(self.weight.shape[0], -1)
        self.bias = layer.bias
        self.counter = counter  # [positions computed], shared by a sampler's layers

    def at(self, cache: _Map, r: int, c: int) -> Tensor:
        """[n, Cout]: the output at (r, c)."""
        self.counter[0] += 1
        window = cache.window(r, c, self.rows, self.kw)
        return F.linear(window.reshape(window.shape[0], -1), self.flat, self.bias)

    def row(self, cache: _Map, r: int) -> Tensor:
        """[n, Cout, W]: the output along row r."""
        self.counter[0] += cache.W
        return F.conv2d(cache.rows(r, self.rows, self.kw), self.weight, self.bias)[:, :, 0]


def _pointwise(layer: MaskedConv2d) -> Callable[[Tensor], Tensor]:
    """A 1x1 masked convolution as a linear map over the channels of [..., Cin]."""
    weight = layer.masked_weight()[:, :, 0, 0]
    return lambda x: F.linear(x, weight, layer.bias)


class _PixelCNNSteps:
    """PixelCNN's caches: the image and every block's kxk input."""

    def __init__(self, model: PixelCNN, n: int, labels: Optional[Tensor], counter: list):
        cfg, dt = model.config, model.dtype
        H, W, pf, pk = cfg.height, cfg.width, cfg.first_kernel // 2, cfg.kernel // 2
        self.image = _Map(n, cfg.channels, H, W, pf, pf, dt)
        self.first = _Taps(model.input_conv, counter)
        self.blocks = [(_pointwise(b.reduce), _Taps(b.conv, counter), _pointwise(b.expand),
                        _Map(n, cfg.hidden, H, W, pk, pk, dt)) for b in model.blocks]
        self.head = (_pointwise(model.head.hidden), _pointwise(model.head.out))

    def start_row(self, r: int) -> None:
        pass

    def logits_at(self, r: int, c: int) -> Tensor:
        y = self.first.at(self.image, r, c)
        for reduce, conv, expand, cache in self.blocks:
            cache.put(r, c, torch.relu(reduce(torch.relu(y))))
            y = y + expand(torch.relu(conv.at(cache, r, c)))
        hidden, out = self.head
        return out(torch.relu(hidden(torch.relu(y))))


class _GatedSteps:
    """Gated PixelCNN's caches: the image, each vertical and horizontal layer's input, and each layer's
    link term for the current row."""

    def __init__(self, model: GatedPixelCNN, n: int, labels: Optional[Tensor], counter: list):
        cfg, dt = model.config, model.dtype
        H, W, p, half = cfg.height, cfg.width, cfg.hidden, cfg.kernel // 2
        self.G = model.color_groups
        self.image = _Map(n, cfg.channels, H, W, half, half, dt)
        self.v_in = [self.image] + [_Map(n, p, H, W, half, half, dt) for _ in range(cfg.layers - 1)]
        self.h_in = [self.image] + [_Map(n, p, H, W, 0, half, dt) for _ in range(cfg.layers - 1)]
        self.layers = [(_Taps(l.vertical, counter), _Taps(l.horizontal, counter), _pointwise(l.link),
                        _pointwise(l.out)) for l in model.layers]
        self.cond = [(None if cv is None else cv.view(n, -1), None if ch is None else ch.view(n, -1))
                     for cv, ch in model.conditioning(labels)]
        self.links = [None] * cfg.layers  # [n, W, 2p] per layer: link(vertical pre-activation, row above)
        self.n, self.W, self.p = n, W, p
        self.head = (_pointwise(model.head.hidden), _pointwise(model.head.out))

    def start_row(self, r: int) -> None:
        if r == 0:  # the row above the image is the shift's zero row
            above = self.image.data.new_zeros(self.n, self.W, 2 * self.p)
            self.links = [link(above) for _, _, link, _ in self.layers]
            return
        for l, ((vertical, _, link, _), (cond_v, _)) in enumerate(zip(self.layers, self.cond)):
            a = vertical.row(self.v_in[l], r - 1)  # [n, 2p, W]
            self.links[l] = link(a.transpose(1, 2))
            if l + 1 < len(self.layers):
                self.v_in[l + 1].put_row(r - 1, gate(a if cond_v is None else a + cond_v[:, :, None], 1))

    def logits_at(self, r: int, c: int) -> Tensor:
        h = None
        for l, ((_, horizontal, _, out), (_, cond_h)) in enumerate(zip(self.layers, self.cond)):
            b = horizontal.at(self.h_in[l], r, c) + self.links[l][:, c]
            h_new = out(gate(b if cond_h is None else b + cond_h, self.G))
            h = h_new if h is None else h + h_new
            if l + 1 < len(self.layers):
                self.h_in[l + 1].put(r, c, h)
        hidden, out = self.head
        return out(torch.relu(hidden(torch.relu(h))))


def _steps(model: PixelModel, n: int, labels: Optional[Tensor], counter: list):
    if isinstance(model, GatedPixelCNN):
        return _GatedSteps(model, n, labels, counter)
    if isinstance(model, PixelCNN):
        return _PixelCNNSteps(model, n, labels, counter)
    raise TypeError(f"pixelcnn sampling: expected a PixelCNN or GatedPixelCNN, got {type(model).__name__}")


def run_cached(model: PixelModel, n: int, labels: Optional[Tensor],
               choose: Callable[[Tensor, int, int, int], Tensor]) -> tuple[Tensor, int]:
    """The cached pass over every sub-pixel in raster order: choose(logits [n] or [n, K], channel, row,
    col) returns that sub-pixel's levels [n], written into the image before the next prediction.
    Returns (levels [n, C, H, W], positions at which a spatial (k > 1 or 1 x k) convolution ran)."""
    cfg = model.config
    K = logits_per_subpixel(cfg.levels)
    counter = [0]
    steps = _steps(model, n, labels, counter)
    levels = torch.zeros(n, cfg.channels, cfg.height, cfg.width, dtype=torch.long)
    for r, c in _raster(model):
        if c == 0:
            steps.start_row(r)
        for ch in range(cfg.channels):
            out = steps.logits_at(r, c)[:, ch * K:(ch + 1) * K]
            level = choose(out[:, 0] if K == 1 else out, ch, r, c)
            levels[:, ch, r, c] = level
            steps.image.put(r, c, model.network_input(levels[:, :, r, c]))
    return levels, counter[0]


@torch.no_grad()
def sample_cached(model: PixelModel, n: int, uniforms: Optional[Tensor] = None,
                  generator: Optional[torch.Generator] = None, labels: Optional[Tensor] = None) -> Tensor:
    """n images [n, C, H, W] (float in [0, 1]) by the cached pass; the same images as sample_naive for
    the same uniforms."""
    where = f"{type(model).__name__} sample_cached"
    u = _uniforms(model, n, uniforms, generator, where)
    model.check_labels(labels, n, where)
    levels, _ = run_cached(model, n, labels, lambda logits, ch, r, c: draw_levels(logits, u[:, ch, r, c]))
    return _images(model, levels)


@torch.no_grad()
def cached_logits(model: PixelModel, images: Tensor, labels: Optional[Tensor] = None) -> Tensor:
    """The logits the cached pass computes for every sub-pixel of real images (teacher forcing), in
    forward()'s layout: equal to model(images, labels) up to rounding."""
    where = f"{type(model).__name__} cached_logits"
    truth = model.levels_of(images, where)
    n = truth.shape[0]
    model.check_labels(labels, n, where)
    cfg = model.config
    K = logits_per_subpixel(cfg.levels)
    logits = torch.empty(n, cfg.channels, cfg.height, cfg.width, *(() if K == 1 else (K,)), dtype=model.dtype)

    def choose(step_logits: Tensor, ch: int, r: int, c: int) -> Tensor:
        logits[:, ch, r, c] = step_logits
        return truth[:, ch, r, c]

    run_cached(model, n, labels, choose)
    return logits


SAMPLERS = ("fastgen", "cached", "naive")


def sample(model: PixelModel, n: int, uniforms: Optional[Tensor] = None, generator: Optional[torch.Generator] = None,
           labels: Optional[Tensor] = None, method: str = "fastgen", progress: bool = False) -> Tensor:
    """n images [n, C, H, W] (float in [0, 1]) by ``method`` (see the module docstring): the same images
    for the same uniforms (or the same generator state) whichever it is. ``progress``: a progress bar
    (the fastgen path, which runs in chunks)."""
    if method not in SAMPLERS:
        raise ValueError(f"{type(model).__name__} sample: method must be one of {', '.join(SAMPLERS)}, got {method!r}")
    if method == "fastgen":
        from fastgen.models.pixelcnn.fast_sampling import sample_fast  # it imports this module
        return sample_fast(model, n, uniforms=uniforms, generator=generator, labels=labels, progress=progress)
    sampler = sample_cached if method == "cached" else sample_naive
    return sampler(model, n, uniforms=uniforms, generator=generator, labels=labels)
