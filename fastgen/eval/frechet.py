"""The Fréchet distance between two Gaussians fitted to feature vectors (Heusel et al. 2017's FID
formula). fastgen applies it in the penultimate feature space of its own small Fashion-MNIST
classifier (fastgen.eval.fashion_classifier): a Fréchet distance, NOT Inception FID; its values are
comparable only with each other (same classifier, same sample sizes).

    d^2 = ||mu_1 - mu_2||^2 + tr(C_1) + tr(C_2) - 2 tr((C_1^1/2 C_2 C_1^1/2)^1/2)

The matrix square roots are taken by symmetric eigendecomposition in float64 (the inner product
C_1^1/2 C_2 C_1^1/2 is symmetric positive semi-definite, so its square root is real; rounding's tiny
negative eigenvalues are clipped to zero).
"""
from __future__ import annotations

import torch
from torch import Tensor


def gaussian_stats(features: Tensor) -> tuple[Tensor, Tensor]:
    """(mean [D], covariance [D, D]) of ``features`` [N, D] in float64 (unbiased, N >= 2)."""
    if not isinstance(features, Tensor) or features.dim() != 2:
        raise ValueError(f"features must be a [N, D] tensor, got "
                         f"{list(features.shape) if isinstance(features, Tensor) else type(features).__name__}")
    if features.shape[0] < 2:
        raise ValueError(f"features: a covariance needs N >= 2 vectors, got {features.shape[0]}")
    f = features.detach().double()
    return f.mean(0), torch.cov(f.T).reshape(f.shape[1], f.shape[1])


def _psd_sqrt(c: Tensor) -> Tensor:
    values, vectors = torch.linalg.eigh((c + c.T) / 2)
    return (vectors * values.clamp_min(0).sqrt()) @ vectors.T


def frechet_distance(mu1: Tensor, cov1: Tensor, mu2: Tensor, cov2: Tensor) -> float:
    """The squared Fréchet distance d^2 between N(mu1, cov1) and N(mu2, cov2) (the module docstring)."""
    mu1, mu2, cov1, cov2 = (t.double() for t in (mu1, mu2, cov1, cov2))
    d = mu1.shape[0]
    if mu2.shape != (d,) or cov1.shape != (d, d) or cov2.shape != (d, d):
        raise ValueError(f"frechet_distance: means must be [D] and covariances [D, D] with one D, got "
                         f"{list(mu1.shape)}, {list(cov1.shape)}, {list(mu2.shape)}, {list(cov2.shape)}")
    root1 = _psd_sqrt(cov1)
    cross = torch.linalg.eigvalsh(root1 @ cov2 @ root1).clamp_min(0).sqrt().sum()
    value = (mu1 - mu2).square().sum() + cov1.trace() + cov2.trace() - 2 * cross
    return float(value.clamp_min(0))


def frechet_between(features_a: Tensor, features_b: Tensor) -> float:
    """:func:`frechet_distance` of the Gaussians fitted to two sets of feature vectors."""
    return frechet_distance(*gaussian_stats(features_a), *gaussian_stats(features_b))


__all__ = ["frechet_between", "frechet_distance", "gaussian_stats"]
