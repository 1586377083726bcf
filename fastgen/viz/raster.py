"""Figures of autoregressive image samples (PixelCNN, Gated PixelCNN): a sample grid of discrete
images, and the raster-order sampling as an animation.

A raster-order sampler never changes a pixel once drawn, so the state after ``t`` pixels is the
finished image with the pixels from ``t`` on not drawn yet: :func:`raster_frames` rebuilds every
``every``-th state from the finished samples, with the pixels still to come shown in a blue tint.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import torch
from PIL import Image
from torch import Tensor

from .samples import image_grid, save_gif

PENDING = (0.72, 0.78, 0.94)  # colour of the pixels not drawn yet
MAX_FRAMES = 200              # the GIF writer holds every frame in memory


def discrete_images(images: Tensor, levels: int) -> Tensor:
    """Integer images [n, C, H, W] of values 0..levels-1 as floats in [0, 1] (what image_grid shows)."""
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must be [n, 1 or 3, H, W], got {tuple(images.shape)}")
    if levels < 2:
        raise ValueError(f"levels must be >= 2, got {levels}")
    return images.detach().cpu().float() / (levels - 1)


def sample_grid(images: Tensor, levels: int, *, scale: int = 2, columns: Optional[int] = None,
                title: Optional[str] = None) -> Image.Image:
    return image_grid(discrete_images(images, levels), scale=scale, columns=columns, title=title)


def frames_problem(height: int, width: int, every: int) -> Optional[str]:
    """Why one frame every ``every`` pixels of height x width images cannot be animated (None: it can)."""
    if every < 1:
        return f"every must be >= 1 pixel, got {every}"
    frames = height * width // every + 1
    if frames > MAX_FRAMES:
        return (f"{frames} frames for {height}x{width} images at one every {every} pixels; the most is "
                f"{MAX_FRAMES}: choose every >= {-(-height * width // (MAX_FRAMES - 1))}")
    return None


def raster_frames(images: Tensor, levels: int, every: int, *, scale: int = 2,
                  columns: Optional[int] = None) -> list[Image.Image]:
    """One frame after each ``every`` pixels of raster-order sampling (and one of the finished
    images), each titled with its pixel count."""
    shown = discrete_images(images, levels)
    n, _, H, W = shown.shape
    pixels = H * W
    problem = frames_problem(H, W, every)
    if problem:
        raise ValueError(problem)
    rgb = shown.expand(n, 3, H, W)
    pending = torch.tensor(PENDING).view(1, 3, 1, 1).expand_as(rgb)
    position = torch.arange(pixels).view(1, 1, H, W)
    frames = []
    for drawn in list(range(0, pixels, every)) + [pixels]:
        state = torch.where(position < drawn, rgb, pending)
        frames.append(image_grid(state, scale=scale, columns=columns, title=f"pixel {drawn} / {pixels}"))
    return frames


def save_raster_gif(images: Tensor, levels: int, path: Union[str, Path], every: int, *, scale: int = 2,
                    columns: Optional[int] = None) -> Path:
    return save_gif(raster_frames(images, levels, every, scale=scale, columns=columns), path, duration_ms=80)
