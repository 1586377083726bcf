"""VAE-GAN, VAE and GAN on Fashion-MNIST (and scikit-image's faces, for pictures): training
(:mod:`.training`, the multi-phase Trainer over the routed step) and evaluation (:mod:`.evaluation`: Fréchet distance in a project classifier's feature
space, reconstruction error, sharpness, the class-attribute arithmetic figure)."""
from fastgen.recipes.vaegan.evaluation import attribute_figure, evaluate_run, quality, sharpness
from fastgen.recipes.vaegan.training import DATA, FACES, load_images, load_run, make_phases, read_run, train_run

__all__ = ["DATA", "FACES", "attribute_figure", "evaluate_run", "load_images", "load_run", "make_phases", "quality",
           "read_run", "sharpness", "train_run"]
