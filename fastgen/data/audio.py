"""Audio primitives for WaveNet: WAV files, resampling, mu-law tokens and log-mel conditioning.

* :func:`read_wav` / :func:`write_wav` -- integer-PCM WAV files through the stdlib ``wave`` module.
  Samples are floats in [-1, 1): a b-bit sample ``s`` reads as ``s / 2**(b-1)``. Sample rates must
  lie in :data:`SAMPLE_RATES` (1 kHz .. 384 kHz); :func:`load_wav` reads and resamples in one call.
* :func:`resample` -- band-limited (Kaiser-windowed sinc) resampling in plain torch.
* :func:`mu_law_encode` / :func:`mu_law_decode` -- the 8-bit companding of the WaveNet paper
  (van den Oord et al. 2016, section 2.2).
* :func:`log_mel_spectrogram` -- log-mel frames for local conditioning, one frame per
  ``hop_length`` samples (:func:`frames_for`).

Frame convention (what local conditioning relies on): a signal of ``n`` samples gives
``frames_for(n, hop) = ceil(n / hop)`` frames, and frame ``f`` belongs to samples
``[f*hop, (f+1)*hop)``: its ``n_fft``-sample analysis window is centred on the middle of that block
(to within half a sample), with zeros beyond the ends of the signal. Repeating every frame ``hop``
times therefore gives ``ceil(n/hop)*hop >= n`` per-sample vectors, of which the first ``n`` align
with the samples; a crop of samples ``[k*hop, (k+m)*hop)`` goes with frames ``[k, k+m)``.
"""
from __future__ import annotations

import math
import os
import struct
import tempfile
import wave
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch
from torch import Tensor

from fastgen.memory import check_fits

from .errors import DataError

AUDIO_EXTENSIONS = (".wav", ".wave")

PathArg = Union[str, "os.PathLike[str]"]

# The sample rates fastgen reads, writes and models, in Hz: telephone speech is 8 kHz, studio audio at
# most 384 kHz. A header outside this range is damaged, and would make resampling to a usual rate
# allocate thousands of samples per input sample (a 40 KB file "at 1 Hz" became 20 GB).
SAMPLE_RATES = (1_000, 384_000)

_CONVERT_HINT = "convert it to integer PCM, e.g. `sox in.wav -b 16 out.wav` or `ffmpeg -i in -c:a pcm_s16le out.wav`"


