"""Training a VAE-GAN / VAE / GAN run on Fashion-MNIST with fastgen's multi-phase Trainer.

One Phase per network (encoder, decoder, discriminator; each its own Adam, all checkpointed), run as
one simultaneous group: its shared loss function is the routed step of fastgen.models.vaegan.step
(one forward of each network, each gradient routed once), handed to the phases as surrogate losses
that carry exactly the routed gradients. Resume is exact and ``torchrun`` data-parallel as every
Trainer run. With the balancing option a skipped network's optimizer does not step at all (no
moment update), as in the authors' code.

Data (``data``): "fashion-mnist" (default): grey values in [0, 1], the training split less its
validation part (6,000 images, fastgen.data.splits), validation for the periodic evaluation (model
selection), the test split read only by fastgen.recipes.vaegan.evaluation. "lfw-faces": scikit-image's
100 faces resized to 28 x 28 (fastgen.data.faces), 90 for training and 10 for validation; no test
split and no Fréchet distance (the classifier knows clothes, not faces): a source for pictures.
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Callable, Optional, Union

import torch

from fastgen.models.vaegan import VAEGAN, VAEGANConfig, routed_step, surrogate_losses
from fastgen.recipes.runs import (RUN_FORMAT, RecipeError, TrainResult, check_run_folder, check_run_sections,
                                  check_same_data, data_fingerprint, holds_run_folder, invalid_run, load_weights,
                                  read_checkpoint, resume_trainer)
from fastgen.train import Phase, TrainConfig, Trainer, seed_everything
from fastgen.train.trainer import DataLayoutError

KINDS = ("vaegan",)
DATA = ("fashion-mnist", "lfw-faces")
FACES = "lfw-faces"
COMMAND = "fastgen train vaegan|vae"
BETAS = (0.5, 0.999)  # DCGAN's Adam (the paper used RMSProp; Adam is the usual port)


class GatedAdam(torch.optim.Adam):
    """Adam whose step is skipped while ``gate[name]`` is False (the balancing option)."""

    def __init__(self, params, gate: dict, name: str, **kwargs):
        super().__init__(params, **kwargs)
        self.gate, self.name = gate, name

    def step(self, closure=None):
        if not self.gate.get(self.name, True):
            return None
        return super().step(closure)


def make_phases(model: VAEGAN, lr: float) -> list[Phase]:
    """The Trainer's phases: one per network, all from one routed forward (a simultaneous group)."""
    gate: dict[str, bool] = {}

    def loss_fn(m: VAEGAN, batch, generator):
        routed = routed_step(m, batch, generator)
        gate.update(routed.updates)
        losses = routed.losses
        metrics = {"kl": losses.kl.detach(), "recon": losses.recon.detach()}
        if m.config.has_discriminator:
            metrics.update(real_cost=losses.real_cost, fake_cost=losses.fake_cost,
                           dec_updated=float(routed.updates["decoder"]),
                           dis_updated=float(routed.updates["discriminator"]))
        return surrogate_losses(m, routed), metrics

    return [Phase(name, net, loss_fn, optimizer=lambda params, name=name: GatedAdam(params, gate, name, lr=lr,
                                                                                    betas=BETAS))
            for name, net in model.networks().items()]


def load_images(split: str, limit: Optional[int] = None, data: str = "fashion-mnist"):
    """(images float [N, 1, 28, 28] in [0, 1], labels or None for the faces) of ``split`` of ``data``."""
    if data not in DATA:
        raise RecipeError(f"data must be one of {', '.join(DATA)}, got {data!r}")
    if data == FACES:
        from fastgen.data import load_lfw_faces
        if split == "test":
            raise RecipeError("lfw-faces has no test split (100 faces: 90 train, 10 val); use the val split")
        images, labels = load_lfw_faces(split), None
    else:
        from fastgen.eval.fashion_classifier import fashion_split
        images, labels = fashion_split(split)
    if limit is None:
        return images, labels
    return images[:limit], None if labels is None else labels[:limit]


def data_protocol(data: str) -> str:
    if data == FACES:
        from fastgen.data import lfw_faces_description
        return lfw_faces_description("train") + "; validation: " + lfw_faces_description("val")
    return "grey values / 255 in [0, 1]; train less its validation part (fastgen.data.splits)"


