"""Adversarial Variational Bayes runs: what ``fastgen train|eval|sample avb`` and the demo's AVB part run.

training.py  train_run (AVB, AVB + adaptive contrast or the Gaussian VAE with the same decoder, on the toy
             or binarised images), load_run, evaluate_run (ELBO estimate and AIS log p(x)), sample_rows
figure.py    the toy's posterior figure
paired.py    paired comparison of two evaluations on the same images (per-image differences, t-interval)
"""
from fastgen.recipes.avb.figure import posterior_figure
from fastgen.recipes.avb.paired import compare_reports, paired_difference
from fastgen.recipes.avb.training import (DATA, KIND, METRIC, TOY, evaluate_run, load_rows, load_run, lr_schedule,
                                          prepare, read_run, sample_rows, train_run, training_phases, variant_config)

VARIANTS = ("avb", "avb-ac", "vae")

__all__ = ["DATA", "KIND", "METRIC", "TOY", "VARIANTS", "compare_reports", "evaluate_run", "load_rows", "load_run",
           "lr_schedule", "paired_difference", "posterior_figure", "prepare", "read_run", "sample_rows", "train_run",
           "training_phases", "variant_config"]
