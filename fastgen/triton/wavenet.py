"""Triton kernel for cached WaveNet generation (the "triton" backend of fastgen.ops.wavenet_generate).

    wavenet_generate(queues, positions, last_tokens, weights, dilations, cond, uniforms, lengths,
                     temperature) -> tokens [B, n] int64

Same arguments, layout and semantics as the C++ op (csrc/cpu/wavenet.cpp, wavenet_kernels.h): the
packed weights of fastgen.models.wavenet.generation.pack_weights, per-layer ring-buffer queues
[B, Q, Rp] with the slot rule of csrc/include/fastgen/wavenet_math.h (the input of time t lives in slot t mod (k-1)d;
read the taps before overwriting), row b generates lengths[b] tokens and the rest of its output row
is -1, and queues / positions / last_tokens are advanced in place. Sampling is
fastgen.reference.wavenet.sample_tokens's rule from the caller's uniforms: temperature 0 takes the
first argmax; otherwise cdf = running sum of exp((logit - max) / T) (accumulated in float64 and
rounded to float32, like the CPU kernel), token = the first c with cdf[c] > u * cdf[C-1], else C-1.

Design
  * ONE launch per call, one program per batch row (grid = (B,)): a persistent loop over the row's
    lengths[b] steps, and inside it a loop over the L layers with the layer's dilation and ring
    offset loaded from a small int64 table. Rows are independent, so programs never synchronise;
    a finished row (lengths[b] = 0) does nothing. Everything between two samples (embedding, every
    layer, head, draw) stays inside the kernel: no torch op runs per step.
  * Every matrix product is a vector-matrix product y[N] += x[K] @ W[K, N] over [KB, NP] register
    tiles (NP = N padded to a power of two, KB chosen so a tile holds <= 4096 elements), the input
    vector read back from a small per-row float32 scratch row (layer input h, gated output a, skip
    sum, head hidden). Gate taps j < k-1 are read straight from their ring slots, the last tap from
    the scratch copy of h; the tanh and sigmoid halves come out of one [KB, RPP, 2] tile, and a
    layer's skip and residual products share one pass over a.
  * Writes that other threads of the same program read later (scratch rows, ring slots) are
    followed by tl.debug_barrier() (a block-wide barrier on a GPU, a no-op under the interpreter),
    and the ring slot of time t is overwritten only after a barrier that follows the taps' reads.
  * Weight matrices are float32 or bfloat16. bfloat16 matrices use the CPU kernel's packing (row
    pairs interleaved per column: rows 2m and 2m+1 of column p share one 32-bit word, low half
    first; R, S and H even); they are passed as their int16 bit patterns and widened in registers
    ((bits << 16) reinterpreted as float32), which is exact and also runs under the interpreter (it
    has no bfloat16). Accumulation is float32.

The launcher validates its arguments (errors name 'wavenet_generate (triton)' and the argument) and
runs on CUDA tensors, or on CPU tensors when TRITON_INTERPRET=1 was set before triton was imported.
"""
from __future__ import annotations

import math
import os
from typing import Optional, Sequence

import torch
import triton
import triton.language as tl
from torch import Tensor

__all__ = ["wavenet_generate"]

_WHERE = "wavenet_generate (triton)"
_WEIGHT_NAMES = ("embed", "gate_w", "gate_b", "res_w", "res_b", "skip_w", "skip_b", "head1_w", "head1_b",
                 "head2_w", "head2_b")
_MATRICES = {"gate_w", "res_w", "skip_w", "head1_w", "head2_w"}
_MAX_LAYERS = 256
# Largest register tile of one vector-matrix product, in elements.
_TILE = 4096
# Triton reads TRITON_INTERPRET when a kernel is defined, i.e. when this module is imported.
_INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"


def _pad8(n: int) -> int:
    return (n + 7) // 8 * 8


