"""``fastgen train|eval|sample|bench draw`` and ``fastgen train|eval|sample aligndraw``: the two image
families, one class with the kind as its parameter, over fastgen.recipes.draw (data, binarisation
protocol, NLL bound, run description in the checkpoint). Evaluation is in
:mod:`fastgen.cli.draw_eval`, the demo parts in :mod:`fastgen.cli.draw_demo`."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional

from fastgen.cli.args import (GIF_SUFFIXES, IMAGE_SUFFIXES, CLIError, add_threads_flag, check_out_file, flag, given,
                              non_negative_int, optional_path, positive_int, set_threads, user_errors)
from fastgen.cli.training import add_image_training_flags, resumed_train_config, train_command
from fastgen.recipes.family import DemoBudget, Family

# Flags that set model config fields (dest == the config field), per model.
MODEL_FLAGS = {
    "draw": ("T", "enc_size", "dec_size", "z_size", "read_N", "write_N"),
    "aligndraw": ("T", "infer_size", "gen_size", "z_size", "read_N", "write_N", "embed_size",
                  "lang_size", "align_size"),
}
# Defaults of the training flags (the flags themselves default to None, so that --resume can tell
# a flag the user gave from one left alone).
TRAIN_DEFAULTS = dict(epochs=10, batch_size=64, lr=1e-3, grad_clip=10.0, binarize="dynamic",
                      binarize_seed=0, seed=0, max_val=1000)
DEFAULT_DATA = {"draw": "mnist-subset", "aligndraw": "mnist-captions"}
_SIZE_HELP = {"enc_size": "encoder LSTM units", "dec_size": "decoder LSTM units",
              "infer_size": "inference LSTM units", "gen_size": "generative LSTM units",
              "z_size": "latent size per step", "embed_size": "word embedding size",
              "lang_size": "language LSTM units per direction", "align_size": "alignment space size"}
_TRAIN_SETTINGS = ("batch_size", "lr", "grad_clip", "seed", "eval_every", "checkpoint_every", "micro_batches")


def recipes():
    from fastgen.recipes import draw
    return draw


# --- train ----------------------------------------------------------------------------------------

def _resume_conflicts(args: argparse.Namespace, kind: str, run: dict, stored_train: dict) -> list[str]:
    """Flags given with --resume whose value differs from the run being resumed."""
    from fastgen.recipes.runs import differing_flags
    model = run["model"]
    problems = []
    for name in MODEL_FLAGS[kind]:
        value = getattr(args, name)
        if value is None:
            continue
        stored = None if name in ("read_N", "write_N") and value == 0 else value  # 0: no attention that side
        if stored != model[name]:
            problems.append(f"{flag(name)} {value} (the run has {model[name]})")
    if args.attention is not None:
        stored_attention = model["read_N"] is not None or model["write_N"] is not None
        if args.attention != stored_attention:
            problems.append(f"--{'' if args.attention else 'no-'}attention (the run has "
                            f"{'attention' if stored_attention else 'no attention'})")
    data = run["data"]
    if args.data is not None:
        spec = recipes().DataSpec.from_arg(args.data)
        if (spec.source, spec.path) != (data["source"], data["path"]):
            problems.append(f"--data {args.data} (the run has {data['path'] or data['source']})")
    problems += differing_flags({name: getattr(args, name) for name in ("binarize", "binarize_seed", "max_train")},
                                data)
    problems += differing_flags({name: getattr(args, name) for name in _TRAIN_SETTINGS}, stored_train)
    problems += differing_flags({"max_val": args.max_val}, run["eval"])
    return problems


def _resumed_settings(args: argparse.Namespace, kind: str):
    """The run in --out as it was started (only --epochs may change): (config, DataSpec, TrainConfig,
    max_val, eval seed)."""
    rec = recipes()
    run, train = resumed_train_config(args, kind, rec.read_run, _resume_conflicts)
    if "max_val" not in run["eval"]:
        raise CLIError(f"{args.out} was trained before fastgen held out a validation split; it cannot be resumed "
                       "(its training images include the validation images): start a new run")
    cfg = rec.config_class(kind)(**run["model"])
    return cfg, rec.spec_from_run(run), train, run["eval"]["max_val"], run["eval"]["seed"]


def _train_settings(args: argparse.Namespace, kind: str):
    """(model config or overrides, DataSpec, TrainConfig, max_val, eval seed) for a new run or,
    with --resume, the run in --out as it was started."""
    from fastgen.train import TrainConfig
    if args.resume:
        return _resumed_settings(args, kind)
    rec = recipes()
    overrides = {name: getattr(args, name) for name in MODEL_FLAGS[kind]}
    if args.attention is not None:
        overrides["attention"] = args.attention
    d = TRAIN_DEFAULTS
    spec = rec.DataSpec.from_arg(given(args, "data", DEFAULT_DATA[kind]),
                                 binarize=given(args, "binarize", d["binarize"]),
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
    return overrides, spec, train, given(args, "max_val", d["max_val"]), 0


def bound_text(value: float, n: int, protocol: str) -> str:
    return f"{value:.2f} nats/image (single-sample estimate per image, {n:,} validation images; {protocol})"


def report_training(result) -> tuple[Optional[float], Optional[float]]:
    """Print what the run did; returns (validation bound before training or None, validation bound at
    the end)."""
    summary = result.summary
    start = result.initial_eval.get("eval_val_nll_bound") if result.initial_eval else None
    end = summary.get("eval", {}).get("eval_val_nll_bound")
    steps = summary["steps_this_session"]
    rate = summary.get("steps_per_second")
    print(f"trained {steps} step{'s' if steps != 1 else ''} this session "
          f"(now at step {summary['step']}, epoch {summary['epochs']:.2f})"
          + (f", {rate:.1f} steps/s" if rate else ""))
    final = summary.get("final") or {}
    if "nll_bound" in final:
        print(f"train NLL bound (last logged step): {final['nll_bound']:.2f} nats/image")
    if end is not None:
        shown = f"{start:.2f} -> " if start is not None else ""
        print(f"validation NLL bound: {shown}"
              f"{bound_text(end, result.run['data']['n_val'], result.run['data']['protocol'])}")
    return start, end


def _add_train_arguments(m: argparse.ArgumentParser, kind: str) -> None:
    rec = recipes()
    m.add_argument("--out", required=True, metavar="DIR", help="run folder (created)")
    sources = ", ".join(rec.SOURCES if kind == "draw" else ("mnist-captions",))
    m.add_argument("--data", metavar="SOURCE|PATH",
                   help=f"{sources}{', or a folder of MNIST-layout IDX files' if kind == 'draw' else ''} "
                        f"(default {DEFAULT_DATA[kind]})")
    add_image_training_flags(m, TRAIN_DEFAULTS, eval_what="NLL bound",
                             binarize_help="binarisation protocol (default dynamic: a fresh Bernoulli sample of "
                                           "every training image each epoch; validation and test images are "
                                           "binarised once)")
    defaults = rec.config_class(kind)()
    g = m.add_argument_group("model size (defaults: the paper's config)")
    g.add_argument("--attention", action=argparse.BooleanOptionalAction, default=None,
                   help="Gaussian read/write attention (default: on; --no-attention reads the whole "
                        "image and writes the whole canvas)")
    g.add_argument("--T", type=positive_int, metavar="STEPS", help=f"drawing steps (default {defaults.T})")
    for name in MODEL_FLAGS[kind]:
        if name in _SIZE_HELP:
            g.add_argument(flag(name), dest=name, type=positive_int, metavar="N",
                           help=f"{_SIZE_HELP[name]} (default {getattr(defaults, name)})")
    for name, what in (("read_N", "read"), ("write_N", "write")):
        g.add_argument(flag(name), dest=name, type=non_negative_int, metavar="N",
                       help=f"{what} patch size N x N (default {getattr(defaults, name)}; 0: no {what} attention)")


# --- sample ---------------------------------------------------------------------------------------

def _caption_error(error: ValueError) -> str:
    from fastgen.data import VOCABULARY
    from fastgen.data.captions import PAD_TOKEN
    message = str(error)
    if "vocabulary is" not in message.lower():
        words = " ".join(repr(w) for w in VOCABULARY if w != PAD_TOKEN)
        message += f"\nThe vocabulary is: {words}"
    return message


def _add_sample_arguments(m: argparse.ArgumentParser, kind: str) -> None:
    m.add_argument("--checkpoint", required=True, metavar="DIR",
                   help="a `fastgen train` --out folder, or its checkpoint/ subfolder")
    m.add_argument("--out", required=True, metavar="PNG", help="image grid to write")
    if kind == "aligndraw":
        m.add_argument("--caption", required=True, action="append", metavar="TEXT",
                       help='e.g. "the digit 3 is on the left of the digit 7 ." (repeat for several)')
    m.add_argument("--n", type=positive_int, default=64 if kind == "draw" else 8,
                   help="samples" + (" per caption" if kind == "aligndraw" else "") + " (default %(default)s)")
    m.add_argument("--gif", metavar="FILE", help="also write the canvas animation")
    m.add_argument("--seed", type=non_negative_int, default=0, help="sampling seed (default %(default)s)")
    m.add_argument("--scale", type=positive_int, default=2, help="display pixels per pixel (default %(default)s)")
    add_threads_flag(m)


# --- the family -----------------------------------------------------------------------------------

class ImageFamily(Family):
    """DRAW or AlignDRAW (``kind``): train, eval, sample, and (DRAW) the model benchmark."""

    sample_files = "PNG, GIF"
    demo_run = True

    def __init__(self, kind: str, title: str, verbs: tuple[str, ...], budget: DemoBudget, demo_help: str,
                 bench_help: str = ""):
        self.name, self.title, self.verbs, self.demo_budget = kind, title, verbs, budget
        self.help = {"train": f"{title} (defaults: the paper's config)", "eval": f"evaluate {title}",
                     "sample": f"sample {title}", "bench": bench_help, "demo": demo_help}
        self.description = {
            "train": f"Train {title}: the validation NLL bound (nats/image) every epoch; the test split is not "
                     "read. The checkpoint stores the model config and the data and binarisation protocol, so "
                     "eval and sample rebuild everything from it.",
            "eval": "Print the test NLL bound (or with --split val the validation bound) in nats/image, with its "
                    "binarisation protocol, and write eval.json (eval_val.json) beside the checkpoint.",
            "sample": "Sample images from a checkpoint into a grid PNG and, with --gif, an animation of the "
                      "canvas over the T steps with the write window drawn on every frame.",
        }

    def add_arguments(self, verb: str, parser: argparse.ArgumentParser) -> None:
        if verb == "train":
            _add_train_arguments(parser, self.name)
        elif verb == "eval":
            from fastgen.cli.draw_eval import add_eval_arguments
            add_eval_arguments(parser, self.name)
        elif verb == "sample":
            _add_sample_arguments(parser, self.name)

    def train(self, args: argparse.Namespace) -> int:
        def run(out: Path):
            model, spec, train, max_val, eval_seed = _train_settings(args, self.name)
            return recipes().train_run(self.name, model, spec, train, out, resume=args.resume, max_val=max_val,
                                       eval_seed=eval_seed, log=print)
        return train_command(args, self.name, run, checkpoint_default="one epoch", length_flag="--epochs",
                             position=lambda s: f"{s['step']} (epoch {s['epochs']:.2f})", report=report_training,
                             done="")

    def evaluate(self, args: argparse.Namespace) -> int:
        from fastgen.cli.draw_eval import evaluate
        return evaluate(args, self.name, self.title)

    def sample(self, args: argparse.Namespace) -> int:
        from fastgen.viz.model_samples import write_caption_samples, write_draw_samples
        set_threads(args)
        rec = recipes()
        png, gif = Path(args.out), optional_path(args.gif)
        check_out_file(png, "--out", IMAGE_SUFFIXES, "the image grid")
        check_out_file(gif, "--gif", GIF_SUFFIXES, "the animation")
        captions = self.name == "aligndraw"
        if captions:
            try:
                rec.encode_captions(args.caption)
            except ValueError as e:
                raise CLIError(_caption_error(e)) from None
        with user_errors():
            model, run, ckpt = rec.load_run(args.checkpoint, self.name)
            if captions:
                written = write_caption_samples(model, run, args.caption, args.n, args.seed, png, gif,
                                                scale=args.scale)
            else:
                written = write_draw_samples(model, args.n, args.seed, png, gif, scale=args.scale)
        what = f"{args.n} samples" + (f" for each of {len(args.caption)} captions" if captions else "")
        print(f"{self.title} (checkpoint step {ckpt.step}), {what}, seed {args.seed}; "
              "shown: the output distribution's mean sigmoid(c_T)")
        print(f"image grid: {written[0]}")
        if gif is not None:
            print(f"canvas animation ({model.config.T} frames, write window in red): {written[1]}")
        return 0

    def bench(self, args: argparse.Namespace) -> str:
        from fastgen.benchmarking.draw import run_draw_benchmark
        return run_draw_benchmark(threads=args.threads, quick=args.quick)

    def gpu_bench(self, quick: bool) -> str:
        from fastgen.benchmarking import draw
        rows = draw.gpu_draw_results(quick, log=lambda line: print(line, file=sys.stderr, flush=True))
        return draw.format_draw_markdown(rows).replace("# DRAW benchmark (fastgen ops vs reference ops)",
                                                       "# DRAW on the GPU (backend per row)")

    def demo(self, out: Path, quick: bool, budget: float) -> list[tuple[str, Path]]:
        from fastgen.cli import draw_demo
        return (draw_demo.draw_part if self.name == "draw" else draw_demo.aligndraw_part)(out, quick, budget)


# Demo budgets: the full demo trains DRAW ~1 minute and AlignDRAW ~1.5 minutes on 2 cores (sampling and
# figures take seconds); --quick trains ~10 s.
DRAW = ImageFamily("draw", "DRAW", ("train", "eval", "sample", "bench", "gpu", "demo"), DemoBudget(full=75, quick=15),
                   "Train a small DRAW with attention on the MNIST subset (Fashion-MNIST without it) and write "
                   "samples, the canvas animation and the training curve.",
                   bench_help="DRAW model: batch-1 sampling (fused sampler) and a training step")
ALIGNDRAW = ImageFamily("aligndraw", "AlignDRAW", ("train", "eval", "sample", "demo"), DemoBudget(full=100, quick=15),
                        "Train a small AlignDRAW on MNIST with captions and write a caption-to-image grid "
                        "(held-out captions included), its animation and the training curve.")
