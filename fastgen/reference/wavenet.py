"""Plain-PyTorch WaveNet generation: the definitions every fast path is tested against.

- ``sample_tokens``: the sampling rule shared by every path. With temperature T > 0, token = the
  first class c with cdf(c) > u * cdf(C-1), cdf the running sum of exp((logit - max) / T) and u the
  caller's uniform in [0, 1); with T = 0, the first argmax. Drawing from caller-supplied uniforms
  makes every path deterministic and comparable token for token.
- ``generate_naive``: recompute the teacher-forced forward over the last receptive_field inputs for
  every new sample (the definition; O(receptive field) work per sample).
- ``generate_queues``: Paine et al. 2016's algorithm: per layer a queue of its last (k-1) * d inputs,
  kept as a ring buffer (the input at time s in slot s mod (k-1) * d, the C++ kernel's layout): per
  sample each layer reads its k-1 taps and overwrites the oldest slot, work independent of d.

Both take conditioning as ``cond_steps(start, stop) -> [B, stop-start | 1, L*2R] or None`` (see
WaveNet.conditioning_steps) and uniforms [B, n]; both start from ``first_tokens`` [B] at time 0.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor

CondSteps = Callable[[int, int], Optional[Tensor]]


def sample_tokens(logits: Tensor, uniforms: Tensor, temperature: float) -> Tensor:
    """Tokens [B] (int64) from logits [B, C] and uniforms [B] by the rule in the module docstring."""
    if temperature == 0:
        return logits.argmax(dim=1)
    weights = torch.exp((logits - logits.max(dim=1, keepdim=True).values) / temperature)
    cdf = weights.cumsum(dim=1)
    threshold = uniforms.to(cdf.dtype)[:, None] * cdf[:, -1:]
    return torch.searchsorted(cdf, threshold, right=True)[:, 0].clamp_(max=logits.shape[1] - 1)


def _cond_for_layer(cond: Optional[Tensor], l: int, two_r: int) -> Optional[Tensor]:
    """Layer l's slice [B, 2R, T|1] of channels-last conditioning [B, T|1, L*2R]."""
    return None if cond is None else cond[:, :, l * two_r:(l + 1) * two_r].transpose(1, 2)


@torch.no_grad()
def generate_naive(model, first_tokens: Tensor, n: int, cond_steps: CondSteps, uniforms: Tensor,
                   temperature: float) -> Tensor:
    """Tokens [B, n]: each from a full forward over the last receptive_field inputs."""
    cfg = model.config
    two_r = 2 * cfg.residual_channels
    history = first_tokens[:, None].long()
    out = []
    for i in range(n):
        start = max(0, i + 1 - cfg.receptive_field)
        window = history[:, start:]
        cond = cond_steps(start, i + 1)
        logits = model.logits_from(window, lambda l: _cond_for_layer(cond, l, two_r))[:, :, -1]
        token = sample_tokens(logits, uniforms[:, i], temperature)
        out.append(token)
        history = torch.cat([history, token[:, None]], dim=1)
    return torch.stack(out, dim=1) if out else history.new_empty(history.shape[0], 0)


class QueueState:
    """Per-layer ring buffers [B, (k-1)*d, R] of past layer inputs (zeros before t = 0): the input at
    time s sits in slot s mod (k-1)*d. ``time`` is the position of the next step."""

    def __init__(self, model, batch: int):
        cfg = model.config
        weight = model.embed.weight
        self.queues = [weight.new_zeros(batch, (cfg.kernel_size - 1) * d, cfg.residual_channels)
                       for d in cfg.dilations]
        self.time = 0


@torch.no_grad()
def queue_step(model, state: QueueState, tokens: Tensor, cond: Optional[Tensor]) -> Tensor:
    """Logits [B, classes] for input tokens [B] at the next position; pushes every layer's input.
    cond is this position's conditioning [B, L*2R] or None."""
    cfg = model.config
    R = cfg.residual_channels
    k = cfg.kernel_size
    t = state.time
    h = model.embed(tokens)
    skip = 0
    for l, (gate, d) in enumerate(zip(model.gates, cfg.dilations)):
        ring = state.queues[l]
        q = ring.shape[1]
        # Tap j reads the input (k-1-j)*d steps back (a ring slot) for j < k-1, and h itself for j = k-1.
        taps = [ring[:, (t - (k - 1 - j) * d) % q] for j in range(k - 1)] + [h]
        z = gate.bias + sum(tap @ gate.weight[:, :, j].T for j, tap in enumerate(taps))
        if cond is not None:
            z = z + cond[:, l * 2 * R:(l + 1) * 2 * R]
        ring[:, t % q] = h  # replaces the input at time t - q, which tap 0 has just been read from
        a = torch.tanh(z[:, :R]) * torch.sigmoid(z[:, R:])
        skip = skip + a @ model.skips[l].weight[:, :, 0].T + model.skips[l].bias
        if l < cfg.layers - 1:
            h = h + a @ model.residuals[l].weight[:, :, 0].T + model.residuals[l].bias
    state.time += 1
    hidden = torch.relu(torch.relu(skip) @ model.head1.weight[:, :, 0].T + model.head1.bias)
    return hidden @ model.head2.weight[:, :, 0].T + model.head2.bias


@torch.no_grad()
def generate_queues(model, first_tokens: Tensor, n: int, cond_steps: CondSteps, uniforms: Tensor,
                    temperature: float) -> Tensor:
    """Tokens [B, n] by the per-layer queue algorithm."""
    state = QueueState(model, first_tokens.shape[0])
    tokens = first_tokens.long()
    out = []
    for i in range(n):
        cond = cond_steps(i, i + 1)
        logits = queue_step(model, state, tokens, None if cond is None else cond[:, 0])
        tokens = sample_tokens(logits, uniforms[:, i], temperature)
        out.append(tokens)
    return torch.stack(out, dim=1) if out else tokens.new_empty(tokens.shape[0], 0)
