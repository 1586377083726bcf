"""AlignDRAW's recurrent core with hand-written backpropagation through time (the fast training path).

The same construction as fastgen.models.draw.bptt (read that first): the T-step loop is one autograd
Function whose forward runs fastgen's ops with no graph and keeps [T, ...] tapes, and whose backward
walks the steps in reverse through the ops' backward kernels, keeping every product's output
gradient so each weight gradient is one product over all T * B rows. AlignDRAW adds, per step:

  * the heads on h^gen_{t-1} as one product: [W h (alignment), mu_p, log sigma_p (before tanh),
    read window];
  * the alignment over the caption's words, by hand: u = tanh(U h^lang + b + W h^gen_{t-1})
    [B, L, A] (a tape), e = u v, alpha = softmax over the real words, s_t = alpha h^lang;
  * the learned prior p_t = tanh(heads) (zeros at t = 0, i.e. N(0, I)), an output like q.

The caption encoder and U h^lang + b run once per batch in plain autograd; h^lang and that
projection enter the core as inputs, and their gradients (summed over the steps) flow back to the
language LSTM, the embedding and U. The KL between q_t and p_t and the reconstruction term stay in
plain autograd on the core's outputs. Twin: the same model on the reference backend.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from fastgen.models.draw.bptt import (
    Tapes,
    error_image_backward,
    latent_backward,
    latent_forward,
    product_weight_grads,
    write_head_backward,
    write_head_forward,
)

_ops = torch.ops.fastgen


class AlignCoreWeights(NamedTuple):
    """AlignDRAW's linear maps as [out, in] matrices with biases, inputs in the order rows are built:

    gen    h^gen_{t-1} -> [W h (A), mu_p, log sigma_p (Z each, before tanh), read window (5 or 0)]
    inf    [r_t, h^gen_{t-1}, h^inf_{t-1}] -> inference gates [4I]
    q      h^inf_t -> [mu_q, log sigma_q] [2Z]
    lstm   [z_t, s_t, h^gen_{t-1}] -> generator gates [4G]
    write  h^gen_t -> [write window (5), patch [C N N]]; the whole canvas [C H W] without write attention
    v      [A]: the alignment's e = v^T u
    """

    gen: Tensor
    gen_bias: Tensor
    inf: Tensor
    inf_bias: Tensor
    q: Tensor
    q_bias: Tensor
    lstm: Tensor
    lstm_bias: Tensor
    write: Tensor
    write_bias: Tensor
    v: Tensor


def aligndraw_core(x: Tensor, eps: Tensor, h_lang: Tensor, lang_proj: Tensor, mask: Tensor,
                   read_N: Optional[int], write_N: Optional[int],
                   weights: AlignCoreWeights) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(c_T [B, C, H, W], q [T, B, 2Z], p [T, B, 2Z], alignments [T, B, L]) of AlignDRAW on images x
    with noise eps [T, B, Z], the caption's h^lang [B, L, 2K], lang_proj = U h^lang + b [B, L, A] and
    its mask [B, L] (True on real words). q and p hold (mu, log sigma) of the posterior and the prior.

    CPU float32/float64 only (the caller checks); x gets no gradient. Without a backward to come the
    tapes shrink to two steps.
    """
    keep = torch.is_grad_enabled() and any(t.requires_grad for t in (h_lang, lang_proj, *weights))
    return _AlignDRAWCore.apply(x, eps, h_lang, lang_proj, mask, read_N, write_N, keep, *weights)


