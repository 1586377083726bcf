"""Training, evaluation and sampling of WaveNet on speech: what ``fastgen train|eval|sample wavenet``
and ``fastgen demo`` run; usable from Python too::

    spec = DataSpec.from_arg("corpus")            # or a folder of WAVs
    result = train_run({"residual_channels": 32, "skip_channels": 64, "layers_per_stack": 8},
                       "both", spec, TrainSettings(steps=300, batch_size=4, crop=4096), "runs/wavenet")
    model, run, ckpt = load_run("runs/wavenet")
    print(evaluate_run(model, run)["bits_per_sample"])
    audio = sample_run(model, run, seconds=2.0, seed=0).waveform

Data (:class:`DataSpec`): "corpus" is the espeak-ng speech corpus of :func:`fastgen.data.synthesize_corpus`
(``corpus_size`` utterances by 4 synthetic speakers at 16 kHz), synthesised once into
:func:`data_root` (``$FASTGEN_DATA_DIR``, else ``$XDG_CACHE_HOME/fastgen``, else ``~/.cache/fastgen``)
and reused; or a folder of WAVs (every file speaker 0, or one speaker per top-level subfolder with
``speaker_folders``), resampled to ``sample_rate``. Utterances are split by :meth:`SpeechDataset.split`
(seeded, stratified by speaker) into train / validation / test.

Training (:func:`train_run`) uses fastgen.train's Trainer. Every step draws ``batch_size`` random crops
of ``crop`` samples (hop-aligned, uniform over the training utterances) from the Trainer's noise
generator, so the crop sequence is an infinite seeded stream and resuming is bit-exact. An "epoch" is
:data:`EPOCH_STEPS` steps (it only sets the logging of fractional epochs); the run lasts ``steps``.

Metrics, all in bits per sample (a sample = one mu-law token of ``classes``):

* validation (periodic): teacher-forced cross-entropy on ``val_crops`` fixed crops of the validation
  utterances (drawn once, seed :data:`VAL_SEED`), beside the unigram baseline on the same tokens;
* test (:func:`test_nll`, ``fastgen eval``): teacher-forced cross-entropy over every whole test
  utterance (each sample after the first predicted from all the samples before it, zero history
  before the utterance's first sample), averaged over all predicted samples; deterministic. Beside it
  the mu-law unigram baseline (:func:`fastgen.data.unigram_baseline`: the training token
  frequencies, add-one smoothed) on exactly the same predicted samples.

The checkpoint's model config (``fastgen.train`` stores it in config.json) is the run description
:func:`run_config` builds: model config, conditioning, data spec and split sizes, training settings,
evaluation settings; ``load_run`` rebuilds the model from it.
"""
from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable, Optional, Union

import torch
from torch import Tensor

from fastgen.data import (
    DataError,
    SpeechBatch,
    SpeechDataset,
    check_sample_rate,
    frames_for,
    load_wav,
    log_mel_spectrogram,
    mu_law_decode,
    synthesize_corpus,
    unigram_baseline,
)
from fastgen.models import wavenet as wavenet_module
from fastgen.models.wavenet import WaveNet, WaveNetConfig
from fastgen.memory import check_fits
from fastgen.models.config_utils import is_non_negative_int, is_positive_int
from fastgen.recipes import runs
from fastgen.recipes.runs import (RUN_FORMAT, RecipeError, check_run_log, check_run_sections, check_same_data,
                                  data_fingerprint, holds_run_folder, invalid_run, load_weights, read_checkpoint)
from fastgen.train import CheckpointError, TrainConfig, Trainer, seed_everything
from fastgen.train.trainer import DataLayoutError
from fastgen.train.distributed import main_process_first

