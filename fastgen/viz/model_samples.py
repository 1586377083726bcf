"""Sample figures of trained image models, written to files: a DRAW sample grid with its canvas
animation, and AlignDRAW's caption grid with its animation. Models are sampled in slices of
:data:`SAMPLE_BATCH` rows, and the figure's size is checked against the memory before sampling."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch

SAMPLE_BATCH = 256  # images per model.sample call, so that memory stays bounded for any n


class FigureSizeError(ValueError):
    """The figure asked for cannot fit in this process's memory."""


def _grid_columns(n: int) -> int:
    return math.ceil(math.sqrt(n))


def _sample_in_batches(sample: Callable[[int, int], tuple], rows: int) -> tuple:
    """The outputs for rows [0, rows) from ``sample(start, stop)`` calls of at most SAMPLE_BATCH rows,
    joined: images [n, ...] along dim 0, per-step extras ([T, n, ...] or None) along dim 1."""
    parts = [sample(start, min(start + SAMPLE_BATCH, rows)) for start in range(0, rows, SAMPLE_BATCH)]
    joined = [torch.cat([part[0] for part in parts])]
    for i in range(1, len(parts[0])):
        pieces = [part[i] for part in parts]
        joined.append(None if pieces[0] is None else torch.cat(pieces, dim=1))
    return tuple(joined)


def _check_grid_fits(rows: int, cfg, scale: int, gif: bool) -> None:
    """FigureSizeError before sampling when the grid image (3 bytes per shown pixel) and, with a GIF, its
    T frames and the canvases behind them cannot fit in memory (`--n 100000000` was OOM-killed)."""
    from fastgen.memory import check_fits
    grid = rows * cfg.height * cfg.width * scale ** 2 * 3
    frames = cfg.T * (grid + 4 * rows * cfg.channels * cfg.height * cfg.width) if gif else 0
    check_fits(grid + frames, f"{rows:,} samples at --scale {scale}" + (f" with {cfg.T} GIF frames" if gif else ""),
               FigureSizeError)


def write_draw_samples(model, n: int, seed: int, png: Path, gif: Optional[Path] = None,
                       scale: int = 2) -> list[Path]:
    """n samples of a DRAW model as a grid PNG (Bernoulli means sigmoid(c_T)) and optionally the
    canvas over the T steps, with each step's write window, as a GIF. Returns the files written."""
    from fastgen import viz
    _check_grid_fits(n, model.config, scale, gif is not None)
    generator = torch.Generator().manual_seed(seed)
    steps = gif is not None

    def sample(start: int, stop: int) -> tuple:
        out = model.sample(stop - start, generator, return_canvases=steps, return_windows=steps)
        return out if steps else (out,)

    images, *extras = _sample_in_batches(sample, n)
    png.parent.mkdir(parents=True, exist_ok=True)
    viz.image_grid(images, columns=_grid_columns(n), scale=scale).save(png)
    written = [png]
    if gif is not None:
        canvases, windows = extras
        frames = viz.canvas_frames(canvases, windows, model.config.write_N, columns=_grid_columns(n), scale=scale)
        written.append(viz.save_gif(frames, gif))
    return written


def write_caption_samples(model, run: dict, captions: Sequence[str], n: int, seed: int, png: Path,
                          gif: Optional[Path] = None, scale: int = 2) -> list[Path]:
    """n AlignDRAW samples per caption as a caption grid PNG (captions written under each row, with
    whether the combination was held out of the training of ``run``, a run description) and optionally
    the drawing as a GIF (write windows, words shaded by the first sample's alignment). ValueError for
    a bad caption."""
    from fastgen import viz
    from fastgen.data import decode_tokens
    from fastgen.recipes.draw import caption_notes, encode_captions
    tokens, lengths = encode_captions(list(captions))
    K = len(tokens)
    _check_grid_fits(K * n, model.config, scale, gif is not None)
    texts = decode_tokens(tokens)
    notes = caption_notes(run, tokens)
    generator = torch.Generator().manual_seed(seed)
    steps = gif is not None

    def sample(start: int, stop: int) -> tuple:
        caption = torch.arange(start, stop) // n  # row r draws caption r // n
        out = model.sample(tokens[caption], lengths[caption], generator, return_canvases=steps,
                           return_alignments=steps, return_windows=steps)
        return out if steps else (out,)

    images, *extras = _sample_in_batches(sample, K * n)
    C, H, W = images.shape[1:]
    png.parent.mkdir(parents=True, exist_ok=True)
    viz.caption_grid(images.view(K, n, C, H, W), texts, notes=notes, scale=scale).save(png)
    written = [png]
    if gif is not None:
        canvases, alignments, windows = extras
        T = canvases.shape[0]
        frames = viz.caption_frames(
            canvases.view(T, K, n, C, H, W), texts, notes=notes, scale=scale, N=model.config.write_N,
            windows=None if windows is None else windows.view(T, K, n, 5),
            alignments=alignments.view(T, K, n, -1)[:, :, 0],
            legend="words shaded by the alignment of each row's first sample")
        written.append(viz.save_gif(frames, gif))
    return written
