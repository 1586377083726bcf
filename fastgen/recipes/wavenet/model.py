"""WaveNet's model for a run (config from the data and the conditioning) and its metrics: the
training loss on random crops, validation bits per sample on fixed crops, test bits per sample over
whole utterances."""
from __future__ import annotations

import math
from dataclasses import fields
from typing import Callable, Optional, Union

import torch

from fastgen.data import SpeechBatch, SpeechDataset
from fastgen.models import wavenet as wavenet_module
from fastgen.models.wavenet import WaveNet, WaveNetConfig
from fastgen.recipes.runs import RecipeError
from fastgen.recipes.wavenet.data import DataSpec

CONDITIONINGS = ("none", "speaker", "mel", "both")
VAL_SEED = 1234             # seed of the fixed validation crops
EVAL_BATCH = 8              # validation crops per forward pass
TEST_METRIC = ("teacher-forced cross-entropy over every whole test utterance (each sample after the first "
               "predicted from all earlier samples of its utterance), in bits per sample, averaged over "
               "all predicted samples")
BASELINE = ("mu-law unigram baseline: training-set token frequencies (add-one smoothed), cross-entropy "
            "on the same predicted test samples")


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
