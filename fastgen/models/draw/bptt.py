"""DRAW's recurrent core with hand-written backpropagation through time (the fast training path).

Under autograd, one step of DRAW (with attention) records ~50 nodes (the heads, the read, two LSTMs,
the latent sample, the write, the error image). At the paper's MNIST model (B=64, T=64) their
bookkeeping, plus copying every step's rows onto fastgen.nn.recurrent's tapes, cost 134 ms of a
425 ms training step whose matrix products alone take 291 ms. Here the whole T-step loop is one
autograd Function (425 -> 352 ms on one core, `fastgen bench draw`):

  * forward runs fastgen's ops with no graph, keeping on [T, ...] tapes what backward needs:
    each product's input rows, the LSTMs' saved activations and cells, the read input [x, x^],
    the window parameters and the patches (without attention, read is [x, x^] whole and write a
    linear map onto the canvas: the same loop with identity steps in place of the ops);
  * backward walks the steps in reverse through the ops' own backward kernels
    (attention_read_backward, attention_write_backward, lstm_cell_pointwise_backward) and keeps
    each product's output gradient on a tape, so every weight gradient is one product over all
    T * B rows (the batching fastgen.nn.recurrent does under autograd).

The tapes come from fastgen.nn.buffer_pool and go back to it when backward is done, so a second
backward through the same graph (retain_graph) is refused with a clear error.

The core maps (x, eps, weights) to (c_T, q) where q [T, B, 2Z] holds every step's (mu, log sigma):
the loss terms on them (reconstruction, KL) stay in plain autograd outside. The weights are the
model's stacked matrices (DRAW.core_weights), so their gradients flow on to the parameters.
Its twin is the same model on the reference backend; tests compare loss and every gradient.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from fastgen.nn.buffer_pool import give_back_buffer, take_buffer

_ops = torch.ops.fastgen


class CoreWeights(NamedTuple):
    """DRAW's linear maps as [out, in] matrices with biases, inputs in the order the rows are built:

    read  h_dec_{t-1} -> read window [5]; [0, D] without read attention
    enc   [r_t, h_dec_{t-1}, h_enc_{t-1}] -> encoder gates [4E]
    q     h_enc_t -> [mu, log sigma] [2Z]
    dec   [z_t, h_dec_{t-1}] -> decoder gates [4D]
    write h_dec_t -> [write window [5], patch [C N N]]; the whole canvas [C H W] without write attention
    """

    read: Tensor
    read_bias: Tensor
    enc: Tensor
    enc_bias: Tensor
    q: Tensor
    q_bias: Tensor
    dec: Tensor
    dec_bias: Tensor
    write: Tensor
    write_bias: Tensor


def draw_core(x: Tensor, eps: Tensor, read_N: Optional[int], write_N: Optional[int],
              weights: CoreWeights) -> tuple[Tensor, Tensor]:
    """(c_T [B, C, H, W], q [T, B, 2Z]) of DRAW on images x, with noise eps [T, B, Z]. read_N /
    write_N None: no attention (read [x, x^] whole; write the canvas through a linear map).

    CPU float32/float64 only (the caller checks); x itself gets no gradient. Without a backward to
    come (no grad mode, or no weight needs one) the tapes shrink to two steps, so evaluating a large
    batch takes per-step memory only.
    """
    keep = torch.is_grad_enabled() and any(t.requires_grad for t in weights)
    return _DRAWCore.apply(x, eps, read_N, write_N, keep, *weights)


class Tapes:
    """Named [T, ...] scratch tensors from fastgen.nn.buffer_pool, given back by release()."""

    def __init__(self, like: Tensor, **shapes: tuple[int, ...]):
        self._names = list(shapes)
        for name, shape in shapes.items():
            setattr(self, name, take_buffer(like, shape))

    def release(self) -> None:
        for name in self._names:
            give_back_buffer(getattr(self, name))
            delattr(self, name)
        self._names = []


class _DRAWCore(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, eps, read_N, write_N, keep, *weights):
        w = CoreWeights(*weights)
        T, B, Z = eps.shape
        C, H, W = x.shape[1:]
        D, E = w.dec.shape[0] // 4, w.enc.shape[0] // 4
        R = 2 * C * (read_N * read_N if read_N else H * W)
        # Step t lives in tape row t, or without a backward in row t % 2 (a step reads only its own
        # row and the previous one).
        L = T if keep else 2
        tape = Tapes(
            x,
            enc_in=(L, B, R + D + E),  # the encoder product's input rows [r_t, h_dec_{t-1}, h_enc_{t-1}]
            dec_in=(L, B, Z + D),  # the decoder's [z_t, h_dec_{t-1}]
            h_dec=(L + 1 if keep else 2, B, D),  # h_dec_0..T: the read head's inputs, from 1 the write head's
            h_enc=(L, B, E),  # the q head's inputs
            read_in=(L, B, 2 * C, H, W),  # [x, x^_t]
            read_win=(L, B, w.read.shape[0]),
            write_out=(L, B, w.write.shape[0]),  # [window, patch], or the canvas update
            sigma_eps=(L, B, Z),  # z_t - mu_t
        )
        q = x.new_empty(T, B, 2 * Z)  # an output: not a pooled tape
        acts, cells = [], []  # per step: both LSTMs' saved activations and cells c_{t-1}

        tape.h_dec[0].zero_()
        c_enc, c_dec = x.new_zeros(B, E), x.new_zeros(B, D)
        canvas = x.new_zeros(x.shape)
        tape.read_in[:, :, :C] = x
        for t in range(T):
            now, before, after = (t, t - 1, t + 1) if keep else (t % 2, (t - 1) % 2, (t + 1) % 2)
            read_in, write_out, h_dec = tape.read_in[now], tape.write_out[now], tape.h_dec[now]
            torch.sub(x, torch.sigmoid(canvas), out=read_in[:, C:])
            enc_in = tape.enc_in[now]
            if read_N:
                torch.addmm(w.read_bias, h_dec, w.read.t(), out=tape.read_win[now])
                enc_in[:, :R] = _ops.attention_read(read_in, tape.read_win[now], read_N).view(B, R)
            else:
                enc_in[:, :R] = read_in.view(B, R)
            enc_in[:, R:R + D] = h_dec
            enc_in[:, R + D:] = tape.h_enc[before] if t > 0 else 0
            h, c_enc_next, act_enc = _ops.lstm_cell_pointwise(torch.addmm(w.enc_bias, enc_in, w.enc.t()), c_enc)
            tape.h_enc[now] = h
            torch.addmm(w.q_bias, h, w.q.t(), out=q[t])
            dec_in = tape.dec_in[now]
            latent_forward(q[t], eps[t], sigma_eps=tape.sigma_eps[now], z=dec_in[:, :Z])
            dec_in[:, Z:] = h_dec
            h, c_dec_next, act_dec = _ops.lstm_cell_pointwise(torch.addmm(w.dec_bias, dec_in, w.dec.t()), c_dec)
            tape.h_dec[after] = h
            torch.addmm(w.write_bias, h, w.write.t(), out=write_out)
            canvas = write_head_forward(write_out, write_N, C, H, W, canvas)
            if keep:
                acts.append((act_enc, act_dec))
                cells.append((c_enc, c_dec))
            c_enc, c_dec = c_enc_next, c_dec_next

        if keep:
            ctx.sizes = (read_N, write_N, C, H, W, Z, D, E, R)
            ctx.tape, ctx.acts, ctx.cells, ctx.weights = tape, acts, cells, w
        else:
            tape.release()
        return canvas, q

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_canvas, grad_q):
        if ctx.tape is None:
            raise RuntimeError("draw_core: backward ran twice; this path frees its tapes after the first "
                               "(retain_graph is not supported: use the reference backend)")
        read_N, write_N, C, H, W, Z, D, E, R = ctx.sizes
        tape, w = ctx.tape, ctx.weights
        T, B = tape.enc_in.shape[:2]
        # Output gradients of every product, one tape each: the weight gradients are G^T X at the end.
        grads = Tapes(tape.enc_in, read=tape.read_win.shape, enc=(T, B, 4 * E), q=(T, B, 2 * Z),
                       dec=(T, B, 4 * D), write=tape.write_out.shape)
        g_canvas = grad_canvas.contiguous()  # autograd passes zeros for an output that got no gradient
        dh_dec = tape.enc_in.new_zeros(B, D)  # dL/dh_dec_t from step t+1 (encoder, decoder, read head)
        dh_enc = tape.enc_in.new_zeros(B, E)  # dL/dh_enc_t from the encoder at step t+1
        dc_dec = dc_enc = None
        for t in reversed(range(T)):
            (act_enc, act_dec), (c_enc, c_dec) = ctx.acts[t], ctx.cells[t]
            # canvas_t = canvas_{t-1} + write(patch_t, window_t), or + the write head's output
            write_head_backward(g_canvas, tape.write_out[t], write_N, C, H, W, out=grads.write[t])
            dh_dec.addmm_(grads.write[t], w.write)
            g_gates, dc_dec = _ops.lstm_cell_pointwise_backward(dh_dec, dc_dec, act_dec, c_dec)
            grads.dec[t] = g_gates
            d_dec_in = g_gates.mm(w.dec)  # [dL/dz_t, dL/dh_dec_{t-1} from the decoder]
            # z = mu + sigma * eps, sigma = exp(log sigma)
            latent_backward(grad_q[t], d_dec_in[:, :Z], tape.sigma_eps[t], out=grads.q[t])
            dh_enc = torch.addmm(dh_enc, grads.q[t], w.q)
            g_gates, dc_enc = _ops.lstm_cell_pointwise_backward(dh_enc, dc_enc, act_enc, c_enc)
            grads.enc[t] = g_gates
            d_enc_in = g_gates.mm(w.enc)  # [dL/dr_t, dL/dh_dec_{t-1}, dL/dh_enc_{t-1}]
            dh_enc = d_enc_in[:, R + D:]
            dh_dec = torch.add(d_dec_in[:, Z:], d_enc_in[:, R:R + D])
            if read_N:
                d_read_in, g_win = _ops.attention_read_backward(
                    d_enc_in[:, :R].reshape(B, 2 * C, read_N, read_N), tape.read_in[t], tape.read_win[t], read_N)
                grads.read[t] = g_win
                dh_dec.addmm_(g_win, w.read)
            else:
                d_read_in = d_enc_in[:, :R].reshape(B, 2 * C, H, W)
            g_canvas = error_image_backward(g_canvas, tape.read_in[t], d_read_in, C)

        pairs = ((grads.read, tape.h_dec[:T]), (grads.enc, tape.enc_in), (grads.q, tape.h_enc),
                 (grads.dec, tape.dec_in), (grads.write, tape.h_dec[1:]))
        weight_grads = product_weight_grads(pairs, ctx.needs_input_grad[5:])
        grads.release()
        tape.release()
        ctx.tape = ctx.acts = ctx.cells = None
        return (None, None, None, None, None, *weight_grads)


def write_patch(write_out_t: Tensor, C: int, N: int) -> Tensor:
    """The patch [B, C, N, N] from one step's write-head output [window (5), patch]."""
    return write_out_t[:, 5:].reshape(write_out_t.shape[0], C, N, N)


