"""``fastgen train|eval|sample pixelcnn`` and ``... gated-pixelcnn``: one class with the model kind as
its parameter, over fastgen.recipes.pixelcnn (data and protocol, validation split, exact NLL, run
description in the checkpoint). The demo parts are in :mod:`fastgen.cli.pixelcnn_demo`. PixelRNN's
commands (fastgen.cli.pixelrnn) are the same class with its own kind, size flags and samplers."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from dataclasses import dataclass
from typing import Mapping, Optional

from fastgen.cli.args import (GIF_SUFFIXES, IMAGE_SUFFIXES, JSON_SUFFIXES, CLIError, add_threads_flag,
                              check_out_file, flag, given, non_negative_int, optional_path,
                              positive_int, set_threads, user_errors, write_text)
from fastgen.cli.training import add_image_training_flags, resumed_train_config, train_command
from fastgen.recipes.family import DemoBudget, Family

# Defaults of the training flags (the flags default to None, so that --resume can tell a flag the user
# gave from one left alone).
TRAIN_DEFAULTS = dict(data="mnist-subset", epochs=10, batch_size=32, lr=1e-3, grad_clip=10.0, binarize_seed=0,
                      seed=0, max_val=1000)
_TRAIN_SETTINGS = ("batch_size", "lr", "grad_clip", "seed", "eval_every", "checkpoint_every", "micro_batches")
# config field -> (help, argparse settings other than the default: a positive int N)
SizeFlags = Mapping[str, tuple[str, dict]]
SIZE_FLAGS: SizeFlags = {
    "layers": ("layers (PixelCNN: residual blocks after the mask-A layer)", {}),
    "hidden": ("h: channels per layer (PixelCNN's blocks carry 2h)", {}),
    "output_hidden": ("width of the first 1x1 output layer", {}),
    "first_kernel": ("the mask-A layer's kernel", {}),
    "kernel": ("kernel size (Gated PixelCNN: k x k vertical, 1 x k horizontal)", {}),
}


@dataclass(frozen=True)
class SampleMethods:
    """The --method flag of ``fastgen sample``: its choices, default (None: the model's own) and help."""

    choices: tuple[str, ...]
    default: Optional[str]
    help: str


SAMPLE_METHODS = SampleMethods(
    ("fastgen", "cached", "naive"), "fastgen",
    "fastgen (default): the cached algorithm in the C++ kernel; cached: the same in plain PyTorch, each layer "
    "computed only where it changed; naive: one full forward pass per sub-pixel (the definition, far slower); "
    "the same seed gives the same images")


def recipes():
    from fastgen.recipes import pixelcnn
    return pixelcnn


# --- train ----------------------------------------------------------------------------------------

def _resume_conflicts(args: argparse.Namespace, kind, run: dict, stored_train: dict) -> list[str]:
    """Flags given with --resume whose value differs from the run being resumed."""
    from fastgen.recipes.runs import differing_flags
    data = run["data"]
    problems = differing_flags({name: getattr(args, name) for name in recipes().size_fields(kind)}, run["model"])
    if args.data is not None:
        spec = recipes().DataSpec.from_arg(args.data)
        if (spec.source, spec.path) != (data["source"], data["path"]):
            problems.append(f"--data {args.data} (the run has {spec_name(data)})")
    problems += differing_flags({name: getattr(args, name) for name in ("binarize", "binarize_seed", "max_train")},
                                data)
    problems += differing_flags({name: getattr(args, name) for name in _TRAIN_SETTINGS}, stored_train)
    problems += differing_flags({"max_val": args.max_val}, run["eval"])
    conditional = bool(run["model"].get("classes"))
    if getattr(args, "classes", None) is not None and args.classes != conditional:
        problems.append(f"--{'' if args.classes else 'no-'}classes (the run is "
                        f"{'' if conditional else 'not '}class-conditional)")
    return problems


def spec_name(data: dict) -> str:
    return data["source"] if data["path"] is None else f"{data['source']}:{data['path']}"


def _resumed_settings(args: argparse.Namespace, kind):
    """The run in --out as it was started (only --epochs may change): (config, DataSpec, TrainConfig, max_val)."""
    rec = recipes()
    run, train = resumed_train_config(args, kind, rec.read_run, _resume_conflicts)
    return rec.config_class(kind)(**run["model"]), rec.spec_from_run(run), train, run["eval"]["max_val"]


def _train_settings(args: argparse.Namespace, kind):
    """(model config or overrides, DataSpec, TrainConfig, max_val) for a new run or, with --resume,
    the run in --out as it was started (a resumed config keeps its classes; a new run's come from
    --classes, see PixelFamily.train)."""
    from fastgen.train import TrainConfig
    if args.resume:
        return _resumed_settings(args, kind)
    rec = recipes()
    d = TRAIN_DEFAULTS
    spec = rec.DataSpec.from_arg(given(args, "data", d["data"]), binarize=args.binarize,
                                 binarize_seed=given(args, "binarize_seed", d["binarize_seed"]),
                                 max_train=args.max_train)
    try:
        train = TrainConfig(batch_size=given(args, "batch_size", d["batch_size"]),
                            epochs=given(args, "epochs", d["epochs"]), lr=given(args, "lr", d["lr"]),
                            grad_clip=given(args, "grad_clip", d["grad_clip"]), seed=given(args, "seed", d["seed"]),
                            eval_every=args.eval_every, checkpoint_every=args.checkpoint_every,
                            micro_batches=given(args, "micro_batches", 1))
    except ValueError as e:
        raise CLIError(str(e)) from None
    overrides = {name: getattr(args, name) for name in rec.size_fields(kind)}
    return overrides, spec, train, given(args, "max_val", d["max_val"])


def report_training(result) -> None:
    """Print what a training session did: steps, the last training NLL, validation before and after."""
    rec = recipes()
    summary, levels = result.summary, result.run["data"]["levels"]
    steps, rate = summary["steps_this_session"], summary.get("steps_per_second")
    print(f"trained {steps} step{'s' if steps != 1 else ''} this session (now at step {summary['step']}, "
          f"epoch {summary['epochs']:.2f})" + (f", {rate:.1f} steps/s" if rate else ""))
    final = summary.get("final") or {}
    if "nll" in final:
        print(f"train NLL (last logged step): {final['nll']:.2f} nats/image, {final['bits_per_dim']:.4f} bits/dim")
    end = summary.get("eval") or {}
    if "eval_val_nats_per_image" in end:
        start = f"{rec.validation_text(result.initial_eval, levels)} -> " if result.initial_eval else ""
        print(f"validation NLL: {start}{rec.validation_text(end, levels)} ({result.run['data']['n_val']:,} "
              f"validation images; {result.run['data']['protocol']})")


def _add_train_arguments(m: argparse.ArgumentParser, kind, size_flags: SizeFlags) -> None:
    rec = recipes()
    d = TRAIN_DEFAULTS
    m.add_argument("--out", required=True, metavar="DIR", help="run folder (created)")
    m.add_argument("--data", metavar="SOURCE[:PATH]",
                   help=f"{', '.join(rec.BINARY_SOURCES)} (binary); fashion-mnist-256, image-folder (the "
                        "scikit-image / scikit-learn photographs in 32x32 patches), image-folder:PATH, "
                        f"cifar10:PATH (CIFAR-10 binary batches) (256 levels; default {d['data']})")
    add_image_training_flags(m, d, eval_what="NLL",
                             binarize_help="binary sources' protocol (default dynamic: a fresh Bernoulli sample of "
                                           "every training image each epoch; validation and test images are "
                                           "binarised once)")
    if rec.model_kind(kind).conditional:
        m.add_argument("--classes", action=argparse.BooleanOptionalAction,
                       help="condition on the data's class labels (a learned embedding of the label added to every "
                            f"gate): {', '.join(rec.data.LABELLED_SOURCES)} have {rec.data.CLASSES} classes, "
                            "image-folder none; stored in the run, eval and sample use it (default: unconditional)")
    binary, colour = rec.config_class(kind).mnist(), rec.config_class(kind)()
    g = m.add_argument_group("model size (defaults: binary data / 256 levels)")
    for name in rec.size_fields(kind):
        text, settings = size_flags[name]
        g.add_argument(flag(name), dest=name, **({"type": positive_int, "metavar": "N"} if not settings else settings),
                       help=f"{text} (default {getattr(binary, name)} / {getattr(colour, name)})")


# --- eval -----------------------------------------------------------------------------------------

def _add_eval_arguments(m: argparse.ArgumentParser) -> None:
    m.add_argument("--checkpoint", required=True, metavar="DIR",
                   help="a `fastgen train` --out folder, or its checkpoint/ subfolder")
    m.add_argument("--split", choices=("test", "val"), default="test",
                   help="test (default): the figure to report, read once for the model you chose; val: the "
                        "validation split, for choosing")
    m.add_argument("--max-images", type=positive_int, metavar="N", help="first N images of the split (default: all)")
    m.add_argument("--batch-size", type=positive_int, default=100, metavar="B", help="default %(default)s")
    m.add_argument("--out", metavar="FILE",
                   help="where to write the JSON (default: RUN/eval.json, with --split val RUN/eval_val.json)")
    add_threads_flag(m)


def evaluate(args: argparse.Namespace, kind, title: str) -> int:
    set_threads(args)
    rec = recipes()
    check_out_file(optional_path(args.out), "--out", JSON_SUFFIXES, "the evaluation")
    with user_errors():
        model, run, ckpt = rec.load_run(args.checkpoint, kind)
        result = rec.evaluate_run(model, run, args.split, args.max_images, args.batch_size,
                                  progress=sys.stderr.isatty())
    report = {**result, "model": rec.model_kind(kind).name, "checkpoint": str(ckpt.directory),
              "checkpoint_step": ckpt.step}
    default = "eval.json" if args.split == "test" else "eval_val.json"
    out = Path(args.out) if args.out else rec.find_checkpoint(args.checkpoint).parent / default
    write_text(out, json.dumps(report, indent=1))
    other = (f"{result['bits_per_dim']:.4f} bits/dim" if result["unit"] == "nats/image"
             else f"{result['nats_per_image']:.1f} nats/image")
    split = "test" if args.split == "test" else "validation"
    print(f"{title} at step {ckpt.step}: {split} NLL {rec.nll_text(result)} ({other})")
    print(f"  {result['n']:,} {split} images: {result['description']}")
    print(f"  protocol: {result['protocol']}")
    given_label = " given each image's class label" if result.get("conditional") else ""
    print(f"  exact -log p(x{' | label' if given_label else ''}) under the model (no bound){given_label}; "
          "standard error over the images")
    print(f"written to {out}")
    return 0


# --- sample ---------------------------------------------------------------------------------------

def _add_sample_arguments(m: argparse.ArgumentParser, methods: SampleMethods, conditional: bool) -> None:
    m.add_argument("--checkpoint", required=True, metavar="DIR",
                   help="a `fastgen train` --out folder, or its checkpoint/ subfolder")
    m.add_argument("--out", required=True, metavar="PNG", help="image grid to write")
    m.add_argument("--n", type=positive_int, default=16, help="samples (default %(default)s)")
    m.add_argument("--seed", type=non_negative_int, default=0, help="sampling seed (default %(default)s)")
    m.add_argument("--method", choices=methods.choices, default=methods.default, help=methods.help)
    if conditional:
        m.add_argument("--label", type=int, nargs="+", metavar="L",
                       help="a class-conditional run's class: one label for every image, or one per image (--n of "
                            "them); default: the classes in turn (0, 1, 2, ...)")
    m.add_argument("--gif", metavar="FILE", help="also write the raster-order sampling as an animation")
    m.add_argument("--gif-every", type=positive_int, metavar="PIXELS",
                   help="pixels between GIF frames (default: one image row)")
    m.add_argument("--scale", type=positive_int, default=3, help="display pixels per pixel (default %(default)s)")
    add_threads_flag(m)


def write_samples(model, n: int, seed: int, png: Path, gif, every, scale: int,
                  method: Optional[str] = "fastgen", labels=None) -> tuple:
    """Sample (a class-conditional model: of ``labels``, int64 [n]), write the grid (and the raster
    GIF); returns (levels, files written)."""
    from fastgen.viz.raster import sample_grid, save_raster_gif
    levels = model.config.levels
    images = recipes().sample_levels(model, n, seed, method, progress=sys.stderr.isatty(), labels=labels)
    png.parent.mkdir(parents=True, exist_ok=True)
    sample_grid(images, levels, scale=scale).save(png)
    written = [png]
    if gif is not None:
        written.append(save_raster_gif(images, levels, gif, every or model.config.width, scale=scale))
    return images, written


def _check_sample_fits(cfg, n: int, scale: int, frames: int) -> None:
    """CLIError before sampling when the samplers' caches (about every layer's map, float32) and the
    figures (3 bytes per shown pixel, per GIF frame) cannot fit in memory."""
    from fastgen.memory import check_fits
    pixels = cfg.height * cfg.width
    caches = 4 * pixels * (2 * cfg.hidden * (cfg.layers + 2) + cfg.channels * cfg.levels)
    figure = 3 * pixels * scale ** 2 * (1 + frames)
    check_fits(n * (caches + figure), f"--n {n:,} samples at --scale {scale}" + (" with the GIF" if frames else ""),
               CLIError)


def sample_labels(given_labels: Optional[list[int]], n: int, classes: int):
    """The labels [n] of ``fastgen sample``'s --label for a model of ``classes`` (0: unconditional);
    None for an unconditional model. CLIError naming --label for a wrong one."""
    import torch
    if not classes:
        if given_labels is not None:
            raise CLIError("--label: this run is not class-conditional (train it with --classes to sample a class)")
        return None
    if given_labels is None:
        return torch.arange(n) % classes
    wrong = [label for label in given_labels if not 0 <= label < classes]
    if wrong:
        raise CLIError(f"--label {wrong[0]}: the run's classes are 0..{classes - 1}")
    if len(given_labels) not in (1, n):
        raise CLIError(f"--label: give one label or one per image (--n {n}), got {len(given_labels)}")
    return torch.tensor(given_labels * (n if len(given_labels) == 1 else 1), dtype=torch.int64)


def sample(args: argparse.Namespace, kind, title: str) -> int:
    set_threads(args)
    png, gif = Path(args.out), optional_path(args.gif)
    check_out_file(png, "--out", IMAGE_SUFFIXES, "the image grid")
    check_out_file(gif, "--gif", GIF_SUFFIXES, "the animation")
    if args.gif_every is not None and gif is None:
        raise CLIError("--gif-every sets the animation's frames: give --gif FILE too")
    from fastgen.viz.raster import frames_problem
    with user_errors():
        model, run, ckpt = recipes().load_run(args.checkpoint, kind)
        cfg = model.config
        problem = gif and frames_problem(cfg.height, cfg.width, args.gif_every or cfg.width)
        if problem:
            raise CLIError(f"--gif-every {args.gif_every}: {problem}")
        labels = sample_labels(getattr(args, "label", None), args.n, getattr(cfg, "classes", 0))
        _check_sample_fits(cfg, args.n, args.scale, gif is not None and cfg.height * cfg.width // (
            args.gif_every or cfg.width) + 1)
        try:
            _, written = write_samples(model, args.n, args.seed, png, gif, args.gif_every, args.scale, args.method,
                                       labels)
        except ValueError as e:
            if args.method is None:  # the model's own default sampler failing is a bug, not a user's mistake
                raise
            raise CLIError(f"--method {args.method}: {e}") from None
    how = "the model's default" if args.method is None else args.method
    print(f"{title} (checkpoint step {ckpt.step}), {args.n} samples {cfg.height}x{cfg.width}x{cfg.channels}, "
          f"seed {args.seed}, {how} sampling")
    if labels is not None:
        print(f"class labels, image by image in grid order: {' '.join(str(int(y)) for y in labels)}")
    print(f"image grid: {written[0]}")
    if gif is not None:
        print(f"raster-order sampling ({args.gif_every or cfg.width} pixels per frame): {written[1]}")
    return 0


