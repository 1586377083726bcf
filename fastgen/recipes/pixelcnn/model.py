"""The two models of the recipe (fastgen.models.pixelcnn), their configs for a data set, the training
loss with the binarisation protocol, and the exact test NLL.

Metrics: the models give the exact -log p(x), so the figures are likelihoods, not bounds: nats per
image for binary images, and bits per sub-pixel ("bits/dim" = nats / (C H W ln 2)) for 256 levels,
each with its standard error over the images."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Callable, Optional, Union

import torch
from torch import Tensor, nn
from tqdm import tqdm

from fastgen.models.pixelcnn import GatedPixelCNN, GatedPixelCNNConfig, PixelCNN, PixelCNNConfig
from fastgen.models.pixelcnn import loss_fn as model_loss_fn
from fastgen.recipes.pixelcnn.data import DataSpec
from fastgen.recipes.runs import RecipeError

IMAGE_FIELDS = ("height", "width", "channels", "levels")  # set by the data, never by a flag
EVAL_BATCH = 100
METRIC = ("exact negative log-likelihood -log p(x) (the model's autoregressive factorisation, no bound), "
          "averaged over the images; standard error over the images")


@dataclass(frozen=True)
class ModelKind:
    """One model the recipe trains: the name its runs store, how prose names it, its classes and a
    description of a config's layers. PixelCNN's two are built in (MODEL_KINDS); another family's
    recipe (fastgen.recipes.pixelrnn) passes its own ModelKind wherever these functions take a kind."""

    name: str
    title: str
    model_class: type
    config_class: type
    describe: Callable[[object], str]      # "7 layers of 32, 7x7 mask A, 3x3 mask B"
    unsupported: tuple[str, ...] = ()      # config fields no size flag sets
    conditional: bool = False              # config.classes comes from the data's labels (train --classes)

    @property
    def command(self) -> str:
        return f"fastgen train {self.name}"


def _layers(n: int) -> str:
    return f"{n} layer{'s' if n != 1 else ''}"


MODEL_KINDS = {k.name: k for k in (
    ModelKind("pixelcnn", "PixelCNN", PixelCNN, PixelCNNConfig,
              lambda c: f"{_layers(c.layers)} of {c.hidden}, {c.first_kernel}x{c.first_kernel} mask A, "
                        f"{c.kernel}x{c.kernel} mask B", ("classes",)),
    ModelKind("gated-pixelcnn", "Gated PixelCNN", GatedPixelCNN, GatedPixelCNNConfig,
              lambda c: (f"{_layers(c.layers)} of {c.hidden}, {c.kernel}x{c.kernel} vertical, 1x{c.kernel} horizontal"
                         + (f", conditioned on {c.classes} classes" if c.classes else "")),
              ("classes",), conditional=True),
)}
KINDS = tuple(MODEL_KINDS)
TITLES = {name: k.title for name, k in MODEL_KINDS.items()}
KindArg = Union[str, ModelKind]


def model_kind(kind: KindArg) -> ModelKind:
    """``kind`` itself, or the built-in ModelKind of that name; RecipeError naming the choices."""
    if isinstance(kind, ModelKind):
        return kind
    if kind not in MODEL_KINDS:
        raise RecipeError(f"unknown model {kind!r}; choose one of {', '.join(KINDS)}")
    return MODEL_KINDS[kind]


def config_class(kind: KindArg):
    return model_kind(kind).config_class


def size_fields(kind: KindArg) -> tuple[str, ...]:
    """The config fields a user sets (flags of ``fastgen train``): all but the data's and the unsupported."""
    unsupported = model_kind(kind).unsupported
    return tuple(f.name for f in fields(config_class(kind)) if f.name not in IMAGE_FIELDS + unsupported)


def check_conditional(kind: KindArg, spec: DataSpec) -> None:
    """RecipeError unless ``kind`` takes class labels and ``spec``'s source has them."""
    k = model_kind(kind)
    if not k.conditional:
        raise RecipeError(f"{k.title} takes no class labels (class conditioning is Gated PixelCNN's)")
    spec.check_labelled(f"a class-conditional {k.title}")