def write_head_forward(write_out_t: Tensor, write_N: Optional[int], C: int, H: int, W: int,
                       canvas: Tensor) -> Tensor:
    """canvas_t from canvas_{t-1} and one step's write-head output: attention_write of the patch in
    its window onto the canvas (fused add), or without write attention the output as the update."""
    if write_N:
        return _ops.attention_write(write_patch(write_out_t, C, write_N), write_out_t[:, :5], H, W, canvas)
    return canvas + write_out_t.view(canvas.shape)


def write_head_backward(g_canvas: Tensor, write_out_t: Tensor, write_N: Optional[int], C: int, H: int, W: int,
                        out: Tensor) -> None:
    """dL/d(one step's write-head output) into out [B, rows], given dL/dcanvas_t: through
    attention_write's backward ([window, patch]), or without write attention the canvas gradient."""
    if write_N:
        g_patch, g_win = _ops.attention_write_backward(g_canvas, write_patch(write_out_t, C, write_N),
                                                       write_out_t[:, :5], H, W)
        out[:, :5], out[:, 5:] = g_win, g_patch.view(out.shape[0], -1)
    else:
        out.copy_(g_canvas.view(out.shape[0], -1))


def latent_forward(q_t: Tensor, eps_t: Tensor, sigma_eps: Tensor, z: Tensor) -> None:
    """z = mu + exp(log sigma) eps from q_t = [mu, log sigma] [B, 2Z], into ``z``; sigma eps, which
    latent_backward needs, into ``sigma_eps``."""
    Z = eps_t.shape[1]
    torch.mul(torch.exp(q_t[:, Z:]), eps_t, out=sigma_eps)
    torch.add(q_t[:, :Z], sigma_eps, out=z)


