"""WaveNet's speech data: where the espeak-ng corpus lives, which utterances a run uses (:class:`DataSpec`)
and their train / validation / test split (:func:`load_splits`)."""
from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Optional

from fastgen.data import DataError, SpeechDataset, check_sample_rate, synthesize_corpus
from fastgen.recipes.runs import RecipeError

CORPUS = "corpus"
DEFAULT_CORPUS_SIZE = 160


def data_root() -> Path:
    """Where downloaded or synthesised data sets live: ``$FASTGEN_DATA_DIR``, else
    ``$XDG_CACHE_HOME/fastgen``, else ``~/.cache/fastgen``."""
    if os.environ.get("FASTGEN_DATA_DIR"):
        return Path(os.environ["FASTGEN_DATA_DIR"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path("~/.cache").expanduser())
    return Path(cache) / "fastgen"


def corpus_dir(corpus_size: int = DEFAULT_CORPUS_SIZE, sample_rate: int = 16000) -> Path:
    """The espeak-ng corpus folder for these settings (the default corpus: ``speech-corpus``)."""
    name = "speech-corpus"
    if (corpus_size, sample_rate) != (DEFAULT_CORPUS_SIZE, 16000):
        name += f"-{corpus_size}utt-{sample_rate}hz"
    return data_root() / name


@dataclass
class DataSpec:
    """Which speech, at what rate, how it is split, and the log-mel / mu-law settings."""

    source: str                          # "corpus" or "folder" (then ``path`` is the folder)
    path: Optional[str] = None
    corpus_size: int = DEFAULT_CORPUS_SIZE
    sample_rate: int = 16000
    speaker_folders: bool = False
    split: tuple = (0.8, 0.1, 0.1)       # train / validation / test fractions, by utterance
    split_seed: int = 0
    classes: int = 256                   # mu-law classes
    n_fft: int = 1024
    hop_length: int = 256
    n_mels: int = 80

    def __post_init__(self) -> None:
        try:
            self.split = tuple(float(f) for f in self.split)
        except (TypeError, ValueError):
            raise RecipeError(f"split must be three fractions (train, validation, test), got {self.split!r}") from None
        if self.source not in (CORPUS, "folder"):
            raise RecipeError(f"unknown speech source {self.source!r}; use {CORPUS!r} or a folder of WAV files")
        if (self.source == "folder") != (self.path is not None):
            raise RecipeError("a path is needed exactly when the speech source is a folder of WAVs")
        for name in ("corpus_size", "sample_rate", "classes", "n_fft", "hop_length", "n_mels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise RecipeError(f"{name} must be a positive integer, got {value!r}")
        try:
            check_sample_rate(self.sample_rate, "sample_rate")
        except ValueError as e:
            raise RecipeError(str(e)) from None
        if len(self.split) != 3 or any(f < 0 for f in self.split) or abs(sum(self.split) - 1) > 1e-6:
            raise RecipeError(f"split must be three fractions (train, validation, test) summing to 1, got {self.split}")
        if self.speaker_folders and self.source != "folder":
            raise RecipeError("speaker_folders applies to a folder of WAVs, not to the corpus")

    @classmethod
    def from_arg(cls, data: str, **kwargs) -> "DataSpec":
        """``data`` is "corpus" or a folder holding WAV files."""
        if data == CORPUS:
            return cls(source=CORPUS, **kwargs)
        folder = Path(data).expanduser()
        if not folder.is_dir():
            raise RecipeError(f"--data {data!r} is neither {CORPUS!r} (the espeak-ng speech corpus) nor an "
                              "existing folder of WAV files")
        return cls(source="folder", path=str(folder.resolve()), **kwargs)

    @property
    def name(self) -> str:
        return self.path if self.source == "folder" else f"espeak-ng corpus ({self.corpus_size} utterances)"

    def to_json(self) -> dict:
        d = asdict(self)
        d["split"] = list(self.split)
        return d

    @classmethod
    def from_json(cls, data: dict) -> "DataSpec":
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


@dataclass
class Splits:
    train: SpeechDataset
    val: SpeechDataset
    test: SpeechDataset
    description: str

    def sizes(self) -> dict:
        return {f"n_{name}": len(part) for name, part in (("train", self.train), ("val", self.val),
                                                          ("test", self.test))} | {
            f"{name}_seconds": round(float(part.lengths.sum()) / part.sample_rate, 2)
            for name, part in (("train", self.train), ("val", self.val), ("test", self.test))}


def load_splits(spec: DataSpec, mels: bool = True, progress: bool = False) -> Splits:
    """The utterances of ``spec`` (synthesising the corpus first if needed), split into train /
    validation / test; log-mel frames are computed only with ``mels``. Raises DataError /
    RecipeError. (A caller that trains, evaluates and samples in one process passes the Splits on.)"""
    options = dict(channels=spec.classes, mels=mels, n_fft=spec.n_fft, hop_length=spec.hop_length,
                   n_mels=spec.n_mels)
    try:
        if spec.source == CORPUS:
            folder = corpus_dir(spec.corpus_size, spec.sample_rate)
            synthesize_corpus(folder, n_utterances=spec.corpus_size, sample_rate=spec.sample_rate,
                              progress=progress and sys.stderr.isatty())
            data = SpeechDataset.from_corpus(folder, **options)
            where = f"espeak-ng corpus in {folder} ({len(data)} utterances, {data.num_speakers} speakers)"
        else:
            data = SpeechDataset.from_folder(spec.path, spec.sample_rate, speaker_folders=spec.speaker_folders,
                                             **options)
            where = (f"WAV folder {spec.path} ({len(data)} utterances, {data.num_speakers} speaker"
                     f"{'s' if data.num_speakers != 1 else ''})")
    except ValueError as e:  # mel settings the data cannot take (e.g. too many mels for n_fft)
        if isinstance(e, DataError):
            raise
        raise RecipeError(str(e)) from None
    try:
        train, val, test = data.split(spec.split, seed=spec.split_seed)
    except ValueError as e:
        raise RecipeError(f"{where}: {e}") from None
    description = (f"{where} at {spec.sample_rate} Hz, split {'/'.join(f'{f:g}' for f in spec.split)} by utterance "
                   f"(seed {spec.split_seed}): {len(train)} train, {len(val)} validation, {len(test)} test")
    return Splits(train, val, test, description)


def spec_from_run(run: dict) -> DataSpec:
    return DataSpec.from_json(run["data"])


def splits_for(model, run: dict, splits: Optional[Splits]) -> Splits:
    """The run's data: ``splits`` when already loaded (with mels if the model needs them), else loaded."""
    if splits is not None and (splits.test.mels is not None or not model.config.cond_channels):
        return splits
    return load_splits(spec_from_run(run), mels=bool(model.config.cond_channels))
