"""WAV reading/writing, resampling, mu-law tokens and log-mel frames: properties and every error path."""
from __future__ import annotations

import math
import struct
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from fastgen.data import (
    DataError,
    frames_for,
    log_mel_spectrogram,
    mel_filterbank,
    mu_law_decode,
    mu_law_encode,
    read_wav,
    resample,
    write_wav,
)
from tests.helpers import fresh_generator


def _tone(freq: float, rate: int, n: int, phase: float = 0.0) -> torch.Tensor:
    t = torch.arange(n, dtype=torch.float64) / rate
    return torch.sin(2 * math.pi * freq * t + phase).float()


def _write_pcm(path: Path, data: bytes, width: int, channels: int = 1, rate: int = 8000) -> Path:
    with wave.open(str(path), "wb") as f:
        f.setnchannels(channels)
        f.setsampwidth(width)
        f.setframerate(rate)
        f.writeframes(data)
    return path


def _riff(fmt_tag: int, payload: bytes, width: int = 2, channels: int = 1, rate: int = 8000) -> bytes:
    fmt = struct.pack("<HHIIHH", fmt_tag, channels, rate, rate * channels * width, channels * width, 8 * width)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _expect_error(path: Path, *words: str) -> str:
    with pytest.raises(DataError) as info:
        read_wav(path)
    message = str(info.value)
    assert str(path) in message, message
    for word in words:
        assert word in message, message
    return message


# --- write_wav / read_wav -------------------------------------------------------------------------

def test_round_trip_exact_on_16_bit_levels(tmp_path):
    gen = fresh_generator()
    ints = torch.randint(-32768, 32768, (1001,), generator=gen)
    path = tmp_path / "x.wav"
    write_wav(path, ints.double() / 32768, 22050)
    back, rate = read_wav(path)
    assert rate == 22050 and back.dtype == torch.float32 and back.shape == (1001,)
    assert torch.equal((back.double() * 32768).long(), ints), f"seed {gen.initial_seed()}"
    assert [p.name for p in tmp_path.iterdir()] == ["x.wav"]  # no temporary file left behind


def test_round_trip_rounds_and_clips(tmp_path):
    gen = fresh_generator()
    x = torch.rand(500, generator=gen) * 2 - 1
    x[:3] = torch.tensor([1.0, 1.7, -3.0])
    write_wav(tmp_path / "x.wav", x, 16000)
    back, _ = read_wav(tmp_path / "x.wav")
    assert back[0] == back[1] == 32767 / 32768 and back[2] == -1.0
    assert (back[3:] - x[3:]).abs().max() <= 0.5 / 32768 + 1e-9, f"seed {gen.initial_seed()}"
    with wave.open(str(tmp_path / "x.wav")) as f:
        assert (f.getnchannels(), f.getsampwidth(), f.getframerate()) == (1, 2, 16000)


def test_write_replaces_atomically(tmp_path, monkeypatch):
    path = tmp_path / "x.wav"
    write_wav(path, torch.zeros(10), 8000)
    monkeypatch.setattr("fastgen.data.audio.os.replace", lambda *a: (_ for _ in ()).throw(OSError("disk gone")))
    with pytest.raises(OSError, match="disk gone"):
        write_wav(path, torch.ones(20) * 0.5, 8000)
    assert [p.name for p in tmp_path.iterdir()] == ["x.wav"]  # old file intact, temporary removed
    assert read_wav(path)[0].shape == (10,)


@pytest.mark.parametrize("waveform, rate, words", [
    (torch.zeros(2, 5), 8000, "1-D"),
    (torch.zeros(0), 8000, "empty"),
    (torch.tensor([0.0, float("nan")]), 8000, "NaN"),
    (torch.tensor([0.0, float("inf")]), 8000, "infinite"),
    (torch.zeros(5), 0, "sample_rate"),
    (torch.zeros(5), 16000.0, "sample_rate"),
])
def test_write_rejects_bad_arguments(tmp_path, waveform, rate, words):
    with pytest.raises(ValueError, match=words):
        write_wav(tmp_path / "x.wav", waveform, rate)
    assert list(tmp_path.iterdir()) == []


