"""Evaluation of VAE-GAN / VAE / GAN runs on Fashion-MNIST.

* Fréchet distance between model samples and real images in the penultimate feature space of
  fastgen's own Fashion-MNIST classifier (fastgen.eval.fashion_classifier; NOT Inception FID).
* Reconstruction error: squared error per image (a sum over the 784 pixels, grey values in [0, 1]) of
  Dec(mu(x)), the posterior mean's reconstruction (models with an encoder).
* Sharpness: the mean absolute finite difference between neighbouring pixels (horizontal and
  vertical) of samples and reconstructions, beside the same figure for the real images: blur lowers it.
* The class-attribute vector arithmetic figure (the paper's visual attribute vectors, class labels
  as the attributes): v = mean mu of class A - mean mu of class B (training images); test images of
  class B decoded from mu + a v for a = 0 .. 1.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
from torch import Tensor

from fastgen.models.vaegan import VAEGAN


def sharpness(images: Tensor) -> float:
    """Mean absolute difference of horizontally and vertically neighbouring pixels."""
    dx = (images[..., :, 1:] - images[..., :, :-1]).abs().mean()
    dy = (images[..., 1:, :] - images[..., :-1, :]).abs().mean()
    return float((dx + dy) / 2)


@torch.no_grad()
def reconstructions(model: VAEGAN, images: Tensor, batch_size: int = 500) -> Tensor:
    return torch.cat([model.reconstruct(images[i:i + batch_size]) for i in range(0, len(images), batch_size)])


@torch.no_grad()
def samples(model: VAEGAN, n: int, seed: int) -> Tensor:
    return model.sample(n, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def quality(model: VAEGAN, images: Tensor, seed: int = 0, classifier=None, frechet: bool = True) -> dict:
    """Sharpness, (with an encoder) reconstruction error and (``frechet``: Fashion-MNIST images) the Fréchet
    distances against ``images``."""
    model.eval()
    fake = samples(model, len(images), seed)
    out = {"sharpness_samples": sharpness(fake), "sharpness_data": sharpness(images), "n": len(images)}
    if frechet:
        from fastgen.eval.fashion_classifier import load_or_train_fashion_classifier
        from fastgen.eval.frechet import frechet_between
        classifier = classifier or load_or_train_fashion_classifier()[0]
        real = classifier.features(images)
        out["frechet"] = frechet_between(real, classifier.features(fake))
    if model.encoder is not None:
        rec = reconstructions(model, images)
        out.update(recon_mse=float((rec - images).square().sum((1, 2, 3)).mean()), sharpness_recon=sharpness(rec))
        if frechet:
            out["frechet_recon"] = frechet_between(real, classifier.features(rec))
    return out


@torch.no_grad()
def attribute_figure(model: VAEGAN, path: Path, class_a: int, class_b: int, train: tuple, test: tuple,
                     n: int = 8, steps: int = 5, scale: int = 2) -> Path:
    """Rows: test images of class B, then their reconstructions from mu + a (mean mu_A - mean mu_B) for
    ``steps`` values of a from 0 to 1."""
    from fastgen.viz.samples import image_grid
    if model.encoder is None:
        raise ValueError("attribute_figure: a GAN has no encoder")
    x, y = train
    mu = torch.cat([model.encode(x[i:i + 1000])[0] for i in range(0, len(x), 1000)])
    vector = mu[y == class_a].mean(0) - mu[y == class_b].mean(0)
    tx, ty = test
    chosen = tx[ty == class_b][:n]
    base = model.encode(chosen)[0]
    rows = [chosen] + [model.decode(base + a * vector) for a in torch.linspace(0, 1, steps).tolist()]
    path.parent.mkdir(parents=True, exist_ok=True)
    image_grid(torch.cat(rows), columns=n, scale=scale).save(path)
    return path


def evaluate_run(model: VAEGAN, split: str = "test", max_images: Optional[int] = None, seed: int = 0,
                 data: str = "fashion-mnist") -> dict:
    """:func:`quality` on ``split`` of ``data`` ("test": the reported figure; "val": selection; the faces have
    no test split and no Fréchet distance)."""
    from fastgen.recipes.vaegan.training import FACES, load_images
    if split not in ("test", "val"):
        raise ValueError(f"split must be 'test' or 'val', got {split!r}")
    images, _ = load_images(split, max_images, data)
    return {**quality(model, images, seed, frechet=data != FACES), "split": split, "data": data}


__all__ = ["attribute_figure", "evaluate_run", "quality", "reconstructions", "samples", "sharpness"]
