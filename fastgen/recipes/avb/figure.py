"""The toy's posterior figure: draws z ~ q(z|x) for each of the four x, one colour per x, one panel per
model (AVB beside the Gaussian VAE), on the prior's scale (Pillow only, as fastgen.viz)."""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from PIL import Image, ImageDraw

from fastgen.models.avb import AVB

COLOURS = ((228, 26, 28), (55, 126, 184), (77, 175, 74), (152, 78, 163))
EXTENT = 3.5          # the panel shows [-EXTENT, EXTENT]^2
PANEL, MARGIN, TITLE = 320, 12, 22


def _panel(z: torch.Tensor, title: str) -> Image.Image:
    image = Image.new("RGB", (PANEL + 2 * MARGIN, PANEL + 2 * MARGIN + TITLE), "white")
    draw = ImageDraw.Draw(image)
    draw.text((MARGIN, 4), title, fill="black")
    top = MARGIN + TITLE
    draw.rectangle([MARGIN, top, MARGIN + PANEL, top + PANEL], outline=(160, 160, 160))
    centre = (MARGIN + PANEL / 2, top + PANEL / 2)
    for r in (1.0, 2.0, 3.0):  # prior contours: 1, 2, 3 standard deviations
        s = r * PANEL / (2 * EXTENT)
        draw.ellipse([centre[0] - s, centre[1] - s, centre[0] + s, centre[1] + s], outline=(210, 210, 210))
    scale = PANEL / (2 * EXTENT)
    for colour, points in zip(COLOURS, z):
        for u, v in points.clamp(-EXTENT, EXTENT).tolist():
            px, py = centre[0] + u * scale, centre[1] - v * scale
            draw.rectangle([px - 1, py - 1, px + 1, py + 1], fill=colour)
    return image


@torch.no_grad()
def posterior_figure(models: Sequence[tuple[str, AVB]], samples: int = 600,
                     generator: Optional[torch.Generator] = None) -> Image.Image:
    """Panels side by side, one per (title, toy model)."""
    panels = []
    for title, model in models:
        if model.config.latent_dim != 2 or model.config.data_dim != 4:
            raise ValueError(f"posterior_figure draws toy models (4-d x, 2-d z); {title!r} has x in "
                             f"R^{model.config.data_dim}, z in R^{model.config.latent_dim}")
        x = torch.eye(4, dtype=next(model.parameters()).dtype)
        panels.append(_panel(model.posterior_samples(x, samples, generator).float(), title))
    figure = Image.new("RGB", (sum(p.width for p in panels), panels[0].height), "white")
    for i, p in enumerate(panels):
        figure.paste(p, (i * p.width, 0))
    return figure


__all__ = ["posterior_figure"]
