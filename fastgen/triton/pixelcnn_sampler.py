"""Triton twin of the fast cached PixelCNN / Gated PixelCNN sampler (the "triton" backend of
fastgen.ops.pixelcnn_sampler.pixelcnn_sample).

    pixelcnn_sample(caches, levels, position, weights, dims, cond, uniforms, pixels)
        -> logits [n, pixels, C, K] when teacher-forced (uniforms None), else an empty [n, 0, C, K]

Same arguments, layouts, state and draw rule as the C++ op (csrc/cpu/pixelcnn_sampler_kernels.h
states them; fastgen.models.pixelcnn.plan packs the weights): per-layer input rings, levels and
position are advanced in place, pixels are drawn from the caller's uniforms, or read teacher-forced
with their logits returned.

Design: the pixel loop is driven from Python, like the C++ kernel's loop, with two Triton kernels:
  * _affine: for every batch row (and, at a Gated row start, every column) one output group of one
    layer: bias + optional addends (the residual, the link, the class offsets) + the taps of a masked
    convolution read as contiguous stretches of its input ring's rows (a 1x1 layer is one stretch),
    stored as is and/or through ReLU, or through the gate tanh(f) * sigmoid(s) of its two halves.
    The GEMM's rows are the batch rows (tiles of >= 16, padded), each product a tl.dot in IEEE float32.
    One launch per layer per colour pass of a pixel (3L + 4 for a PixelCNN of L blocks, with the
    draw); the Gated vertical stack runs once per row, for every column at once. At batch 1 on a GPU
    launch latency dominates: a persistent kernel per chunk (fastgen.triton.wavenet's design) is the
    way to speed, not taken here.
  * _finish: the draw of one sub-pixel from its logits inside the kernel (draw_levels' rule:
    Bernoulli u < sigmoid(x); softmax: the count of levels whose float64-accumulated cumulative
    probability, rounded to float32, is <= u, at most K - 1), or teacher-forced, the given level and a
    copy of its logits; then the level's network input written into the image ring.
Zeroing a ring's slot before a pixel is written (its last use was `rows` rows earlier) is a torch
fill. Scratch (the residual stream and its ReLU per block, the head's vectors) lives for one call;
every pixel is finished within the call, so resuming needs only the caches. Runs on CUDA tensors, or
on CPU tensors when TRITON_INTERPRET=1 was set before triton was imported (the tests here).
Errors name 'pixelcnn_sample (triton)' and the argument.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import triton
import triton.language as tl
from torch import Tensor

__all__ = ["pixelcnn_sample"]

_WHERE = "pixelcnn_sample (triton)"
PIXELCNN_KIND, GATED_KIND = 0, 1  # dims[0], as fastgen.models.pixelcnn.plan writes it
# Tiles: [BLOCK_B batch rows (or Gated row-start columns), BLOCK_K inputs, BLOCK_N outputs]. On a GPU a
# program takes up to 16 rows and a product tile holds <= 8192 elements. Under the interpreter an
# operation's cost is mostly its fixed overhead, so one program takes every row and a whole stretch.
_INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"
_BATCH_BLOCK = 1 << 20 if _INTERPRET else 16  # >= 16
_TILE = 1 << 30 if _INTERPRET else 8192
ACT_NONE, ACT_RELU, ACT_GATE = 0, 1, 2


@triton.jit
def _affine(x_ptr, x_bs, x_rs, ring_rows, cin, slot0, col0, nrows, kw, taps_len,
            w_ptr, w_ld, w_off, b_ptr, half,
            a1_ptr, a1_bs, a1_cs, a1_off, a2_ptr, a2_bs, a2_cs, a2_off,
            o_ptr, o_bs, o_cs, o_off, r_ptr, r_bs, r_cs, r_off, N, ncols, M,
            HAS_MAC: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_A1: tl.constexpr, HAS_A2: tl.constexpr,
            STORE_PRE: tl.constexpr, ACT: tl.constexpr, GATE: tl.constexpr, BLOCK_B: tl.constexpr,
            BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """Rows m = (b, col) of the GEMM, M = n * ncols of them, BLOCK_B per program: v[m, j] = bias[w_off + j]
    + a1 + a2 + the sum over the conv's kept rows i of the input ring's stretch at (slot slot0 + i,
    column col0 + col) . W, j < N. Every row's stretch is kw taps of cin, the last cut to what is left of
    the taps_len weight rows (the centre row's kept taps). Stores v (STORE_PRE) and/or relu(v) (ACT 1),
    or tanh(v) * sigmoid(v') (ACT 2, GATE) with v' the same sum over the columns `half` further on.
    Indices are int64: no overflow at any size (and no overflow checks under the interpreter)."""
    m = tl.program_id(0).to(tl.int64) * BLOCK_B + tl.arange(0, BLOCK_B).to(tl.int64)
    rows_ok = m < M
    b = m // ncols
    col = m - b * ncols
    j = tl.arange(0, BLOCK_N).to(tl.int64)
    live = j < N
    ok = rows_ok[:, None] & live[None, :]
    cols = w_off + j
    cols_s = cols + half
    acc = tl.zeros([BLOCK_B, BLOCK_N], dtype=tl.float32)
    acc_s = tl.zeros([BLOCK_B, BLOCK_N], dtype=tl.float32)
    if HAS_BIAS:
        acc += tl.load(b_ptr + cols, mask=live, other=0.0)[None, :]
        if GATE:
            acc_s += tl.load(b_ptr + cols_s, mask=live, other=0.0)[None, :]
    if HAS_A1:
        a1 = (a1_ptr + b * a1_bs + col * a1_cs + a1_off)[:, None] + j[None, :]
        acc += tl.load(a1, mask=ok, other=0.0)
        if GATE:
            acc_s += tl.load(a1 + half, mask=ok, other=0.0)
    if HAS_A2:
        a2 = (a2_ptr + b * a2_bs + col * a2_cs + a2_off)[:, None] + j[None, :]
        acc += tl.load(a2, mask=ok, other=0.0)
        if GATE:
            acc_s += tl.load(a2 + half, mask=ok, other=0.0)
    if HAS_MAC:
        xb = x_ptr + b * x_bs + (col0 + col) * cin
        span = kw * cin
        for i in range(nrows):
            row = xb + ((slot0 + i) % ring_rows) * x_rs
            wrow = span * i
            length = tl.minimum(span, taps_len - wrow)
            for k0 in range(0, span, BLOCK_K):
                k = tl.arange(0, BLOCK_K).to(tl.int64) + k0
                kin = k < length
                x = tl.load(row[:, None] + k[None, :], mask=rows_ok[:, None] & kin[None, :], other=0.0)
                w_rows = w_ptr + (wrow + k)[:, None] * w_ld
                wm = kin[:, None] & live[None, :]
                acc = tl.dot(x, tl.load(w_rows + cols[None, :], mask=wm, other=0.0), acc, input_precision="ieee")
                if GATE:
                    acc_s = tl.dot(x, tl.load(w_rows + cols_s[None, :], mask=wm, other=0.0), acc_s,
                                   input_precision="ieee")
    if STORE_PRE:
        tl.store((o_ptr + b * o_bs + col * o_cs + o_off)[:, None] + j[None, :], acc, mask=ok)
    if ACT == 1:  # ACT_RELU
        tl.store((r_ptr + b * r_bs + col * r_cs + r_off)[:, None] + j[None, :], tl.maximum(acc, 0.0), mask=ok)
    if GATE:
        e = tl.exp(-2.0 * tl.abs(acc))  # tanh from one exp of a non-positive argument
        t = (1.0 - e) / (1.0 + e)
        t = tl.where(acc < 0, -t, t)
        tl.store((r_ptr + b * r_bs + col * r_cs + r_off)[:, None] + j[None, :], t / (1.0 + tl.exp(-acc_s)), mask=ok)


@triton.jit
def _finish(lg_ptr, lg_bs, lg_off, K, u_ptr, u_bs, u_off, lev_ptr, lev_bs, lev_off, table_ptr,
            img_ptr, img_bs, img_off, out_ptr, out_bs, out_off, n,
            TEACHER: tl.constexpr, BINARY: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK: tl.constexpr):
    """Rows b (BLOCK_B per program): the sub-pixel's level (drawn from u, or read teacher-forced with its
    logits copied out), then the level's network input into the image ring."""
    b = tl.program_id(0).to(tl.int64) * BLOCK_B + tl.arange(0, BLOCK_B).to(tl.int64)
    row = b < n
    k = tl.arange(0, BLOCK).to(tl.int64)
    ok = row[:, None] & (k < K)[None, :]
    logits = (lg_ptr + b * lg_bs + lg_off)[:, None] + k[None, :]
    lev = lev_ptr + b * lev_bs + lev_off
    if TEACHER:
        level = tl.load(lev, mask=row, other=0)
        tl.store((out_ptr + b * out_bs + out_off)[:, None] + k[None, :], tl.load(logits, mask=ok, other=0.0),
                 mask=ok)
    else:
        u = tl.load(u_ptr + b * u_bs + u_off, mask=row, other=0.0)
        if BINARY:
            x = tl.load(lg_ptr + b * lg_bs + lg_off, mask=row, other=0.0)
            level = (u < 1.0 / (1.0 + tl.exp(-x))).to(tl.int64)
        else:
            x = tl.where((k < K)[None, :], tl.load(logits, mask=ok, other=0.0), -float("inf"))
            e = tl.where(ok, tl.exp(x - tl.max(x, axis=1)[:, None]), 0.0)
            p = e / tl.sum(e, axis=1)[:, None]
            cdf = tl.cumsum(p.to(tl.float64), axis=1).to(tl.float32)
            level = tl.sum(((cdf <= u[:, None]) & (k < K - 1)[None, :]).to(tl.int64), axis=1)
        tl.store(lev, level, mask=row)
    tl.store(img_ptr + b * img_bs + img_off, tl.load(table_ptr + level, mask=row, other=0.0), mask=row)


# ---------------------------------------------------------------------------------------------
# the plan: the C++ binding's checks (csrc/cpu/pixelcnn_sampler.cpp), raising ValueError / TypeError


@dataclass(frozen=True)
class _Dense:
    w: Tensor
    b: Tensor
    cin: int
    cout: int


@dataclass(frozen=True)
class _Conv:
    w: Tensor
    b: Tensor
    rows: int
    kw: int
    centre: int
    cin: int
    cout: int


@dataclass(frozen=True)
class _Ring:
    """A cache [n, rows, pad + W + pad, channels]: image row r lives in slot r mod rows."""

    data: Tensor
    pad: int

    def slot(self, r: int) -> int:
        return r % self.data.shape[1]

    def offset(self, r: int, c: int) -> int:
        """Element offset of (row r, column c)'s channel 0 within one batch row."""
        return (self.slot(r) * self.data.shape[2] + self.pad + c) * self.data.shape[3]

    def zero_at(self, r: int, c: int) -> None:
        self.data[:, self.slot(r), self.pad + c].zero_()


def _check(t, name: str, shape, device, dtype=torch.float32) -> Tensor:
    if not isinstance(t, Tensor):
        raise TypeError(f"{_WHERE}: {name} must be a tensor, got {type(t).__name__}")
    if t.dtype != dtype:
        raise TypeError(f"{_WHERE}: {name} must be {dtype}, got {t.dtype}")
    if t.device != device:
        raise ValueError(f"{_WHERE}: {name} is on {t.device}, the levels on {device}")
    if tuple(t.shape) != tuple(shape):
        raise ValueError(f"{_WHERE}: {name} must have shape {list(shape)}, got {list(t.shape)}")
    if not t.is_contiguous():
        raise ValueError(f"{_WHERE}: {name} must be contiguous")
    return t


class _Reader:
    """Reads the weights in plan order, checking each against the shape the chain of layers implies."""

    def __init__(self, weights: Sequence[Tensor], dims: Sequence[int], device):
        self.weights, self.dims, self.device = list(weights), list(dims), device
        self.next = self.next_conv = 0

    def take(self, name: str):
        if self.next >= len(self.weights):
            raise ValueError(f"{_WHERE}: weights has {len(self.weights)} tensors, too few for the plan's layers "
                             f"(missing {name})")
        self.next += 1
        return self.weights[self.next - 1]

    def _matrix(self, name: str, G: int, rows: Optional[int]) -> Tensor:
        w = self.take(name)
        if not isinstance(w, Tensor) or w.dim() != 2:
            raise ValueError(f"{_WHERE}: {name} must be a 2-D tensor [rows, cout]")
        if w.shape[1] < 1 or w.shape[1] % (8 * G):
            raise ValueError(f"{_WHERE}: {name} has {w.shape[1]} output columns, not a positive multiple of 8 per "
                             f"colour group ({G})")
        return _check(w, name, (w.shape[0] if rows is None else rows, w.shape[1]), self.device)

    def dense(self, cin: Optional[int], G: int, name: str) -> _Dense:
        w = self._matrix(f"{name} weight", G, cin)
        b = _check(self.take(f"{name} bias"), f"{name} bias", (w.shape[1],), self.device)
        return _Dense(w, b, w.shape[0], w.shape[1])

    def conv(self, cin: int, G: int, name: str) -> _Conv:
        at = 6 + 3 * self.next_conv
        self.next_conv += 1
        if at + 3 > len(self.dims):
            raise ValueError(f"{_WHERE}: dims lacks the geometry of {name}")
        rows, kw, centre = (int(d) for d in self.dims[at:at + 3])
        if not (rows >= 1 and kw >= 1 and kw % 2 == 1 and 0 <= centre <= kw):
            raise ValueError(f"{_WHERE}: {name} geometry (rows, kw, centre) = ({rows}, {kw}, {centre}) is not a "
                             "causal kernel's")
        w = self._matrix(f"{name} weight", G, ((rows - 1) * kw + centre) * cin)
        b = _check(self.take(f"{name} bias"), f"{name} bias", (w.shape[1],), self.device)
        return _Conv(w, b, rows, kw, centre, cin, w.shape[1])


@dataclass
class _Plan:
    kind: int
    H: int
    W: int
    C: int
    K: int
    L: int
    table: Tensor
    head1: _Dense
    head2: _Dense
    conv_a: list  # PixelCNN: [mask-A input conv]; Gated: vertical convs
    conv_b: list  # PixelCNN: the blocks' kxk convs; Gated: horizontal convs
    dense_a: list  # PixelCNN: the blocks' reduce; Gated: links
    dense_b: list  # PixelCNN: the blocks' expand; Gated: the 1x1 outputs
    rings: list  # _Ring, in the C++ header's order
    links: Optional[Tensor]  # Gated: [n, L, W, link cout]


def _parse(caches, levels, weights, dims, cond, n: int) -> _Plan:
    dims = [int(d) for d in dims]
    if len(dims) < 6:
        raise ValueError(f"{_WHERE}: dims must start [kind, H, W, C, K, L], got {dims}")
    kind, H, W, C, K, L = dims[:6]
    if kind not in (PIXELCNN_KIND, GATED_KIND):
        raise ValueError(f"{_WHERE}: dims[0] (kind) must be 0 (PixelCNN) or 1 (Gated PixelCNN), got {kind}")
    device, G, Cimg = levels.device, C, 8 * C
    rd = _Reader(weights, dims, device)
    table = _check(rd.take("input_table"), "input_table", (2 if K == 1 else 256,), device)
    head1 = rd.dense(None, G, "head1")
    head2 = rd.dense(head1.cout, G, "head2")
    if head2.cout != G * (8 if K == 1 else K):
        raise ValueError(f"{_WHERE}: head2 has {head2.cout} outputs, expected {G * (8 if K == 1 else K)} ({C} "
                         f"channels of {K} logits, padded)")
    caches = list(caches)
    rings = []

    def ring(i: int, rows: int, pad: int, ch: int, name: str) -> None:
        if i >= len(caches):
            raise ValueError(f"{_WHERE}: caches has {len(caches)} tensors, too few (missing {name})")
        rings.append(_Ring(_check(caches[i], f"caches[{i}] ({name})", (n, rows, W + 2 * pad, ch), device), pad))

    conv_a, conv_b, dense_a, dense_b, links = [], [], [], [], None
    if kind == PIXELCNN_KIND:
        conv_a.append(rd.conv(Cimg, G, "first conv"))
        Y = conv_a[0].cout
        for l in range(L):
            dense_a.append(rd.dense(Y, G, f"block {l} reduce"))
            conv_b.append(rd.conv(dense_a[l].cout, G, f"block {l} conv"))
            dense_b.append(rd.dense(conv_b[l].cout, G, f"block {l} expand"))
            if conv_b[l].cout != dense_a[l].cout or dense_b[l].cout != Y:
                raise ValueError(f"{_WHERE}: block {l}'s widths do not chain (reduce -> conv -> expand -> {Y})")
        if head1.cin != Y:
            raise ValueError(f"{_WHERE}: head1 must read the residual width {Y}, got {head1.cin}")
        ring(0, conv_a[0].rows, conv_a[0].kw // 2, Cimg, "image ring")
        for l in range(L):
            ring(1 + l, conv_b[l].rows, conv_b[l].kw // 2, conv_b[l].cin, "block ring")
        expected = 1 + L
    else:
        for l in range(L):
            vin = Cimg if l == 0 else conv_a[0].cout // 2
            hin = Cimg if l == 0 else dense_b[0].cout
            conv_a.append(rd.conv(vin, 1, f"layer {l} vertical"))
            conv_b.append(rd.conv(hin, G, f"layer {l} horizontal"))
            dense_a.append(rd.dense(conv_a[l].cout, G, f"layer {l} link"))
            dense_b.append(rd.dense(conv_b[l].cout // 2, G, f"layer {l} out"))
            if (conv_b[l].rows != 1 or conv_b[l].kw != conv_a[l].kw or dense_a[l].cout != conv_b[l].cout
                    or conv_a[l].cout != conv_a[0].cout or conv_b[l].cout != conv_b[0].cout
                    or dense_b[l].cout != conv_b[l].cout // 2):
                raise ValueError(f"{_WHERE}: layer {l}'s widths or kernels do not match a Gated PixelCNN's")
        Pv, Ph, P2h, pad = conv_a[0].cout // 2, dense_b[0].cout, conv_b[0].cout, conv_a[0].kw // 2
        if head1.cin != Ph:
            raise ValueError(f"{_WHERE}: head1 must read the horizontal width {Ph}, got {head1.cin}")
        ring(0, conv_a[0].rows, pad, Cimg, "image ring")
        for l in range(1, L):
            ring(l, conv_a[0].rows, pad, Pv, "vertical input ring")
        for l in range(1, L):
            ring(L - 1 + l, 1, pad, Ph, "horizontal input row")
        if 2 * L - 1 >= len(caches):
            raise ValueError(f"{_WHERE}: caches has {len(caches)} tensors, too few (missing links)")
        links = _check(caches[2 * L - 1], f"caches[{2 * L - 1}] (links)", (n, L, W, P2h), device)
        expected = 2 * L
    if rd.next != len(rd.weights):
        raise ValueError(f"{_WHERE}: weights has {len(rd.weights)} tensors, the plan uses {rd.next}")
    if len(dims) != 6 + 3 * rd.next_conv:
        raise ValueError(f"{_WHERE}: dims has {len(dims)} entries, the plan uses {6 + 3 * rd.next_conv}")
    if len(caches) != expected:
        raise ValueError(f"{_WHERE}: caches has {len(caches)} tensors, expected {expected}")
    if cond is not None:
        if kind != GATED_KIND:
            raise ValueError(f"{_WHERE}: cond is for a class-conditional Gated PixelCNN only")
        _check(cond, "cond", (n, L, conv_a[0].cout + conv_b[0].cout), device)
    return _Plan(kind, H, W, C, K, L, table, head1, head2, conv_a, conv_b, dense_a, dense_b, rings, links)


# ---------------------------------------------------------------------------------------------
# launches


@dataclass(frozen=True)
class _At:
    """Where a batch row's vector lies: tensor + b * bs + col * cs + off."""

    t: Tensor
    off: int = 0
    cs: int = 0

    @property
    def bs(self) -> int:
        return self.t[0].numel()


class _Launcher:
    def __init__(self, plan: _Plan, n: int):
        self.plan, self.n = plan, n

    def affine(self, layer, N: int, w_off: int, *, ring: Optional[_Ring] = None, r: int = 0, c: int = 0,
               x: Optional[_At] = None, k: int = 0, pre: Optional[_At] = None, act: int = ACT_NONE,
               out: Optional[_At] = None, add1: Optional[_At] = None, add2: Optional[_At] = None, ncols: int = 1,
               half: int = 0, bias: bool = True) -> None:
        """One output group [w_off, w_off + N) of ``layer`` for every batch row (and ncols columns from
        column c): a conv at (r, c) over ``ring``, or a dense over the first k entries of ``x``."""
        longest = k if ring is None else layer.kw * layer.cin  # the longest stretch one product reads
        if ring is not None:  # the kept rows r - rows + 1 .. r, columns c - kw//2 ..
            geometry = dict(x_ptr=ring.data, x_bs=ring.data[0].numel(), x_rs=ring.data[0, 0].numel(),
                            ring_rows=ring.data.shape[1], cin=layer.cin, slot0=ring.slot(r - layer.rows + 1),
                            col0=ring.pad + c - layer.kw // 2, nrows=layer.rows, kw=layer.kw,
                            taps_len=layer.w.shape[0])
        else:  # one stretch of the first k entries of x (with columns: column col's, k apart)
            x = x or _At(layer.w)
            geometry = dict(x_ptr=x.t, x_bs=x.bs, x_rs=0, ring_rows=1, cin=k, slot0=0, col0=0, nrows=1, kw=1,
                            taps_len=k)
        dummy = layer.b
        a1, a2, o, rl = (add1 or _At(dummy)), (add2 or _At(dummy)), (pre or _At(dummy)), (out or _At(dummy))
        block_n = max(16, triton.next_power_of_2(N))
        M = self.n * ncols
        block_b = min(max(16, triton.next_power_of_2(M)), _BATCH_BLOCK)  # tl.dot takes tiles of >= 16
        _affine[(triton.cdiv(M, block_b),)](
            **geometry, w_ptr=layer.w, w_ld=layer.cout, w_off=w_off, b_ptr=layer.b, half=half,
            a1_ptr=a1.t, a1_bs=a1.bs, a1_cs=a1.cs, a1_off=a1.off, a2_ptr=a2.t, a2_bs=a2.bs, a2_cs=a2.cs,
            a2_off=a2.off, o_ptr=o.t, o_bs=o.bs, o_cs=o.cs, o_off=o.off, r_ptr=rl.t, r_bs=rl.bs, r_cs=rl.cs,
            r_off=rl.off, N=N, ncols=ncols, M=M, HAS_MAC=ring is not None or k > 0, HAS_BIAS=bias,
            HAS_A1=add1 is not None, HAS_A2=add2 is not None, STORE_PRE=pre is not None, ACT=act,
            GATE=act == ACT_GATE, BLOCK_B=block_b, BLOCK_N=block_n,
            BLOCK_K=max(16, min(triton.next_power_of_2(longest), _TILE // (block_b * block_n))))

    def dense(self, d: _Dense, x: Tensor, g: int, **kw) -> None:
        """Output group g of a mask-B 1x1 layer: it reads input groups <= g of x [n, cin]."""
        G = self.plan.C
        n_out = d.cout // G
        self.affine(d, n_out, g * n_out, x=_At(x), k=(g + 1) * (d.cin // G), **kw)

    def head(self, rx: Tensor, g: int, hid: Tensor, lg: Tensor) -> None:
        p = self.plan
        og = p.head1.cout // p.C
        self.dense(p.head1, rx, g, act=ACT_RELU, out=_At(hid, g * og))
        self.dense(p.head2, hid, g, pre=_At(lg, g * (p.head2.cout // p.C)))

    def finish(self, lg: Tensor, g: int, r: int, c: int, i: int, levels: Tensor, uniforms: Optional[Tensor],
               logits: Tensor, pixels: int) -> None:
        p = self.plan
        image = p.rings[0]
        HW = p.H * p.W
        block_b = min(triton.next_power_of_2(self.n), _BATCH_BLOCK)
        _finish[(triton.cdiv(self.n, block_b),)](
            lg, lg.shape[1], g * (p.head2.cout // p.C), p.K,
            uniforms if uniforms is not None else lg, p.C * pixels, g * pixels + i,
            levels, p.C * HW, g * HW + r * p.W + c, p.table,
            image.data, image.data[0].numel(), image.offset(r, c) + g * (image.data.shape[3] // p.C),
            logits, pixels * p.C * p.K, (i * p.C + g) * p.K, self.n,
            TEACHER=uniforms is None, BINARY=p.K == 1, BLOCK_B=block_b, BLOCK=triton.next_power_of_2(p.K))


def _run_pixelcnn(p: _Plan, go: _Launcher, start: int, pixels: int, finish) -> None:
    n, G, L = go.n, p.C, p.L
    Y, Hh = p.conv_a[0].cout, p.conv_b[0].cout
    yg, hg = Y // G, Hh // G
    new = dict(device=p.table.device, dtype=torch.float32)
    ys, rys = torch.zeros(L + 1, n, Y, **new), torch.zeros(L + 1, n, Y, **new)  # residual stream, its ReLU
    rts = torch.zeros(L, n, Hh, **new)  # ReLU of each kxk output
    hid, lg = torch.zeros(n, p.head1.cout, **new), torch.zeros(n, p.head2.cout, **new)
    image = p.rings[0]
    for i in range(pixels):
        r, c = divmod(start + i, p.W)
        for ring in p.rings:
            ring.zero_at(r, c)
        for g in range(G):
            go.affine(p.conv_a[0], yg, g * yg, ring=image, r=r, c=c, pre=_At(ys[0], g * yg), act=ACT_RELU,
                      out=_At(rys[0], g * yg))
            for l in range(L):
                ring = p.rings[1 + l]
                go.dense(p.dense_a[l], rys[l], g, act=ACT_RELU, out=_At(ring.data, ring.offset(r, c) + g * hg))
                go.affine(p.conv_b[l], hg, g * hg, ring=ring, r=r, c=c, act=ACT_RELU, out=_At(rts[l], g * hg))
                go.dense(p.dense_b[l], rts[l], g, add1=_At(ys[l], g * yg), pre=_At(ys[l + 1], g * yg),
                         act=ACT_RELU, out=_At(rys[l + 1], g * yg))
            go.head(rys[L], g, hid, lg)
            finish(lg, g, r, c, i)


def _gated_row_start(p: _Plan, go: _Launcher, r: int, a: Tensor, cond: Optional[Tensor]) -> None:
    """At the start of row r, per layer: the vertical pre-activation a of row r - 1, the links of row r,
    and the next layer's vertical input gate(a + cond) at row r - 1 (row 0: the links are their bias)."""
    L, W = p.L, p.W
    P2v, P2h = p.conv_a[0].cout, p.dense_a[0].cout
    for l in range(L):
        link = p.dense_a[l]
        if r == 0:
            p.links[:, l] = link.b
            continue
        per_col = _At(a, 0, P2v)
        go.affine(p.conv_a[l], P2v, 0, ring=p.rings[l], r=r - 1, c=0, pre=per_col, ncols=W)
        go.affine(link, P2h, 0, x=per_col, k=P2v, pre=_At(p.links, l * W * P2h, P2h), ncols=W)
        if l + 1 < L:
            nxt = p.rings[l + 1]
            go.affine(p.conv_a[l], P2v // 2, 0, add1=per_col, bias=False, half=P2v // 2, ncols=W, act=ACT_GATE,
                      add2=None if cond is None else _At(cond, l * (P2v + P2h)),
                      out=_At(nxt.data, nxt.offset(r - 1, 0), nxt.data.shape[3]))


def _run_gated(p: _Plan, go: _Launcher, start: int, pixels: int, finish, cond: Optional[Tensor]) -> None:
    n, G, L, W = go.n, p.C, p.L, p.W
    P2v, P2h, Ph = p.conv_a[0].cout, p.conv_b[0].cout, p.dense_b[0].cout
    p2g, phg = P2h // G, Ph // G
    new = dict(device=p.table.device, dtype=torch.float32)
    gated, h_last, rfin = torch.zeros(L, n, Ph, **new), torch.zeros(n, Ph, **new), torch.zeros(n, Ph, **new)
    a = torch.zeros(n, W, P2v, **new)
    hid, lg = torch.zeros(n, p.head1.cout, **new), torch.zeros(n, p.head2.cout, **new)
    image, rows_h = p.rings[0], p.rings[L:]  # rows_h[l - 1]: layer l's horizontal input (h of layer l - 1)
    for i in range(pixels):
        r, c = divmod(start + i, W)
        if c == 0:
            _gated_row_start(p, go, r, a, cond)
        image.zero_at(r, c)
        for ring in rows_h:
            ring.zero_at(r, c)
        for g in range(G):
            for l in range(L):
                h_in = image if l == 0 else rows_h[l - 1]
                go.affine(p.conv_b[l], phg, g * p2g, ring=h_in, r=r, c=c, half=phg, act=ACT_GATE,
                          add1=_At(p.links, (l * W + c) * P2h + g * p2g),
                          add2=None if cond is None else _At(cond, l * (P2v + P2h) + P2v + g * p2g),
                          out=_At(gated[l], g * phg))
                residual = None if l == 0 else _At(rows_h[l - 1].data, rows_h[l - 1].offset(r, c) + g * phg)
                if l + 1 < L:  # h of layer l goes straight into the next layer's horizontal input row
                    dst = _At(rows_h[l].data, rows_h[l].offset(r, c) + g * phg)
                    go.dense(p.dense_b[l], gated[l], g, add1=residual, pre=dst)
                else:
                    go.dense(p.dense_b[l], gated[l], g, add1=residual, pre=_At(h_last, g * phg), act=ACT_RELU,
                             out=_At(rfin, g * phg))
            go.head(rfin, g, hid, lg)
            finish(lg, g, r, c, i)


def pixelcnn_sample(caches: Sequence[Tensor], levels: Tensor, position: Tensor, weights: Sequence[Tensor],
                    dims: Sequence[int], cond: Optional[Tensor], uniforms: Optional[Tensor], pixels: int) -> Tensor:
    """Advances the sampler state by ``pixels`` pixels; see the module docstring."""
    if not isinstance(levels, Tensor) or levels.dtype != torch.int64 or levels.dim() != 4 or not levels.is_contiguous():
        raise ValueError(f"{_WHERE}: levels must be a contiguous int64 [n, C, H, W] tensor")
    n = levels.shape[0]
    p = _parse(caches, levels, weights, dims, cond, n)
    if not (p.H >= 1 and p.W >= 1 and p.C in (1, 3) and p.K in (1, 256) and p.L >= 1):
        raise ValueError(f"{_WHERE}: dims H, W, C, K, L = {p.H}, {p.W}, {p.C}, {p.K}, {p.L} are not a PixelCNN's")
    if tuple(levels.shape[1:]) != (p.C, p.H, p.W):
        raise ValueError(f"{_WHERE}: levels must be [n, {p.C}, {p.H}, {p.W}], got {list(levels.shape)}")
    if not isinstance(position, Tensor) or position.dtype != torch.int64 or position.numel() != 1:
        raise ValueError(f"{_WHERE}: position must be an int64 tensor of one element")
    start, pixels = int(position), int(pixels)
    if pixels < 0 or start < 0 or start + pixels > p.H * p.W:
        raise ValueError(f"{_WHERE}: pixels {start} .. {start + pixels} do not lie in the image's {p.H * p.W}")
    if uniforms is not None:
        _check(uniforms, "uniforms", (n, p.C, pixels), levels.device)
        logits = torch.empty(n, 0, p.C, p.K, device=levels.device)
    else:
        seen = levels.flatten(2)[:, :, start:start + pixels]
        if seen.numel() and (int(seen.min()) < 0 or int(seen.max()) >= p.table.shape[0]):
            raise ValueError(f"{_WHERE}: teacher-forced levels must lie in [0, {p.table.shape[0]})")
        logits = torch.empty(n, pixels, p.C, p.K, device=levels.device)
    if n and pixels:
        go = _Launcher(p, n)

        def finish(lg, g, r, c, i):
            go.finish(lg, g, r, c, i, levels, uniforms, logits, pixels)

        if p.kind == PIXELCNN_KIND:
            _run_pixelcnn(p, go, start, pixels, finish)
        else:
            _run_gated(p, go, start, pixels, finish, cond)
    position.fill_(start + pixels)
    return logits