# ----------------------------------------------------------------------------------------------
# Device helpers.
# ----------------------------------------------------------------------------------------------
# Weight matrices W [K, N] with row stride ldw (elements). float32: element (k, p) at k * ldw + p.
# bfloat16 (passed as int16 bits): row pairs interleaved per column, (k, p) of an even k and (k+1, p)
# sharing one 32-bit word, low half first: (k, p) at (k - k % 2) * ldw + 2p + k % 2; widened exactly
# in registers (a bfloat16 is the top half of a float32). The helpers inline this rule instead of
# calling a helper for it (a nested jit call costs about a millisecond under the interpreter), keep
# row indices in int64 vectors and build the tile addresses as pointer + row offset + column offset,
# so no integer arithmetic runs on whole tiles.
@triton.jit
def _vecmat(acc, x_ptr, w_ptr, ldw, K: tl.constexpr, N: tl.constexpr, KB: tl.constexpr, NP: tl.constexpr,
            W_BF16: tl.constexpr):
    """acc[NP] += x[K] @ W[K, N]; columns >= N get nothing added."""
    cols = tl.arange(0, NP)
    col_ok = cols < N
    if W_BF16:
        cols = 2 * cols
    rows = tl.arange(0, KB).to(tl.int64)
    for k0 in tl.range(0, K, KB):
        kk = k0 + rows
        k_ok = kk < K
        x = tl.load(x_ptr + kk, mask=k_ok, other=0.0)
        if W_BF16:
            roff = (kk - kk % 2) * ldw + kk % 2
        else:
            roff = kk * ldw
        w = tl.load(w_ptr + roff[:, None] + cols[None, :], mask=k_ok[:, None] & col_ok[None, :], other=0.0)
        if W_BF16:
            w = (w.to(tl.int32) << 16).to(tl.float32, bitcast=True)
        acc += tl.sum(x[:, None] * w, axis=0)
    return acc


@triton.jit
def _vecmat2(acc1, acc2, x_ptr, w1_ptr, ldw1, w2_ptr, ldw2, on2, K: tl.constexpr, N1: tl.constexpr,
             N2: tl.constexpr, KB: tl.constexpr, NP1: tl.constexpr, NP2: tl.constexpr, W_BF16: tl.constexpr):
    """acc1[NP1] += x[K] @ W1[K, N1] and acc2[NP2] += x @ W2[K, N2] (nothing read or added when on2 is
    false), reading x once: a layer's skip and residual products of its gated output."""
    cols1 = tl.arange(0, NP1)
    cols2 = tl.arange(0, NP2)
    ok1 = cols1 < N1
    ok2 = (cols2 < N2) & on2
    if W_BF16:
        cols1 = 2 * cols1
        cols2 = 2 * cols2
    rows = tl.arange(0, KB).to(tl.int64)
    for k0 in tl.range(0, K, KB):
        kk = k0 + rows
        k_ok = kk < K
        x = tl.load(x_ptr + kk, mask=k_ok, other=0.0)[:, None]
        if W_BF16:
            pair = kk - kk % 2
            odd = kk % 2
            r1 = pair * ldw1 + odd
            r2 = pair * ldw2 + odd
        else:
            r1 = kk * ldw1
            r2 = kk * ldw2
        w1 = tl.load(w1_ptr + r1[:, None] + cols1[None, :], mask=k_ok[:, None] & ok1[None, :], other=0.0)
        w2 = tl.load(w2_ptr + r2[:, None] + cols2[None, :], mask=k_ok[:, None] & ok2[None, :], other=0.0)
        if W_BF16:
            w1 = (w1.to(tl.int32) << 16).to(tl.float32, bitcast=True)
            w2 = (w2.to(tl.int32) << 16).to(tl.float32, bitcast=True)
        acc1 += tl.sum(x * w1, axis=0)
        acc2 += tl.sum(x * w2, axis=0)
    return acc1, acc2


