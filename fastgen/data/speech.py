"""Speech for WaveNet: an offline multi-speaker corpus from espeak-ng, a user's own WAV folder, and an
in-memory data set of mu-law tokens with speaker ids (global conditioning) and hop-aligned log-mel
frames (local conditioning).

* :func:`synthesize_corpus` -- ``n_utterances`` sentences (seeded from a fixed word list) spoken by the
  :data:`VOICES` speakers in turn, resampled to ``sample_rate`` with :func:`~fastgen.data.audio.resample`,
  written as 16-bit WAVs plus a ``corpus.json`` manifest of file, speaker id and text. Needs the
  Debian package ``espeak-ng``; reuses the files when the manifest matches the request.
* :func:`load_wav_folder` -- every WAV under a folder (recursive, sorted), resampled to one rate.
* :class:`SpeechDataset` -- utterances held in memory; seeded splits by utterance, stratified by
  speaker; random fixed-length training crops aligned to mel hops; :func:`unigram_baseline`, the
  bits per sample a model must beat.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import NamedTuple, Optional, Sequence, Union

import torch
from torch import Tensor
from tqdm import tqdm

from .audio import (AUDIO_EXTENSIONS, check_sample_rate, frames_for, load_wav, log_mel_spectrogram, mu_law_encode,
                    read_wav, resample, write_wav)
from .errors import DataError

PathArg = Union[str, "os.PathLike[str]"]

INSTALL_ESPEAK = "apt-get install espeak-ng"
MANIFEST = "corpus.json"
_MANIFEST_FORMAT = 1


class Voice(NamedTuple):
    """One synthetic speaker: an espeak-ng voice (``language+variant``), pitch 0..99, speed in words/min."""

    voice: str
    pitch: int
    speed: int


VOICES: tuple[Voice, ...] = (
    Voice("en-us+m3", pitch=35, speed=150),
    Voice("en-us+f2", pitch=65, speed=165),
    Voice("en-gb+m1", pitch=45, speed=140),
    Voice("en-us+f4", pitch=75, speed=175),
)

# Harvard-sentence-like: subject, verb, object, place; every combination is a plausible sentence.
_SUBJECTS = ("the boy", "a small dog", "the old man", "her sister", "the red car", "a cold wind",
             "the farmer", "my friend", "the captain", "a young girl", "the black cat", "the tall nurse")
_VERBS = ("carried", "found", "painted", "dropped", "watched", "pushed", "cleaned", "lifted", "followed",
          "opened", "sold", "hid")
_OBJECTS = ("the heavy box", "a blue kite", "the wooden door", "six green apples", "the silver coin",
            "a torn map", "the brass lamp", "two paper cups", "the long rope", "a wet towel")
_PLACES = ("near the river", "in the morning", "across the field", "before the storm", "at the station",
           "under the bridge", "after dinner", "by the old mill", "on the roof", "in the dark")
_DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def _sentence(rng: random.Random) -> str:
    """A sentence, or (one time in four) a string of four to seven digits."""
    if rng.random() < 0.25:
        return " ".join(rng.choice(_DIGITS) for _ in range(rng.randint(4, 7)))
    return " ".join(rng.choice(words) for words in (_SUBJECTS, _VERBS, _OBJECTS, _PLACES))


def _trim_silence(x: Tensor, rate: int, threshold: float = 1e-3, margin_s: float = 0.05) -> Tensor:
    """Drop leading and trailing near-silence (espeak-ng ends every sentence with ~0.3 s of it)."""
    loud = (x.abs() > threshold).nonzero()
    if loud.numel() == 0:
        return x
    margin = int(margin_s * rate)
    return x[max(loud[0].item() - margin, 0): loud[-1].item() + 1 + margin]


def _espeak(text: str, voice: Voice, wav: Path) -> None:
    cmd = ["espeak-ng", "-w", str(wav), "-v", voice.voice, "-p", str(voice.pitch), "-s", str(voice.speed), text]
    try:
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        detail = e.stderr.decode(errors="replace").strip() if e.stderr else str(e)
        raise DataError(f"espeak-ng failed on {text!r} with voice {voice.voice}: {detail}") from e


def _read_manifest(out_dir: Path) -> Optional[dict]:
    try:
        return json.loads((out_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def synthesize_corpus(
    out_dir: PathArg,
    n_utterances: int = 160,
    sample_rate: int = 16000,
    seed: int = 0,
    voices: Sequence[Voice] = VOICES,
    progress: bool = True,
) -> list[Path]:
    """Synthesise (or reuse) a speech corpus in ``out_dir``; returns the WAV paths in utterance order.

    Utterance ``i`` is ``utt_{i:04d}.wav``, spoken by speaker ``i % len(voices)``, its
    text drawn from a ``random.Random(seed)`` stream. Audio is trimmed of leading and trailing
    silence (50 ms kept) and resampled from espeak-ng's 22,050 Hz to ``sample_rate``. ``corpus.json``
    records the settings and, per utterance, ``file``, ``speaker`` and ``text``; it is written last,
    so an interrupted run is redone. When it exists, matches every argument and all its files exist,
    nothing is synthesised. Raises :class:`DataError` when espeak-ng is not installed.
    """
    if n_utterances < 1:
        raise ValueError(f"synthesize_corpus: n_utterances must be >= 1, got {n_utterances}")
    if not voices:
        raise ValueError("synthesize_corpus: voices is empty")
    check_sample_rate(sample_rate, "synthesize_corpus: sample_rate")
    out_dir = Path(out_dir)
    settings = {"n_utterances": n_utterances, "sample_rate": sample_rate, "seed": seed,
                "voices": [list(Voice(*v)) for v in voices]}
    old = _read_manifest(out_dir)
    if old is not None and old.get("format") == _MANIFEST_FORMAT and old.get("settings") == settings:
        paths = [out_dir / u["file"] for u in old["utterances"]]
        if all(p.is_file() for p in paths):
            return paths
    if shutil.which("espeak-ng") is None:
        raise DataError(f"speech corpus: the espeak-ng synthesiser is not installed ({INSTALL_ESPEAK})")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MANIFEST).unlink(missing_ok=True)  # an interrupted rewrite must not pass for the old corpus
    rng = random.Random(seed)
    utterances = []
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        raw = Path(tmp) / "espeak.wav"
        for i in tqdm(range(n_utterances), desc="espeak-ng", unit="utt", disable=not progress):
            speaker, text = i % len(voices), _sentence(rng)
            _espeak(text, Voice(*voices[speaker]), raw)
            audio, rate = read_wav(raw)
            audio = resample(_trim_silence(audio, rate), rate, sample_rate)
            write_wav(out_dir / f"utt_{i:04d}.wav", audio, sample_rate)
            utterances.append({"file": f"utt_{i:04d}.wav", "speaker": speaker, "text": text})
    keep = {u["file"] for u in utterances}
    for stale in out_dir.glob("utt_*.wav"):  # left by an earlier, larger corpus
        if stale.name not in keep:
            stale.unlink()
    manifest = {"format": _MANIFEST_FORMAT, "settings": settings, "utterances": utterances}
    fd, tmp_name = tempfile.mkstemp(dir=out_dir, prefix=f".{MANIFEST}.", suffix=".part")
    with os.fdopen(fd, "w") as f:
        json.dump(manifest, f, indent=1)
    os.replace(tmp_name, out_dir / MANIFEST)
    return [out_dir / u["file"] for u in utterances]


def load_wav_folder(root: PathArg, sample_rate: int) -> tuple[list[Path], list[Tensor]]:
    """Every ``.wav``/``.wave`` file under ``root`` (recursively, sorted by relative path), each read as
    mono and resampled to ``sample_rate``. Raises :class:`DataError` for a missing or WAV-less folder
    and, naming the file, for any file :func:`~fastgen.data.audio.read_wav` cannot read."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder")
    paths = sorted((p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file()),
                   key=lambda p: p.relative_to(root).as_posix())
    if not paths:
        raise DataError(f"{root}: no WAV files ({', '.join(AUDIO_EXTENSIONS)}) in the folder or below it")
    return paths, [load_wav(path, sample_rate) for path in paths]


