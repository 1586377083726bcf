"""Pictures of DRAW's Gaussian-filterbank attention window, drawn with Pillow only.

:func:`glimpse_figure` shows, for every example, the image with the attention grid over it (the
N x N filter centres, the box from the first to the last centre, and a translucent band of +-sigma
around the first and last filter rows and columns), next to the N x N patch that ``attention_read``
extracts, with a caption giving N, sigma, delta, the centre and gamma.

Coordinates follow fastgen.reference.attention: pixels are 1-based, so image pixel ``a`` covers
display pixels ``[(a - 1) * scale, a * scale)`` and its centre sits at ``(a - 0.5) * scale``.
"""
from __future__ import annotations

import math
import warnings
from typing import Callable, Optional, Sequence, Union

import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

# Palette (RGB). The images are light-on-dark, so the overlay uses warm, saturated colours.
_BACKGROUND = (250, 250, 250)
_OUTSIDE = (88, 92, 104)  # the area around the image the window may reach into
_TEXT = (30, 30, 34)
_SUBTEXT = (105, 105, 115)
_FRAME = (150, 150, 160)
_BAND = (0, 190, 255, 56)  # +-sigma band, translucent fill
_BAND_EDGE = (0, 190, 255, 170)
_BOX = (255, 205, 0, 255)  # first-to-last-centre box
_DOT = (255, 64, 48, 255)  # filter centres
_DOT_EDGE = (40, 0, 0, 255)
_LINK = (120, 120, 135)

_SUPERSAMPLE = 4  # the overlay is drawn this much larger, then downsampled: cheap anti-aliasing


def _attention_read() -> Callable[[Tensor, Tensor, int], Tensor]:
    """fastgen.ops.attention_read when it imports and runs, else the plain-PyTorch reference.

    Both compute the same patch; a figure should not fail because the compiled kernels are missing,
    so a RuntimeError from the fast op (e.g. fastgen._C not built) falls back with a warning.
    """
    from fastgen.reference.attention import attention_read as reference
    try:
        from fastgen.ops import attention_read as fast
    except ImportError:
        return reference

    failed = False

    def read(x: Tensor, params: Tensor, N: int) -> Tensor:
        nonlocal failed
        if not failed:
            try:
                return fast(x, params, N)
            except RuntimeError as e:
                failed = True  # warn once per figure
                warnings.warn(f"glimpse_figure: fastgen.ops.attention_read failed ({e}); "
                              "using fastgen.reference.attention instead", RuntimeWarning, stacklevel=3)
        return reference(x, params, N)

    return read


def _font(size: int) -> tuple[ImageFont.ImageFont, bool]:
    """(font, whether it has Greek letters): DejaVu Sans if the system has it, else Pillow's own."""
    try:
        return ImageFont.truetype("DejaVuSans.ttf", size), True
    except OSError:
        pass
    try:
        return ImageFont.load_default(size=size), False
    except TypeError:  # Pillow < 10.1: a fixed-size bitmap font
        return ImageFont.load_default(), False


def window_geometry(p: Tensor, N: int, H: int, W: int) -> dict[str, float]:
    """One window's geometry from its raw params [5] (g~X, g~Y, log sigma^2, log delta~, log gamma),
    in 1-based pixel coordinates of an H x W image (the reference's formulas): the centre gx, gy,
    delta, sigma, gamma, and the first/last filter centres x_first, x_last, y_first, y_last."""
    gx_t, gy_t, log_var, log_delta_t, log_gamma = (float(v) for v in p)
    gx = (W + 1) / 2 * (gx_t + 1)
    gy = (H + 1) / 2 * (gy_t + 1)
    delta = (max(H, W) - 1) / max(N - 1, 1) * math.exp(log_delta_t)
    offset = (1 - N / 2 - 0.5) * delta  # mu_1 - g; mu_N - g = -offset
    return dict(gx=gx, gy=gy, delta=delta, sigma=math.exp(0.5 * log_var), gamma=math.exp(log_gamma),
                x_first=gx + offset, x_last=gx - offset, y_first=gy + offset, y_last=gy - offset)


