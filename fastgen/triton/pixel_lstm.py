"""Triton kernels for PixelRNN's recurrences, the Row LSTM and one direction of the Diagonal BiLSTM
(forward and backward); the "triton" backend of fastgen.ops.row_lstm / diagonal_lstm.

Semantics are fastgen/reference/pixel_lstm.py's; the launchers take and return exactly what the ops
fastgen::row_lstm, diagonal_lstm and their *_backward take and return (csrc/registration.cpp, the CPU
binding csrc/cpu/pixel_lstm.cpp), so they can be registered as those ops' CUDA kernels:

    *_fwd(pre [B,4h,H,W] any strides, w_ss [4h,h,k], bias | reverse) -> (h, act, c)
        h [B,h,H,W] a view of channels-last memory [B,H,W,h]; act [B,H,W,5h] the activations
        i | f | g | o | tanh c of every pixel (the CPU kernels' order); c [B,H,W,h] the cell states.
    *_bwd(grad_h [B,h,H,W] any strides, h, act, c, w_ss[, reverse]) -> (grad_pre, grad_w_ss)
        grad_pre [B,4h,H,W] a view of channels-last memory (gates o, f, i, g like pre).

Design
  * ONE launch runs a whole recurrence: a persistent program per image (grid = (B,)) loops over the
    steps inside the kernel, the rows of the Row LSTM or the diagonals of the Diagonal LSTM (row r,
    column x in the direction's own order with r + x = step: the skew is index arithmetic, only the
    H W pixels are visited). A step is tiled [cells, 4 x BM]: the four gates of BM channels side by
    side, so one tl.dot per tap and channel block serves all gates. Its state-to-state term is the
    product of the previous steps' h, read back from the h the program already wrote, with w_ss:
    tap t of the Row LSTM reads the cell (r - 1, x + t - k // 2), the Diagonal LSTM's tap 0 the cell
    above (r - 1, x) and tap 1 the cell to the left (r, x - 1). reverse mirrors the columns in the
    address arithmetic (actual column W - 1 - x), so no flipped copy either.
  * A step only reads what earlier steps wrote, so the steps are separated by tl.debug_barrier()
    (a block-wide barrier on a GPU, a no-op under the interpreter) and programs never synchronise:
    the images are independent. Within a step the cells and channels are independent tiles, so any
    width and hidden size run with bounded registers.
  * The backward walks the steps in reverse: dh = grad_h + the gradients of the cells that read this
    one (the tap's consumer cell, transposed weights, a [cells, 4h] x [4h, h] product), the LSTM cell
    backward from the saved activations, and the cell-gradient carry to the predecessor (the cell
    above for the Row LSTM, the one to the left for the Diagonal) kept per column / row in a small
    scratch buffer. The state-to-state weight gradient is then ONE product over all steps and images
    (grad_pre [4h, cells] x the tap inputs [cells, k h], a torch matmul after the kernel).
  * Products use tl.dot for float32 (input_precision="ieee": no TF32); float64 a broadcast-multiply-
    and-sum over smaller tiles. tanh is computed from expm1 (Kahan's exp/log form) so that tiny and
    saturated pre-activations keep full relative precision; no libdevice (the interpreter has none).
    Index vectors are int64: no offset overflows, and the interpreter skips its per-operation int32
    overflow check (which otherwise dominated its run time).

Launchers make act and c contiguous, read pre and grad_h through their strides, and check only what
they need; argument validation is fastgen/ops/pixel_lstm.py's. They run on CUDA tensors, or on CPU
tensors when TRITON_INTERPRET=1 was set before triton was imported.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
import triton
import triton.language as tl
from torch import Tensor

__all__ = ["row_lstm_fwd", "row_lstm_bwd", "diagonal_lstm_fwd", "diagonal_lstm_bwd", "row_lstm", "diagonal_lstm"]

DTYPES = (torch.float32, torch.float64)


def _config(dtype: torch.dtype, cells: int, hidden: int) -> dict:
    """Tiles: BC cells of a step, BM hidden channels produced, BK channels summed. tl.dot needs every
    dimension >= 16; the broadcast form holds a [BC, BK, 4 BM] product in registers: smaller tiles.
    float32 at h = 128 compiled for sm_90 (ptxas, no GPU here): BM 32 with 4 warps spilled up to 1 KB
    of stack per thread, BM 16 with 8 warps none in the forward, 56 bytes in the Row backward."""
    if dtype not in DTYPES:
        raise TypeError(f"pixel_lstm (triton): takes float32 or float64 tensors, got {dtype}")
    np2 = triton.next_power_of_2
    if dtype == torch.float32:
        return dict(BC=max(16, min(np2(cells), 32)), BM=16, BK=max(16, min(np2(hidden), 32)), ACC=tl.float32,
                    USE_DOT=True, num_warps=8)
    return dict(BC=min(np2(cells), 16), BM=min(np2(hidden), 8), BK=min(np2(hidden), 8), ACC=tl.float64,
                USE_DOT=False, num_warps=4)


# ----------------------------------------------------------------------------------------------
# Helpers (called once per tile: each call of a jitted helper costs milliseconds under the
# interpreter, so the inner loops are written inline).
# ----------------------------------------------------------------------------------------------
@triton.jit
def _sigmoid(x):
    e = tl.exp(-tl.abs(x))  # never overflows
    return tl.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


@triton.jit
def _tanh(x):
    """tanh(|x|) = -m / (2 + m), m = expm1(-2|x|) by Kahan's (u - 1) y / log(u): full relative precision
    for tiny x (where 1 - exp(-2|x|) cancels); |x| is capped at 20, where tanh is 1 in float64."""
    y = -2.0 * tl.minimum(tl.abs(x), 20.0)
    u = tl.exp(y)
    lu = tl.log(u)
    m = tl.where(u == 1.0, y, (u - 1.0) * y / tl.where(lu == 0.0, 1.0, lu))
    t = -m / (2.0 + m)
    return tl.where(x < 0, -t, t)


@triton.jit
def _steps(H, W, ROW: tl.constexpr):
    if ROW:
        n = H
    else:
        n = H + W - 1
    return n


@triton.jit
def _cells(s, i0, H, W, ROW: tl.constexpr, LEFT: tl.constexpr, BC: tl.constexpr):
    """The cells i0 .. i0 + BC - 1 of step s: (row, actual column, lane, valid);
    lane indexes the cell-gradient carry (the column for the Row LSTM, the row for the Diagonal LSTM)."""
    i = i0 + tl.arange(0, BC).to(tl.int64)
    if ROW:
        r = s + i * 0
        x = i
        n = W
        lane = x
    else:
        lo = tl.maximum(s - W + 1, 0)  # the diagonal's first row
        r = lo + i
        x = s - r
        n = tl.minimum(H - 1, s) - lo + 1
        lane = r
    if LEFT == 1:  # the right-to-left direction: mirrored columns
        x = W - 1 - x
    return r, x, lane, i < n


# ----------------------------------------------------------------------------------------------
# Kernels, grid (B,). A tap t reads the cell (r + dr, x + dc): Row LSTM dr = -1, dc = t - K // 2;
# Diagonal LSTM tap 0 the cell above (dr = -1, dc = 0), tap 1 the cell to the left in the direction's
# order (dr = 0, dc = LEFT: -1, or +1 when reversed). c_prev is the cell above (Row) or to the left.
# ----------------------------------------------------------------------------------------------
@triton.jit
def _forward_kernel(pre_ptr, w_ptr, bias_ptr, h_ptr, c_ptr, act_ptr, sp_b, sp_c, sp_r, sp_w, H, W, N, K, CELLS,
                    ROW: tl.constexpr, LEFT: tl.constexpr, HAS_BIAS: tl.constexpr, BC: tl.constexpr,
                    BM: tl.constexpr, BK: tl.constexpr, ACC: tl.constexpr, USE_DOT: tl.constexpr):
    """A [cells, 4 BM] tile holds the four gates' pre-activations of BM channels side by side (column
    q BM + u: gate q in o, f, i, g order, channel m0 + u), so one product per tap serves all gates."""
    b = tl.program_id(0).to(tl.int64)
    img = b * H * W
    col = tl.arange(0, 4 * BM).to(tl.int64)
    q = col // BM
    slot = tl.where(q == 0, 3, tl.where(q == 1, 1, tl.where(q == 2, 0, 2)))  # gate q's place in act: i f g o
    for s in range(_steps(H, W, ROW)):
        for i0 in range(0, CELLS, BC):
            r, x, lane, ok = _cells(s, i0, H, W, ROW, LEFT, BC)
            pix = img + r * W + x
            if ROW:
                prev_r = r - 1
                prev_x = x
            else:
                prev_r = r
                prev_x = x + LEFT
            prev_ok = ok & (prev_r >= 0) & (prev_x >= 0) & (prev_x < W)
            prev = img + prev_r * W + prev_x
            for m0 in range(0, N, BM):
                m = m0 + col % BM  # each column's channel
                m_ok = m < N
                z = tl.zeros([BC, 4 * BM], ACC)
                for t in range(K):
                    if ROW:
                        src_r = r - 1
                        src_x = x + t - K // 2
                    else:
                        src_r = r + t - 1
                        src_x = x + t * LEFT
                    src_ok = ok & (src_r >= 0) & (src_x >= 0) & (src_x < W)
                    src = img + src_r * W + src_x
                    for j0 in range(0, N, BK):
                        j = j0 + tl.arange(0, BK).to(tl.int64)
                        j_ok = j < N
                        hs = tl.load(h_ptr + src[:, None] * N + j[None, :], mask=src_ok[:, None] & j_ok[None, :],
                                     other=0.0)
                        wt = tl.load(w_ptr + ((q * N + m)[None, :] * N + j[:, None]) * K + t,
                                     mask=j_ok[:, None] & m_ok[None, :], other=0.0)  # [BK, 4 BM]: w_ss[qN+m, j, t]
                        if USE_DOT:
                            z += tl.dot(hs, wt, input_precision="ieee", out_dtype=tl.float32)
                        else:
                            z += tl.sum(hs.to(ACC)[:, :, None] * wt.to(ACC)[None, :, :], axis=1)
                out_ok = ok[:, None] & m_ok[None, :]
                ch = q * N + m
                z += tl.load(pre_ptr + b * sp_b + r[:, None] * sp_r + x[:, None] * sp_w + ch[None, :] * sp_c,
                             mask=out_ok, other=0.0).to(ACC)
                if HAS_BIAS:
                    z += tl.load(bias_ptr + ch, mask=m_ok, other=0.0).to(ACC)[None, :]
                a = tl.where((q == 3)[None, :], _tanh(z), _sigmoid(z))
                ty = h_ptr.dtype.element_ty
                tl.store(act_ptr + pix[:, None] * (5 * N) + (slot * N + m)[None, :], a.to(ty), mask=out_ok)
                # the gates apart, [BC, BM] each: columns (q1, q0, u) with q = 2 q1 + q0
                a_oi, a_fg = tl.split(tl.permute(tl.reshape(a, [BC, 2, 2, BM]), (0, 3, 1, 2)))
                a_o, a_i = tl.split(a_oi)
                a_f, a_g = tl.split(a_fg)
                u = m0 + tl.arange(0, BM).to(tl.int64)
                u_ok = ok[:, None] & (u < N)[None, :]
                c_prev = tl.load(c_ptr + prev[:, None] * N + u[None, :], mask=prev_ok[:, None] & (u < N)[None, :],
                                 other=0.0).to(ACC)
                c = a_f * c_prev + a_i * a_g
                tc = _tanh(c)
                tl.store(h_ptr + pix[:, None] * N + u[None, :], (a_o * tc).to(ty), mask=u_ok)
                tl.store(c_ptr + pix[:, None] * N + u[None, :], c.to(ty), mask=u_ok)
                tl.store(act_ptr + pix[:, None] * (5 * N) + 4 * N + u[None, :], tc.to(ty), mask=u_ok)
        tl.debug_barrier()  # this step's h and c are read by the next one


@triton.jit
def _backward_kernel(gh_ptr, c_ptr, act_ptr, w_ptr, gp_ptr, carry_ptr, sg_b, sg_c, sg_r, sg_w, H, W, N, K, CELLS, LANES,
                     ROW: tl.constexpr, LEFT: tl.constexpr, BC: tl.constexpr, BM: tl.constexpr,
                     BK: tl.constexpr, ACC: tl.constexpr, USE_DOT: tl.constexpr):
    """grad_pre of every pixel, the steps in reverse. carry [B, LANES, N] (zeros): per lane, dL/dc of
    the lane's last visited cell times its forget gate, i.e. the cell gradient its predecessor gets."""
    b = tl.program_id(0).to(tl.int64)
    carry_b = carry_ptr + b * LANES * N
    img = b * H * W
    n_steps = _steps(H, W, ROW)
    for s_rev in range(n_steps):
        s = n_steps - 1 - s_rev
        for i0 in range(0, CELLS, BC):
            r, x, lane, ok = _cells(s, i0, H, W, ROW, LEFT, BC)
            pix = img + r * W + x
            if ROW:
                prev_r = r - 1
                prev_x = x
            else:
                prev_r = r
                prev_x = x + LEFT
            prev_ok = ok & (prev_r >= 0) & (prev_x >= 0) & (prev_x < W)
            prev = img + prev_r * W + prev_x
            for j0 in range(0, N, BM):
                j = j0 + tl.arange(0, BM).to(tl.int64)
                j_ok = j < N
                out_ok = ok[:, None] & j_ok[None, :]
                dh = tl.load(gh_ptr + b * sg_b + r[:, None] * sg_r + x[:, None] * sg_w + j[None, :] * sg_c,
                             mask=out_ok, other=0.0).to(ACC)
                for t in range(K):  # the cell that read this one through tap t: (r - dr, x - dc)
                    if ROW:
                        dst_r = r + 1
                        dst_x = x - t + K // 2
                    else:
                        dst_r = r + 1 - t
                        dst_x = x - t * LEFT
                    dst_ok = ok & (dst_r < H) & (dst_x >= 0) & (dst_x < W)
                    dst = img + dst_r * W + dst_x
                    for m0 in range(0, 4 * N, BK):
                        m = m0 + tl.arange(0, BK).to(tl.int64)
                        m_ok = m < 4 * N
                        gp = tl.load(gp_ptr + dst[:, None] * (4 * N) + m[None, :],
                                     mask=dst_ok[:, None] & m_ok[None, :], other=0.0)
                        wt = tl.load(w_ptr + (m[:, None] * N + j[None, :]) * K + t,
                                     mask=m_ok[:, None] & j_ok[None, :], other=0.0)  # [BK, BM]: w_ss[m, j, t]
                        if USE_DOT:
                            dh += tl.dot(gp, wt, input_precision="ieee", out_dtype=tl.float32)
                        else:
                            dh += tl.sum(gp.to(ACC)[:, :, None] * wt.to(ACC)[None, :, :], axis=1)
                a = act_ptr + pix[:, None] * (5 * N) + j[None, :]
                a_i = tl.load(a, mask=out_ok, other=0.0).to(ACC)
                a_f = tl.load(a + N, mask=out_ok, other=0.0).to(ACC)
                a_g = tl.load(a + 2 * N, mask=out_ok, other=0.0).to(ACC)
                a_o = tl.load(a + 3 * N, mask=out_ok, other=0.0).to(ACC)
                tc = tl.load(a + 4 * N, mask=out_ok, other=0.0).to(ACC)
                c_prev = tl.load(c_ptr + prev[:, None] * N + j[None, :], mask=prev_ok[:, None] & j_ok[None, :],
                                 other=0.0).to(ACC)
                cy = carry_b + lane[:, None] * N + j[None, :]
                dc = tl.load(cy, mask=out_ok, other=0.0).to(ACC) + dh * a_o * (1.0 - tc * tc)
                ty = gp_ptr.dtype.element_ty
                tl.store(cy, (dc * a_f).to(ty), mask=out_ok)
                g = gp_ptr + pix[:, None] * (4 * N) + j[None, :]
                tl.store(g, (dh * tc * a_o * (1.0 - a_o)).to(ty), mask=out_ok)
                tl.store(g + N, (dc * c_prev * a_f * (1.0 - a_f)).to(ty), mask=out_ok)
                tl.store(g + 2 * N, (dc * a_g * a_i * (1.0 - a_i)).to(ty), mask=out_ok)
                tl.store(g + 3 * N, (dc * a_i * (1.0 - a_g * a_g)).to(ty), mask=out_ok)
        tl.debug_barrier()  # this step's grad_pre and carry are read by the next one


