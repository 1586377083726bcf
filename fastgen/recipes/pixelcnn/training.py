"""Training a PixelCNN / Gated PixelCNN run (:func:`train_run`), its run description and checkpoint
(:func:`read_run`, :func:`load_run`), its evaluation (:func:`evaluate_run`) and sampling
(:func:`sample_levels`)."""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Callable, Optional, Union

import torch
from torch import Tensor, nn

from fastgen.models.config_utils import is_positive_int
from fastgen.recipes.pixelcnn.data import DataSpec, Split, load_split, spec_from_json
from fastgen.recipes.pixelcnn.model import (KINDS, METRIC, TITLES, KindArg, build_model, check_conditional,
                                            config_class, config_dict, describe_config, make_config, make_loss_fn,
                                            model_kind, nll_summary, per_image_nll)
from fastgen.recipes.runs import (RUN_FORMAT, RecipeError, TrainResult, check_run_folder, check_run_sections,
                                  check_same_data, data_fingerprint, find_checkpoint, holds_run_folder, invalid_run,
                                  load_weights, read_checkpoint, resume_trainer)
from fastgen.train import TrainConfig, Trainer, seed_everything
from fastgen.train.trainer import DataLayoutError

COMMAND = "fastgen train pixelcnn|gated-pixelcnn"


def run_config(kind: KindArg, cfg, spec: DataSpec, train: Split, val: Split, max_val: Optional[int]) -> dict:
    """The run description stored as the checkpoint's model config (JSON)."""
    return {
        "run_format": RUN_FORMAT,
        "kind": model_kind(kind).name,
        "model": config_dict(cfg),
        "data": {**spec.to_json(), "protocol": spec.protocol(), "levels": spec.levels,
                 "n_train": len(train), "n_val": len(val), "train_split": train.description,
                 "val_split": val.description, "fingerprint": data_fingerprint(train.images)},
        "eval": {"max_val": max_val, "metric": METRIC},
        "threads": torch.get_num_threads(),  # float results may differ with another thread count
    }


def spec_from_run(run: dict) -> DataSpec:
    return spec_from_json(run["data"])


def read_run(path: Union[str, Path], kind: Optional[KindArg] = None):
    """(Checkpoint, run description) of a run folder or checkpoint folder (of ``kind``: another kind is
    refused by name; None: any built-in kind); nothing is built. RecipeError (one line, naming
    config.json) for a description that lacks what eval, sample and --resume read."""
    wanted = None if kind is None else model_kind(kind)
    if wanted is None or wanted.name in KINDS:
        ckpt, run = read_checkpoint(path, KINDS, COMMAND)
    else:  # another family's model: a PixelCNN run is still named as one
        ckpt, run = read_checkpoint(path, KINDS + (wanted.name,), wanted.command)
    if wanted is not None and run["kind"] != wanted.name:
        raise RecipeError(f"{ckpt.directory} holds a {TITLES[run['kind']]} model, not a {wanted.title} "
                          f"(use `{run['kind']}` instead of `{wanted.name}`)")
    stored = wanted or model_kind(run["kind"])
    check_run_sections(ckpt, {"model": (), "data": ("source", "path", "binarize", "binarize_seed", "max_train"),
                              "eval": ("max_val",)})
    try:
        stored.config_class(**run["model"])
    except (TypeError, ValueError) as e:
        raise invalid_run(ckpt, "model config", e) from None
    try:
        spec = spec_from_run(run)
    except (TypeError, RecipeError) as e:
        raise invalid_run(ckpt, "data settings", e) from None
    if run["model"].get("classes") and not spec.classes:
        raise invalid_run(ckpt, "data settings", f"a class-conditional model on {spec.name}, which has no labels")
    if spec.levels != run["model"].get("levels"):
        raise invalid_run(ckpt, "data settings", f"{spec.source} has {spec.levels} levels, the model "
                                                 f"{run['model'].get('levels')}")
    max_val = run["eval"]["max_val"]
    if not (max_val is None or is_positive_int(max_val)):
        raise invalid_run(ckpt, "evaluation settings", f"max_val {max_val!r}")
    return ckpt, run


def load_run(path: Union[str, Path], kind: Optional[KindArg] = None):
    """(model in eval mode with the checkpoint's weights, run description, Checkpoint)."""
    ckpt, run = read_run(path, kind)
    return load_weights(build_model(kind or run["kind"], run["model"]), ckpt), run, ckpt


def _check_shape(split: Split, cfg: dict, name: str) -> None:
    expected = (cfg["channels"], cfg["height"], cfg["width"])
    if split.image_shape != expected:
        raise RecipeError(f"{name} has images of shape {split.image_shape}, the model was trained on {expected}")


def evaluate_run(model: nn.Module, run: dict, split: str = "test", max_images: Optional[int] = None,
                 batch_size: int = 100, progress: bool = False) -> dict:
    """The exact NLL (see fastgen.recipes.pixelcnn.model.nll_summary) on the run's ``split``: "test"
    (the figure to report: read it once, for the model chosen on validation) or "val" (model
    selection), its first ``max_images`` images; plus what it was measured on."""
    if split not in ("test", "val"):
        raise RecipeError(f"evaluate on the test or the validation split, not {split!r}")
    spec = spec_from_run(run)
    conditional = bool(model.num_classes)
    images = load_split(spec, split, max_images, labels=conditional)
    _check_shape(images, run["model"], spec.name)
    nll = per_image_nll(model, images.images, batch_size, progress, desc=f"{split} NLL", labels=images.labels)
    return {**nll_summary(nll, model.config), "split": split, "data": spec.name, "description": images.description,
            "protocol": spec.protocol(), "metric": METRIC + (", given each image's class label" if conditional else ""),
            "conditional": conditional}


