"""Pictures of audio, drawn with Pillow only: for each of one or more waveforms (e.g. WaveNet's sample
beside the real utterance its mels came from), a titled panel with the waveform and its log-mel
spectrogram.

* :func:`audio_figure` -- the panels stacked vertically on one shared time axis (seconds per pixel
  are the same in every panel, so durations compare at a glance) and one shared colour scale for the
  spectrograms (so loudness compares too). The waveform is drawn as its per-pixel min/max envelope;
  the spectrogram is fastgen.data.log_mel_spectrogram (natural log of the mel magnitude), low
  frequencies at the bottom.

Waveforms are 1-D tensors or arrays of samples in [-1, 1] (values outside are clipped for drawing).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import Tensor

from .attention import _font
from .samples import _AXES, _BACKGROUND, _SUBTEXT, _TEXT, _nice_ticks

_WAVE = (31, 119, 180)
_ZERO = (200, 200, 208)
# A perceptually ordered dark-to-bright colour map (close to matplotlib's "magma"), interpolated linearly.
_STOP_POS = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
_STOP_RGB = np.array([(0, 0, 4), (81, 18, 124), (183, 55, 121), (252, 137, 97), (252, 253, 191)], dtype=np.float64)


def _colour_map(values: np.ndarray) -> np.ndarray:
    """values in [0, 1] -> uint8 RGB [..., 3]."""
    v = np.clip(values, 0.0, 1.0)
    rgb = np.stack([np.interp(v, _STOP_POS, _STOP_RGB[:, c]) for c in range(3)], axis=-1)
    return rgb.round().astype(np.uint8)


def _as_waveform(x, i: int) -> Tensor:
    t = torch.as_tensor(x).detach().cpu()
    if t.dim() != 1 or t.numel() == 0:
        raise ValueError(f"audio_figure: waveform {i} must be a non-empty 1-D sequence of samples, got shape "
                         f"{tuple(t.shape)}")
    if not t.is_floating_point():
        raise TypeError(f"audio_figure: waveform {i} must hold floats in [-1, 1], got {t.dtype}")
    t = t.float()
    if not torch.isfinite(t).all():
        raise ValueError(f"audio_figure: waveform {i} holds NaN or infinite samples")
    return t


def _envelope(wave: np.ndarray, columns: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-column (min, max) of ``wave`` spread over ``columns`` pixel columns."""
    n = wave.shape[0]
    edges = np.minimum((np.arange(columns) * n) // columns, n - 1)
    lo = np.minimum.reduceat(wave, edges)
    hi = np.maximum.reduceat(wave, edges)
    return lo, hi


def _seconds(v: float) -> str:
    return f"{v:g} s"


def audio_figure(
    waveforms: Sequence,
    sample_rate: int,
    titles: Optional[Sequence[str]] = None,
    *,
    title: Optional[str] = None,
    n_fft: int = 1024,
    hop_length: int = 256,
    n_mels: int = 80,
    width: int = 900,
    wave_height: int = 110,
    spec_height: int = 160,
    dynamic_range: float = 10.0,
) -> Image.Image:
    """One panel per waveform: ``titles[i]`` over its waveform (min/max envelope) and its log-mel
    spectrogram (``n_fft``, ``hop_length``, ``n_mels`` as in fastgen.data.log_mel_spectrogram), on a
    time axis shared by all panels (``width`` pixels for the longest waveform). The colour scale is
    shared too: from the loudest value of all spectrograms down ``dynamic_range`` (natural-log units;
    10 is about 87 dB of magnitude). ``title`` adds a line on top of the figure."""
    if isinstance(waveforms, (Tensor, np.ndarray)) and np.ndim(waveforms) == 1:
        waveforms = [waveforms]
    waves = [_as_waveform(w, i) for i, w in enumerate(waveforms)]
    if not waves:
        raise ValueError("audio_figure: no waveforms")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate <= 0:
        raise ValueError(f"audio_figure: sample_rate must be a positive integer (Hz), got {sample_rate!r}")
    if titles is not None and len(titles) != len(waves):
        raise ValueError(f"audio_figure: {len(titles)} titles for {len(waves)} waveforms")
    if width < 100 or wave_height < 20 or spec_height < 20:
        raise ValueError(f"audio_figure: width must be >= 100, wave_height and spec_height >= 20, got {width}, "
                         f"{wave_height}, {spec_height}")
    if not dynamic_range > 0:
        raise ValueError(f"audio_figure: dynamic_range must be > 0, got {dynamic_range}")

    from fastgen.data import log_mel_spectrogram

    mels = [log_mel_spectrogram(w, sample_rate, n_fft, hop_length, n_mels).numpy() for w in waves]
    vmax = max(float(m.max()) for m in mels)
    vmin = max(min(float(m.min()) for m in mels), vmax - dynamic_range)
    if vmax - vmin < 1e-6:
        vmin = vmax - 1.0

    font, _ = _font(12)
    title_font, _ = _font(14)
    left, right, gap = 64, 24, 6
    title_h, axis_h = 24, 30
    longest = max(w.numel() for w in waves) / sample_rate
    px_per_s = width / longest
    panel_h = title_h + wave_height + gap + spec_height + axis_h
    top = 30 if title else 6
    fig = Image.new("RGB", (left + width + right, top + len(waves) * panel_h + 24), _BACKGROUND)
    draw = ImageDraw.Draw(fig)
    if title:
        draw.text((left, 8), title, fill=_TEXT, font=title_font)

    for i, (wave, mel) in enumerate(zip(waves, mels)):
        y = top + i * panel_h
        duration = wave.numel() / sample_rate
        cols = max(1, min(width, round(duration * px_per_s)))
        name = titles[i] if titles is not None else f"waveform {i + 1}"
        draw.text((left, y + 4), f"{name}   ({duration:.2f} s, {wave.numel():,} samples at {sample_rate:,} Hz)",
                  fill=_TEXT, font=title_font)
        # waveform
        wy0, wy1 = y + title_h, y + title_h + wave_height
        draw.rectangle([left - 1, wy0 - 1, left + width, wy1], outline=_AXES)
        mid = (wy0 + wy1) / 2
        half = (wave_height - 4) / 2
        draw.line([left, mid, left + width - 1, mid], fill=_ZERO)
        lo, hi = _envelope(wave.clamp(-1, 1).numpy(), cols)
        for x in range(cols):
            draw.line([left + x, mid - hi[x] * half, left + x, mid - lo[x] * half], fill=_WAVE)
        for v in (-1, 0, 1):
            py = mid - v * half
            draw.line([left - 5, py, left - 1, py], fill=_AXES)
            draw.text((left - 7, py), f"{v:g}", fill=_SUBTEXT, font=font, anchor="rm")
        # spectrogram
        sy0 = wy1 + gap
        scaled = (mel[::-1] - vmin) / (vmax - vmin)  # low frequencies at the bottom
        spec = Image.fromarray(_colour_map(scaled), "RGB").resize((cols, spec_height), Image.BILINEAR)
        draw.rectangle([left - 1, sy0 - 1, left + width, sy0 + spec_height], outline=_AXES)
        fig.paste(spec, (left, sy0))
        draw.text((left - 7, sy0), f"{sample_rate / 2000:g} kHz", fill=_SUBTEXT, font=font, anchor="rt")
        draw.text((left - 7, sy0 + spec_height), "0", fill=_SUBTEXT, font=font, anchor="rb")
        draw.text((left - 7, sy0 + spec_height / 2), "mel", fill=_SUBTEXT, font=font, anchor="rm")
        # time axis (shared scale)
        ay = sy0 + spec_height + 1
        for v in _nice_ticks(0.0, longest, target=8):
            px = left + v * px_per_s
            if px > left + width + 0.5:
                continue
            draw.line([px, ay, px, ay + 4], fill=_AXES)
            draw.text((px, ay + 6), _seconds(v), fill=_SUBTEXT, font=font, anchor="mt")

    legend = (f"log-mel spectrogram (n_fft {n_fft}, hop {hop_length}, {n_mels} mels), shared colour scale "
              f"ln|mel| {vmin:.1f} .. {vmax:.1f}")
    ly = fig.height - 20
    bar_w = 120
    ramp = _colour_map(np.linspace(0, 1, bar_w))[None].repeat(10, axis=0)
    fig.paste(Image.fromarray(ramp, "RGB"), (left, ly + 2))
    draw.text((left + bar_w + 8, ly), legend, fill=_SUBTEXT, font=font)
    return fig


def save_audio_figure(path, waveforms: Sequence, sample_rate: int, titles: Optional[Sequence[str]] = None,
                      **kwargs):
    """:func:`audio_figure` written to ``path`` (PNG); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    audio_figure(waveforms, sample_rate, titles, **kwargs).save(path)
    return path


__all__ = ["audio_figure", "save_audio_figure"]
