"""fastgen.viz.audio: waveform + log-mel spectrogram panels on a shared time axis, and input checks."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from fastgen.viz.audio import _colour_map, audio_figure, save_audio_figure

RATE = 16000


def _tone(seconds: float, hz: float, amplitude: float = 0.5) -> torch.Tensor:
    t = torch.arange(round(seconds * RATE)) / RATE
    return amplitude * torch.sin(2 * math.pi * hz * t)


def _blue(img: Image.Image) -> np.ndarray:
    a = np.asarray(img.convert("RGB")).astype(int)
    return (abs(a[..., 0] - 31) < 3) & (abs(a[..., 1] - 119) < 3) & (abs(a[..., 2] - 180) < 3)


def test_panels_share_the_time_axis():
    long, short = _tone(1.0, 440), _tone(0.5, 880)
    fig = audio_figure([long, short], RATE, ["one second", "half a second"], title="two tones", width=600)
    assert fig.mode == "RGB" and fig.width == 64 + 600 + 24
    one = audio_figure([long], RATE, width=600)
    assert fig.height > 1.8 * one.height - 60  # one panel per waveform
    # the waveform envelope (blue) of the half-second tone spans about half the width of the first
    blue = _blue(fig)
    rows = np.nonzero(blue.any(axis=1))[0]
    middle = fig.height // 2
    top_cols = np.nonzero(blue[rows[rows < middle]].any(axis=0))[0]
    bottom_cols = np.nonzero(blue[rows[rows > middle]].any(axis=0))[0]
    assert top_cols.max() - top_cols.min() == pytest.approx(599, abs=2)
    assert bottom_cols.max() - bottom_cols.min() == pytest.approx(299, abs=2)


def test_spectrogram_shows_the_tone_at_its_frequency():
    """A low tone lights up the bottom of the spectrogram, a high one the top (low frequencies below)."""
    def bright_row(hz: float) -> float:
        fig = audio_figure([_tone(0.5, hz)], RATE, width=200, wave_height=40, spec_height=160)
        a = np.asarray(fig.convert("L")).astype(float)
        # the spectrogram: the 160 rows below the waveform box (title 24 + wave 40 + gap 6 from the top 6)
        top = 6 + 24 + 40 + 6
        spec = a[top:top + 160, 64:64 + 200]
        return float(np.argmax(spec.mean(axis=1))) / 160

    assert bright_row(300) > 0.7 and bright_row(6000) < 0.3


def test_single_waveform_array_and_save(tmp_path):
    path = save_audio_figure(tmp_path / "sub" / "w.png", np.zeros(800, np.float32), RATE)  # silence is fine
    with Image.open(path) as im:
        assert im.format == "PNG"
    fig = audio_figure(_tone(0.2, 200, amplitude=3.0), RATE)  # clipped for drawing, no error
    assert fig.width > 0


def test_colour_map_is_ordered():
    rgb = _colour_map(np.linspace(0, 1, 11)).astype(int)
    brightness = rgb.sum(axis=1)
    assert (np.diff(brightness) > 0).all() and rgb.dtype == np.int64


@pytest.mark.parametrize("args, kwargs, error, match", [
    (([],), {}, ValueError, "no waveforms"),
    (([torch.zeros(2, 100)],), {}, ValueError, "1-D"),
    (([torch.zeros(0)],), {}, ValueError, "non-empty"),
    (([torch.zeros(100, dtype=torch.int64)],), {}, TypeError, "floats"),
    (([torch.tensor([0.0, float("nan")] * 50)],), {}, ValueError, "NaN"),
    (([torch.zeros(100)], ["a", "b"]), {}, ValueError, "2 titles for 1 waveforms"),
    (([torch.zeros(100)],), {"width": 10}, ValueError, "width"),
    (([torch.zeros(100)],), {"dynamic_range": 0}, ValueError, "dynamic_range"),
])
def test_bad_input(args, kwargs, error, match):
    waves, *rest = args
    with pytest.raises(error, match=match):
        audio_figure(waves, RATE, *rest, **kwargs)
    with pytest.raises(ValueError, match="sample_rate"):
        audio_figure([torch.zeros(100)], 0)