class Utterance(NamedTuple):
    """One whole utterance: int64 tokens [n], its speaker id, log-mel frames [n_mels, ceil(n/hop)] or None."""

    tokens: Tensor
    speaker: int
    mels: Optional[Tensor]


class SpeechBatch(NamedTuple):
    """Training crops: int64 tokens [B, length], int64 speakers [B], mels [B, n_mels, length/hop] or None."""

    tokens: Tensor
    speakers: Tensor
    mels: Optional[Tensor]


class SpeechDataset:
    """Utterances in memory as mu-law tokens, speaker ids and (optionally) log-mel frames.

    ``tokens`` is every utterance's tokens concatenated (int64 [total samples]); ``mels`` likewise
    along frames ([n_mels, total frames]), each utterance contributing ``frames_for(n, hop_length)``
    frames laid out as :mod:`fastgen.data.audio` describes. ``num_speakers`` is the size of the speaker
    table (it may exceed the speakers present, e.g. in a test split).
    """

    def __init__(
        self,
        waveforms: Sequence[Tensor],
        speakers: Sequence[int],
        sample_rate: int,
        *,
        num_speakers: Optional[int] = None,
        channels: int = 256,
        mels: bool = True,
        n_fft: int = 1024,
        hop_length: int = 256,
        n_mels: int = 80,
    ) -> None:
        if len(waveforms) != len(speakers):
            raise ValueError(f"SpeechDataset: {len(waveforms)} waveforms but {len(speakers)} speaker ids")
        if not waveforms:
            raise ValueError("SpeechDataset: no utterances")
        if any(w.dim() != 1 for w in waveforms):
            raise ValueError("SpeechDataset: every waveform must be 1-D (mono samples)")
        self.waveforms = [w.float() for w in waveforms]
        self.speakers = torch.as_tensor(list(speakers), dtype=torch.int64)
        self.num_speakers = int(self.speakers.max()) + 1 if num_speakers is None else num_speakers
        if self.speakers.min() < 0 or self.speakers.max() >= self.num_speakers:
            raise ValueError(f"SpeechDataset: speaker ids must lie in 0..{self.num_speakers - 1}, got "
                             f"{self.speakers.min().item()}..{self.speakers.max().item()}")
        self.sample_rate, self.channels, self.hop_length = sample_rate, channels, hop_length
        self._options = {"channels": channels, "mels": mels, "n_fft": n_fft, "hop_length": hop_length, "n_mels": n_mels}
        self.lengths = torch.tensor([w.numel() for w in self.waveforms])
        self.offsets = torch.cumsum(self.lengths, 0) - self.lengths
        self.tokens = mu_law_encode(torch.cat(self.waveforms), channels)
        self.mels = None
        if mels:
            frames = [log_mel_spectrogram(w, sample_rate, n_fft, hop_length, n_mels) for w in self.waveforms]
            counts = torch.tensor([f.shape[-1] for f in frames])
            self.frame_offsets = torch.cumsum(counts, 0) - counts
            self.mels = torch.cat(frames, dim=-1)

    @classmethod
    def from_corpus(cls, out_dir: PathArg, **options) -> "SpeechDataset":
        """The corpus :func:`synthesize_corpus` wrote in ``out_dir``; speaker ids as in its manifest."""
        out_dir = Path(out_dir)
        manifest = _read_manifest(out_dir)
        if manifest is None or manifest.get("format") != _MANIFEST_FORMAT:
            raise DataError(f"{out_dir / MANIFEST}: missing or unreadable corpus manifest; run synthesize_corpus")
        rate = manifest["settings"]["sample_rate"]
        waveforms = []
        for u in manifest["utterances"]:
            audio, file_rate = read_wav(out_dir / u["file"])
            if file_rate != rate:
                raise DataError(f"{out_dir / u['file']}: {file_rate} Hz, the manifest says {rate} Hz")
            waveforms.append(audio)
        speakers = [u["speaker"] for u in manifest["utterances"]]
        return cls(waveforms, speakers, rate, num_speakers=len(manifest["settings"]["voices"]), **options)

    @classmethod
    def from_folder(cls, root: PathArg, sample_rate: int, *, speaker_folders: bool = False, **options) -> "SpeechDataset":
        """A folder of WAVs (:func:`load_wav_folder`). Every file is speaker 0, unless
        ``speaker_folders``: then each top-level subfolder is a speaker (ids in sorted name order, as in
        VCTK's ``wav48/p225/...`` layout) and files directly in ``root`` are rejected."""
        root = Path(root)
        paths, waveforms = load_wav_folder(root, sample_rate)
        speakers = [0] * len(paths)
        if speaker_folders:
            loose = [p for p in paths if p.parent == root]
            if loose:
                raise DataError(f"{loose[0]}: with speaker_folders, every WAV must be inside a speaker subfolder")
            names = sorted({p.relative_to(root).parts[0] for p in paths})
            speakers = [names.index(p.relative_to(root).parts[0]) for p in paths]
        return cls(waveforms, speakers, sample_rate, **options)

    def __len__(self) -> int:
        return len(self.waveforms)

    def __getitem__(self, i: int) -> Utterance:
        start, n = self.offsets[i].item(), self.lengths[i].item()
        mels = None
        if self.mels is not None:
            f0 = self.frame_offsets[i].item()
            mels = self.mels[:, f0: f0 + frames_for(n, self.hop_length)]
        return Utterance(self.tokens[start: start + n], self.speakers[i].item(), mels)

    def subset(self, indices: Sequence[int]) -> "SpeechDataset":
        """The utterances at ``indices`` (same speaker table and feature settings)."""
        return SpeechDataset([self.waveforms[i] for i in indices], self.speakers[list(indices)].tolist(),
                             self.sample_rate, num_speakers=self.num_speakers, **self._options)

    def split(
        self, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0
    ) -> tuple["SpeechDataset", "SpeechDataset", "SpeechDataset"]:
        """(train, validation, test) by utterance, stratified by speaker, from a seeded permutation.

        Each speaker's utterances are shuffled and ``round(m * fraction)`` go to validation and to test,
        the rest (at least one) to training, so every speaker is heard in training. Raises
        ``ValueError`` when validation or test would be empty.
        """
        if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
            raise ValueError(f"split: fractions must be three non-negative numbers summing to 1, got {fractions}")
        gen = torch.Generator().manual_seed(seed)
        parts: tuple[list[int], list[int], list[int]] = ([], [], [])
        for speaker in range(self.num_speakers):
            mine = (self.speakers == speaker).nonzero().flatten()
            mine = mine[torch.randperm(mine.numel(), generator=gen)].tolist()
            n_val = min(round(len(mine) * fractions[1]), max(len(mine) - 1, 0))
            n_test = min(round(len(mine) * fractions[2]), max(len(mine) - 1 - n_val, 0))
            parts[1].extend(mine[:n_val])
            parts[2].extend(mine[n_val: n_val + n_test])
            parts[0].extend(mine[n_val + n_test:])
        for name, part in zip(("validation", "test"), parts[1:]):
            if not part:
                raise ValueError(f"split: the {name} split of {len(self)} utterances with fractions {tuple(fractions)} "
                                 "would be empty; use a larger corpus or larger fractions")
        train, val, test = (self.subset(sorted(p)) for p in parts)
        return train, val, test

    def crops(self, batch_size: int, length: int, generator: Optional[torch.Generator] = None) -> SpeechBatch:
        """``batch_size`` random crops of ``length`` samples, uniform over all crops that start on a
        multiple of ``hop_length`` and fit inside one utterance (so longer utterances give more).

        A crop of samples ``[k*hop, k*hop + length)`` comes with mel frames ``[k, k + length/hop)``;
        ``length`` must be a multiple of ``hop_length`` when mels are kept. Deterministic given
        ``generator``. Raises ``ValueError`` when no utterance is ``length`` samples long.
        """
        hop = self.hop_length
        if length < 1 or (self.mels is not None and length % hop):
            raise ValueError(f"crops: length must be a positive multiple of hop_length={hop}, got {length}")
        counts = ((self.lengths - length).div(hop, rounding_mode="floor") + 1).clamp(min=0)
        if counts.sum() == 0:
            raise ValueError(f"crops: no utterance has {length} samples (longest: {self.lengths.max().item()})")
        pick = torch.randint(int(counts.sum()), (batch_size,), generator=generator)
        ends = torch.cumsum(counts, 0)
        utt = torch.searchsorted(ends, pick, right=True)
        k = pick - (ends[utt] - counts[utt])  # hop index of the crop's start within its utterance
        starts = self.offsets[utt] + k * hop
        tokens = self.tokens[starts[:, None] + torch.arange(length)]
        mels = None
        if self.mels is not None:
            frames = self.frame_offsets[utt] + k
            mels = self.mels[:, frames[:, None] + torch.arange(length // hop)].transpose(0, 1).contiguous()
        return SpeechBatch(tokens, self.speakers[utt], mels)


class UnigramBaseline(NamedTuple):
    """A token-frequency model: ``probs`` [channels] (add-one smoothed, from training tokens), its
    entropy in bits per sample, and its cross-entropy on held-out tokens in bits per sample."""

    probs: Tensor
    train_bits: float
    test_bits: float


def unigram_baseline(train_tokens: Tensor, test_tokens: Tensor, channels: int = 256) -> UnigramBaseline:
    """The bits per sample of predicting every token from the training unigram distribution alone
    (add-one smoothing, so unseen test tokens cost finite bits): the floor a WaveNet must beat."""
    for name, t in (("train", train_tokens), ("test", test_tokens)):
        if t.numel() == 0 or t.min() < 0 or t.max() >= channels:
            raise ValueError(f"unigram_baseline: {name} tokens must be non-empty and lie in 0..{channels - 1}")
    counts = torch.bincount(train_tokens.flatten(), minlength=channels).double()
    probs = (counts + 1) / (counts.sum() + channels)
    bits = -torch.log2(probs)
    test_bits = bits[test_tokens.flatten()].mean().item()
    return UnigramBaseline(probs.float(), (probs * bits).sum().item(), test_bits)