def test_write_rejects_integer_samples(tmp_path):
    with pytest.raises(TypeError, match="floating-point"):
        write_wav(tmp_path / "x.wav", torch.zeros(5, dtype=torch.int16), 8000)


def test_reads_8_24_32_bit_and_stereo(tmp_path):
    u8 = _write_pcm(tmp_path / "u8.wav", bytes([0, 128, 255, 64]), 1)
    assert read_wav(u8)[0].tolist() == [-1.0, 0.0, 127 / 128, -0.5]
    s24 = _write_pcm(tmp_path / "s24.wav", b"".join(v.to_bytes(3, "little", signed=True)
                                                   for v in (-(2**23), 0, 2**23 - 1, 2**22)), 3)
    assert read_wav(s24)[0].tolist() == [-1.0, 0.0, (2**23 - 1) / 2**23, 0.5]
    s32 = _write_pcm(tmp_path / "s32.wav", struct.pack("<3i", -(2**31), 2**30, 0), 4)
    assert read_wav(s32)[0].tolist() == [-1.0, 0.5, 0.0]
    stereo = _write_pcm(tmp_path / "st.wav", struct.pack("<4h", 16384, -16384, 8192, 8192), 2, channels=2, rate=44100)
    x, rate = read_wav(stereo)
    assert rate == 44100 and x.tolist() == [0.0, 0.25]  # channels averaged


def test_missing_file(tmp_path):
    _expect_error(tmp_path / "nope.wav", "no such file")


def test_not_riff(tmp_path):
    path = tmp_path / "text.wav"
    path.write_bytes(b"this is not audio at all, just some text " * 3)
    _expect_error(path, "not a readable PCM WAV file", "RIFF")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    _expect_error(path, "truncated WAV header")


def test_no_samples(tmp_path):
    _expect_error(_write_pcm(tmp_path / "none.wav", b"", 2), "no samples")


@pytest.mark.parametrize("fmt_tag, name", [(3, "IEEE float"), (2, "MS ADPCM"), (0xFFFE, "extensible")])
def test_unsupported_encodings(tmp_path, fmt_tag, name):
    path = tmp_path / f"{fmt_tag}.wav"
    path.write_bytes(_riff(fmt_tag, bytes(64), width=4 if fmt_tag == 3 else 2))
    if fmt_tag == 0xFFFE and hasattr(wave, "WAVE_FORMAT_EXTENSIBLE"):
        pytest.skip("this Python's wave module reads WAVE_FORMAT_EXTENSIBLE (given a full fmt chunk)")
    _expect_error(path, "not a readable PCM WAV file", "unknown format", "convert it")


def test_every_truncation_raises_data_error(tmp_path):
    good = _riff(1, struct.pack("<6h", 1, -2, 3, -4, 5, -6))
    path = tmp_path / "cut.wav"
    for cut in range(len(good)):
        path.write_bytes(good[:cut])
        message = _expect_error(path)
        assert "truncated" in message or "not a readable" in message, (cut, message)
    path.write_bytes(good[:-3])
    _expect_error(path, "truncated WAV data", "promises 6 frames (12 bytes)", "holds 9 bytes")


def test_corrupt_header_bytes_raise_only_data_error(tmp_path):
    good = _riff(1, struct.pack("<4h", 1, -2, 3, -4))
    path = tmp_path / "bad.wav"
    for i in range(44):
        for value in (0x00, 0x03, 0xFF):
            blob = bytearray(good)
            blob[i] = value
            path.write_bytes(bytes(blob))
            try:
                x, rate = read_wav(path)
            except DataError as e:
                assert str(path) in str(e)
            else:
                assert x.ndim == 1 and x.numel() > 0 and rate > 0 and torch.isfinite(x).all()


# --- resample ---------------------------------------------------------------------------------------

def test_resample_identity():
    x = torch.randn(100, generator=fresh_generator())
    assert resample(x, 16000, 16000) is x


