"""VAE-GAN (Larsen et al. 2016) with its VAE and GAN baselines on the same networks.

model.py           VAEGAN, VAEGANConfig: networks, the one forward, the losses, who learns from what
step.py            routed_gradients / routed_step: one forward of each network, each gradient routed once
reference_step.py  reference_gradients: the straightforward twin (a forward and a backward per network)
"""
from fastgen.models.vaegan.model import (GAN_LOSSES, VARIANTS, VAEGAN, Losses, VAEGANConfig, compute_losses,
                                         forward_pass, network_losses)
from fastgen.models.vaegan.reference_step import reference_gradients
from fastgen.models.vaegan.step import Routed, routed_gradients, routed_step, surrogate_losses

__all__ = ["GAN_LOSSES", "Losses", "Routed", "VAEGAN", "VAEGANConfig", "VARIANTS", "compute_losses", "forward_pass",
           "network_losses", "reference_gradients", "routed_gradients", "routed_step", "surrogate_losses"]