def latent_backward(grad_q_t: Tensor, dz: Tensor, sigma_eps_t: Tensor, out: Tensor) -> None:
    """dL/d[mu, log sigma] [B, 2Z] into out: the loss's own gradient of q plus the path through
    z = mu + exp(log sigma) eps (dz/dlog sigma = sigma eps, kept on a tape)."""
    Z = dz.shape[1]
    torch.add(grad_q_t[:, :Z], dz, out=out[:, :Z])
    torch.addcmul(grad_q_t[:, Z:], dz, sigma_eps_t, out=out[:, Z:])


def error_image_backward(g_canvas: Tensor, read_in_t: Tensor, d_read_in: Tensor, C: int) -> Tensor:
    """dL/dcanvas_{t-1}: g_canvas plus the path through x^_t = x - sigmoid(canvas_{t-1}), whose
    sigmoid is x - x^_t (both on the read-input tape [x, x^_t]) with derivative s (1 - s)."""
    s = read_in_t[:, :C] - read_in_t[:, C:]
    return torch.addcmul(g_canvas, d_read_in[:, C:], s * (1 - s), value=-1)


def product_weight_grads(pairs, needs_grad) -> list:
    """[dW, db, ...] of the products y = x W^T + b whose (output gradients G, inputs X) tapes
    [T, B, .] are ``pairs``: each is one product over all T * B rows. needs_grad: the weights' and
    biases' flags, interleaved (autograd's needs_input_grad for them)."""
    out = []
    for (G, X), need_w, need_b in zip(pairs, needs_grad[0::2], needs_grad[1::2]):
        rows = G.shape[0] * G.shape[1]  # not -1: a head of no rows (no read attention) has 0 elements
        G, X = G.reshape(rows, G.shape[-1]), X.reshape(rows, X.shape[-1])
        out.append(G.t().mm(X) if need_w else None)
        out.append(G.sum(0) if need_b else None)
    return out
