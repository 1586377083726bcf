"""Pictures of generated images, drawn with Pillow only: sample grids, canvas animations with the
write window on every frame, caption-to-image grids, and a small loss-curve plot.

* :func:`image_grid` -- images in a grid, optionally with each image's attention window (the
  rectangle from the first to the last filter centre, in fastgen.reference.attention's coordinates)
  and a title strip on top.
* :func:`canvas_frames` / :func:`save_gif` -- DRAW's canvas sigmoid(c_t) for t = 1..T, one frame per
  step, with the write window of that step; every frame is labelled "step t / T", so no two
  consecutive frames are identical and the GIF keeps exactly T frames.
* :func:`caption_grid` / :func:`caption_frames` -- one row of samples per caption with the caption
  written under it; in animations each word is shaded by its alignment weight at that step.
* :func:`curve_figure` -- training curves (e.g. the NLL bound per step) as a line plot.

Images are tensors (or arrays) of values in [0, 1]: [n, H, W], [n, 1, H, W] (grey) or [n, 3, H, W].
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Optional, Sequence, Union

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import Tensor

from .attention import _font, window_geometry

_BACKGROUND = (250, 250, 250)
_CELL_BACKGROUND = (224, 224, 230)  # around each image, where a window may reach past its border
_TEXT = (30, 30, 34)
_SUBTEXT = (105, 105, 115)
_WINDOW = (255, 60, 30)
_HIGHLIGHT = (255, 200, 0)
_AXES = (120, 120, 130)
_SERIES = ((31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189))

PathArg = Union[str, "Path"]


# --- helpers --------------------------------------------------------------------------------------

def _as_images(images, name: str) -> Tensor:
    """[n, C, H, W] float32 on the CPU, C in (1, 3), values clamped to [0, 1]."""
    t = torch.as_tensor(images).detach().cpu()
    if t.dim() == 3:
        t = t[:, None]
    if t.dim() != 4 or t.shape[1] not in (1, 3):
        raise ValueError(f"{name}: images must be [n, H, W], [n, 1, H, W] or [n, 3, H, W], got {tuple(t.shape)}")
    if t.shape[0] == 0:
        raise ValueError(f"{name}: no images")
    if t.dtype == torch.uint8:
        t = t.float() / 255
    if not t.is_floating_point():
        raise TypeError(f"{name}: images must be floats in [0, 1] or uint8, got {t.dtype}")
    return t.float().nan_to_num(0.0).clamp(0, 1)


def _to_pil(img: Tensor, scale: int) -> Image.Image:
    """[C, H, W] in [0, 1] -> RGB image, each pixel a scale x scale block."""
    a = (img * 255).round().to(torch.uint8).numpy()
    pil = Image.fromarray(a[0], mode="L") if a.shape[0] == 1 else Image.fromarray(np.moveaxis(a, 0, -1), "RGB")
    return pil.convert("RGB").resize((pil.width * scale, pil.height * scale), Image.NEAREST)


def _check_windows(windows, n: int, N: Optional[int], name: str) -> Optional[Tensor]:
    if windows is None:
        return None
    w = torch.as_tensor(windows).detach().cpu().float()
    if tuple(w.shape) != (n, 5):
        raise ValueError(f"{name}: windows must be [{n}, 5] raw attention params, got {tuple(w.shape)}")
    if N is None or isinstance(N, bool) or int(N) < 1:
        raise ValueError(f"{name}: N (the write patch size) must be a positive int when windows are given, got {N!r}")
    return w


def _cell(img: Tensor, scale: int, pad: int, window: Optional[Tensor], N: Optional[int]) -> Image.Image:
    """One image with ``pad`` pixels around it and, optionally, its window: the box from the first to
    the last filter centre (clamped to the cell, so a window reaching past the image still shows
    along the cell's edge) and a cross at the window's centre."""
    _, H, W = img.shape
    cell = Image.new("RGB", (W * scale + 2 * pad, H * scale + 2 * pad), _CELL_BACKGROUND)
    cell.paste(_to_pil(img, scale), (pad, pad))
    if window is not None and torch.isfinite(window).all():
        g = window_geometry(window, int(N), H, W)

        def px(coord: float) -> float:  # 1-based pixel centre -> display pixel in the cell
            return pad + (coord - 0.5) * scale

        x0, x1, y0, y1 = px(g["x_first"]), px(g["x_last"]), px(g["y_first"]), px(g["y_last"])
        half = max(1.0, scale / 2)  # a one-filter (or very small) window still shows as a box
        if x1 - x0 < 2 * half:
            cx = (x0 + x1) / 2
            x0, x1 = cx - half, cx + half
        if y1 - y0 < 2 * half:
            cy = (y0 + y1) / 2
            y0, y1 = cy - half, cy + half
        # A window reaching past the cell (large delta, or off-centre) is clamped to the cell's edge,
        # so it stays visible; its centre is marked with a cross.
        right, bottom = cell.width - 1, cell.height - 1
        x0, x1 = (max(0.0, min(right, v)) for v in (x0, x1))
        y0, y1 = (max(0.0, min(bottom, v)) for v in (y0, y1))
        draw = ImageDraw.Draw(cell)
        draw.rectangle([x0, y0, x1, y1], outline=_WINDOW, width=max(1, scale // 2))
        cx, cy = px(g["gx"]), px(g["gy"])
        arm = max(2, scale)
        if 0 <= cx <= right and 0 <= cy <= bottom:
            draw.line([cx - arm, cy, cx + arm, cy], fill=_WINDOW, width=1)
            draw.line([cx, cy - arm, cx, cy + arm], fill=_WINDOW, width=1)
    return cell


def _title_strip(width: int, text: str, font_size: int = 13) -> Image.Image:
    font, _ = _font(font_size)
    strip = Image.new("RGB", (width, font_size + 10), _BACKGROUND)
    ImageDraw.Draw(strip).text((6, 4), text, fill=_TEXT, font=font)
    return strip


def _stack(parts: Sequence[Image.Image]) -> Image.Image:
    width = max(p.width for p in parts)
    out = Image.new("RGB", (width, sum(p.height for p in parts)), _BACKGROUND)
    y = 0
    for p in parts:
        out.paste(p, (0, y))
        y += p.height
    return out


# --- grids ----------------------------------------------------------------------------------------

def image_grid(
    images,
    *,
    columns: Optional[int] = None,
    scale: int = 2,
    pad: int = 2,
    windows=None,
    N: Optional[int] = None,
    title: Optional[str] = None,
) -> Image.Image:
    """The images in a grid (``columns`` default: a square-ish layout), ``scale`` display pixels per
    image pixel, ``pad`` pixels around each image. ``windows`` [n, 5] raw attention params with patch
    size ``N`` draw each image's window (first-to-last filter centre). ``title`` adds a text strip."""
    imgs = _as_images(images, "image_grid")
    n = imgs.shape[0]
    if scale < 1 or pad < 0:
        raise ValueError(f"image_grid: scale must be >= 1 and pad >= 0, got {scale}, {pad}")
    w = _check_windows(windows, n, N, "image_grid")
    cols = columns or math.ceil(math.sqrt(n))
    if cols < 1:
        raise ValueError(f"image_grid: columns must be >= 1, got {columns}")
    rows = math.ceil(n / cols)
    _, _, H, W = imgs.shape
    cw, ch = W * scale + 2 * pad, H * scale + 2 * pad
    grid = Image.new("RGB", (cols * cw, rows * ch), _BACKGROUND)
    for i in range(n):
        cell = _cell(imgs[i], scale, pad, None if w is None else w[i], N)
        grid.paste(cell, ((i % cols) * cw, (i // cols) * ch))
    return _stack([_title_strip(grid.width, title), grid]) if title else grid


def canvas_frames(
    canvases,
    windows=None,
    N: Optional[int] = None,
    *,
    columns: Optional[int] = None,
    scale: int = 2,
    pad: int = 3,
    label: str = "step",
) -> list[Image.Image]:
    """One frame per step from canvases [T, n, C, H, W] (values in [0, 1], e.g. sigmoid(c_t)) and
    the write windows [T, n, 5] of those steps (None: no rectangles). Frame t is titled
    "<label> t / T", so consecutive frames always differ."""
    c = torch.as_tensor(canvases)
    if c.dim() not in (4, 5):
        raise ValueError(f"canvas_frames: canvases must be [T, n, C, H, W] or [T, n, H, W], got {tuple(c.shape)}")
    T = c.shape[0]
    if windows is not None:
        windows = torch.as_tensor(windows)
        if windows.shape[0] != T:
            raise ValueError(f"canvas_frames: {windows.shape[0]} window steps for {T} canvases")
    return [
        image_grid(c[t], columns=columns, scale=scale, pad=pad,
                   windows=None if windows is None else windows[t], N=N, title=f"{label} {t + 1} / {T}")
        for t in range(T)
    ]


def _draw_words(draw: ImageDraw.ImageDraw, words: Sequence[str], weights: Optional[Sequence[float]],
                x0: int, y0: int, width: int, font, line_h: int) -> int:
    """Words left to right from (x0, y0), wrapped at ``width``; each word's background shaded by its
    weight in [0, 1]. Returns the height used."""
    space = font.getlength(" ")
    x, y = x0, y0
    for i, word in enumerate(words):
        w = font.getlength(word)
        if x > x0 and x + w > x0 + width:
            x, y = x0, y + line_h
        if weights is not None:
            a = float(max(0.0, min(1.0, weights[i])))
            if a > 0.02:
                fill = tuple(round(b + a * (h - b)) for b, h in zip(_BACKGROUND, _HIGHLIGHT))
                draw.rectangle([x - 2, y - 1, x + w + 2, y + line_h - 3], fill=fill)
        draw.text((x, y), word, fill=_TEXT, font=font)
        x += w + space
    return y + line_h - y0


def caption_grid(
    images,
    captions: Sequence[str],
    *,
    notes: Optional[Sequence[Optional[str]]] = None,
    word_weights=None,
    windows=None,
    N: Optional[int] = None,
    scale: int = 2,
    pad: int = 2,
    title: Optional[str] = None,
) -> Image.Image:
    """One row per caption: its samples ``images[k]`` ([K, n, C, H, W] or a list of [n, C, H, W]),
    and under them the caption text and an optional note (e.g. "held-out combination").

    ``word_weights`` [K, words] (values in [0, 1]) shades each word of caption k (words = the
    caption split on spaces); ``windows`` [K, n, 5] with ``N`` draws attention windows."""
    rows = [_as_images(x, "caption_grid") for x in (images if isinstance(images, (list, tuple)) else torch.as_tensor(images))]
    K = len(rows)
    if len(captions) != K:
        raise ValueError(f"caption_grid: {len(captions)} captions for {K} rows of images")
    if notes is not None and len(notes) != K:
        raise ValueError(f"caption_grid: {len(notes)} notes for {K} rows")
    if windows is not None and len(windows) != K:
        raise ValueError(f"caption_grid: {len(windows)} rows of windows for {K} rows of images")
    font_size = 13 if scale <= 2 else 15
    font, _ = _font(font_size)
    small, _ = _font(font_size - 2)
    line_h = font_size + 5
    blocks = []
    for k, imgs in enumerate(rows):
        strip = image_grid(imgs, columns=imgs.shape[0], scale=scale, pad=pad,
                           windows=None if windows is None else windows[k], N=N)
        width = max(strip.width, 320)
        words = str(captions[k]).split()
        weights = None
        if word_weights is not None:
            weights = [float(v) for v in word_weights[k]]
            if len(weights) != len(words):
                raise ValueError(f"caption_grid: {len(weights)} word weights for the {len(words)} words of "
                                 f"caption {k} ({captions[k]!r})")
        probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
        text_h = _draw_words(probe, words, None, 6, 0, width - 12, font, line_h)
        note = notes[k] if notes is not None else None
        block = Image.new("RGB", (width, strip.height + text_h + (line_h if note else 0) + 12), _BACKGROUND)
        block.paste(strip, (0, 0))
        draw = ImageDraw.Draw(block)
        y = strip.height + 3
        y += _draw_words(draw, words, weights, 6, y, width - 12, font, line_h)
        if note:
            draw.text((6, y), note, fill=_SUBTEXT, font=small)
        blocks.append(block)
    parts = ([_title_strip(max(b.width for b in blocks), title)] if title else []) + blocks
    return _stack(parts)


def caption_frames(
    canvases,
    captions: Sequence[str],
    *,
    windows=None,
    N: Optional[int] = None,
    alignments=None,
    notes: Optional[Sequence[Optional[str]]] = None,
    legend: Optional[str] = None,
    scale: int = 2,
    pad: int = 2,
) -> list[Image.Image]:
    """AlignDRAW's drawing as frames: canvases [T, K, n, C, H, W] (K captions, n samples each),
    windows [T, K, n, 5] or None, alignments [T, K, words] (alpha of one sample per caption: each
    word is shaded by alpha / max alpha at that step) or None. Frame t is titled "step t / T"
    (then ``legend``)."""
    c = torch.as_tensor(canvases)
    if c.dim() != 6:
        raise ValueError(f"caption_frames: canvases must be [T, K, n, C, H, W], got {tuple(c.shape)}")
    T = c.shape[0]
    frames = []
    for t in range(T):
        weights = None
        if alignments is not None:
            a = torch.as_tensor(alignments[t]).float()
            weights = a / a.amax(dim=1, keepdim=True).clamp_min(1e-12)
        frames.append(caption_grid(c[t], captions, notes=notes, word_weights=weights,
                                   windows=None if windows is None else windows[t], N=N, scale=scale,
                                   pad=pad, title=f"step {t + 1} / {T}" + (f"   ({legend})" if legend else "")))
    return frames


def save_gif(frames: Sequence[Image.Image], path: PathArg, *, duration_ms: int = 120,
             final_ms: int = 1500) -> Path:
    """An endlessly looping animated GIF of ``frames`` (each shown ``duration_ms``, the last one
    ``final_ms``). Frames must differ from their predecessor, or the GIF writer merges them."""
    if not frames:
        raise ValueError("save_gif: no frames")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    durations = [duration_ms] * (len(frames) - 1) + [final_ms]
    first, *rest = [f.convert("RGB") for f in frames]
    first.save(path, format="GIF", save_all=True, append_images=rest, duration=durations, loop=0,
               disposal=1)
    return path


# --- curves ---------------------------------------------------------------------------------------

def _nice_ticks(lo: float, hi: float, target: int = 5) -> list[float]:
    """Round tick values (1, 2, 2.5 or 5 times a power of ten apart) inside [lo, hi]."""
    raw = (hi - lo) / max(1, target - 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step) * step
    count = int(math.floor((hi - first) / step + 1e-9)) + 1
    return [round(first + i * step, 10) for i in range(count)]


def curve_figure(series: Mapping[str, tuple[Sequence[float], Sequence[float]]], *, title: str = "",
                 xlabel: str = "step", ylabel: str = "", size: tuple[int, int] = (640, 360)) -> Image.Image:
    """A line plot of ``{name: (x values, y values)}`` with labelled axes and a legend. Series with
    a single point are drawn as a dot."""
    series = {k: (list(map(float, x)), list(map(float, y))) for k, (x, y) in series.items()
              if len(x) and len(x) == len(y)}
    fig = Image.new("RGB", size, _BACKGROUND)
    draw = ImageDraw.Draw(fig)
    font, _ = _font(12)
    title_font, _ = _font(14)
    left, right, top, bottom = 70, 20, 34, 44
    x0, y0, x1, y1 = left, top, size[0] - right, size[1] - bottom
    draw.text((left, 8), title, fill=_TEXT, font=title_font)
    draw.rectangle([x0, y0, x1, y1], outline=_AXES)
    values = [(x, y) for xs, ys in series.values() for x, y in zip(xs, ys) if math.isfinite(y)]
    if not values:
        draw.text((x0 + 10, y0 + 10), "no data", fill=_SUBTEXT, font=font)
        return fig
    xmin, xmax = min(v[0] for v in values), max(v[0] for v in values)
    ymin, ymax = min(v[1] for v in values), max(v[1] for v in values)
    if xmax == xmin:
        xmax = xmin + 1
    if ymax == ymin:
        ymax = ymin + 1
    margin = 0.05 * (ymax - ymin)
    ymin, ymax = ymin - margin, ymax + margin

    def to_px(x: float, y: float) -> tuple[float, float]:
        return (x0 + (x - xmin) / (xmax - xmin) * (x1 - x0), y1 - (y - ymin) / (ymax - ymin) * (y1 - y0))

    for v in _nice_ticks(ymin, ymax):
        _, py = to_px(xmin, v)
        draw.line([x0 - 4, py, x0, py], fill=_AXES)
        draw.text((x0 - 6, py), f"{v:g}", fill=_SUBTEXT, font=font, anchor="rm")
    for v in _nice_ticks(xmin, xmax):
        px, _ = to_px(v, ymin)
        draw.line([px, y1, px, y1 + 4], fill=_AXES)
        draw.text((px, y1 + 6), f"{v:g}", fill=_SUBTEXT, font=font, anchor="mt")
    draw.text(((x0 + x1) / 2, size[1] - 6), xlabel, fill=_TEXT, font=font, anchor="mb")
    draw.text((6, y0 - 16), ylabel, fill=_TEXT, font=font)
    for i, (name, (xs, ys)) in enumerate(series.items()):
        colour = _SERIES[i % len(_SERIES)]
        points = [to_px(x, y) for x, y in zip(xs, ys) if math.isfinite(y)]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        for px, py in points if len(points) <= 30 else points[-1:]:
            draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=colour)
        ly = y0 + 8 + 16 * i
        draw.line([x1 - 170, ly + 7, x1 - 150, ly + 7], fill=colour, width=3)
        draw.text((x1 - 144, ly), name, fill=_TEXT, font=font)
    return fig


__all__ = ["canvas_frames", "caption_frames", "caption_grid", "curve_figure", "image_grid", "save_gif"]