def run_config(cfg: VAEGANConfig, n_train: int, n_val: int, fingerprint: str, max_train, max_val,
               data: str = "fashion-mnist") -> dict:
    return {"run_format": RUN_FORMAT, "kind": "vaegan", "model": asdict(cfg),
            "data": {"source": data, "max_train": max_train, "n_train": n_train, "n_val": n_val,
                     "fingerprint": fingerprint, "protocol": data_protocol(data)},
            "eval": {"max_val": max_val}, "threads": torch.get_num_threads()}


def read_run(path: Union[str, Path], variant: Optional[str] = None):
    """(Checkpoint, run description); RecipeError naming the problem."""
    ckpt, run = read_checkpoint(path, KINDS, COMMAND)
    check_run_sections(ckpt, {"model": ("variant",), "data": ("max_train",), "eval": ("max_val",)})
    try:
        VAEGANConfig(**run["model"])
    except (TypeError, ValueError) as e:
        raise invalid_run(ckpt, "model config", e) from None
    if variant is not None and run["model"]["variant"] not in variant.split("|"):
        raise RecipeError(f"{ckpt.directory} holds a {run['model']['variant']} model, not a {variant}")
    return ckpt, run


def load_run(path: Union[str, Path], variant: Optional[str] = None):
    """(model in eval mode, run description, Checkpoint)."""
    ckpt, run = read_run(path, variant)
    return load_weights(VAEGAN(VAEGANConfig(**run["model"])), ckpt), run, ckpt


def validation_metrics(model: VAEGAN, images, n: int = 500, frechet: bool = True) -> dict:
    """Model-selection figures on validation images: reconstruction error and (Fashion-MNIST) the Fréchet
    distance."""
    from fastgen.recipes.vaegan.evaluation import quality
    return {f"val_{k}": v for k, v in quality(model, images[:n], seed=0, frechet=frechet).items()
            if k in ("frechet", "recon_mse")}


@holds_run_folder
def train_run(cfg: VAEGANConfig, train_config: TrainConfig, out_dir: Union[str, Path], *, resume: bool = False,
              max_train: Optional[int] = None, max_val: int = 500, log: Callable[[str], None] = print,
              evaluate: bool = True, data: str = "fashion-mnist") -> TrainResult:
    """Train ``cfg``'s variant on ``data`` into ``out_dir`` (log.csv, summary.json, checkpoint/)."""
    out = Path(out_dir)
    check_run_folder(out, resume)
    if cfg.image_size != 28 or cfg.channels != 1:
        raise RecipeError(f"{data} images are 1 x 28 x 28; the config has {cfg.channels} x "
                          f"{cfg.image_size} x {cfg.image_size}")
    if cfg.balance and train_config.micro_batches > 1:
        raise RecipeError("--balance decides from each step's whole batch: use --micro-batches 1 (processes "
                          "under torchrun share the decision)")
    train, _ = load_images("train", max_train, data)
    val, _ = load_images("val", max_val, data)
    if len(train) < train_config.batch_size:
        raise RecipeError(f"{len(train)} training images, fewer than one batch of {train_config.batch_size}")
    steps = len(train) // train_config.batch_size
    train_config.eval_every = train_config.eval_every or steps
    train_config.checkpoint_every = train_config.checkpoint_every or steps
    seed_everything(train_config.seed)
    model = VAEGAN(cfg)
    run = run_config(cfg, len(train), len(val), data_fingerprint(train), max_train, max_val, data)
    if resume:
        check_same_data(read_run(out)[0], run, data)
    trainer = Trainer(model, phases=make_phases(model, train_config.lr), config=train_config, out_dir=out,
                      eval_fn=(lambda m: validation_metrics(m, val, max_val, data != FACES)) if evaluate else None,
                      model_config=run)
    log(f"{cfg.variant}: {sum(p.numel() for p in model.parameters()):,} parameters "
        f"({', '.join(f'{k} {sum(p.numel() for p in v.parameters()):,}' for k, v in model.networks().items())})")
    log(f"data: {len(train):,} {data} training images, {len(val):,} validation images")
    if resume:
        resume_trainer(trainer, out)
        log(f"resuming at step {trainer.step} of {train_config.total_steps(steps)}")
    try:
        summary = trainer.fit(train)
    except DataLayoutError as e:
        raise RecipeError(str(e)) from None
    return TrainResult(summary, {}, trainer.history, out, run, model.eval(), data=val)


__all__ = ["BETAS", "COMMAND", "DATA", "FACES", "GatedAdam", "data_protocol", "load_images", "load_run",
           "make_phases", "read_run", "run_config", "train_run"]