# --- the family -----------------------------------------------------------------------------------

class PixelFamily(Family):
    """PixelCNN or Gated PixelCNN (``kind``): train, eval, sample, demo. A subclass serves another
    ModelKind of the recipe (fastgen.cli.pixelrnn) by overriding :meth:`kind`."""

    sample_files = "PNG, GIF"
    demo_run = True

    def __init__(self, kind: str, title: str, budget: Optional[DemoBudget] = None, demo_help: str = "",
                 bench_help: str = "", size_flags: SizeFlags = SIZE_FLAGS,
                 sample_methods: SampleMethods = SAMPLE_METHODS):
        self.name, self.title, self.demo_budget = kind, title, budget
        self.size_flags, self.sample_methods = size_flags, sample_methods
        self.verbs = ("train", "eval", "sample") + (("bench",) if bench_help else ()) + (("demo",) if budget else ())
        self.help = {"train": f"{title} (binary MNIST by default)", "eval": f"evaluate {title}",
                     "sample": f"sample {title}", "bench": bench_help, "demo": demo_help}
        self.description = {
            "train": f"Train {title}: the exact NLL on held-out validation images every epoch (nats/image for "
                     "binary data, bits/dim for 256 levels). The checkpoint stores the model config, the data "
                     "and its protocol, so eval and sample rebuild everything from it.",
            "eval": "Print the exact test NLL (or with --split val the validation NLL) with its standard error "
                    "and protocol, and write eval.json beside the checkpoint.",
            "sample": "Sample images from a checkpoint into a grid PNG and, with --gif, an animation of the "
                      "raster-order sampling.",
        }

    def kind(self):
        """What the recipe's functions take as the kind: a built-in kind's name, or a ModelKind."""
        return self.name

    def add_arguments(self, verb: str, parser: argparse.ArgumentParser) -> None:
        if verb == "train":
            _add_train_arguments(parser, self.kind(), self.size_flags)
        elif verb == "eval":
            _add_eval_arguments(parser)
        elif verb == "sample":
            _add_sample_arguments(parser, self.sample_methods, recipes().model_kind(self.kind()).conditional)

    def train(self, args: argparse.Namespace) -> int:
        def run(out: Path):
            model, spec, train, max_val = _train_settings(args, self.kind())
            return recipes().train_run(self.kind(), model, spec, train, out, resume=args.resume, max_val=max_val,
                                       conditional=bool(getattr(args, "classes", None)), log=print)
        return train_command(args, self.name, run, checkpoint_default="one epoch", length_flag="--epochs",
                             position=lambda s: f"{s['step']} (epoch {s['epochs']:.2f})", report=report_training,
                             done="")

    def evaluate(self, args: argparse.Namespace) -> int:
        return evaluate(args, self.kind(), self.title)

    def sample(self, args: argparse.Namespace) -> int:
        return sample(args, self.kind(), self.title)

    def bench(self, args: argparse.Namespace) -> str:
        from fastgen.benchmarking.pixelcnn_sampling import run_sampling_benchmark
        return run_sampling_benchmark(quick=args.quick, log=lambda line: print(line, file=sys.stderr, flush=True))

    def demo(self, out: Path, quick: bool, budget: float) -> list[tuple[str, Path]]:
        from fastgen.cli.pixelcnn_demo import demo_part
        return demo_part(self.name, self.title, out, quick, budget)


# The demo trains a tiny PixelCNN on the binary MNIST subset (~7 s quick, ~35 s full on 2 cores), then samples a
# grid, the raster GIF and the naive vs cached sampling speed. One part for the two models: the demo's total
# budget (10 min, 2 min --quick) is shared by every paper's family (fastgen.recipes.registry); PixelCNN's
# 60 / 15 s of it is split with PixelRNN's part (fastgen.cli.pixelrnn: 25 / 6 s).
PIXELCNN = PixelFamily("pixelcnn", "PixelCNN", DemoBudget(full=45, quick=9),
                       "Train a tiny PixelCNN on the binary MNIST subset and write samples, the raster-order "
                       "sampling GIF, the training curve and the naive vs cached sampling speed.",
                       bench_help="PixelCNN and Gated PixelCNN sampling: naive, cached and fastgen, 1 thread "
                                  "(--threads does not apply)")
GATED_PIXELCNN = PixelFamily("gated-pixelcnn", "Gated PixelCNN")