KIND = "wavenet"
CORPUS = "corpus"
DEFAULT_CORPUS_SIZE = 160
CONDITIONINGS = ("none", "speaker", "mel", "both")
EPOCH_STEPS = 100           # steps per "epoch" (the Trainer's unit for fractional epochs in log.csv)
VAL_SEED = 1234             # seed of the fixed validation crops
EVAL_BATCH = 8              # validation crops per forward pass
SILENCE_LOG_MEL = math.log(1e-5)  # log_mel_spectrogram's value for silence (its clamp floor)
TEST_METRIC = ("teacher-forced cross-entropy over every whole test utterance (each sample after the first "
               "predicted from all earlier samples of its utterance), in bits per sample, averaged over "
               "all predicted samples")
BASELINE = ("mu-law unigram baseline: training-set token frequencies (add-one smoothed), cross-entropy "
            "on the same predicted test samples")


# --- data -----------------------------------------------------------------------------------------

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


# --- models ---------------------------------------------------------------------------------------

def check_conditioning(conditioning: str) -> str:
    if conditioning not in CONDITIONINGS:
        raise RecipeError(f"unknown conditioning {conditioning!r}; choose one of {', '.join(CONDITIONINGS)}")
    return conditioning


def uses_speaker(conditioning: str) -> bool:
    return conditioning in ("speaker", "both")


def uses_mel(conditioning: str) -> bool:
    return conditioning in ("mel", "both")


def make_config(overrides: Optional[dict], conditioning: str, spec: DataSpec, num_speakers: int) -> WaveNetConfig:
    """WaveNetConfig for ``spec``'s data (classes, rate, hop) with ``conditioning`` and ``overrides``
    (config field -> value; None values are ignored)."""
    check_conditioning(conditioning)
    values = {"classes": spec.classes, "sample_rate": spec.sample_rate, "hop_length": spec.hop_length,
              "speakers": num_speakers if uses_speaker(conditioning) else 0,
              "cond_channels": spec.n_mels if uses_mel(conditioning) else 0}
    known = {f.name for f in fields(WaveNetConfig)}
    for key, value in (overrides or {}).items():
        if key not in known:
            raise RecipeError(f"WaveNet has no setting {key!r}")
        if key in values and value is not None and value != values[key]:
            raise RecipeError(f"WaveNet's {key} follows from the data and the conditioning ({values[key]}), "
                              f"not {value}")
        if value is not None:
            values[key] = value
    try:
        return WaveNetConfig(**values)
    except (TypeError, ValueError) as e:
        raise RecipeError(str(e)) from None


def build_model(config: Union[dict, WaveNetConfig]) -> WaveNet:
    if isinstance(config, dict):
        config = WaveNetConfig(**config)
    return WaveNet(config)


def describe_config(cfg: WaveNetConfig) -> str:
    cond = []
    if cfg.speakers:
        cond.append(f"{cfg.speakers} speakers (embedding {cfg.speaker_dim})")
    if cfg.cond_channels:
        cond.append(f"{cfg.cond_channels} log-mels every {cfg.hop_length} samples ({cfg.upsample} upsampling)")
    return (f"WaveNet R={cfg.residual_channels} S={cfg.skip_channels}, {cfg.stacks} stack"
            f"{'s' if cfg.stacks != 1 else ''} of {cfg.layers_per_stack} layers (kernel {cfg.kernel_size}), "
            f"{cfg.classes} mu-law classes, receptive field {cfg.receptive_field} samples "
            f"({1000 * cfg.receptive_field / cfg.sample_rate:.1f} ms); conditioning: "
            f"{'; '.join(cond) if cond else 'none'}")


# --- losses and metrics ---------------------------------------------------------------------------

def _model_inputs(model: WaveNet, batch: SpeechBatch):
    cfg = model.config
    return (batch.tokens, batch.speakers if cfg.speakers else None, batch.mels if cfg.cond_channels else None)


def make_loss_fn(train: SpeechDataset, crop: int) -> Callable:
    """loss_fn(model, batch, generator) for the Trainer: ``batch`` only says how many crops this
    shard takes; the crops themselves are drawn from ``train`` with the shard's generator (so the
    processes of a torchrun run, each with its own shards' generators, draw different crops)."""
    def loss_fn(model, batch, generator):
        crops = train.crops(len(batch), crop, generator)
        device = next(model.parameters()).device
        crops = SpeechBatch(*(None if t is None else t.to(device) for t in crops))
        return wavenet_module.loss_fn(model, crops, generator)

    return loss_fn


