"""The VAE-GAN training step with one forward of each network and each gradient routed once.

A straightforward port (:mod:`.reference_step`) runs every network once per loss, three times a step,
and back-propagates each network's loss separately. Here the encoder, the decoder and the
discriminator each run once (the decoder on [z; z_p], the discriminator on [x; x~; x_p]) and three
``torch.autograd.grad`` calls, each a different vector-Jacobian product that no other call
repeats, give every network exactly its own gradient (model.py's table):

1. ``grad(L_GAN, [discriminator params, decoded])``: the discriminator's gradient and, at the
   decoder's output, dL_GAN/d(decoded). With the paper's minimax objective the decoder's adversarial
   signal is exactly minus the latter (gradient reversal), so this one backward through the
   discriminator serves both networks. (The non-saturating loss needs one more backward through the
   discriminator, input gradients only: its decoder signal is not proportional to L_GAN's.)
2. ``grad(L_prior + L_llike, [encoder params, decoded])``: the encoder's gradient, taking on its way
   v = dL_llike/d(decoded): L_llike is back-propagated through the discriminator's first layers
   for input gradients only, so it never reaches the discriminator's weights.
3. ``grad(decoded, decoder params, grad_outputs=gamma * v - dL_GAN/d(decoded))``: the decoder's
   weights, fed both signals at once.

Skipped networks (the balancing option) cost nothing: their products are left out.

:func:`surrogate_losses` hands the result to fastgen.train's simultaneous phases (one Phase per
network, one optimizer each).
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import Tensor

from fastgen.models.vaegan.model import VAEGAN, Losses, balance_updates, compute_losses, forward_pass, network_losses


class Routed(NamedTuple):
    grads: dict[str, Optional[list[Tensor]]]  # network -> gradients of its parameters (None: skipped)
    losses: Losses
    updates: dict[str, bool]                  # network -> updated this step (balancing)


def parameters(model: VAEGAN) -> dict[str, list[Tensor]]:
    return {name: list(net.parameters()) for name, net in model.networks().items()}


def routed_gradients(model: VAEGAN, x: Tensor, eps: Optional[Tensor], z_prior: Optional[Tensor]) -> Routed:
    """Every network's gradient of its own loss from one forward of each (see the module docstring)."""
    model.check_images(x, "routed_gradients")
    cfg, params = model.config, parameters(model)
    p = forward_pass(model, x, eps, z_prior)
    losses = compute_losses(model, x, p)
    updates = balance_updates(model, losses)
    grads: dict[str, Optional[list[Tensor]]] = {name: None for name in params}
    if cfg.variant == "vae":  # encoder and decoder share one loss: one backward
        both = params["encoder"] + params["decoder"]
        g = torch.autograd.grad(losses.kl + losses.recon, both)
        n = len(params["encoder"])
        grads["encoder"], grads["decoder"] = list(g[:n]), list(g[n:])
        return Routed(grads, losses, updates)

    dec, dis = updates["decoder"], updates["discriminator"]
    reversal = dec and cfg.gan_loss == "minimax"
    signal = None  # the decoder's upstream gradient at its output
    inputs = (params["discriminator"] if dis else []) + ([p.decoded] if reversal else [])
    if inputs:  # 1
        g = torch.autograd.grad(losses.gan, inputs, retain_graph=True)
        if dis:
            grads["discriminator"] = list(g[:len(params["discriminator"])])
        if reversal:
            signal = -g[-1]
    if dec and cfg.gan_loss == "nonsaturating":
        signal = torch.autograd.grad(losses.gen, p.decoded, retain_graph=True)[0]
    if cfg.has_encoder:  # 2 (VAE-GAN)
        g = torch.autograd.grad(losses.kl + losses.recon, params["encoder"] + ([p.decoded] if dec else []),
                                retain_graph=dec)
        grads["encoder"] = list(g[:len(params["encoder"])])
        if dec and cfg.gamma:
            signal = signal + cfg.gamma * g[-1]
    if dec:  # 3
        grads["decoder"] = list(torch.autograd.grad(p.decoded, params["decoder"], grad_outputs=signal))
    return Routed(grads, losses, updates)


def routed_step(model: VAEGAN, x: Tensor, generator: Optional[torch.Generator] = None) -> Routed:
    """:func:`routed_gradients` with this step's noise drawn from ``generator``."""
    eps, z_prior = model.draw_noise(x.shape[0], generator, x)
    return routed_gradients(model, x, eps, z_prior)


def surrogate_losses(model: VAEGAN, routed: Routed) -> dict[str, Tensor]:
    """network -> a scalar whose value is the network's own loss and whose gradient w.r.t. that
    network's parameters is its routed gradient (zero for a skipped network): back-propagating it
    costs one multiply-add per parameter. This is how fastgen.train's simultaneous phases, which
    back-propagate one loss per phase, take the routed step."""
    values = network_losses(model, routed.losses)
    out = {}
    for name, params in parameters(model).items():
        grads = routed.grads[name]
        dot = sum((q * (torch.zeros_like(q) if g is None else g)).sum()
                  for q, g in zip(params, grads or [None] * len(params)))
        out[name] = values[name].detach() + dot - dot.detach()
    return out