def make_config(kind: KindArg, spec: DataSpec, image_shape: tuple[int, int, int], overrides: Optional[dict] = None,
                conditional: bool = False):
    """``kind``'s config for ``spec``'s images of ``image_shape`` (C, H, W): the small MNIST config for
    binary data, the paper's colour-scale defaults otherwise, with ``overrides`` (None values ignored).
    ``conditional``: condition on the data's class labels (a kind that takes them; a labelled source)."""
    cls = config_class(kind)
    C, H, W = image_shape
    values = dict(channels=C, height=H, width=W, levels=spec.levels)
    if conditional:
        check_conditional(kind, spec)
        values["classes"] = spec.classes
    for key, value in (overrides or {}).items():
        if key not in size_fields(kind):
            raise RecipeError(f"{model_kind(kind).title} has no setting {key!r}")
        if value is not None:
            values[key] = value
    try:
        return cls.mnist(**values) if spec.binary else cls(**values)
    except (TypeError, ValueError) as e:
        raise RecipeError(str(e)) from None


def build_model(kind: KindArg, config) -> nn.Module:
    """``kind``'s model of ``config`` (its config dataclass, or that dataclass's fields as a dict)."""
    k = model_kind(kind)
    return k.model_class(k.config_class(**config) if isinstance(config, dict) else config)


def describe_config(kind: KindArg, cfg) -> str:
    k = model_kind(kind)
    output = "one Bernoulli logit per pixel" if cfg.levels == 2 else f"{cfg.levels}-way softmax per sub-pixel"
    return (f"{k.title} {cfg.height}x{cfg.width}x{cfg.channels}, {k.describe(cfg)}, "
            f"output {cfg.output_hidden} -> {output}")


def config_dict(cfg) -> dict:
    return asdict(cfg)


def make_loss_fn(spec: DataSpec) -> Callable:
    """loss_fn(model, batch, generator) for the Trainer. Batches arrive as uint8 images, or (images,
    labels) for a class-conditional model: 256-level pixels are the targets as they are; binary
    sources' images are grey (dynamic binarisation: each becomes a fresh Bernoulli sample from the
    Trainer's generator, so resuming stays exact) or already 0 / 255."""
    def loss_fn(model, batch, generator):
        images, labels = batch if isinstance(batch, (tuple, list)) else (batch, None)
        if spec.binary:
            p = images.float() / 255
            images = (torch.bernoulli(p, generator=generator) if spec.binarize == "dynamic" else p).to(torch.uint8)
        return model_loss_fn(model, images if labels is None else (images, labels), generator)
    return loss_fn


def model_levels(images: Tensor, levels: int) -> Tensor:
    """uint8 images as stored in a Split (binary: 0 / 255) -> the model's integer levels."""
    return images // 255 if levels == 2 else images


@torch.no_grad()
def per_image_nll(model: nn.Module, images: Tensor, batch_size: int = EVAL_BATCH, progress: bool = False,
                  desc: str = "NLL", labels: Optional[Tensor] = None) -> Tensor:
    """-log p(x) in nats, float64 [n], of uint8 images (a Split's, binary ones binarised); a
    class-conditional model's -log p(x | label) of the images' ``labels``."""
    if len(images) == 0:
        raise RecipeError("no images to evaluate")
    device = next(model.parameters()).device
    levels = model.config.levels
    was_training = model.training
    model.eval()
    parts = []
    try:
        for start in tqdm(range(0, len(images), batch_size), desc=desc, unit="batch", leave=False,
                          disable=not progress):
            x = model_levels(images[start:start + batch_size], levels).to(device)
            y = None if labels is None else labels[start:start + batch_size].to(device)
            parts.append(model.nll(x, y).double().cpu())
    finally:
        model.train(was_training)
    return torch.cat(parts)


def _sem(values: Tensor) -> float:
    return float(values.std() / math.sqrt(len(values))) if len(values) > 1 else float("nan")


def nll_summary(nll: Tensor, cfg) -> dict:
    """Mean and standard error in nats/image and bits/dim; ``value`` / ``unit``: the figure reported for
    the model's data (nats/image for binary images, bits/dim for 256 levels)."""
    dims = cfg.channels * cfg.height * cfg.width
    bits = nll / (dims * math.log(2))
    out = {"nats_per_image": float(nll.mean()), "nats_per_image_sem": _sem(nll),
           "bits_per_dim": float(bits.mean()), "bits_per_dim_sem": _sem(bits), "n": len(nll)}
    key = "nats_per_image" if cfg.levels == 2 else "bits_per_dim"
    out.update(value=out[key], sem=out[f"{key}_sem"], unit=key.replace("_per_", "/"))
    return out


def nll_text(summary: dict) -> str:
    digits = 2 if summary["unit"] == "nats/image" else 4
    return f"{summary['value']:.{digits}f} ± {summary['sem']:.{digits}f} (s.e.) {summary['unit']}"
