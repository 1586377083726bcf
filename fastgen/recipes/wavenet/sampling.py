"""Generating audio with a trained WaveNet run (:func:`sample_run`): mel conditioning from a WAV or a
test utterance, speaker choice, the generation path, and the speed."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import torch
from torch import Tensor

from fastgen.data import frames_for, load_wav, log_mel_spectrogram, mu_law_decode
from fastgen.memory import check_fits
from fastgen.models.wavenet import WaveNet
from fastgen.recipes.runs import RecipeError
from fastgen.recipes.wavenet.data import Splits, spec_from_run, splits_for

SILENCE_LOG_MEL = math.log(1e-5)  # log_mel_spectrogram's value for silence (its clamp floor)


@dataclass
class SampleResult:
    waveform: Tensor                 # float [n] in [-1, 1]
    tokens: Tensor                   # int64 [n]
    sample_rate: int
    seconds: float                   # wall time of generation
    samples_per_s: float
    backend: str
    speaker: Optional[int]
    conditioning: str                # in words
    reference: Optional[Tensor]      # the real waveform the mels came from (cut to n), if any
    reference_title: Optional[str]


def _pad_frames(mels: Tensor, frames: int) -> tuple[Tensor, int]:
    """[n_mels, F] -> [n_mels, frames]: cut, or padded with silence frames; returns (frames, padded)."""
    have = mels.shape[1]
    if have >= frames:
        return mels[:, :frames], 0
    pad = torch.full((mels.shape[0], frames - have), SILENCE_LOG_MEL, dtype=mels.dtype)
    return torch.cat([mels, pad], dim=1), frames - have


def sample_run(model: WaveNet, run: dict, seconds: float, *, speaker: Optional[int] = None,
               mel_from: Optional[Union[str, Path]] = None, temperature: float = 1.0, seed: int = 0,
               backend: str = "auto", progress: bool = True, reference: bool = False,
               splits: Optional[Splits] = None) -> SampleResult:
    """``seconds`` of audio from a trained model. With mel conditioning the log-mel frames come from
    ``mel_from`` (a WAV, resampled to the model's rate) or else from a test utterance (the first at
    least as long as asked for, else the longest; a short source is padded with silence frames).
    ``speaker`` default: the test utterance's speaker, or 0. ``reference``: also load a real test
    utterance to compare with when nothing else provides one. ``splits``: the run's data when already
    loaded."""
    cfg = model.config
    spec = spec_from_run(run)
    if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds > 0):
        raise RecipeError(f"--seconds must be > 0, got {seconds}")
    n = max(1, round(seconds * cfg.sample_rate))
    # tokens, uniforms and waveform, and the mel frames upsampled to every sample (4 bytes each)
    check_fits(n * (8 + 4 + 4 + 4 * cfg.cond_channels), f"--seconds {seconds:g} ({n:,} samples)", RecipeError)
    if speaker is not None:
        if not cfg.speakers:
            raise RecipeError("this model is not conditioned on speakers (trained with --conditioning "
                              f"{run.get('conditioning')}); leave out --speaker")
        if not 0 <= speaker < cfg.speakers:
            raise RecipeError(f"unknown speaker {speaker}: this model knows speakers 0..{cfg.speakers - 1}")
    if mel_from is not None and not cfg.cond_channels:
        raise RecipeError(f"this model is not conditioned on mels (trained with --conditioning "
                          f"{run.get('conditioning')}); leave out --mel-from")

    features, ref, ref_title, words = None, None, None, []
    if mel_from is not None:
        audio = load_wav(mel_from, cfg.sample_rate)
        mels = log_mel_spectrogram(audio, cfg.sample_rate, spec.n_fft, spec.hop_length, spec.n_mels)
        features, padded = _pad_frames(mels, frames_for(n, cfg.hop_length))
        ref, ref_title = audio[:n], f"real: {Path(mel_from).name} (mel source)"
        words.append(f"log-mels of {mel_from}" + (f" (+{padded} silence frames)" if padded else ""))
    elif cfg.cond_channels or reference:
        test = splits_for(model, run, splits).test
        candidates = list(range(len(test)))
        if speaker is not None and reference and not cfg.cond_channels:
            mine = [i for i in candidates if int(test.speakers[i]) == speaker]
            candidates = mine or candidates
        long_enough = [i for i in candidates if int(test.lengths[i]) >= n]
        index = long_enough[0] if long_enough else max(candidates, key=lambda i: int(test.lengths[i]))
        utt = test[index]
        audio = test.waveforms[index]
        ref = audio[:n]
        ref_title = f"real: test utterance {index} (speaker {utt.speaker})"
        if cfg.cond_channels:
            features, padded = _pad_frames(utt.mels, frames_for(n, cfg.hop_length))
            words.append(f"log-mels of test utterance {index} ({utt.tokens.numel() / cfg.sample_rate:.2f} s"
                         + (f", +{padded} silence frames" if padded else "") + ")")
            ref_title += ", mel source"
            if speaker is None and cfg.speakers:
                speaker = utt.speaker
    if cfg.speakers:
        if speaker is None:
            speaker = 0
        words.insert(0, f"speaker {speaker}")
    speaker_t = torch.tensor([speaker]) if cfg.speakers else None
    feats = features[None] if features is not None else None
    from fastgen.models.wavenet.generation import resolve_path as _resolve_backend

    try:
        resolved = _resolve_backend(backend, next(model.parameters()).device)
    except ValueError as e:
        raise RecipeError(str(e)) from None
    start = time.perf_counter()
    tokens = model.generate(n, 1, speaker=speaker_t, features=feats, temperature=temperature, seed=seed,
                            backend=backend, progress=progress)[0]
    elapsed = time.perf_counter() - start
    waveform = mu_law_decode(tokens, cfg.classes)
    return SampleResult(waveform, tokens, cfg.sample_rate, elapsed, n / elapsed if elapsed > 0 else float("inf"),
                        resolved, speaker if cfg.speakers else None, "; ".join(words) or "unconditional",
                        ref, ref_title)
