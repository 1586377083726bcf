"""The straightforward VAE-GAN step, the reference twin of :mod:`.step`: what public ports do.

For each network in turn, a fresh forward of everything its loss needs (three forwards of each
network per step) and a backward of that network's own loss (model.network_losses) into its
parameters alone; the discriminator's pass sees the fakes as constants (detached), as ports do.
Readable ground truth for the routed step's gradients, and the baseline of its benchmark.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from fastgen.models.vaegan.model import VAEGAN, balance_updates, compute_losses, forward_pass, network_losses
from fastgen.models.vaegan.step import Routed, parameters


def reference_gradients(model: VAEGAN, x: Tensor, eps: Optional[Tensor], z_prior: Optional[Tensor]) -> Routed:
    model.check_images(x, "reference_gradients")
    grads, losses, updates = {}, None, None
    for name, params in parameters(model).items():
        p = forward_pass(model, x, eps, z_prior, train_dis_inputs=name != "discriminator")
        step_losses = compute_losses(model, x, p)
        if losses is None:
            losses, updates = step_losses, balance_updates(model, step_losses)
        own = network_losses(model, step_losses)[name]
        grads[name] = list(torch.autograd.grad(own, params)) if updates[name] else None
    return Routed(grads, losses, updates)