@triton.jit
def _gate(z, ring, x_ptr, w_ptr, t, dil, col_off, col_ok, R: tl.constexpr, RP: tl.constexpr, KSIZE: tl.constexpr,
          KB: tl.constexpr, W_BF16: tl.constexpr):
    """One layer's gate pre-activations: z[RPP, 2] += taps[k*R] @ W[k*R, (tanh half, sigmoid half)].

    Row j*R + i of W (row stride 2*RP) is channel i of tap j, the input (k-1-j)*d steps back: ring
    slot (t - (k-1-j)d) mod (k-1)d for j < k-1 (ring_slot of wavenet_math.h), the current input x for
    j = k-1. col_off [RPP, 2] = c + g*RP is W's column of column c of half g (tanh, sigmoid), col_ok
    marks c < R: both halves come out of one [KB, RPP, 2] tile.
    """
    K: tl.constexpr = KSIZE * R
    if W_BF16:
        col_off = 2 * col_off
    rows = tl.arange(0, KB).to(tl.int64)
    q = (KSIZE - 1) * dil
    for k0 in tl.range(0, K, KB):
        kk = k0 + rows
        k_ok = kk < K
        j = kk // R
        channel = kk - j * R
        slot = ((t - (KSIZE - 1 - j) * dil) % q + q) % q
        from_ring = j < KSIZE - 1
        xr = tl.load(ring + slot * RP + channel, mask=k_ok & from_ring, other=0.0)
        xc = tl.load(x_ptr + channel, mask=k_ok & (j == KSIZE - 1), other=0.0)
        x = tl.where(from_ring, xr, xc)
        if W_BF16:
            roff = (kk - kk % 2) * (2 * RP) + kk % 2
        else:
            roff = kk * (2 * RP)
        w = tl.load(w_ptr + roff[:, None, None] + col_off[None, :, :], mask=k_ok[:, None, None] & col_ok[None, :, :],
                    other=0.0)
        if W_BF16:
            w = (w.to(tl.int32) << 16).to(tl.float32, bitcast=True)
        z += tl.sum(x[:, None, None] * w, axis=0)
    return z


@triton.jit
def _draw(logits, u, inv_t, C: tl.constexpr, CP: tl.constexpr, ARGMAX: tl.constexpr):
    """fastgen.reference.wavenet.sample_tokens for one row of logits [CP] (entries >= C ignored)."""
    c = tl.arange(0, CP)
    valid = c < C
    x = tl.where(valid, logits, -float("inf"))
    peak = tl.max(x, axis=0)
    first_max = tl.min(tl.where(valid & (x == peak), c, CP), axis=0)
    if ARGMAX:
        token = first_max
    else:
        w = tl.where(valid, tl.exp((x - peak) * inv_t), 0.0)
        cdf = tl.cumsum(w.to(tl.float64), axis=0).to(tl.float32)
        total = tl.max(tl.where(valid, cdf, 0.0), axis=0)
        threshold = u * total
        token = tl.min(tl.where(valid & (cdf > threshold), c, C - 1), axis=0)
    return token.to(tl.int64)