@pytest.mark.parametrize("orig, new", [(22050, 16000), (16000, 22050), (44100, 16000), (11025, 16000), (48000, 8000)])
def test_resample_length(orig, new):
    for n in (1, 2, 440, 441, 442, 1000, 4097):
        assert resample(torch.zeros(n), orig, new).shape == (math.ceil(n * new / orig),)


@pytest.mark.parametrize("orig, new", [(22050, 16000), (16000, 22050), (11025, 16000)])
def test_resample_keeps_a_sine_below_both_nyquists(orig, new):
    gen = fresh_generator()
    freq = 100 + torch.rand((), generator=gen).item() * (0.4 * min(orig, new) - 100)
    phase = torch.rand((), generator=gen).item() * 2 * math.pi
    y = resample(_tone(freq, orig, orig // 2, phase), orig, new)
    expected = _tone(freq, new, y.numel(), phase)
    edge = new // 20  # 50 ms: the filter's reach at the ends, where zeros are assumed outside
    err = (y - expected)[edge:-edge].abs().max().item()
    print(f"{orig}->{new} Hz, {freq:.0f} Hz tone: max error {err:.2e}")
    assert err < 1e-4, f"{freq:.1f} Hz, seed {gen.initial_seed()}"


def test_resample_attenuates_above_new_nyquist():
    for freq in (9000.0, 10000.0):
        y = resample(_tone(freq, 22050, 11025), 22050, 16000)
        peak = y[800:-800].abs().max().item()
        print(f"{freq:.0f} Hz tone after 22050->16000: peak {peak:.2e}")
        assert peak < 1e-3


def test_resample_batched_matches_rows():
    x = torch.randn(3, 2, 501, generator=fresh_generator())
    y = resample(x, 16000, 22050)
    assert y.shape == (3, 2, 691)
    torch.testing.assert_close(y[1, 0], resample(x[1, 0], 16000, 22050))


@pytest.mark.parametrize("kwargs, words", [
    ({"orig_rate": 0}, "orig_rate"), ({"new_rate": -5}, "new_rate"), ({"new_rate": 8000.5}, "new_rate"),
    ({"rolloff": 1.5}, "rolloff"),
])
def test_resample_rejects_bad_arguments(kwargs, words):
    args = {"orig_rate": 16000, "new_rate": 8000, **kwargs}
    with pytest.raises(ValueError, match=words):
        resample(torch.zeros(10), **args)
    with pytest.raises(ValueError, match="NaN"):
        resample(torch.tensor([0.0, float("nan")]), 16000, 8000)


# --- mu-law ------------------------------------------------------------------------------------------

def test_mu_law_round_trip_error_bound():
    gen = fresh_generator()
    x = torch.rand(10000, generator=gen, dtype=torch.float64) * 2 - 1
    back = mu_law_decode(mu_law_encode(x)).double()
    # Half a quantisation step of f, mapped back through the expansion: |dx/df| = ln(256)(1 + 255|x|)/255.
    bound = math.log(256) * (1 + 255 * torch.maximum(x.abs(), back.abs())) / 255 / 255
    excess = ((back - x).abs() - bound * 1.001).max().item()
    assert excess <= 1e-7, f"error exceeds half a step by {excess:.2e}, seed {gen.initial_seed()}"
    assert (back - x).abs().max() < 0.022  # the largest step is at |x| = 1


@pytest.mark.parametrize("channels", [256, 2, 17, 65536])
def test_mu_law_levels_are_fixed_points(channels):
    tokens = torch.arange(channels)
    assert torch.equal(mu_law_encode(mu_law_decode(tokens, channels), channels), tokens)
    decoded = mu_law_decode(tokens, channels)
    assert decoded.dtype == torch.float32 and decoded[0] == -1.0 and decoded[-1] == 1.0
    assert (decoded.diff() > 0).all()


def test_mu_law_values():
    x = torch.tensor([-5.0, -1.0, 0.0, 1.0, 2.0])
    assert mu_law_encode(x).tolist() == [0, 0, 128, 255, 255]  # clamped to [-1, 1]
    assert mu_law_encode(x).dtype == torch.int64


def test_mu_law_errors():
    with pytest.raises(ValueError, match="0..255"):
        mu_law_decode(torch.tensor([0, 256]))
    with pytest.raises(ValueError, match="0..255"):
        mu_law_decode(torch.tensor([-1]))
    with pytest.raises(TypeError, match="integer"):
        mu_law_decode(torch.tensor([0.5]))
    with pytest.raises(ValueError, match="NaN"):
        mu_law_encode(torch.tensor([float("nan")]))
    with pytest.raises(TypeError, match="floating-point"):
        mu_law_encode(torch.tensor([3]))
    with pytest.raises(ValueError, match="channels"):
        mu_law_encode(torch.zeros(3), channels=1)


# --- log-mel -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("n_fft, hop", [(1024, 256), (400, 160), (128, 128), (513, 100)])
def test_mel_frame_count(n_fft, hop):
    gen = fresh_generator()
    lengths = [1, hop - 1, hop, hop + 1, 3 * hop, *torch.randint(1, 5000, (3,), generator=gen).tolist()]
    for n in lengths:
        mel = log_mel_spectrogram(torch.randn(n, generator=gen), 16000, n_fft=n_fft, hop_length=hop, n_mels=20)
        assert mel.shape == (20, frames_for(n, hop)) == (20, math.ceil(n / hop)), n
        assert torch.isfinite(mel).all()
        assert frames_for(n, hop) * hop >= n > (frames_for(n, hop) - 1) * hop


def test_mel_frames_align_with_hop_blocks():
    # A burst inside samples [f*hop, (f+1)*hop) is loudest in frame f.
    gen = fresh_generator()
    hop = 256
    for f in (0, 3, 17, 39):
        x = torch.zeros(40 * hop - 7)
        x[f * hop + hop // 2 - 20: f * hop + hop // 2 + 20] = torch.randn(40, generator=gen)
        energy = log_mel_spectrogram(x, 16000, hop_length=hop).exp().sum(0)
        assert energy.argmax().item() == f


def test_mel_sine_peaks_at_its_frequency():
    rate, freq = 16000, 1000.0
    mel = log_mel_spectrogram(_tone(freq, rate, rate), rate)
    fb = mel_filterbank(rate, 1024, 80)
    centres = torch.from_numpy(np.fft.rfftfreq(1024, 1 / rate))[fb.argmax(1)]
    peak = mel[:, 5:-5].mean(1).argmax()
    assert abs(centres[peak].item() - freq) < 60


def test_mel_batched_and_filterbank_shape():
    x = torch.randn(2, 3, 1000, generator=fresh_generator())
    mel = log_mel_spectrogram(x, 16000, n_mels=40)
    assert mel.shape == (2, 3, 40, 4)
    torch.testing.assert_close(mel[1, 2], log_mel_spectrogram(x[1, 2], 16000, n_mels=40))
    fb = mel_filterbank(16000, 1024, 80)
    assert fb.shape == (80, 513) and fb.max() <= 1 and (fb.max(1).values > 0).all()
    assert log_mel_spectrogram(torch.zeros(300), 16000).min().item() == pytest.approx(math.log(1e-5))


@pytest.mark.parametrize("kwargs, words", [
    ({"hop_length": 2048}, "hop_length"), ({"hop_length": 0}, "hop_length"),
    ({"f_max": 9000}, "f_max"), ({"f_min": 8000}, "f_min"),
    ({"n_mels": 128, "n_fft": 128, "hop_length": 64}, "cover no FFT bin"), ({"n_mels": 0}, "n_mels"),
    ({"sample_rate": 0}, "sample_rate"),
])
def test_mel_rejects_bad_arguments(kwargs, words):
    args = {"sample_rate": 16000, **kwargs}
    with pytest.raises(ValueError, match=words):
        log_mel_spectrogram(torch.zeros(1000), **args)
