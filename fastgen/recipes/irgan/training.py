"""An IRGAN run on MovieLens-100k: DNS pretraining of the generator, the IRGAN rounds, the BPR-MF and
popularity baselines, each stopped at its best validation epoch; then the one test evaluation.

Run folder::

    dns/        DNS-MF pretraining (Trainer: log.csv, checkpoint/), dns/best/ its best-on-validation MF
    bpr/        the BPR-MF baseline, likewise
    log.csv, checkpoint/    the IRGAN rounds (both networks and both optimizers)
    best/       the IRGAN generator at its best validation round (round 0 = its DNS initialisation)
    eval.json   the test figures (:func:`test_report`)
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable, Union

import torch
from torch import nn

from fastgen.models.irgan import (ESTIMATORS, IRGAN, MF, MFConfig, REWARDS, bpr_loss, discriminator_loss,
                                  draw_negatives, generator_loss)
from fastgen.recipes.irgan.data import DataSpec, TrainVal, load_train_val
from fastgen.recipes.irgan.folders import check_irgan_folder
from fastgen.recipes.irgan.schedule import layout_refusals, phase_of_batch, rounds_stream
from fastgen.recipes.irgan.selection import BestOnValidation, split_metrics
from fastgen.recipes.runs import RUN_FORMAT, RecipeError, has_checkpoint, holds_run_folder, resume_trainer
from fastgen.train import Phase, TrainConfig, Trainer, derive_seed, seed_everything
from fastgen.train.checkpoint import load_checkpoint

KIND = "irgan"
OPTIMIZERS = ("adam", "sgd")


@dataclass(frozen=True)
class Settings:
    """Everything an IRGAN run depends on. The schedule defaults are the authors' (15 rounds of 100 D
    passes, negatives redrawn every 5, then 50 G passes; embeddings of size 5); batch sizes and
    learning rates are ours (vectorised steps with Adam instead of per-user SGD)."""

    dim: int = 5
    pre_epochs: int = 40        # DNS pretraining (and the BPR baseline)
    pre_batch: int = 512
    pre_lr: float = 0.01
    pre_l2: float = 0.01
    candidates: int = 5         # DNS: the best of this many uniform negatives
    rounds: int = 15
    d_epochs: int = 100
    d_refresh: int = 5
    g_epochs: int = 50
    batch_size: int = 4096      # D pairs per step (G steps use the same batch, padded)
    g_users: int = 256          # users per G step
    d_lr: float = 1e-3
    g_lr: float = 1e-5          # chosen on validation (benchmarks/irgan_tune.py): larger rates lose NDCG
    d_l2: float = 0.1
    reward: str = "code"
    baseline: bool = True
    estimator: str = "sampled"  # REINFORCE with importance sampling; "exact": the softmax's expectation
    g_optimizer: str = "adam"   # or "sgd" (plain, as the authors' code)
    seed: int = 0

    def __post_init__(self) -> None:
        for name, allowed in (("reward", REWARDS), ("estimator", ESTIMATORS), ("g_optimizer", OPTIMIZERS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"Settings.{name} must be one of {allowed}, got {getattr(self, name)!r}")
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "int" and f.name != "seed" and not (isinstance(value, int) and value >= 1):
                raise ValueError(f"Settings.{f.name} must be an int >= 1, got {value!r}")
            if f.type == "float" and not value >= 0:
                raise ValueError(f"Settings.{f.name} must be >= 0, got {value!r}")

    def quick(self, **changes) -> "Settings":
        return Settings(**{**asdict(self), **changes})


def run_config(kind: str, settings: Settings, spec: DataSpec, data: TrainVal) -> dict:
    return {"run_format": RUN_FORMAT, "kind": kind,
            "model": asdict(MFConfig(data.train.n_users, data.train.n_items, settings.dim)),
            "data": {**spec.to_json(), "description": data.description,
                     "n_train_positives": len(data.train.indices), "n_val_positives": len(data.val.indices)},
            "settings": asdict(settings), "threads": torch.get_num_threads()}


def _trainer_config(settings: Settings, batch: int, epochs: int, lr: float, eval_every: int) -> TrainConfig:
    return TrainConfig(batch_size=batch, epochs=epochs, lr=lr, grad_clip=None, seed=settings.seed,
                       eval_every=eval_every, checkpoint_every=eval_every, progress=True, log_every=eval_every)


def validation(data: TrainVal) -> Callable[[nn.Module], dict[str, float]]:
    """An MF's validation metrics: ranking all items but the user's train positives."""
    return lambda scorer: split_metrics(scorer, data.train, data.val)


def fit_mf(kind: str, settings: Settings, spec: DataSpec, data: TrainVal, out: Path, candidates: int,
           log: Callable[[str], None] = print) -> Path:
    """Train an MF with BPR against the best of ``candidates`` negatives (1: BPR-MF; more: DNS-MF) into
    ``out``; returns ``out/best`` (its best-on-validation weights). Resumes a run left in ``out``."""
    cfg = MFConfig(data.train.n_users, data.train.n_items, settings.dim)
    seed_everything(settings.seed)
    model = MF(cfg, torch.Generator().manual_seed(derive_seed(settings.seed, kind)))
    users, items = data.train.pairs()

    def loss_fn(m, batch, generator):
        return bpr_loss(m, batch[0], batch[1], generator, candidates, settings.pre_l2)

    steps = len(users) // settings.pre_batch
    if steps == 0:
        raise RecipeError(f"{len(users)} train positives, fewer than one pretraining batch of {settings.pre_batch}")
    train_config = _trainer_config(settings, settings.pre_batch, settings.pre_epochs, settings.pre_lr, steps)
    description = run_config(kind, settings, spec, data)
    trainer = Trainer(model, loss_fn, train_config, out_dir=out, model_config=description)
    trainer.eval_fn = BestOnValidation(out / "best", description, validation(data), lambda m: m,
                                       lambda: trainer.step)
    if has_checkpoint(out):
        resume_trainer(trainer, out)
    elif trainer.step == 0:
        trainer.evaluate()
    start = time.perf_counter()
    with layout_refusals():
        trainer.fit((users, items))
    log(f"{kind}: {trainer.step} steps, {time.perf_counter() - start:.1f} s; best validation "
        f"{trainer.eval_fn.best:.4f}")
    return out / "best"


def load_mf(folder: Path) -> tuple[MF, dict]:
    """(MF with the weights of a best/ folder, its run description)."""
    ckpt = load_checkpoint(folder)
    model = MF(MFConfig(**ckpt.config["model"]))
    model.load_state_dict(ckpt.model_state)
    return model.eval(), ckpt.config


@holds_run_folder
def train_run(settings: Settings, spec: DataSpec, out_dir: Union[str, Path], *, resume: bool = False,
              baselines: bool = True, log: Callable[[str], None] = print) -> dict:
    """The whole run into ``out_dir`` (see the module docstring); returns {name: seconds}. The test
    split is not read here (see fastgen.recipes.irgan.report.test_report)."""
    out = Path(out_dir)
    check_irgan_folder(out, resume, "items")
    data = load_train_val(spec)
    log(f"data: {data.description}; {len(data.train.indices):,} train and {len(data.val.indices):,} validation "
        "positives")
    times = {}
    start = time.perf_counter()
    dns = fit_mf("dns", settings, spec, data, out / "dns", settings.candidates, log)
    times["dns"] = time.perf_counter() - start
    start = time.perf_counter()
    fit_irgan(settings, spec, data, out, dns, log)
    times["irgan"] = time.perf_counter() - start
    if baselines:
        start = time.perf_counter()
        fit_mf("bpr", settings, spec, data, out / "bpr", 1, log)
        times["bpr"] = time.perf_counter() - start
    return times


def fit_irgan(settings: Settings, spec: DataSpec, data: TrainVal, out: Path, dns: Path,
               log: Callable[[str], None]) -> Trainer:
    cfg = MFConfig(data.train.n_users, data.train.n_items, settings.dim)
    seed_everything(settings.seed)
    model = IRGAN(cfg, torch.Generator().manual_seed(derive_seed(settings.seed, "irgan")))
    model.generator.load_state_dict(load_mf(dns)[0].state_dict())
    pair_users, pair_items = data.train.pairs()
    mask = data.train.mask()
    negatives: dict[int, torch.Tensor] = {}  # key -> one generator pick per train positive

    def d_loss(m, batch, generator):
        _, key, rows, _ = batch
        k = int(key[0])
        if k not in negatives:  # drawn once per key with G as it is during the whole D block
            negatives.clear()
            rng = torch.Generator().manual_seed(derive_seed(settings.seed, "negatives", k))
            negatives[k] = draw_negatives(m.generator, data.train, rng)
        return discriminator_loss(m.discriminator, pair_users[rows], pair_items[rows], negatives[k][rows],
                                  settings.d_l2)

    def g_loss(m, batch, generator):
        rows, n = batch[2], int(batch[3][0])
        users = rows[rows >= 0]
        if len(users) == 0:  # an all-padding shard of a process: no gradient, but a graph to back-propagate
            return m.generator.item_bias.sum() * 0, {"reward": torch.zeros(())}
        loss, metrics = generator_loss(m.generator, m.discriminator, users, data.train, mask, generator,
                                       settings.reward, settings.baseline, estimator=settings.estimator)
        # the Trainer averages shards: weigh this shard's users so that the average is the global batch's mean
        return loss * len(users) * (settings.batch_size / len(rows)) / n, metrics

    users = data.train.users_with_items()
    stream = rounds_stream(len(pair_users), users, settings.batch_size, settings.g_users, settings.d_epochs,
                           settings.d_refresh, settings.g_epochs)
    description = run_config(KIND, settings, spec, data)
    g_sgd = (lambda params: torch.optim.SGD(params, lr=settings.g_lr)) if settings.g_optimizer == "sgd" else None
    phases = [Phase("D", model.discriminator, d_loss, lr=settings.d_lr),
              Phase("G", model.generator, g_loss, **({"optimizer": g_sgd} if g_sgd else {"lr": settings.g_lr}))]
    config = _trainer_config(settings, settings.batch_size, settings.rounds, settings.g_lr, stream.steps_per_epoch)
    trainer = Trainer(model, phases=phases, phase_of=phase_of_batch, config=config, out_dir=out,
                      model_config=description)
    trainer.eval_fn = BestOnValidation(out / "best", description, validation(data), lambda m: m.generator,
                                       lambda: trainer.step // stream.steps_per_epoch)
    if has_checkpoint(out):
        resume_trainer(trainer, out)
    else:
        trainer.evaluate()  # round 0: the DNS initialisation competes too
    start = time.perf_counter()
    with layout_refusals():
        trainer.fit(stream)
    log(f"irgan: {trainer.step // stream.steps_per_epoch} rounds ({trainer.step} steps), "
        f"{time.perf_counter() - start:.1f} s; best validation {trainer.eval_fn.best:.4f}")
    return trainer


__all__ = ["KIND", "OPTIMIZERS", "Settings", "fit_irgan", "fit_mf", "load_mf", "run_config", "train_run"]