# ----------------------------------------------------------------------------------------------
# Launchers.
# ----------------------------------------------------------------------------------------------
def _plan(dtype: torch.dtype, H: int, W: int, n: int, row: bool, reverse: bool) -> tuple[int, dict]:
    """(the most cells of one step, the kernels' compile-time arguments)."""
    cells = W if row else min(H, W)
    return cells, dict(ROW=row, LEFT=1 if reverse else -1, **_config(dtype, cells, n))


def _forward(pre: Tensor, w_ss: Tensor, bias: Tensor | None, row: bool, reverse: bool):
    B, _, H, W = pre.shape
    n, k = w_ss.shape[1], w_ss.shape[2]
    w_ss = w_ss.contiguous()
    h = torch.empty(B, H, W, n, dtype=pre.dtype, device=pre.device)
    c = torch.empty_like(h)
    act = torch.empty(B, H, W, 5 * n, dtype=pre.dtype, device=pre.device)
    has_bias = bias is not None
    bias = bias.contiguous() if has_bias else w_ss  # any pointer: HAS_BIAS=False never reads it
    cells, plan = _plan(pre.dtype, H, W, n, row, reverse)
    _forward_kernel[(B,)](pre, w_ss, bias, h, c, act, *pre.stride(), H, W, n, k, cells, HAS_BIAS=has_bias, **plan)
    return h.permute(0, 3, 1, 2), act, c