def _overlay(size: tuple[int, int], geom: dict[str, float], N: int, scale: int, margin: int) -> Image.Image:
    """Transparent RGBA layer with the band, box and centres, anti-aliased by supersampling."""
    s = _SUPERSAMPLE
    layer = Image.new("RGBA", (size[0] * s, size[1] * s), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)

    def to_px(coord: float) -> float:  # 1-based image coordinate -> supersampled display pixel
        return (margin + (coord - 0.5) * scale) * s

    x0, x1 = to_px(geom["x_first"]), to_px(geom["x_last"])
    y0, y1 = to_px(geom["y_first"]), to_px(geom["y_last"])
    sig = geom["sigma"] * scale * s

    # +-sigma band around the first/last rows and columns: the outer rectangle minus the inner one.
    band = Image.new("L", layer.size, 0)
    band_draw = ImageDraw.Draw(band)
    band_draw.rectangle([x0 - sig, y0 - sig, x1 + sig, y1 + sig], fill=255)
    if x1 - x0 > 2 * sig and y1 - y0 > 2 * sig:
        band_draw.rectangle([x0 + sig, y0 + sig, x1 - sig, y1 - sig], fill=0)
    tint = Image.new("RGBA", layer.size, _BAND[:3] + (0,))
    tint.putalpha(band.point(lambda v: v * _BAND[3] // 255))
    layer = Image.alpha_composite(layer, tint)
    draw = ImageDraw.Draw(layer)
    thin = max(1, s // 2)
    draw.rectangle([x0 - sig, y0 - sig, x1 + sig, y1 + sig], outline=_BAND_EDGE, width=thin)
    if x1 - x0 > 2 * sig and y1 - y0 > 2 * sig:
        draw.rectangle([x0 + sig, y0 + sig, x1 - sig, y1 - sig], outline=_BAND_EDGE, width=thin)

    line = max(s, round(0.3 * scale * s))
    if N > 1:
        draw.rectangle([x0, y0, x1, y1], outline=_BOX, width=line)
    spacing = geom["delta"] * scale * s
    radius = max(0.8 * s, min(0.42 * scale * s, 0.22 * spacing)) if N > 1 else 0.42 * scale * s
    edge = max(1, round(radius / 4))
    for i in range(N):
        cy = y0 + i * spacing
        for j in range(N):
            cx = x0 + j * spacing
            draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius],
                         fill=_DOT, outline=_DOT_EDGE, width=edge)
    return layer.resize(size, Image.LANCZOS)


def _to_gray(img: Tensor) -> Image.Image:
    pixels = (img.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    return Image.fromarray(pixels, mode="L")


def glimpse_figure(
    images: Tensor,
    params: Tensor,
    N: Union[int, Sequence[int]],
    scale: int = 6,
    *,
    titles: Optional[Sequence[str]] = None,
    columns: Optional[int] = None,
) -> Image.Image:
    """One panel per example: the image with its attention grid, and the N x N patch read from it.

    images  [B, H, W] (or [B, 1, H, W]) floats in [0, 1]
    params  [B, 5] raw attention parameters (g~X, g~Y, log sigma^2, log delta~, log gamma)
    N       grid size, one int for all examples or one per example
    scale   display pixels per image pixel
    titles  optional text above each panel; columns: panels per row (default up to 3)

    The patch is shown min-max normalised (gamma and the filters' averaging change its range), each
    of its N x N values as a square block, at the same height as the image.
    """
    images = torch.as_tensor(images)
    params = torch.as_tensor(params)
    if images.dim() == 4 and images.shape[1] == 1:
        images = images[:, 0]
    if images.dim() != 3:
        raise ValueError(f"glimpse_figure: images must be [B, H, W] or [B, 1, H, W], got {tuple(images.shape)}")
    B, H, W = images.shape
    if B == 0:
        raise ValueError("glimpse_figure: no images")
    if tuple(params.shape) != (B, 5):
        raise ValueError(f"glimpse_figure: params must be [{B}, 5] to match images, got {tuple(params.shape)}")
    Ns = [int(N)] * B if isinstance(N, int) else [int(n) for n in N]
    if len(Ns) != B or min(Ns) < 1:
        raise ValueError(f"glimpse_figure: N must be a positive int or {B} positive ints, got {N!r}")
    if titles is not None and len(titles) != B:
        raise ValueError(f"glimpse_figure: {len(titles)} titles for {B} images")
    if scale < 1:
        raise ValueError(f"glimpse_figure: scale must be >= 1, got {scale}")
    if not torch.isfinite(params).all():
        raise ValueError("glimpse_figure: params contain NaN or Inf")

    images = images.detach().float().cpu()
    params = params.detach().float().cpu()
    read = _attention_read()

    # Panel geometry (display pixels).
    margin = 3 * scale  # room around the image for windows that reach past its border
    img_w, img_h = W * scale + 2 * margin, H * scale + 2 * margin
    patch_box = max(H, W) * scale
    gap = max(52, 8 * scale)  # room for the arrow and its N x N label
    font_size = max(11, min(16, 2 * scale + 2))
    title_font, greek = _font(font_size + 1)
    font, _ = _font(font_size)
    small, _ = _font(max(10, font_size - 2))
    line_h = font_size + 5
    title_h = line_h + 4
    caption_h = 2 * line_h + 6
    panel_w = img_w + gap + patch_box
    panel_h = title_h + img_h + caption_h
    cols = columns or min(B, 3)
    rows = math.ceil(B / cols)
    spacing = gap
    fig = Image.new("RGB", (cols * panel_w + (cols + 1) * spacing, rows * panel_h + (rows + 1) * spacing // 2),
                    _BACKGROUND)
    draw = ImageDraw.Draw(fig)
    sym = dict(sigma="σ", delta="δ", gamma="γ", times="×") if greek else \
        dict(sigma="sigma", delta="delta", gamma="gamma", times="x")

    for b in range(B):
        n = Ns[b]
        px = spacing + (b % cols) * (panel_w + spacing)
        py = spacing // 2 + (b // cols) * (panel_h + spacing // 2)
        geom = window_geometry(params[b], n, H, W)

        title = titles[b] if titles is not None else f"example {b}"
        draw.text((px, py), title, fill=_TEXT, font=title_font)

        # Image with the attention grid.
        iy = py + title_h
        panel = Image.new("RGBA", (img_w, img_h), _OUTSIDE + (255,))
        panel.paste(_to_gray(images[b]).resize((W * scale, H * scale), Image.NEAREST).convert("RGBA"),
                    (margin, margin))
        panel = Image.alpha_composite(panel, _overlay((img_w, img_h), geom, n, scale, margin))
        fig.paste(panel.convert("RGB"), (px, iy))
        draw.rectangle([px + margin - 1, iy + margin - 1, px + margin + W * scale, iy + margin + H * scale],
                       outline=_FRAME, width=1)

        # The patch attention_read extracts, one square block per value.
        with torch.no_grad():
            patch = read(images[b][None, None].contiguous(), params[b][None].contiguous(), n)[0, 0]
        lo, hi = float(patch.min()), float(patch.max())
        shown = (patch - lo) / (hi - lo) if hi - lo > 1e-6 * max(1.0, abs(hi)) else patch.clamp(0, 1)
        cell = max(1, patch_box // n)
        side = cell * n
        qx = px + img_w + gap + (patch_box - side) // 2
        qy = iy + margin + (H * scale - side) // 2
        fig.paste(_to_gray(shown).resize((side, side), Image.NEAREST).convert("RGB"), (qx, qy))
        draw.rectangle([qx - 1, qy - 1, qx + side, qy + side], outline=_FRAME, width=1)

        # Arrow from the image to the patch.
        ay = iy + margin + H * scale // 2
        ax0, ax1 = px + img_w + 5, qx - 6
        if ax1 - ax0 > 8:
            draw.line([ax0, ay, ax1, ay], fill=_LINK, width=2)
            draw.polygon([(ax1, ay), (ax1 - 6, ay - 4), (ax1 - 6, ay + 4)], fill=_LINK)
        label = f"{n}{sym['times']}{n}"
        draw.text(((ax0 + ax1) // 2, ay - 5), label, fill=_SUBTEXT, font=small, anchor="md")

        # Caption.
        cy = iy + img_h + 4
        draw.text((px, cy), f"N={n}   {sym['sigma']}={geom['sigma']:.2f} px   {sym['delta']}={geom['delta']:.2f} px",
                  fill=_TEXT, font=font)
        draw.text((px, cy + line_h),
                  f"centre ({geom['gx']:.1f}, {geom['gy']:.1f})   {sym['gamma']}={geom['gamma']:.2f}   "
                  f"patch [{lo:.2f}, {hi:.2f}] shown min-max",
                  fill=_SUBTEXT, font=small)
    return fig
