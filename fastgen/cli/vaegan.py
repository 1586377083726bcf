"""``fastgen train|eval|sample|bench vaegan`` and ``... vae``: VAE-GAN (with ``--model gan``, the plain
GAN baseline on the same networks) and the plain VAE baseline, over fastgen.recipes.vaegan.

The GAN is a ``--model`` of the vaegan family rather than a family of its own: it is a baseline of
the VAE-GAN paper, built from the same module (no encoder), trained and evaluated by the same
commands; a third family would only repeat them. The VAE is its own family because the issue names
``fastgen train vae`` as the baseline command (AVB compares against a VAE too).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from fastgen.cli.args import (IMAGE_SUFFIXES, JSON_SUFFIXES, CLIError, add_eval_flags, add_sample_flags,
                              add_threads_flag, check_out_file, given, non_negative_int, optional_path, positive_float,
                              positive_int, set_threads, user_errors, write_text)
from fastgen.cli.training import MICRO_BATCHES_HELP, resumed_train_config, train_command
from fastgen.recipes.family import DemoBudget, Family

TRAIN_DEFAULTS = dict(epochs=1, batch_size=64, lr=3e-4, seed=0, max_val=500, data="fashion-mnist")
_TRAIN_SETTINGS = ("batch_size", "lr", "seed", "eval_every", "checkpoint_every", "micro_batches")
_SIZES = {"latent": "latent dimensions", "width": "channel scale w of the three networks",
          "hidden": "fully connected layer of encoder and discriminator"}


def recipes():
    from fastgen.recipes import vaegan
    return vaegan


def _config(args: argparse.Namespace, variant: str):
    from fastgen.models.vaegan import VAEGANConfig
    kwargs = {name: getattr(args, name) for name in (*_SIZES, "feature_layer", "gamma", "gan_loss")
              if getattr(args, name, None) is not None}
    if getattr(args, "fakes", None):
        kwargs["fakes"] = tuple(args.fakes.split(","))
    if getattr(args, "balance", False):
        kwargs["balance"] = True
    try:
        return VAEGANConfig(variant=variant, **kwargs)
    except ValueError as e:
        raise CLIError(str(e)) from None


def _resume_conflicts(args, kind, run, stored_train) -> list[str]:
    from fastgen.recipes.runs import differing_flags
    model = dict(run["model"])
    given_model = {name: getattr(args, name, None) for name in (*_SIZES, "feature_layer", "gamma", "gan_loss")}
    problems = differing_flags(given_model, model)
    if getattr(args, "model", None) is not None and args.model != model["variant"]:
        problems.append(f"--model {args.model} (the run has {model['variant']})")
    problems += differing_flags({"max_train": args.max_train}, run["data"])
    if args.data is not None and args.data != run["data"]["source"]:
        problems.append(f"--data {args.data} (the run has {run['data']['source']})")
    problems += differing_flags({name: getattr(args, name) for name in _TRAIN_SETTINGS}, stored_train)
    return problems


def _train(args: argparse.Namespace, family: "VAEGANFamily", out: Path):
    from fastgen.models.vaegan import VAEGANConfig
    from fastgen.train import TrainConfig
    rec = recipes()
    if args.resume:
        run, train = resumed_train_config(args, family.kinds, rec.read_run, _resume_conflicts)
        return rec.train_run(VAEGANConfig(**run["model"]), train, out, resume=True,
                             max_train=run["data"]["max_train"], max_val=run["eval"]["max_val"], log=print,
                             data=run["data"]["source"])
    variant = getattr(args, "model", None) or family.default
    d = TRAIN_DEFAULTS
    try:
        train = TrainConfig(batch_size=given(args, "batch_size", d["batch_size"]), epochs=given(args, "epochs", d["epochs"]),
                            max_steps=args.max_steps, lr=given(args, "lr", d["lr"]), seed=given(args, "seed", d["seed"]),
                            eval_every=args.eval_every, checkpoint_every=args.checkpoint_every,
                            micro_batches=given(args, "micro_batches", 1))
    except ValueError as e:
        raise CLIError(str(e)) from None
    return rec.train_run(_config(args, variant), train, out, max_train=args.max_train,
                         max_val=given(args, "max_val", d["max_val"]), log=print,
                         data=given(args, "data", d["data"]))


def _report(result) -> None:
    s = result.summary
    print(f"trained {s['steps_this_session']} steps this session (now at step {s['step']}, epoch {s['epochs']:.2f})")
    end = s.get("eval") or {}
    shown = {k: v for k, v in end.items() if k.startswith("eval_val_")}
    if shown:
        print("validation: " + ", ".join(f"{k[9:]} {v:.3f}" for k, v in shown.items()))


def _add_train_arguments(m: argparse.ArgumentParser, family: "VAEGANFamily") -> None:
    d = TRAIN_DEFAULTS
    m.add_argument("--out", required=True, metavar="DIR", help="run folder (created)")
    if len(family.kinds.split("|")) > 1:
        m.add_argument("--model", choices=family.kinds.split("|"),
                       help="vaegan (default): the paper's model; gan: the plain GAN baseline (decoder and "
                            "discriminator of the same sizes, no encoder)")
    m.add_argument("--data", choices=("fashion-mnist", "lfw-faces"),
                   help=f"training images (default {d['data']}); lfw-faces: scikit-image's 100 faces resized to "
                        "28x28 (90 train, 10 val, no test split: pictures, not measurements)")
    m.add_argument("--epochs", type=positive_int, help=f"epochs (default {d['epochs']}; with --resume: more)")
    m.add_argument("--max-steps", type=positive_int, metavar="N", help="stop after N steps (a fixed budget)")
    m.add_argument("--batch-size", type=positive_int, metavar="B", help=f"default {d['batch_size']}")
    m.add_argument("--lr", type=positive_float, help=f"Adam learning rate of every network (default {d['lr']}; "
                                                     "betas 0.5, 0.999)")
    m.add_argument("--seed", type=non_negative_int, help=f"training seed (default {d['seed']})")
    m.add_argument("--max-train", type=positive_int, metavar="N", help="the first N training images")
    m.add_argument("--max-val", type=positive_int, metavar="N",
                   help=f"validation images for the periodic evaluation (default {d['max_val']})")
    m.add_argument("--eval-every", type=positive_int, metavar="STEPS", help="default: one epoch; also at the end")
    m.add_argument("--checkpoint-every", type=positive_int, metavar="STEPS", help="default: one epoch; also at the end")
    m.add_argument("--micro-batches", type=positive_int, metavar="M", help=MICRO_BATCHES_HELP)
    m.add_argument("--resume", action="store_true", help="continue the run in --out exactly")
    add_threads_flag(m)
    g = m.add_argument_group("model (defaults: the Fashion-MNIST sizes)")
    for name, text in _SIZES.items():
        g.add_argument(f"--{name}", type=positive_int, metavar="N", help=text)
    if family.default != "vae":
        g.add_argument("--feature-layer", type=positive_int, metavar="L",
                       help="discriminator conv block whose features define L_llike (1..3, default 3: the last)")
        g.add_argument("--gamma", type=float, help="weight of L_llike in the decoder's update (default 1e-2)")
        g.add_argument("--gan-loss", choices=("minimax", "nonsaturating"),
                       help="decoder's adversarial loss: minimax (default; the paper's -grad L_GAN) or "
                            "nonsaturating (-log D(fake))")
        g.add_argument("--fakes", metavar="KINDS", help="what the discriminator sees as fake: recon,prior (default)")
        g.add_argument("--balance", action="store_true",
                       help="skip the discriminator's update when it is far ahead and the decoder's when it is far "
                            "behind (the authors' code: equilibrium 0.68, margin 0.4)")


def _add_eval_arguments(m: argparse.ArgumentParser) -> None:
    add_eval_flags(m, "fastgen train", out_help="JSON to write (default RUN/eval.json or RUN/eval_val.json)",
                   split_help="test (default): the reported figure, read once for the chosen model; val: for choosing")
    m.add_argument("--max-images", type=positive_int, metavar="N", help="first N images (default: all)")


def _add_sample_arguments(m: argparse.ArgumentParser) -> None:
    add_sample_flags(m, "fastgen train", out_help="image grid to write", n=64)
    m.add_argument("--reconstructions", action="store_true",
                   help="also write PNG-stem_recon.png: test images over their reconstructions")
    m.add_argument("--attribute", metavar="A,B",
                   help="also write PNG-stem_attribute.png: test images of class B decoded from mu + a (mean mu "
                        "of class A - mean mu of class B), a = 0..1 (Fashion-MNIST class numbers 0-9)")
    m.add_argument("--scale", type=positive_int, default=2, help="display pixels per pixel (default %(default)s)")


def _classes(text: str) -> tuple[int, int]:
    try:
        a, b = (int(v) for v in text.split(","))
    except ValueError:
        raise CLIError(f"--attribute takes two class numbers A,B, got {text!r}") from None
    if not (0 <= a <= 9 and 0 <= b <= 9 and a != b):
        raise CLIError(f"--attribute: A and B must be two different classes in 0..9, got {text!r}")
    return a, b


class VAEGANFamily(Family):
    """The vaegan family (VAE-GAN, --model gan) or the vae family."""

    sample_files = "PNG"

    def __init__(self, name: str, title: str, kinds: str, budget=None, demo_help: str = ""):
        self.name, self.title, self.kinds, self.default = name, title, kinds, kinds.split("|")[0]
        self.demo_budget = budget
        self.verbs = ("train", "eval", "sample") + (("bench", "demo") if budget else ())
        self.help = {"train": f"{title} on Fashion-MNIST", "eval": f"evaluate {title}: Fréchet distance "
                     "(project classifier), reconstruction error, sharpness", "sample": f"sample {title}",
                     "bench": "VAE-GAN training step: routed (one forward each) vs the straightforward twin",
                     "demo": demo_help}

    def add_arguments(self, verb: str, parser: argparse.ArgumentParser) -> None:
        if verb == "train":
            _add_train_arguments(parser, self)
        elif verb == "eval":
            _add_eval_arguments(parser)
        elif verb == "sample":
            _add_sample_arguments(parser)

    def train(self, args: argparse.Namespace) -> int:
        return train_command(args, self.name, lambda out: _train(args, self, out), checkpoint_default="one epoch",
                             length_flag="--epochs", position=lambda s: f"{s['step']}", report=_report, done="")

    def evaluate(self, args: argparse.Namespace) -> int:
        set_threads(args)
        check_out_file(optional_path(args.out), "--out", JSON_SUFFIXES, "the evaluation")
        rec = recipes()
        with user_errors():
            model, run, ckpt = rec.load_run(args.checkpoint, self.kinds)
            result = rec.evaluate_run(model, args.split, args.max_images, data=run["data"]["source"])
        report = {**result, "model": run["model"]["variant"], "checkpoint": str(ckpt.directory),
                  "checkpoint_step": ckpt.step,
                  "note": "Fréchet distance in the penultimate features of fastgen's Fashion-MNIST classifier, "
                          "not Inception FID"}
        out = Path(args.out) if args.out else ckpt.directory.parent / (
            "eval.json" if args.split == "test" else "eval_val.json")
        write_text(out, json.dumps(report, indent=1))
        print(f"{run['model']['variant']} at step {ckpt.step} on {result['n']:,} {args.split} images: "
              + ", ".join(f"{k} {v:.4g}" for k, v in result.items() if isinstance(v, float)))
        print(f"written to {out}")
        return 0

    def sample(self, args: argparse.Namespace) -> int:
        import torch
        from fastgen.viz.samples import image_grid
        set_threads(args)
        png = Path(args.out)
        check_out_file(png, "--out", IMAGE_SUFFIXES, "the image grid")
        rec = recipes()
        with user_errors():
            model, run, ckpt = rec.load_run(args.checkpoint, self.kinds)
            images = rec.evaluation.samples(model, args.n, args.seed)
            png.parent.mkdir(parents=True, exist_ok=True)
            image_grid(images, scale=args.scale).save(png)
            print(f"{run['model']['variant']} (step {ckpt.step}): {args.n} samples, seed {args.seed}: {png}")
            if (args.reconstructions or args.attribute) and model.encoder is None:
                raise CLIError("--reconstructions / --attribute: a GAN has no encoder")
            data = run["data"]["source"]
            if args.attribute and data == rec.FACES:
                raise CLIError("--attribute needs class labels: the lfw-faces run has none")
            if args.reconstructions:
                x, _ = rec.load_images("val" if data == rec.FACES else "test", 8, data)
                both = torch.cat([x, rec.evaluation.reconstructions(model, x)])
                recon = png.with_name(png.stem + "_recon.png")
                image_grid(both, columns=8, scale=args.scale).save(recon)
                print(f"{'validation' if data == rec.FACES else 'test'} images (top) and reconstructions (bottom): "
                      f"{recon}")
            if args.attribute:
                a, b = _classes(args.attribute)
                figure = png.with_name(png.stem + "_attribute.png")
                rec.attribute_figure(model, figure, a, b, rec.load_images("train", 10000),
                                     rec.load_images("test"), scale=args.scale)
                print(f"class {b} test images (top row), then decoded from mu + a (mean mu of class {a} - mean mu "
                      f"of class {b}), a = 0, 0.25, .., 1: {figure}")
        return 0

    def bench(self, args: argparse.Namespace) -> str:
        from fastgen.benchmarking.vaegan import format_vaegan_markdown, vaegan_results
        return format_vaegan_markdown(vaegan_results(args.threads, args.quick))

    def demo(self, out: Path, quick: bool, budget: float) -> list[tuple[str, Path]]:
        from fastgen.cli.vaegan_demo import demo_part
        return demo_part(out, quick, budget)


# The demo trains a tiny VAE and VAE-GAN on Fashion-MNIST images and on faces (fastgen.cli.vaegan_demo).
VAEGAN_FAMILY = VAEGANFamily("vaegan", "VAE-GAN", "vaegan|gan", DemoBudget(full=60, quick=15),
                             "Train a tiny VAE and VAE-GAN on Fashion-MNIST and on scikit-image's faces and write "
                             "their samples and reconstructions side by side.")
VAE_FAMILY = VAEGANFamily("vae", "VAE", "vae")