@holds_run_folder
def train_run(kind: KindArg, model: Union[dict, object, None], spec: DataSpec, train_config: TrainConfig,
              out_dir: Union[str, Path], *, resume: bool = False, max_val: Optional[int] = 1000,
              conditional: bool = False, log: Callable[[str], None] = print) -> TrainResult:
    """Train ``kind`` on ``spec``'s training split with the fastgen Trainer into ``out_dir`` (log.csv,
    summary.json, checkpoint/), evaluating the NLL on ``max_val`` validation images every
    ``train_config.eval_every`` steps (default: every epoch) and at the end. The test split is not
    read (see :func:`evaluate_run`). ``model``: a config, or overrides of the default config (see
    fastgen.recipes.pixelcnn.model.make_config). ``resume``: continue the checkpoint in ``out_dir``
    exactly (pass the settings the run was started with; only the epochs may grow). ``conditional``:
    a class-conditional model of the data's labels (Gated PixelCNN; a config passed as ``model`` says
    so by its ``classes``)."""
    kind = model_kind(kind)
    out = Path(out_dir)
    check_run_folder(out, resume)
    conditional = conditional or bool(getattr(model, "classes", 0))
    if conditional:
        check_conditional(kind, spec)
    train = load_split(spec, "train", labels=conditional)
    val = load_split(spec, "val", max_val, labels=conditional)
    if len(train) < train_config.batch_size:
        raise RecipeError(f"{len(train)} training images, fewer than one batch of {train_config.batch_size}")
    if len(val) == 0:
        raise RecipeError(f"{spec.name} leaves no validation images")
    if isinstance(model, config_class(kind)):
        cfg = model
        _check_shape(train, config_dict(cfg), spec.name)
        if cfg.levels != spec.levels:
            raise RecipeError(f"the model config has {cfg.levels} levels, {spec.name} {spec.levels}")
        if conditional and cfg.classes < spec.classes:
            raise RecipeError(f"the model config has {cfg.classes} classes, {spec.name} {spec.classes}")
    else:
        cfg = make_config(kind, spec, train.image_shape, model, conditional)
    steps_per_epoch = len(train) // train_config.batch_size
    if train_config.eval_every is None:
        train_config.eval_every = steps_per_epoch
    if train_config.checkpoint_every is None:
        train_config.checkpoint_every = steps_per_epoch

    seed_everything(train_config.seed)
    net = build_model(kind, cfg)
    run = run_config(kind, cfg, spec, train, val, max_val)
    if resume:
        check_same_data(read_run(out, kind)[0], run, spec.name)

    def eval_fn(m: nn.Module) -> dict:
        s = nll_summary(per_image_nll(m, val.images, labels=val.labels), m.config)
        return {"val_nats_per_image": s["nats_per_image"], "val_bits_per_dim": s["bits_per_dim"]}

    trainer = Trainer(net, make_loss_fn(spec), train_config, out_dir=out, eval_fn=eval_fn, model_config=run)
    log(f"{describe_config(kind, cfg)}; {sum(p.numel() for p in net.parameters()):,} parameters")
    log(f"data: {train.description}; validation: {val.description}")
    log(f"protocol: {spec.protocol()}")
    initial: dict = {}
    if resume:
        resume_trainer(trainer, out)
        log(f"resuming at step {trainer.step} of {train_config.total_steps(steps_per_epoch)}")
    else:
        initial = trainer.evaluate()  # {} on every process but the first (see Trainer.evaluate)
        if initial:
            log(f"validation NLL before training: {validation_text(initial, cfg.levels)}")
    try:
        summary = trainer.fit(train.images if train.labels is None else (train.images, train.labels))
    except DataLayoutError as e:  # e.g. a batch that does not split over the processes
        raise RecipeError(str(e)) from None
    return TrainResult(summary, initial, trainer.history, out, run, net, data=val)


def validation_text(metrics: dict, levels: int) -> str:
    """The validation figure of an eval_* metrics row, in the unit of the data."""
    if levels == 2:
        return f"{metrics['eval_val_nats_per_image']:.2f} nats/image"
    return f"{metrics['eval_val_bits_per_dim']:.4f} bits/dim"


@torch.no_grad()
def sample_levels(model: nn.Module, n: int, seed: int, method: Optional[str] = "fastgen",
                  progress: bool = False, labels: Optional[Tensor] = None) -> Tensor:
    """n samples as integer levels [n, C, H, W] (uint8: 0/1 or 0..255), drawn by inverse CDF from
    uniforms of a generator seeded with ``seed`` (the same seed gives the same images on every path).
    ``method`` None: the model's default sampler; ``progress``: a bar where the sampler draws one;
    ``labels``: a class-conditional model's label per image (int64 [n])."""
    generator = torch.Generator().manual_seed(int(seed))
    options = {} if method is None else {"method": method}
    if labels is not None:
        options["labels"] = labels
    if progress and "progress" in inspect.signature(model.sample).parameters:
        options["progress"] = True
    images = model.sample(n, generator=generator, **options)
    return torch.round(images.float() * (model.config.levels - 1)).to(torch.uint8)


__all__ = ["COMMAND", "evaluate_run", "find_checkpoint", "load_run", "read_run", "run_config", "sample_levels",
           "spec_from_run", "train_run", "validation_text"]