# ----------------------------------------------------------------------------------------------
# The kernel: one program per batch row, all of its steps.
# ----------------------------------------------------------------------------------------------
@triton.jit
def _generate_kernel(
        queues_ptr, positions_ptr, last_tokens_ptr, out_ptr, uniforms_ptr, lengths_ptr, cond_ptr, table_ptr,
        scratch_ptr,
        embed_ptr, gate_w_ptr, gate_b_ptr, res_w_ptr, res_b_ptr, skip_w_ptr, skip_b_ptr, head1_w_ptr,
        head1_b_ptr, head2_w_ptr, head2_b_ptr,
        n, L, Q, cond_row_stride, cond_step_stride, scratch_stride, inv_t,
        C: tl.constexpr, R: tl.constexpr, S: tl.constexpr, H: tl.constexpr, KSIZE: tl.constexpr,
        RP: tl.constexpr, SP: tl.constexpr, HP: tl.constexpr, CP: tl.constexpr,
        RPP: tl.constexpr, SPP: tl.constexpr, HPP: tl.constexpr, CPP: tl.constexpr,
        KB_G: tl.constexpr, KB_RS: tl.constexpr, KB_SH: tl.constexpr, KB_HC: tl.constexpr,
        HAS_COND: tl.constexpr, ARGMAX: tl.constexpr, W_BF16: tl.constexpr):
    # RP, SP, HP, CP: the packed (pad8) widths; RPP .. CPP: them rounded up to powers of two.
    b = tl.program_id(0).to(tl.int64)
    steps = tl.load(lengths_ptr + b)
    t0 = tl.load(positions_ptr + b)
    token = tl.load(last_tokens_ptr + b)

    r = tl.arange(0, RPP)
    r_in = r < RP  # h keeps its (zero) padding columns so ring slots match the CPU kernel's
    r_gate = r < R
    # Gate pre-activations as [RPP, 2] (column c of the tanh half, of the sigmoid half).
    gate_off = r[:, None] + tl.arange(0, 2)[None, :] * RP
    gate_ok = r_gate[:, None] & (tl.arange(0, 2) < 2)[None, :]
    s = tl.arange(0, SPP)
    s_ok = s < S
    hh = tl.arange(0, HPP)
    hh_ok = hh < H
    cc = tl.arange(0, CPP)
    cc_ok = cc < C

    # Per-row scratch: layer input h [RP], gated output a [R], relu(skip) [S], head hidden [H].
    x_scr = scratch_ptr + b * scratch_stride
    a_scr = x_scr + RP
    s_scr = a_scr + RP
    h_scr = s_scr + SP
    row_queues = queues_ptr + b * Q * RP

    for i in tl.range(0, steps):
        t = t0 + i
        h = tl.load(embed_ptr + token * RP + r, mask=r_in, other=0.0)
        skip = tl.load(skip_b_ptr + s, mask=s_ok, other=0.0)
        tl.store(x_scr + r, h, mask=r_in)
        tl.debug_barrier()
        for layer in tl.range(0, L):
            l = tl.zeros([], dtype=tl.int64) + layer  # int64 offsets: no overflow for any model size
            dil = tl.load(table_ptr + l)
            ring = row_queues + tl.load(table_ptr + L + l) * RP
            q = (KSIZE - 1) * dil
            gb = gate_b_ptr + l * 2 * RP
            z = tl.load(gb + gate_off, mask=gate_ok, other=0.0)
            if HAS_COND:
                cp = cond_ptr + b * cond_row_stride + i * cond_step_stride + l * 2 * RP
                z += tl.load(cp + gate_off, mask=gate_ok, other=0.0)
            gw = gate_w_ptr + l * KSIZE * R * 2 * RP
            z = _gate(z, ring, x_scr, gw, t, dil, gate_off, gate_ok, R, RP, KSIZE, KB_G, W_BF16)
            zt, zs = tl.split(z)
            tl.debug_barrier()  # every tap read before the oldest slot is overwritten
            tl.store(ring + (t % q) * RP + r, h, mask=r_in)
            e = tl.exp(-2.0 * tl.abs(zt))  # tanh from one exp of a non-positive argument
            tanh = (1.0 - e) / (1.0 + e)
            a = tl.where(zt < 0, -tanh, tanh) / (1.0 + tl.exp(-zs))
            tl.store(a_scr + r, a, mask=r_gate)
            tl.debug_barrier()
            # Skip and residual products (no residual after the last layer: its loads are masked off).
            has_res = (tl.zeros([1], dtype=tl.int64) + l + 1) < L
            h += tl.load(res_b_ptr + l * RP + r, mask=r_in & has_res, other=0.0)
            skip, h = _vecmat2(skip, h, a_scr, skip_w_ptr + l * R * SP, SP, res_w_ptr + l * R * RP, RP, has_res,
                               R, S, RP, KB_RS, SPP, RPP, W_BF16)
            tl.store(x_scr + r, h, mask=r_in)
            tl.debug_barrier()
        tl.store(s_scr + s, tl.maximum(skip, 0.0), mask=s_ok)
        tl.debug_barrier()
        hidden = tl.load(head1_b_ptr + hh, mask=hh_ok, other=0.0)
        hidden = _vecmat(hidden, s_scr, head1_w_ptr, HP, S, H, KB_SH, HPP, W_BF16)
        tl.store(h_scr + hh, tl.maximum(hidden, 0.0), mask=hh_ok)
        tl.debug_barrier()
        logits = tl.load(head2_b_ptr + cc, mask=cc_ok, other=0.0)
        logits = _vecmat(logits, h_scr, head2_w_ptr, CP, H, C, KB_HC, CPP, W_BF16)
        u = tl.load(uniforms_ptr + b * n + i)
        token = _draw(logits, u, inv_t, C, CPP, ARGMAX)
        tl.store(out_ptr + b * n + i, token)

    tl.store(positions_ptr + b, t0 + steps, mask=steps > 0)
    tl.store(last_tokens_ptr + b, token, mask=steps > 0)


# ----------------------------------------------------------------------------------------------
# Launcher.
# ----------------------------------------------------------------------------------------------
def _fail(message: str, error=ValueError):
    raise error(f"{_WHERE}: {message}")


