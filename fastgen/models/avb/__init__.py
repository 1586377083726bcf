"""Adversarial Variational Bayes (Mescheder, Nowozin & Geiger 2017) with its Gaussian-VAE comparator.

model.py   AVB, AVBConfig: implicit (or Gaussian) encoder, decoder, adversary T(x, z)
losses.py  the adversary's logistic loss, the primal objective (adaptive contrast too), the VAE's ELBO,
           avb_phases for fastgen.train's multi-phase Trainer
toy.py     the paper's four-point toy: data, honest bounds, posterior separation
"""
from fastgen.models.avb.losses import (SCHEDULES, adversary_loss, avb_phases, elbo_via_adversary, gaussian_elbo,
                                       joint_losses, primal_loss, vae_loss)
from fastgen.models.avb.model import AVB, ENCODERS, LIKELIHOODS, AVBConfig, standard_normal_log_prob
from fastgen.models.avb.toy import (OPTIMUM, nearest_neighbour_entropy, posterior_separation, toy_bounds, toy_data)

__all__ = ["AVB", "AVBConfig", "ENCODERS", "LIKELIHOODS", "OPTIMUM", "SCHEDULES", "adversary_loss", "avb_phases",
           "elbo_via_adversary", "gaussian_elbo", "joint_losses", "nearest_neighbour_entropy", "posterior_separation",
           "primal_loss", "standard_normal_log_prob", "toy_bounds", "toy_data", "vae_loss"]