def _pcm_to_float(data: bytes, width: int) -> np.ndarray:
    """Little-endian PCM bytes of ``width`` bytes per sample as float32 in [-1, 1)."""
    if width == 1:  # 8-bit WAV is unsigned, silence = 128
        return (np.frombuffer(data, np.uint8).astype(np.float32) - 128.0) / 128.0
    if width == 3:  # no numpy int24: put each sample in the top three bytes of an int32
        padded = np.zeros((len(data) // 3, 4), np.uint8)
        padded[:, 1:] = np.frombuffer(data, np.uint8).reshape(-1, 3)
        return padded.view("<i4").ravel().astype(np.float32) / 2.0**31
    ints = np.frombuffer(data, {2: "<i2", 4: "<i4"}[width])
    return (ints.astype(np.float64) / 2.0 ** (8 * width - 1)).astype(np.float32)


def read_wav(path: PathArg) -> tuple[Tensor, int]:
    """``(waveform, sample_rate)``: a float32 tensor [n] in [-1, 1) and the rate in Hz.

    Reads uncompressed integer PCM of 8 (unsigned), 16, 24 or 32 bits. Multi-channel files are mixed
    down to mono by averaging the channels. Anything else -- compressed or floating-point encodings
    (which the stdlib ``wave`` module cannot read, nor, before Python 3.12, WAVE_FORMAT_EXTENSIBLE
    headers), a file that is not RIFF/WAVE, a truncated file, a file with no samples -- raises
    :class:`DataError` naming the file and the problem.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        with wave.open(str(path), "rb") as f:
            channels, width, rate, frames = f.getnchannels(), f.getsampwidth(), f.getframerate(), f.getnframes()
            data = f.readframes(frames)
    except wave.Error as e:
        raise DataError(f"{path}: not a readable PCM WAV file ({e}); if it is audio, {_CONVERT_HINT}") from e
    except (EOFError, struct.error) as e:  # the header ends before its fields do
        raise DataError(f"{path}: truncated WAV header ({str(e) or 'unexpected end of file'})") from e
    except RuntimeError as e:  # wave's chunk reader, when a chunk's size runs past its container
        raise DataError(f"{path}: corrupt WAV file (a chunk size points past the end of the data)") from e
    if width not in (1, 2, 3, 4):
        raise DataError(f"{path}: {8 * width}-bit samples are not supported (8, 16, 24 or 32-bit PCM only)")
    if not SAMPLE_RATES[0] <= rate <= SAMPLE_RATES[1]:
        raise DataError(f"{path}: sample rate {rate:,} Hz in the header, outside the {SAMPLE_RATES[0]:,}.."
                        f"{SAMPLE_RATES[1]:,} Hz that fastgen reads (a damaged header?)")
    frame_bytes = channels * width
    if len(data) != frames * frame_bytes:
        raise DataError(
            f"{path}: truncated WAV data: the header promises {frames} frames ({frames * frame_bytes} bytes), "
            f"the file holds {len(data)} bytes"
        )
    if frames == 0:
        raise DataError(f"{path}: the WAV file holds no samples")
    samples = _pcm_to_float(data, width).reshape(frames, channels)
    return torch.from_numpy(samples.mean(axis=1, dtype=np.float32)), rate


def _check_waveform(waveform: Tensor, what: str) -> None:
    if not isinstance(waveform, Tensor) or not waveform.is_floating_point():
        raise TypeError(f"{what}: expected a floating-point waveform tensor, got "
                        f"{waveform.dtype if isinstance(waveform, Tensor) else type(waveform).__name__}")
    if waveform.numel() == 0:
        raise ValueError(f"{what}: the waveform is empty")
    if not torch.isfinite(waveform).all():
        raise ValueError(f"{what}: the waveform holds NaN or infinite samples")


def _check_rate(rate: object, name: str, what: str) -> int:
    if isinstance(rate, bool) or not isinstance(rate, int) or rate <= 0:
        raise ValueError(f"{what}: {name} must be a positive integer (Hz), got {rate!r}")
    return rate


def check_sample_rate(rate: object, what: str) -> int:
    """``rate`` when it is an integer in :data:`SAMPLE_RATES`, else ValueError naming ``what``."""
    if isinstance(rate, bool) or not isinstance(rate, int) or not SAMPLE_RATES[0] <= rate <= SAMPLE_RATES[1]:
        raise ValueError(f"{what} must be an integer from {SAMPLE_RATES[0]:,} to {SAMPLE_RATES[1]:,} Hz, "
                         f"got {rate!r}")
    return rate


def load_wav(path: PathArg, sample_rate: int) -> Tensor:
    """:func:`read_wav`, resampled to ``sample_rate`` Hz; :class:`DataError` naming the file when the
    result would not fit in memory."""
    audio, rate = read_wav(path)
    try:
        return resample(audio, rate, sample_rate)
    except ValueError as e:
        raise DataError(f"{path}: {e}") from None


def write_wav(path: PathArg, waveform: Tensor, sample_rate: int) -> None:
    """Write a mono waveform [n] (floats, clipped to [-1, 1]) as 16-bit PCM at ``sample_rate`` Hz.

    The file appears atomically: it is written beside ``path`` under a temporary name and renamed into
    place, so a reader never sees half a file. Raises ``ValueError`` for a waveform that is not 1-D,
    empty or not finite, and for a sample rate that is not a positive integer.
    """
    _check_waveform(waveform, "write_wav")
    if waveform.dim() != 1:
        raise ValueError(f"write_wav: expected a 1-D (mono) waveform, got shape {tuple(waveform.shape)}")
    _check_rate(sample_rate, "sample_rate", "write_wav")
    # Round to the nearest 16-bit step of the read_wav convention (s / 32768), so k/32768 round-trips.
    ints = (waveform.detach().double().cpu().clamp(-1.0, 1.0) * 32768.0).round().clamp(-32768, 32767)
    data = ints.to(torch.int16).numpy().astype("<i2").tobytes()
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            with wave.open(out, "wb") as f:
                f.setnchannels(1)
                f.setsampwidth(2)
                f.setframerate(sample_rate)
                f.writeframes(data)
        os.replace(tmp_name, path)
    except BaseException:
        os.unlink(tmp_name)
        raise


_RESAMPLE_CHUNK = 1 << 22  # elements of the window copy one matrix product in resample() may make


def _kaiser(x: Tensor, beta: float) -> Tensor:
    """Kaiser window at positions ``x`` in [-1, 1] (0 outside)."""
    inside = x.abs() <= 1
    arg = beta * torch.sqrt((1 - x.square()).clamp(min=0))
    return torch.where(inside, torch.special.i0(arg) / torch.special.i0(torch.tensor(beta, dtype=x.dtype)), 0.0)


def resample(
    waveform: Tensor,
    orig_rate: int,
    new_rate: int,
    *,
    rolloff: float = 0.95,
    zero_crossings: int = 24,
    beta: float = 8.6,
) -> Tensor:
    """Resample ``waveform`` [..., n] from ``orig_rate`` to ``new_rate`` Hz; returns [..., ceil(n*new/orig)].

    Band-limited interpolation: every output sample is the input convolved with a low-pass sinc whose
    cutoff is ``rolloff * min(orig_rate, new_rate) / 2``, truncated to ``zero_crossings`` zero crossings
    on each side and tapered with a Kaiser window (``beta`` 8.6: about 85 dB of stopband
    attenuation). Output sample ``j`` sits at input time ``j * orig/new``; the signal is taken as zero
    beyond its ends, so the first and last ``zero_crossings / (rolloff * min rate)`` seconds are
    affected by the edges. Equal rates return the input unchanged.

    The rates are reduced by their gcd to ``new = L * g``, ``orig = M * g``; output phase ``r`` (of L)
    uses one filter of ``2 * ceil(width) + 2`` taps, applied as a strided matrix product over a view of
    the input, a bounded number of output blocks at a time, so memory stays O(n + n_out + L * taps)
    for any pair of rates. Raises ``ValueError`` before allocating when that exceeds the memory this
    process can have (fastgen.memory).
    """
    _check_waveform(waveform, "resample")
    _check_rate(orig_rate, "orig_rate", "resample")
    _check_rate(new_rate, "new_rate", "resample")
    if not 0 < rolloff <= 1:
        raise ValueError(f"resample: rolloff must be in (0, 1], got {rolloff}")
    if orig_rate == new_rate:
        return waveform
    g = math.gcd(orig_rate, new_rate)
    up, down = new_rate // g, orig_rate // g
    n = waveform.shape[-1]
    n_out = -(-n * up // down)
    # Cutoff in cycles per input sample, and the filter's half-width in input samples.
    cutoff = rolloff * min(orig_rate, new_rate) / (2 * orig_rate)
    half = zero_crossings / (2 * cutoff)
    reach = math.ceil(half)
    taps = 2 * reach + 2
    rows = waveform[..., 0].numel()
    blocks = -(-n_out // up)
    total = (blocks - 1) * down + (down - 1) + taps  # covers the last block's last phase
    check_fits(waveform.element_size() * rows * (reach + max(total, n) + blocks * up + _RESAMPLE_CHUNK)
               + 5 * 8 * up * taps,  # the float64 filter table and its temporaries
               f"resampling {n:,} samples from {orig_rate:,} to {new_rate:,} Hz ({n_out:,} samples out)")
    # Output j = q*up + r sits at input position q*down + r*down/up; phase r reads input samples
    # q*down + start[r] + t (t < taps), start[r] = floor(r*down/up) - reach.
    r = torch.arange(up, dtype=torch.float64)
    offset = torch.div(torch.arange(up) * down, up, rounding_mode="floor")
    frac = r * down / up - offset  # in [0, 1)
    tau = frac[:, None] + reach - torch.arange(taps, dtype=torch.float64)  # output time - tap time
    filters = 2 * cutoff * torch.sinc(2 * cutoff * tau) * _kaiser(tau / half, beta)
    filters = filters.to(waveform.dtype).to(waveform.device)
    starts = offset.tolist()

    padded = torch.nn.functional.pad(waveform, (reach, max(total - reach - n, 0)))
    out = torch.empty(*waveform.shape[:-1], blocks, up, dtype=waveform.dtype, device=waveform.device)
    # The product copies its strided [blocks, taps] window view: bound that copy by chunking the blocks.
    chunk = max(1, _RESAMPLE_CHUNK // taps)
    for phase in range(up):
        windows = padded[..., starts[phase]:].unfold(-1, taps, down)[..., :blocks, :]  # [..., blocks, taps]
        for b in range(0, blocks, chunk):
            out[..., b:b + chunk, phase] = windows[..., b:b + chunk, :] @ filters[phase]
    return out.flatten(-2)[..., :n_out]


def mu_law_encode(x: Tensor, channels: int = 256) -> Tensor:
    """Floats in [-1, 1] (out-of-range values are clamped) to int64 tokens in 0..channels-1.

    ``f(x) = sign(x) * ln(1 + mu*|x|) / ln(1 + mu)`` with ``mu = channels - 1``, then ``f`` in [-1, 1] is
    quantised to the nearest of ``channels`` evenly spaced levels: token ``round((f + 1) / 2 * mu)``.
    Silence (0.0) is token ``mu / 2`` rounded half up (128 for 256 channels). Raises ``ValueError`` for
    NaN or infinite input.
    """
    mu = _check_channels(channels, "mu_law_encode")
    if not isinstance(x, Tensor) or not x.is_floating_point():
        raise TypeError(f"mu_law_encode: expected a floating-point tensor, got "
                        f"{x.dtype if isinstance(x, Tensor) else type(x).__name__}")
    if not torch.isfinite(x).all():
        raise ValueError("mu_law_encode: input holds NaN or infinite values")
    x = x.double().clamp(-1.0, 1.0)
    f = torch.sign(x) * torch.log1p(mu * x.abs()) / math.log1p(mu)
    return torch.floor((f + 1) / 2 * mu + 0.5).long()


def mu_law_decode(tokens: Tensor, channels: int = 256) -> Tensor:
    """Tokens in 0..channels-1 back to float32 samples in [-1, 1]: the inverse of the companding at
    each quantisation level. Raises ``ValueError`` for tokens outside 0..channels-1."""
    mu = _check_channels(channels, "mu_law_decode")
    if not isinstance(tokens, Tensor) or tokens.is_floating_point() or tokens.is_complex() or tokens.dtype == torch.bool:
        raise TypeError(f"mu_law_decode: expected an integer token tensor, got "
                        f"{tokens.dtype if isinstance(tokens, Tensor) else type(tokens).__name__}")
    if tokens.numel() and (tokens.min() < 0 or tokens.max() > mu):
        raise ValueError(f"mu_law_decode: tokens must lie in 0..{mu}, got values in "
                         f"{tokens.min().item()}..{tokens.max().item()}")
    f = tokens.double() * (2 / mu) - 1
    return (torch.sign(f) * torch.expm1(f.abs() * math.log1p(mu)) / mu).float()


def _check_channels(channels: object, what: str) -> int:
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 2:
        raise ValueError(f"{what}: channels must be an integer >= 2, got {channels!r}")
    return channels - 1


def frames_for(n_samples: int, hop_length: int) -> int:
    """Number of :func:`log_mel_spectrogram` frames for ``n_samples`` samples: ``ceil(n / hop)``."""
    return -(-n_samples // hop_length)


def _hz_to_mel(hz):
    return 2595.0 * np.log10(1.0 + np.asarray(hz, np.float64) / 700.0)


def _mel_to_hz(mel):
    return 700.0 * (10.0 ** (np.asarray(mel, np.float64) / 2595.0) - 1.0)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float = 0.0, f_max: Optional[float] = None) -> Tensor:
    """Triangular mel filters [n_mels, n_fft//2 + 1] on the HTK mel scale ``2595 log10(1 + f/700)``.

    Filter ``m`` rises linearly (in Hz) from mel point ``m`` to a peak of 1 at point ``m+1`` and falls
    to 0 at point ``m+2``, the ``n_mels + 2`` points spaced evenly in mel from ``f_min`` to ``f_max``
    (default ``sample_rate / 2``). No area normalisation. Raises ``ValueError`` when a filter would
    cover no FFT bin (too many mels for ``n_fft``).
    """
    f_max = sample_rate / 2 if f_max is None else f_max
    if not 0 <= f_min < f_max <= sample_rate / 2:
        raise ValueError(f"mel filterbank: need 0 <= f_min < f_max <= sample_rate/2 = {sample_rate / 2}, "
                         f"got f_min={f_min}, f_max={f_max}")
    if n_mels < 1:
        raise ValueError(f"mel filterbank: n_mels must be >= 1, got {n_mels}")
    bins = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    points = _mel_to_hz(np.linspace(_hz_to_mel(f_min), _hz_to_mel(f_max), n_mels + 2))
    lo, peak, hi = points[:-2, None], points[1:-1, None], points[2:, None]
    rising, falling = (bins - lo) / (peak - lo), (hi - bins) / (hi - peak)
    filters = np.clip(np.minimum(rising, falling), 0.0, None)
    empty = np.flatnonzero(filters.max(axis=1) == 0)
    if empty.size:
        raise ValueError(
            f"mel filterbank: {empty.size} of {n_mels} mel filters cover no FFT bin (first: filter "
            f"{empty[0]}, {points[empty[0]]:.1f}-{points[empty[0] + 2]:.1f} Hz, bin spacing "
            f"{sample_rate / n_fft:.1f} Hz); use fewer mels or a larger n_fft"
        )
    return torch.from_numpy(filters.astype(np.float32))


def log_mel_spectrogram(
    waveform: Tensor,
    sample_rate: int,
    n_fft: int = 1024,
    hop_length: int = 256,
    n_mels: int = 80,
    f_min: float = 0.0,
    f_max: Optional[float] = None,
) -> Tensor:
    """``log(clamp(mel, 1e-5))`` of ``waveform`` [..., n]: a float32 tensor [..., n_mels, ceil(n/hop)].

    Magnitude (not power) STFT with a periodic Hann window of ``n_fft`` samples, frames placed as the
    module docstring says (:func:`frames_for`), then the HTK-scale filters of :func:`mel_filterbank`.
    Requires ``hop_length <= n_fft`` so that consecutive frames leave no samples unseen.
    """
    _check_waveform(waveform, "log_mel_spectrogram")
    _check_rate(sample_rate, "sample_rate", "log_mel_spectrogram")
    if not 0 < hop_length <= n_fft:
        raise ValueError(f"log_mel_spectrogram: need 0 < hop_length <= n_fft, got hop_length={hop_length}, n_fft={n_fft}")
    filters = mel_filterbank(sample_rate, n_fft, n_mels, f_min, f_max).to(waveform.device)
    n = waveform.shape[-1]
    frames = frames_for(n, hop_length)
    left = (n_fft - hop_length) // 2  # frame f's window centre lands on f*hop + hop/2
    right = (frames - 1) * hop_length + n_fft - left - n
    batch = waveform.shape[:-1]
    padded = torch.nn.functional.pad(waveform.float().reshape(-1, n), (left, right))
    window = torch.hann_window(n_fft, device=waveform.device)
    spec = torch.stft(padded, n_fft, hop_length, window=window, center=False, return_complex=True).abs()
    mel = filters @ spec  # [B, n_mels, frames]
    return torch.log(mel.clamp(min=1e-5)).reshape(*batch, n_mels, frames)