class _AlignDRAWCore(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, eps, h_lang, lang_proj, mask, read_N, write_N, keep, *weights):
        w = AlignCoreWeights(*weights)
        T, B, Z = eps.shape
        C, H, W = x.shape[1:]
        L, K2, A = h_lang.shape[1], h_lang.shape[2], lang_proj.shape[2]
        G, I = w.lstm.shape[0] // 4, w.inf.shape[0] // 4
        R = 2 * C * (read_N * read_N if read_N else H * W)
        steps = T if keep else 2  # step t in tape row t, or without a backward in row t % 2
        tape = Tapes(
            x,
            h_gen=(T + 1 if keep else 2, B, G),  # h^gen_0..T: the gen heads' inputs, from 1 the write head's
            gen_out=(steps, B, w.gen.shape[0]),
            u=(steps, B, L, A),
            inf_in=(steps, B, R + G + I),
            h_inf=(steps, B, I),
            lstm_in=(steps, B, Z + K2 + G),
            read_in=(steps, B, 2 * C, H, W),  # [x, x^_t]
            write_out=(steps, B, w.write.shape[0]),
            sigma_eps=(steps, B, Z),
        )
        q, p = x.new_empty(T, B, 2 * Z), x.new_zeros(T, B, 2 * Z)
        alphas = x.new_empty(T, B, L)
        padding = torch.zeros(B, L, dtype=x.dtype).masked_fill_(~mask, float("-inf"))
        acts, cells = [], []

        tape.h_gen[0].zero_()
        c_inf, c_gen = x.new_zeros(B, I), x.new_zeros(B, G)
        canvas = x.new_zeros(x.shape)
        tape.read_in[:, :, :C] = x
        for t in range(T):
            now, before, after = (t, t - 1, t + 1) if keep else (t % 2, (t - 1) % 2, (t + 1) % 2)
            h_prev, read_in, lstm_in = tape.h_gen[now], tape.read_in[now], tape.lstm_in[now]
            heads = torch.addmm(w.gen_bias, h_prev, w.gen.t(), out=tape.gen_out[now])
            if t > 0:
                torch.tanh(heads[:, A:A + 2 * Z], out=p[t])
            u = torch.tanh(torch.add(lang_proj, heads[:, None, :A], out=tape.u[now]), out=tape.u[now])
            alphas[t] = torch.softmax(torch.addmv(padding.view(-1), u.view(B * L, A), w.v).view(B, L), 1)
            lstm_in[:, Z:Z + K2] = torch.bmm(alphas[t, :, None], h_lang).squeeze(1)
            torch.sub(x, torch.sigmoid(canvas), out=read_in[:, C:])
            inf_in = tape.inf_in[now]
            if read_N:
                inf_in[:, :R] = _ops.attention_read(read_in, heads[:, A + 2 * Z:], read_N).view(B, R)
            else:
                inf_in[:, :R] = read_in.view(B, R)
            inf_in[:, R:R + G] = h_prev
            inf_in[:, R + G:] = tape.h_inf[before] if t > 0 else 0
            h, c_inf_next, act_inf = _ops.lstm_cell_pointwise(torch.addmm(w.inf_bias, inf_in, w.inf.t()), c_inf)
            tape.h_inf[now] = h
            torch.addmm(w.q_bias, h, w.q.t(), out=q[t])
            latent_forward(q[t], eps[t], sigma_eps=tape.sigma_eps[now], z=lstm_in[:, :Z])
            lstm_in[:, Z + K2:] = h_prev
            h, c_gen_next, act_gen = _ops.lstm_cell_pointwise(torch.addmm(w.lstm_bias, lstm_in, w.lstm.t()), c_gen)
            tape.h_gen[after] = h
            write_out = torch.addmm(w.write_bias, h, w.write.t(), out=tape.write_out[now])
            canvas = write_head_forward(write_out, write_N, C, H, W, canvas)
            if keep:
                acts.append((act_inf, act_gen))
                cells.append((c_inf, c_gen))
            c_inf, c_gen = c_inf_next, c_gen_next

        if keep:
            ctx.sizes = (read_N, write_N, C, H, W, Z, A, K2, G, R)
            ctx.tape, ctx.acts, ctx.cells, ctx.weights = tape, acts, cells, w
            ctx.save_for_backward(h_lang, p, alphas)
        else:
            ctx.tape = None
            tape.release()
        return canvas, q, p, alphas

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_canvas, grad_q, grad_p, grad_alphas):
        if ctx.tape is None:
            raise RuntimeError("aligndraw_core: backward ran twice; this path frees its tapes after the first "
                               "(retain_graph is not supported: use the reference backend)")
        read_N, write_N, C, H, W, Z, A, K2, G, R = ctx.sizes
        tape, w = ctx.tape, ctx.weights
        h_lang, p, alphas = ctx.saved_tensors
        T, B = tape.inf_in.shape[:2]
        grads = Tapes(tape.inf_in, gen=tape.gen_out.shape, inf=(T, B, w.inf.shape[0]), q=(T, B, 2 * Z),
                      lstm=(T, B, 4 * G), write=tape.write_out.shape)
        g_canvas = grad_canvas.contiguous()
        d_h_lang, d_lang_proj = torch.zeros_like(h_lang), h_lang.new_zeros(tape.u.shape[1:])
        d_v = w.v.new_zeros(w.v.shape)
        dh_gen = tape.inf_in.new_zeros(B, G)  # dL/dh^gen_t from step t+1 (its heads, both LSTMs)
        dh_inf = tape.inf_in.new_zeros(B, tape.h_inf.shape[2])
        dc_inf = dc_gen = None
        for t in reversed(range(T)):
            (act_inf, act_gen), (c_inf, c_gen) = ctx.acts[t], ctx.cells[t]
            write_head_backward(g_canvas, tape.write_out[t], write_N, C, H, W, out=grads.write[t])
            dh_gen.addmm_(grads.write[t], w.write)
            g_gates, dc_gen = _ops.lstm_cell_pointwise_backward(dh_gen, dc_gen, act_gen, c_gen)
            grads.lstm[t] = g_gates
            d_lstm_in = g_gates.mm(w.lstm)  # [dL/dz_t, dL/ds_t, dL/dh^gen_{t-1} from the generator]
            latent_backward(grad_q[t], d_lstm_in[:, :Z], tape.sigma_eps[t], out=grads.q[t])
            dh_inf = torch.addmm(dh_inf, grads.q[t], w.q)
            g_gates, dc_inf = _ops.lstm_cell_pointwise_backward(dh_inf, dc_inf, act_inf, c_inf)
            grads.inf[t] = g_gates
            d_inf_in = g_gates.mm(w.inf)  # [dL/dr_t, dL/dh^gen_{t-1}, dL/dh^inf_{t-1}]
            dh_inf = d_inf_in[:, R + G:]
            d_heads = grads.gen[t]
            if read_N:
                d_read_in, d_heads[:, A + 2 * Z:] = _ops.attention_read_backward(
                    d_inf_in[:, :R].reshape(B, 2 * C, read_N, read_N), tape.read_in[t],
                    tape.gen_out[t, :, A + 2 * Z:], read_N)
            else:
                d_read_in = d_inf_in[:, :R].reshape(B, 2 * C, H, W)
            g_canvas = error_image_backward(g_canvas, tape.read_in[t], d_read_in, C)
            # prior p_t = tanh(heads), N(0, I) at t = 0
            d_heads[:, A:A + 2 * Z] = grad_p[t] * (1 - p[t] * p[t]) if t > 0 else 0
            # s_t = alpha h^lang, alpha = softmax(e) over real words, e = u v, u = tanh(lang_proj + W h)
            ds, alpha, u = d_lstm_in[:, Z:Z + K2], alphas[t], tape.u[t]
            d_alpha = torch.baddbmm(grad_alphas[t, :, :, None], h_lang, ds[:, :, None]).squeeze(2)
            d_h_lang.baddbmm_(alpha[:, :, None], ds[:, None, :])
            de = alpha * (d_alpha - (alpha * d_alpha).sum(1, keepdim=True))  # 0 on padding, where alpha is
            d_v.addmv_(u.reshape(-1, A).t(), de.reshape(-1))
            d_pre = de[:, :, None] * w.v * (1 - u * u)
            d_lang_proj += d_pre
            d_heads[:, :A] = d_pre.sum(1)
            dh_gen = d_lstm_in[:, Z + K2:] + d_inf_in[:, R:R + G]
            dh_gen.addmm_(d_heads, w.gen)

        pairs = ((grads.gen, tape.h_gen[:T]), (grads.inf, tape.inf_in), (grads.q, tape.h_inf),
                 (grads.lstm, tape.lstm_in), (grads.write, tape.h_gen[1:]))
        weight_grads = product_weight_grads(pairs, ctx.needs_input_grad[8:18])
        grads.release()
        tape.release()
        ctx.tape = ctx.acts = ctx.cells = None
        return (None, None, d_h_lang, d_lang_proj, None, None, None, None, *weight_grads,
                d_v if ctx.needs_input_grad[18] else None)
