"""Training a WaveNet run (:func:`train_run`), its run description and checkpoint (:func:`read_run`,
:func:`load_run`), and its test evaluation (:func:`evaluate_run`)."""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional, Union

import torch

from fastgen.data import unigram_baseline
from fastgen.memory import check_fits
from fastgen.models.config_utils import is_non_negative_int, is_positive_int
from fastgen.models.wavenet import WaveNet, WaveNetConfig
from fastgen.recipes import runs
from fastgen.recipes.runs import (RUN_FORMAT, RecipeError, TrainResult, check_run_folder, check_run_sections,
                                  check_same_data, data_fingerprint, holds_run_folder, invalid_run, load_weights,
                                  read_checkpoint, resume_trainer)
from fastgen.recipes.wavenet.data import CORPUS, DataSpec, Splits, corpus_dir, load_splits, spec_from_run, splits_for
from fastgen.recipes.wavenet.model import (BASELINE, TEST_METRIC, VAL_SEED, build_model, check_conditioning,
                                           crops_nll, describe_config, make_config, make_loss_fn, test_nll,
                                           uses_mel, validation_crops)
from fastgen.train import TrainConfig, Trainer, seed_everything
from fastgen.train.distributed import main_process_first
from fastgen.train.trainer import DataLayoutError

KIND = "wavenet"
EPOCH_STEPS = 100           # steps per "epoch" (the Trainer's unit for fractional epochs in log.csv)


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



def evaluate_run(model: WaveNet, run: dict, max_test: Optional[int] = None, progress: bool = False,
                 splits: Optional[Splits] = None) -> dict:
    """Test bits per sample (:func:`test_nll`) over the run's test utterances (the first
    ``max_test``), the unigram baseline on the same samples, and what it was measured on.
    ``splits``: the run's data when already loaded (e.g. TrainResult.data)."""
    spec = spec_from_run(run)
    splits = splits_for(model, run, splits)
    start = time.perf_counter()
    result = test_nll(model, splits.test, max_test, progress=progress)
    elapsed = time.perf_counter() - start
    base = unigram_baseline(splits.train.tokens, result.pop("tokens"), spec.classes)
    result.update(unigram_bits_per_sample=base.test_bits, unigram_train_entropy=base.train_bits,
                  data=spec.name, split=splits.description, seconds=elapsed,
                  n_test_utterances=len(splits.test))
    return result


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
    check_run_folder(out, resume)

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
        resume_trainer(trainer, out)
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
    return TrainResult(summary, initial, trainer.history, out, run, net, data=splits)


def _check_step_fits(cfg: WaveNetConfig, settings: TrainSettings) -> None:
    """RecipeError before training when one step's activations cannot fit: every layer pads a crop by
    its dilation, and autograd keeps about 6R + S values per position and layer."""
    widest = (cfg.kernel_size - 1) * 2 ** (cfg.layers_per_stack - 1)
    values = settings.batch_size * (cfg.layers * (settings.crop + widest) * (6 * cfg.residual_channels + cfg.skip_channels)
                                    + settings.crop * 2 * (cfg.head_channels + cfg.classes))
    check_fits(4 * values, f"a training step ({settings.batch_size} crops of {settings.crop:,} samples through "
                           f"{cfg.layers} layers, dilated up to {widest:,} samples)", RecipeError)
