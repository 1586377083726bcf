"""Binarisation of grey-level images for Bernoulli likelihoods (DRAW, VAE, PixelCNN on MNIST).

Three protocols, and the NLL of a model depends on which one was used, so every result carries a
``protocol`` string to be printed beside each NLL:

* ``"dynamic"`` -- each pixel is a fresh Bernoulli sample with probability equal to its grey level
  (0..255 mapped to 0..1), drawn again on every call. A trainer calls :func:`binarize` once per epoch
  with its own ``torch.Generator``, so the model never sees the same binary image twice.
  Protocol: ``"dynamic binarisation, resampled per epoch"``.
* ``"fixed"`` -- one Bernoulli sample drawn from a generator seeded with ``seed``: the same images
  give the same binary images for the same seed, on every call and every machine (torch's CPU
  generator is platform independent). Call it once on the whole data set, not per minibatch: the
  sample of an image depends on its position in the tensor passed in.
  Protocol: ``"fixed binarisation, seed <seed>"``.
* ``"threshold"`` -- deterministic ``p > 0.5`` (uint8 ``>= 128``). Protocol: ``"threshold binarisation
  at 0.5"``.

Inputs are uint8 grey levels (0..255), or floating-point probabilities in [0, 1]; numpy arrays are
accepted. Outputs are float32 (or the input's floating dtype) tensors of 0.0 and 1.0 with the input's
shape and device.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np
import torch
from torch import Tensor

BINARIZATION_MODES = ("dynamic", "fixed", "threshold")


class BinarizedImages(NamedTuple):
    """Binary images (0.0/1.0) and the protocol that produced them, to be reported with every NLL."""

    images: Tensor
    protocol: str
    mode: str
    seed: Optional[int]


def binarization_protocol(mode: str, seed: int = 0) -> str:
    """The sentence that names a binarisation protocol in result tables (see the module docstring)."""
    _check_mode(mode)
    if mode == "dynamic":
        return "dynamic binarisation, resampled per epoch"
    if mode == "fixed":
        return f"fixed binarisation, seed {seed}"
    return "threshold binarisation at 0.5"


def _check_mode(mode: object) -> None:
    if mode not in BINARIZATION_MODES:
        raise ValueError(
            f"binarize: unknown mode {mode!r}; expected one of "
            f"{', '.join(repr(m) for m in BINARIZATION_MODES)}"
        )


def grey_levels(images) -> Tensor:
    """Probabilities in [0, 1]: uint8 divided by 255 (as float32), floating input checked and kept.

    Raises ``TypeError`` for other dtypes and ``ValueError`` for floating values outside [0, 1] or NaN.
    """
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(np.ascontiguousarray(images))
    if not isinstance(images, Tensor):
        raise TypeError(
            f"binarize: expected a torch.Tensor or numpy array of images, got {type(images).__name__}"
        )
    if images.dtype == torch.uint8:
        return images.to(torch.float32) / 255.0
    if not images.is_floating_point():
        raise TypeError(
            f"binarize: images must be uint8 grey levels (0..255) or floating-point probabilities in "
            f"[0, 1], got dtype {images.dtype}; convert integer images with .to(torch.uint8) first"
        )
    if images.numel():
        finite = torch.isfinite(images)
        if not bool(finite.all()):
            raise ValueError("binarize: floating-point images contain NaN or Inf")
        lo, hi = float(images.min()), float(images.max())
        if lo < 0.0 or hi > 1.0:
            raise ValueError(
                f"binarize: floating-point images must lie in [0, 1], got values in [{lo:g}, {hi:g}] "
                "(divide 0..255 data by 255, or pass it as uint8)"
            )
    return images


def binarize(
    images,
    mode: str = "dynamic",
    generator: Optional[torch.Generator] = None,
    seed: int = 0,
) -> BinarizedImages:
    """Binarise grey-level ``images`` with protocol ``mode`` ("dynamic", "fixed" or "threshold").

    * dynamic: Bernoulli sample from ``generator`` (torch's global generator when None); a new sample
      every call. ``seed`` is not used.
    * fixed: Bernoulli sample from a fresh generator seeded with ``seed``; identical on every call.
      Passing ``generator`` is an error (the seed alone decides the sample).
    * threshold: ``p > 0.5``; neither ``generator`` nor ``seed`` is used.

    Returns :class:`BinarizedImages` ``(images, protocol, mode, seed)``; ``seed`` is None unless mode
    is "fixed".
    """
    _check_mode(mode)
    probs = grey_levels(images)
    if mode == "threshold":
        out = (probs > 0.5).to(probs.dtype)
        return BinarizedImages(out, binarization_protocol(mode), mode, None)
    if mode == "fixed":
        if generator is not None:
            raise ValueError(
                "binarize: mode='fixed' draws its one sample from `seed`; do not pass a generator "
                "(use mode='dynamic' to sample from your own generator)"
            )
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"binarize: seed must be an int, got {type(seed).__name__}")
        seed = int(seed)
        generator = torch.Generator(device=probs.device).manual_seed(seed)
        out = torch.bernoulli(probs, generator=generator)
        return BinarizedImages(out, binarization_protocol(mode, seed), mode, seed)
    out = torch.bernoulli(probs, generator=generator)
    return BinarizedImages(out, binarization_protocol(mode), mode, None)