def _tap_inputs(h: Tensor, k: int, row: bool, reverse: bool) -> Tensor:
    """h [B,H,W,n] -> [B,H,W,k,n]: what each cell's step read through each tap (zero off the image)."""
    W = h.shape[2]
    above = F.pad(h, (0, 0, 0, 0, 1, 0))[:, :-1]  # the previous row's h, zero in row 0
    if row:
        padded = F.pad(above, (0, 0, k // 2, k // 2))
        return torch.stack([padded[:, :, t:t + W] for t in range(k)], 3)
    left = F.pad(h, (0, 0, 0, 1))[:, :, 1:] if reverse else F.pad(h, (0, 0, 1, 0))[:, :, :W]
    return torch.stack([above, left], 3)


def _backward(grad_h: Tensor, h: Tensor, act: Tensor, c: Tensor, w_ss: Tensor, row: bool, reverse: bool):
    B, n, H, W = h.shape
    k = w_ss.shape[2]
    w_ss, act, c = w_ss.contiguous(), act.contiguous(), c.contiguous()
    grad_pre = torch.empty(B, H, W, 4 * n, dtype=h.dtype, device=h.device)
    lanes = W if row else H
    carry = torch.zeros(B, lanes, n, dtype=h.dtype, device=h.device)
    cells, plan = _plan(h.dtype, H, W, n, row, reverse)
    _backward_kernel[(B,)](grad_h, c, act, w_ss, grad_pre, carry, *grad_h.stride(), H, W, n, k, cells, lanes, **plan)
    # grad w_ss[m, j, t] = sum over every cell of grad_pre[cell, m] * (its tap-t input)[j]: one product
    taps = _tap_inputs(h.permute(0, 2, 3, 1), k, row, reverse)
    grad_w = grad_pre.view(-1, 4 * n).t() @ taps.reshape(-1, k * n)
    return grad_pre.permute(0, 3, 1, 2), grad_w.view(4 * n, k, n).permute(0, 2, 1).contiguous()


def row_lstm_fwd(pre: Tensor, w_ss: Tensor, bias: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
    """fastgen::row_lstm: (h [B,h,H,W] channels-last, act [B,H,W,5h], c [B,H,W,h])."""
    return _forward(pre, w_ss, bias, True, False)


def diagonal_lstm_fwd(pre: Tensor, w_ss: Tensor, reverse: bool) -> tuple[Tensor, Tensor, Tensor]:
    """fastgen::diagonal_lstm: (h [B,h,H,W] channels-last, act [B,H,W,5h], c [B,H,W,h])."""
    return _forward(pre, w_ss, None, False, reverse)


def row_lstm_bwd(grad_h: Tensor, h: Tensor, act: Tensor, c: Tensor, w_ss: Tensor) -> tuple[Tensor, Tensor]:
    """fastgen::row_lstm_backward: (grad_pre [B,4h,H,W] channels-last, grad_w_ss [4h,h,k])."""
    return _backward(grad_h, h, act, c, w_ss, True, False)


def diagonal_lstm_bwd(grad_h: Tensor, h: Tensor, act: Tensor, c: Tensor, w_ss: Tensor,
                      reverse: bool) -> tuple[Tensor, Tensor]:
    """fastgen::diagonal_lstm_backward: (grad_pre [B,4h,H,W] channels-last, grad_w_ss [4h,h,2])."""
    return _backward(grad_h, h, act, c, w_ss, False, reverse)


# ----------------------------------------------------------------------------------------------
# Differentiable ops over the launcher pairs.
# ----------------------------------------------------------------------------------------------
class _PixelLstm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, pre, w_ss, bias, row, reverse):
        h, act, c = _forward(pre, w_ss, bias, row, reverse)
        ctx.save_for_backward(h, act, c, w_ss)
        ctx.spec = (row, reverse, bias is not None)
        return h

    @staticmethod
    def backward(ctx, grad_h):
        row, reverse, has_bias = ctx.spec
        grad_pre, grad_w = _backward(grad_h, *ctx.saved_tensors, row, reverse)
        grad_bias = grad_pre.sum((0, 2, 3)) if has_bias and ctx.needs_input_grad[2] else None
        return grad_pre, grad_w, grad_bias, None, None


def row_lstm(pre: Tensor, w_ss: Tensor, bias: Tensor | None = None) -> Tensor:
    """The Row LSTM's h [B,h,H,W], differentiable in pre, w_ss and bias."""
    return _PixelLstm.apply(pre, w_ss, bias, True, False)


def diagonal_lstm(pre: Tensor, w_ss: Tensor, reverse: bool = False) -> Tensor:
    """One Diagonal LSTM direction's h [B,h,H,W], differentiable in pre and w_ss."""
    return _PixelLstm.apply(pre, w_ss, None, False, reverse)