def validation_crops(val: SpeechDataset, n: int, crop: int, seed: int = VAL_SEED) -> SpeechBatch:
    """``n`` fixed crops of the validation utterances (the same every time for the same seed); a
    crop longer than every validation utterance is shortened to the longest (hop-aligned)."""
    longest = int(val.lengths.max())
    if crop > longest:
        crop = max(val.hop_length, longest // val.hop_length * val.hop_length) if val.mels is not None else longest
    return val.crops(n, crop, torch.Generator().manual_seed(seed))


@torch.no_grad()
def crops_nll(model: WaveNet, batch: SpeechBatch, batch_size: int = EVAL_BATCH) -> float:
    """Teacher-forced bits per sample over every predicted sample of ``batch``."""
    total, count = 0.0, 0
    for start in range(0, batch.tokens.shape[0], batch_size):
        rows = slice(start, start + batch_size)
        part = SpeechBatch(batch.tokens[rows], batch.speakers[rows],
                           None if batch.mels is None else batch.mels[rows])
        nats, _ = model.loss(*_model_inputs(model, part))
        n = part.tokens[:, 1:].numel()
        total += float(nats) * n
        count += n
    return total / count / math.log(2)


@torch.no_grad()
def test_nll(model: WaveNet, test: SpeechDataset, max_utterances: Optional[int] = None,
             progress: bool = False) -> dict:
    """Teacher-forced bits per sample over whole test utterances (see the module docstring), and
    the predicted tokens (for the baseline)."""
    from tqdm import tqdm

    was_training = model.training
    model.eval()
    n_utt = len(test) if max_utterances is None else min(max_utterances, len(test))
    if n_utt < 1:
        raise RecipeError("the test split is empty")
    cfg = model.config
    total, count, predicted = 0.0, 0, []
    try:
        for i in tqdm(range(n_utt), desc="test NLL", unit="utt", leave=False, disable=not progress):
            u = test[i]
            if u.tokens.numel() < 2:
                continue
            speaker = torch.tensor([u.speaker]) if cfg.speakers else None
            mels = u.mels[None] if cfg.cond_channels else None
            nats, _ = model.loss(u.tokens[None], speaker, mels)
            n = u.tokens.numel() - 1
            total += float(nats) * n
            count += n
            predicted.append(u.tokens[1:])
    finally:
        model.train(was_training)
    return {"bits_per_sample": total / count / math.log(2), "n_samples": count, "n_utterances": n_utt,
            "tokens": torch.cat(predicted)}


# --- runs and checkpoints -------------------------------------------------------------------------

@dataclass
class TrainSettings:
    """What ``fastgen train wavenet`` takes besides the model and the data."""

    steps: int = 2000
    batch_size: int = 8
    crop: int = 4096
    lr: float = 1e-3
    grad_clip: Optional[float] = 10.0
    seed: int = 0
    eval_every: Optional[int] = None         # default: every EPOCH_STEPS steps (and at the end)
    checkpoint_every: Optional[int] = None   # default: every EPOCH_STEPS steps (and at the end)
    val_crops: int = 16
    micro_batches: int = 1                   # TrainConfig.micro_batches: slices per process per step

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "crop", "val_crops", "micro_batches"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise RecipeError(f"{name} must be a positive integer, got {value!r}")
        if self.crop < 2:
            raise RecipeError(f"crop must be at least 2 samples, got {self.crop}")
        if not _positive_number(self.lr):
            raise RecipeError(f"lr must be a finite number > 0, got {self.lr!r}")
        if not (self.grad_clip is None or _positive_number(self.grad_clip)):
            raise RecipeError(f"grad_clip must be a finite number > 0 or None, got {self.grad_clip!r}")
        if not is_non_negative_int(self.seed):
            raise RecipeError(f"seed must be an integer >= 0, got {self.seed!r}")
        for name in ("eval_every", "checkpoint_every"):
            if not (getattr(self, name) is None or is_positive_int(getattr(self, name))):
                raise RecipeError(f"{name} must be a positive integer or None, got {getattr(self, name)!r}")

    def train_config(self) -> TrainConfig:
        try:
            return TrainConfig(batch_size=self.batch_size, epochs=math.ceil(self.steps / EPOCH_STEPS),
                               max_steps=self.steps, lr=self.lr, grad_clip=self.grad_clip, seed=self.seed,
                               eval_every=self.eval_every or EPOCH_STEPS,
                               checkpoint_every=self.checkpoint_every or EPOCH_STEPS,
                               micro_batches=self.micro_batches)
        except ValueError as e:
            raise RecipeError(str(e)) from None


def _positive_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def run_config(cfg: WaveNetConfig, conditioning: str, spec: DataSpec, splits: Splits, settings: TrainSettings,
               val_crop: int, unigram: dict) -> dict:
    """The run description stored as the checkpoint's model config (JSON)."""
    train = splits.train
    data = {**spec.to_json(), **splits.sizes(), "description": splits.description,
            "fingerprint": data_fingerprint(train.tokens, train.lengths, train.speakers)}
    if spec.source == CORPUS:
        data["corpus_dir"] = str(corpus_dir(spec.corpus_size, spec.sample_rate))
    return {
        "run_format": RUN_FORMAT,
        "kind": KIND,
        "model": asdict(cfg),
        "conditioning": conditioning,
        "data": data,
        "train": {**asdict(settings), "epoch_steps": EPOCH_STEPS,
                  "sampler": "random hop-aligned crops per step from the Trainer's seeded noise generator"},
        "eval": {"val_crops": settings.val_crops, "val_crop": val_crop, "val_seed": VAL_SEED,
                 "test_metric": TEST_METRIC, "baseline": BASELINE, "unigram": unigram},
        "threads": torch.get_num_threads(),  # float results may differ with another thread count
    }


def find_checkpoint(path: Union[str, Path]) -> Path:
    return runs.find_checkpoint(path, "fastgen train wavenet")


def read_run(path: Union[str, Path]):
    """(Checkpoint, run description) of a run folder or checkpoint folder; nothing is built. RecipeError
    (one line, naming config.json) for a description that lacks what eval, sample and --resume read,
    or holds values no run could have."""
    ckpt, run = read_checkpoint(path, (KIND,), "fastgen train wavenet")
    check_run_sections(ckpt, {"model": (), "data": (), "train": (), "eval": ("unigram", "val_crops", "val_crop")})
    for what, check in (("conditioning", lambda: check_conditioning(run.get("conditioning"))),
                        ("model config", lambda: WaveNetConfig(**run["model"])),
                        ("data settings", lambda: spec_from_run(run))):
        try:
            check()
        except (TypeError, ValueError) as e:
            raise invalid_run(ckpt, what, e) from None
    return ckpt, run


def load_run(path: Union[str, Path]):
    """(model in eval mode with the checkpoint's weights, run description, Checkpoint)."""
    ckpt, run = read_run(path)  # the model config is checked there
    return load_weights(build_model(run["model"]), ckpt), run, ckpt


def spec_from_run(run: dict) -> DataSpec:
    return DataSpec.from_json(run["data"])


def _splits_for(model: WaveNet, run: dict, splits: Optional[Splits]) -> Splits:
    if splits is not None and (splits.test.mels is not None or not model.config.cond_channels):
        return splits
    return load_splits(spec_from_run(run), mels=bool(model.config.cond_channels))


def evaluate_run(model: WaveNet, run: dict, max_test: Optional[int] = None, progress: bool = False,
                 splits: Optional[Splits] = None) -> dict:
    """Test bits per sample (:func:`test_nll`) over the run's test utterances (the first
    ``max_test``), the unigram baseline on the same samples, and what it was measured on.
    ``splits``: the run's data when already loaded (e.g. TrainResult.splits)."""
    spec = spec_from_run(run)
    splits = _splits_for(model, run, splits)
    start = time.perf_counter()
    result = test_nll(model, splits.test, max_test, progress=progress)
    elapsed = time.perf_counter() - start
    base = unigram_baseline(splits.train.tokens, result.pop("tokens"), spec.classes)
    result.update(unigram_bits_per_sample=base.test_bits, unigram_train_entropy=base.train_bits,
                  data=spec.name, split=splits.description, seconds=elapsed,
                  n_test_utterances=len(splits.test))
    return result


@dataclass
class TrainResult:
    summary: dict
    initial_eval: dict          # eval_* metrics before the first step ({} when resumed)
    history: list               # log rows written in this session
    out_dir: Path
    run: dict
    model: WaveNet
    splits: Splits = field(repr=False)


@holds_run_folder
def train_run(model: Union[dict, WaveNetConfig, None], conditioning: str, spec: DataSpec, settings: TrainSettings,
              out_dir: Union[str, Path], *, resume: bool = False, log: Callable[[str], None] = print,
              progress: bool = True) -> TrainResult:
    """Train WaveNet on ``spec``'s speech with the fastgen Trainer into ``out_dir`` (log.csv,
    summary.json, checkpoint/), evaluating validation bits per sample every ``settings.eval_every``
    steps and at the end. ``model`` is a config or overrides of WaveNetConfig's defaults (see
    :func:`make_config`); ``conditioning`` one of :data:`CONDITIONINGS`.

    ``resume``: continue the checkpoint in ``out_dir`` exactly (pass the settings the run was
    started with, ``steps`` may grow). Without it, ``out_dir`` must not hold a checkpoint.
    """
    check_conditioning(conditioning)
    out = Path(out_dir)
    ckpt_dir = out / "checkpoint"
    has_checkpoint = (ckpt_dir / "config.json").is_file() or (out / "checkpoint.old" / "config.json").is_file()
    if resume and not has_checkpoint:
        raise RecipeError(f"cannot resume: {out} holds no checkpoint ({ckpt_dir}/config.json is missing)")
    if not resume and has_checkpoint:
        raise RecipeError(f"{out} already holds a checkpoint: pass --resume to continue that run, or choose "
                          "another --out folder")
    if resume:
        check_run_log(out)

    mels = uses_mel(conditioning)
    with main_process_first():  # under torchrun one process synthesises the corpus, the others read it
        splits = load_splits(spec, mels=mels, progress=progress)
    if mels and settings.crop % spec.hop_length:
        raise RecipeError(f"--crop {settings.crop} must be a multiple of the hop length {spec.hop_length} "
                          "with mel conditioning (each crop comes with whole mel frames)")
    longest = int(splits.train.lengths.max())
    if settings.crop > longest:
        raise RecipeError(f"--crop {settings.crop} is longer than every training utterance (the longest has "
                          f"{longest} samples = {longest / spec.sample_rate:.2f} s); use a shorter crop")
    if isinstance(model, WaveNetConfig):
        cfg = model
        expected = make_config({}, conditioning, spec, splits.train.num_speakers)
        for name in ("classes", "sample_rate", "hop_length", "speakers", "cond_channels"):
            if getattr(cfg, name) != getattr(expected, name):
                raise RecipeError(f"the model config has {name}={getattr(cfg, name)}, the data and conditioning "
                                  f"need {getattr(expected, name)}")
    else:
        cfg = make_config(model, conditioning, spec, splits.train.num_speakers)
    _check_step_fits(cfg, settings)

    val = validation_crops(splits.val, settings.val_crops, settings.crop)
    val_predicted = val.tokens[:, 1:]
    unigram_val = unigram_baseline(splits.train.tokens, val_predicted, spec.classes)
    unigram = {"train_entropy": unigram_val.train_bits, "val_bits_per_sample": unigram_val.test_bits}

    seed_everything(settings.seed)
    net = build_model(cfg)
    run = run_config(cfg, conditioning, spec, splits, settings, int(val.tokens.shape[1]), unigram)
    if resume:
        check_same_data(read_run(out)[0], run, spec.name)
    config = settings.train_config()
    config.progress = progress

    def eval_fn(m: WaveNet) -> dict:
        return {"val_bits_per_sample": crops_nll(m, val)}

    trainer = Trainer(net, make_loss_fn(splits.train, settings.crop), config, out_dir=out, eval_fn=eval_fn,
                      model_config=run)
    n_params = sum(p.numel() for p in net.parameters())
    log(f"{describe_config(cfg)}; {n_params:,} parameters")
    log(f"data: {splits.description}")
    log(f"training: {settings.steps} steps of {settings.batch_size} random crops of {settings.crop} samples "
        f"({settings.crop / spec.sample_rate:.3f} s), Adam lr {settings.lr}")
    if settings.crop < cfg.receptive_field:
        log(f"note: the crop ({settings.crop}) is shorter than the receptive field ({cfg.receptive_field}): "
            "no prediction in training sees the whole receptive field")
    log(f"validation set: {val.tokens.shape[0]} fixed crops of {val.tokens.shape[1]} samples; unigram baseline "
        f"there {unigram_val.test_bits:.3f} bits/sample")
    initial: dict = {}
    if resume:
        try:
            trainer.load(ckpt_dir)
        except CheckpointError as e:
            raise RecipeError(str(e)) from None
        log(f"resuming at step {trainer.step} of {settings.steps}")
    else:
        initial = trainer.evaluate()  # {} on every process but the first (see Trainer.evaluate)
        if initial:
            log(f"validation before training: {initial['eval_val_bits_per_sample']:.3f} bits/sample")
    dummy = torch.zeros(EPOCH_STEPS * settings.batch_size, dtype=torch.uint8)  # one "epoch" of crop slots
    try:
        summary = trainer.fit(dummy)
    except DataLayoutError as e:  # e.g. a batch that does not split over the processes
        raise RecipeError(str(e)) from None
    return TrainResult(summary, initial, trainer.history, out, run, net, splits)


# --- sampling -------------------------------------------------------------------------------------

def _check_step_fits(cfg: WaveNetConfig, settings: TrainSettings) -> None:
    """RecipeError before training when one step's activations cannot fit: every layer pads a crop by
    its dilation, and autograd keeps about 6R + S values per position and layer."""
    widest = (cfg.kernel_size - 1) * 2 ** (cfg.layers_per_stack - 1)
    values = settings.batch_size * (cfg.layers * (settings.crop + widest) * (6 * cfg.residual_channels + cfg.skip_channels)
                                    + settings.crop * 2 * (cfg.head_channels + cfg.classes))
    check_fits(4 * values, f"a training step ({settings.batch_size} crops of {settings.crop:,} samples through "
                           f"{cfg.layers} layers, dilated up to {widest:,} samples)", RecipeError)


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
        test = _splits_for(model, run, splits).test
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
    from fastgen.ops.wavenet import _resolve_backend

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


__all__ = ["BASELINE", "CONDITIONINGS", "CORPUS", "DEFAULT_CORPUS_SIZE", "DataSpec", "EPOCH_STEPS", "KIND",
           "RecipeError", "SampleResult", "Splits", "TEST_METRIC", "TrainResult", "TrainSettings", "build_model",
           "check_conditioning", "corpus_dir", "crops_nll", "data_root", "describe_config", "evaluate_run",
           "find_checkpoint", "load_run", "load_splits", "make_config", "make_loss_fn", "read_run", "run_config",
           "sample_run", "spec_from_run", "test_nll", "train_run", "uses_mel", "uses_speaker", "validation_crops"]
