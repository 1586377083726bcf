"""Training an AVB / AVB+AC / Gaussian-VAE run (:func:`train_run`), reading it back (:func:`load_run`),
its evaluation (:func:`evaluate_run`: the ELBO estimate and the AIS log-likelihood) and sampling.

Data (``data``): "toy" (the paper's four one-hot points, fastgen.models.avb.toy) or a binary image source
of fastgen.recipes.pixelcnn.data (the same splits and binarisation protocols as every image family:
"mnist-subset", "fashion-mnist"), images flattened to 784 Bernoulli pixels. Runs use the multi-phase
Trainer (every optimizer checkpointed, resumable exactly, data-parallel under torchrun)."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Callable, Optional, Union

import torch
from torch import Tensor, nn

from fastgen.eval.ais import ais_log_likelihood
from fastgen.models.avb import AVB, AVBConfig, avb_phases, elbo_via_adversary, toy_bounds, toy_data
from fastgen.recipes.pixelcnn.data import BINARY_SOURCES, DataSpec, load_split, spec_from_json
from fastgen.recipes.runs import (RUN_FORMAT, RecipeError, TrainResult, check_run_folder, check_same_data,
                                  data_fingerprint, holds_run_folder, invalid_run, load_weights, read_checkpoint,
                                  resume_trainer)
from fastgen.train import Phase, TrainConfig, Trainer, seed_everything
from fastgen.train.trainer import DataLayoutError

KIND = "avb"
COMMAND = "fastgen train avb"
TOY = "toy"
DATA = (TOY,) + BINARY_SOURCES
TOY_ROWS = 4096
METRIC = ("ELBO estimate (AVB: E_q[log p(x|z)] - E_q[T], the paper's estimate through the adversary; VAE: "
          "analytic KL) and AIS log p(x) (HMC transitions, sigmoid schedule; a stochastic lower bound), nats")


def variant_config(variant: str, data: str, overrides: Optional[dict] = None) -> AVBConfig:
    """"avb", "avb-ac" or "vae" for ``data``: the toy's small config or the binary images' one."""
    values = {"avb": {}, "avb-ac": {"adaptive_contrast": True}, "vae": {"encoder": "gaussian"}}.get(variant)
    if values is None:
        raise RecipeError(f"unknown variant {variant!r}; choose avb, avb-ac or vae")
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        return AVBConfig.toy(**values) if data == TOY else AVBConfig(**values)
    except (TypeError, ValueError) as e:
        raise RecipeError(str(e)) from None


def _spec(data: dict) -> Optional[DataSpec]:
    return None if data["source"] == TOY else spec_from_json(data)


def load_rows(data: dict, split: str, limit: Optional[int] = None) -> tuple[Tensor, str]:
    """(rows, description): toy one-hot rows (float), or uint8 images flattened [N, 784] (held-out splits binarised)."""
    if data["source"] == TOY:
        rows = toy_data(TOY_ROWS if split == "train" else 4 * ((limit or 400) // 4 or 1))
        return rows, f"the four one-hot points, {len(rows)} rows"
    images = load_split(_spec(data), split, limit)
    return images.images.flatten(1), images.description


def prepare(data: dict, batch: Tensor, generator: Optional[torch.Generator], dtype=torch.float32) -> Tensor:
    """A batch as the model sees it: toy rows as they are; images in [0, 1], dynamically binarised in training."""
    if data["source"] == TOY:
        return batch.to(dtype)
    x = batch.to(dtype) / 255
    return torch.bernoulli(x, generator=generator) if generator is not None and data["binarize"] == "dynamic" else x


def training_phases(model: AVB, data: dict, schedule: str, adversary_steps: int, lr: float,
                    adversary_lr: Optional[float]) -> list[Phase]:
    """avb_phases with each loss fed prepared batches (one wrapper per loss, so a simultaneous group keeps
    sharing its forward)."""
    wrapped: dict[int, Callable] = {}

    def wrap(fn):
        return wrapped.setdefault(id(fn), lambda m, batch, g: fn(m, prepare(data, batch, g), g))
    phases = avb_phases(model, schedule, adversary_steps, lr=lr, adversary_lr=adversary_lr)
    return [Phase(p.name, p.params, wrap(p.loss_fn), lr=p.lr, betas=p.betas, repeat=p.repeat) for p in phases]


def lr_schedule(start: Optional[int], half_life: Optional[int] = None) -> Optional[Callable[[int], float]]:
    """The factor on every network's learning rate at a step: 1 until step ``start``, then halving every
    ``half_life`` steps; None (constant rates) when ``start`` is None. A pure function of the step and not of
    the run's length, so a resumed or lengthened run follows the same rates as an uninterrupted one."""
    if start is None:
        return None
    for name, value, least in (("lr_decay_start", start, 0), ("lr_half_life", half_life, 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise RecipeError(f"{name} must be an int >= {least}, got {value!r}")
    return lambda step: 0.5 ** (max(0, step - start) / half_life)


def read_run(path: Union[str, Path]):
    """(Checkpoint, run description), checked; nothing is built."""
    ckpt, run = read_checkpoint(path, (KIND,), COMMAND)
    for section in ("model", "data", "training"):
        if not isinstance(run.get(section), dict):
            raise invalid_run(ckpt, section, "missing")
    try:
        AVBConfig(**run["model"])
    except (TypeError, ValueError) as e:
        raise invalid_run(ckpt, "model config", e) from None
    return ckpt, run


def load_run(path: Union[str, Path]):
    """(model in eval mode with the checkpoint's weights, run description, Checkpoint)."""
    ckpt, run = read_run(path)
    return load_weights(AVB(AVBConfig(**run["model"])), ckpt), run, ckpt


@holds_run_folder
def train_run(variant: str, data: dict, train_config: TrainConfig, out_dir: Union[str, Path], *,
              model: Optional[dict] = None, schedule: str = "alternate", adversary_steps: int = 1,
              adversary_lr: Optional[float] = None, lr_decay_start: Optional[int] = None,
              lr_half_life: Optional[int] = None, resume: bool = False,
              log: Callable[[str], None] = print) -> TrainResult:
    """Train ``variant`` on ``data`` ({"source": "toy"} or a DataSpec's JSON) into ``out_dir``; validation
    ELBO every ``eval_every`` steps (the toy: its bounds, fastgen.models.avb.toy_bounds); learning rates
    decayed from ``lr_decay_start`` on (:func:`lr_schedule`)."""
    out = Path(out_dir)
    check_run_folder(out, resume)
    cfg = variant_config(variant, data["source"], model)
    lr_lambda = lr_schedule(lr_decay_start, lr_half_life)
    if data["source"] != TOY:
        data = {**DataSpec(**{k: data.get(k) for k in ("source", "path", "binarize", "max_train")},
                           binarize_seed=data.get("binarize_seed", 0)).to_json()}
    train, train_text = load_rows(data, "train")
    val, val_text = load_rows(data, "val", 1000) if data["source"] != TOY else (None, "the toy's bounds")
    if len(train) < train_config.batch_size:
        raise RecipeError(f"{len(train)} training rows, fewer than one batch of {train_config.batch_size}")
    if cfg.data_dim != train.shape[1]:
        raise RecipeError(f"the data have {train.shape[1]} dimensions, the model {cfg.data_dim}")
    run = {"run_format": RUN_FORMAT, "kind": KIND, "variant": variant, "model": asdict(cfg),
           "data": {**data, "train_split": train_text, "val_split": val_text, "fingerprint": data_fingerprint(train)},
           "training": {"schedule": schedule, "adversary_steps": adversary_steps, "adversary_lr": adversary_lr,
                        "lr_decay_start": lr_decay_start, "lr_half_life": lr_half_life},
           "threads": torch.get_num_threads()}
    if resume:
        check_same_data(read_run(out)[0], run, data["source"])
    seed_everything(train_config.seed)
    net = AVB(cfg)

    def eval_fn(m: nn.Module) -> dict:
        if val is None:
            return {f"toy_{k}": v for k, v in toy_bounds(m, 400, 10_000, torch.Generator().manual_seed(0)).items()}
        x = prepare(data, val, None)
        return {"val_elbo": float(elbo_via_adversary(m, x, 1, torch.Generator().manual_seed(0)).mean())}

    phases = training_phases(net, data, schedule, adversary_steps, train_config.lr, adversary_lr)
    trainer = Trainer(net, phases=phases, config=train_config, out_dir=out, eval_fn=eval_fn, model_config=run,
                      lr_lambda=lr_lambda)
    log(f"{variant}: {sum(p.numel() for p in net.parameters()):,} parameters, latent {cfg.latent_dim}, "
        f"phases {', '.join(p.name for p in phases)} ({schedule if net.implicit else 'one loss'})")
    log(f"data: {train_text}")
    if resume:
        resume_trainer(trainer, out)
    try:
        summary = trainer.fit(train)
    except DataLayoutError as e:
        raise RecipeError(str(e)) from None
    return TrainResult(summary, {}, trainer.history, out, run, net, data=val)


def evaluate_run(model: AVB, run: dict, split: str = "test", max_rows: int = 100, ais_steps: int = 500,
                 ais_chains: int = 16, leapfrog_steps: int = 10, elbo_samples: int = 10, seed: int = 0,
                 progress: bool = False) -> dict:
    """The ELBO estimate and AIS log p(x) in nats, mean and standard error over the first ``max_rows`` rows of
    ``split``, and each row's values (the toy adds its bounds, fastgen.models.avb.toy_bounds)."""
    if split not in ("test", "val"):
        raise RecipeError(f"evaluate on the test or the validation split, not {split!r}")
    data = run["data"]
    rows, text = load_rows(data, split, max_rows)
    x = prepare(data, rows[:max_rows], None, torch.float64)
    model = model.double()
    generator = torch.Generator().manual_seed(seed)
    elbo = elbo_via_adversary(model, x, elbo_samples, generator)
    ais, acceptance = ais_log_likelihood(model.log_likelihood, x, model.config.latent_dim, n_chains=ais_chains,
                                         n_steps=ais_steps, leapfrog_steps=leapfrog_steps, generator=generator,
                                         progress=progress, return_acceptance=True, batch_size=50)
    sem = lambda v: float(v.std() / len(v) ** 0.5) if len(v) > 1 else float("nan")  # noqa: E731
    out = {"elbo": float(elbo.mean()), "elbo_sem": sem(elbo), "ais": float(ais.mean()), "ais_sem": sem(ais),
           "ais_acceptance": acceptance, "n": len(x), "split": split, "data": data["source"], "description": text,
           "metric": METRIC, "ais_settings": {"chains": ais_chains, "steps": ais_steps, "leapfrog": leapfrog_steps},
           "per_row": {"elbo": elbo.tolist(), "ais": ais.tolist()}}  # for paired comparisons (paired.py)
    if data["source"] == TOY:
        out["toy"] = toy_bounds(model, 1000, 50_000, generator=generator)
    return out


@torch.no_grad()
def sample_rows(model: AVB, n: int, seed: int) -> Tensor:
    """n decoder means at z ~ p(z), as uint8 (images 0..255; the toy's probabilities ×255)."""
    return (model.sample(n, torch.Generator().manual_seed(seed)) * 255).round().to(torch.uint8)


__all__ = ["DATA", "KIND", "METRIC", "TOY", "evaluate_run", "load_rows", "load_run", "lr_schedule", "prepare",
           "read_run", "sample_rows", "train_run", "training_phases", "variant_config"]