def _check(t, name: str, shape: Sequence[int], dtype: torch.dtype, device: torch.device) -> None:
    if not isinstance(t, Tensor):
        _fail(f"{name} must be a tensor, got {type(t).__name__}", TypeError)
    if t.device != device:
        _fail(f"{name} must be on {device} (the device of queues), got {t.device}")
    if tuple(t.shape) != tuple(shape):
        _fail(f"{name} must have shape {list(shape)}, got {list(t.shape)}")
    if t.dtype != dtype:
        _fail(f"{name} must be {dtype}, got {t.dtype}", TypeError)
    if not t.is_contiguous():
        _fail(f"{name} must be contiguous")


def _block_k(K: int, NP: int) -> int:
    """Rows of one [KB, NP] tile: the whole of K when it fits in _TILE elements."""
    return max(1, min(triton.next_power_of_2(K), _TILE // NP))


def wavenet_generate(queues: Tensor, positions: Tensor, last_tokens: Tensor, weights: Sequence[Tensor],
                     dilations: Sequence[int], cond: Optional[Tensor], uniforms: Tensor, lengths: Tensor,
                     temperature: float) -> Tensor:
    """Tokens [B, n] (int64; -1 after row b's lengths[b] samples), advancing the state in place.

    Arguments exactly as torch.ops.fastgen.wavenet_generate (see the module docstring)."""
    # --- sizes and checks (the spirit of csrc/cpu/wavenet.cpp's) --------------------------------
    if not isinstance(queues, Tensor):
        _fail(f"queues must be a tensor, got {type(queues).__name__}", TypeError)
    device = queues.device
    if device.type == "cpu" and not _INTERPRET:
        _fail("CPU tensors need TRITON_INTERPRET=1 set before triton is imported; use the 'cpu' backend, "
              "or CUDA tensors", RuntimeError)
    if device.type not in ("cpu", "cuda"):
        _fail(f"tensors must be on a CUDA device (or the CPU under TRITON_INTERPRET=1), got {device}", RuntimeError)
    weights = list(weights)
    if len(weights) != len(_WEIGHT_NAMES):
        _fail(f"expected {len(_WEIGHT_NAMES)} packed weight tensors ({', '.join(_WEIGHT_NAMES)}), got {len(weights)}")
    dilations = [int(d) for d in dilations]
    L = len(dilations)
    if not 1 <= L <= _MAX_LAYERS:
        _fail(f"need 1 to {_MAX_LAYERS} layers (dilations), got {L}")
    if min(dilations) < 1:
        _fail(f"dilations must be >= 1, got {dilations}")
    temperature = float(temperature)
    if not (math.isfinite(temperature) and temperature >= 0):
        _fail(f"temperature must be finite and >= 0, got {temperature}")
    if queues.dim() != 3:
        _fail(f"queues must be [B, Q, Rp], got {list(queues.shape)}")
    if not isinstance(uniforms, Tensor) or uniforms.dim() != 2 or uniforms.shape[0] != queues.shape[0]:
        _fail(f"uniforms must be a tensor [B, n] with B = {queues.shape[0]} (the rows of queues), got "
              f"{list(uniforms.shape) if isinstance(uniforms, Tensor) else type(uniforms).__name__}")
    B, n = uniforms.shape
    w = dict(zip(_WEIGHT_NAMES, weights))
    for name, t in w.items():
        if not isinstance(t, Tensor):
            _fail(f"weight {name} must be a tensor, got {type(t).__name__}", TypeError)
    if not (w["embed"].dim() == 2 and w["skip_w"].dim() == 3 and w["head1_w"].dim() == 2 and w["head2_w"].dim() == 2
            and w["gate_w"].dim() == 3):
        _fail("embed [C, Rp], gate_w [L, k*R, 2Rp], skip_w [L, R, Sp], head1_w [S, Hp] and head2_w [H, Cp] expected")
    C, R, S, H = w["embed"].shape[0], w["skip_w"].shape[1], w["head1_w"].shape[0], w["head2_w"].shape[0]
    k = w["gate_w"].shape[1] // R if R > 0 else 0
    if not (C >= 2 and R >= 1 and S >= 1 and H >= 1 and k >= 2):
        _fail(f"inconsistent packed sizes (C={C}, R={R}, S={S}, H={H}, k={k})")
    Rp, Sp, Hp, Cp = _pad8(R), _pad8(S), _pad8(H), _pad8(C)
    wt = w["gate_w"].dtype
    if wt not in (torch.float32, torch.bfloat16):
        _fail(f"weight matrices must be float32 or bfloat16, got {wt}", TypeError)
    if wt == torch.bfloat16 and (R % 2 or S % 2 or H % 2):
        _fail(f"bfloat16 weights (row pairs interleaved) need even residual, skip and head widths, got R={R}, "
              f"S={S}, H={H}")
    shapes = {"embed": (C, Rp), "gate_w": (L, k * R, 2 * Rp), "gate_b": (L, 2 * Rp), "res_w": (L - 1, R, Rp),
              "res_b": (L - 1, Rp), "skip_w": (L, R, Sp), "skip_b": (Sp,), "head1_w": (S, Hp), "head1_b": (Hp,),
              "head2_w": (H, Cp), "head2_b": (Cp,)}
    for name, t in w.items():
        _check(t, f"weight {name}", shapes[name], wt if name in _MATRICES else torch.float32, device)
    Q = sum((k - 1) * d for d in dilations)
    _check(queues, "queues", (B, Q, Rp), torch.float32, device)
    _check(positions, "positions", (B,), torch.int64, device)
    _check(last_tokens, "last_tokens", (B,), torch.int64, device)
    _check(lengths, "lengths", (B,), torch.int64, device)
    _check(uniforms, "uniforms", (B, n), torch.float32, device)
    if B > 0:
        if int(lengths.min()) < 0 or int(lengths.max()) > n:
            _fail(f"lengths must be in [0, n={n}], got min {int(lengths.min())}, max {int(lengths.max())}")
        if int(last_tokens.min()) < 0 or int(last_tokens.max()) >= C:
            _fail(f"last_tokens must be in [0, {C}), got min {int(last_tokens.min())}, max {int(last_tokens.max())}")
        if int(positions.min()) < 0:
            _fail(f"positions must be >= 0, got min {int(positions.min())}")
    cond_row_stride = cond_step_stride = 0
    if cond is not None:
        if not isinstance(cond, Tensor) or cond.dim() != 3 or cond.shape[1] not in (1, n):
            _fail(f"cond must be [B, n or 1, L * 2 * Rp] = [{B}, {n} or 1, {L * 2 * Rp}], got "
                  f"{getattr(cond, 'shape', type(cond).__name__)}")
        _check(cond, "cond", (B, cond.shape[1], L * 2 * Rp), torch.float32, device)
        cond_row_stride = cond.shape[1] * L * 2 * Rp
        cond_step_stride = 0 if cond.shape[1] == 1 else L * 2 * Rp

    out = torch.full((B, n), -1, dtype=torch.int64, device=device)
    if B == 0 or n == 0:
        return out

    # --- launch ---------------------------------------------------------------------------------
    offsets = [0]
    for d in dilations[:-1]:
        offsets.append(offsets[-1] + (k - 1) * d)
    table = torch.tensor(dilations + offsets, dtype=torch.int64).to(device)
    scratch_stride = 2 * Rp + Sp + Hp
    scratch = torch.empty(B, scratch_stride, dtype=torch.float32, device=device)
    bf16 = wt == torch.bfloat16

    def mat(name: str) -> Tensor:
        t = w[name]
        return t.view(torch.int16) if bf16 else t  # bfloat16 bits (the interpreter has no bfloat16)

    RPP, SPP, HPP, CPP = (triton.next_power_of_2(v) for v in (Rp, Sp, Hp, Cp))
    _generate_kernel[(B,)](
        queues, positions, last_tokens, out, uniforms, lengths, cond if cond is not None else uniforms, table,
        scratch,
        w["embed"], mat("gate_w"), w["gate_b"], mat("res_w"), w["res_b"], mat("skip_w"), w["skip_b"],
        mat("head1_w"), w["head1_b"], mat("head2_w"), w["head2_b"],
        n, L, Q, cond_row_stride, cond_step_stride, scratch_stride,
        1.0 / temperature if temperature > 0 else 0.0,
        C=C, R=R, S=S, H=H, KSIZE=k, RP=Rp, SP=Sp, HP=Hp, CP=Cp, RPP=RPP, SPP=SPP, HPP=HPP, CPP=CPP,
        KB_G=_block_k(k * R, RPP), KB_RS=_block_k(R, max(SPP, RPP)), KB_SH=_block_k(S, HPP),
        KB_HC=_block_k(H, CPP),
        HAS_COND=cond is not None, ARGMAX=temperature == 0, W_BF16=bf16,
        num_warps=4,
    )
    return out
