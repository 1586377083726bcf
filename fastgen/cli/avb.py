"""``fastgen train|eval|sample avb`` and the demo's AVB part, over fastgen.recipes.avb: Adversarial
Variational Bayes (``--variant avb``), with adaptive contrast (``avb-ac``) or the Gaussian VAE with the
same decoder (``vae``), on the paper's toy or binarised images."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fastgen.cli.args import (IMAGE_SUFFIXES, JSON_SUFFIXES, CLIError, add_eval_flags, add_sample_flags,
                              add_threads_flag, check_out_file, given, non_negative_int, optional_path, positive_float,
                              positive_int, set_threads, user_errors, write_text)
from fastgen.cli.training import MICRO_BATCHES_HELP, train_command
from fastgen.recipes.family import DemoBudget, Family

TRAIN_DEFAULTS = dict(data="toy", variant="avb", steps=10_000, batch_size=256, lr=1e-3, seed=0, schedule="alternate",
                      adversary_steps=3, adversary_lr=3e-3,  # the stronger adversary measured best on the toy
                      toy_lr_decay_start=5000, lr_half_life=1000)  # the decay that brought the toy's bound to -log 4
_SIZES = ("latent_dim", "hidden", "layers", "noise_dim", "adversary_hidden", "ac_samples")
_SCHEDULE = ("schedule", "adversary_steps", "adversary_lr", "lr_decay_start", "lr_half_life")
_TRAIN_SETTINGS = ("batch_size", "lr", "seed", "eval_every", "checkpoint_every", "micro_batches")


def recipes():
    from fastgen.recipes import avb
    return avb


def _add_train_arguments(m: argparse.ArgumentParser) -> None:
    d = TRAIN_DEFAULTS
    m.add_argument("--out", required=True, metavar="DIR", help="run folder (created)")
    m.add_argument("--data", choices=("toy", "mnist-subset", "fashion-mnist"),
                   help=f"the paper's four-point toy or binarised images (default {d['data']})")
    m.add_argument("--variant", choices=("avb", "avb-ac", "vae"),
                   help=f"AVB, AVB with adaptive contrast, or the Gaussian VAE with the same decoder (default {d['variant']})")
    m.add_argument("--schedule", choices=("alternate", "simultaneous"),
                   help="adversary and primal updates: alternating forwards, or both from one forward (default alternate)")
    m.add_argument("--adversary-steps", type=positive_int, metavar="K",
                   help=f"adversary updates per primal update, alternate schedule (default {d['adversary_steps']})")
    m.add_argument("--adversary-lr", type=positive_float,
                   help=f"the adversary's Adam learning rate (default {d['adversary_lr']})")
    m.add_argument("--lr-decay-start", type=non_negative_int, metavar="STEP",
                   help="every learning rate is constant until STEP, then halves every --lr-half-life steps (default: "
                        f"{d['toy_lr_decay_start']} on the toy, no decay on images)")
    m.add_argument("--lr-half-life", type=positive_int, metavar="STEPS",
                   help=f"steps over which a decaying learning rate halves (default {d['lr_half_life']})")
    m.add_argument("--steps", type=positive_int, help=f"training steps in total (default {d['steps']}; with --resume: "
                                                      "the run's, or more)")
    m.add_argument("--batch-size", type=positive_int, metavar="B", help=f"default {d['batch_size']}")
    m.add_argument("--lr", type=positive_float, help=f"Adam learning rate (default {d['lr']})")
    m.add_argument("--binarize", choices=("dynamic", "fixed", "threshold"), help="images: protocol (default dynamic)")
    m.add_argument("--max-train", type=positive_int, metavar="N", help="images: use the first N training images")
    m.add_argument("--seed", type=non_negative_int, help=f"training seed (default {d['seed']})")
    m.add_argument("--eval-every", type=positive_int, metavar="STEPS", help="steps between validation evaluations")
    m.add_argument("--checkpoint-every", type=positive_int, metavar="STEPS", help="steps between checkpoints")
    m.add_argument("--micro-batches", type=positive_int, metavar="M", help=MICRO_BATCHES_HELP)
    m.add_argument("--resume", action="store_true", help="continue the run in --out exactly where it stopped")
    g = m.add_argument_group("model size (defaults: the toy's / the images')")
    for name in _SIZES:
        g.add_argument("--" + name.replace("_", "-"), dest=name, type=positive_int, metavar="N")
    add_threads_flag(m)


def _train_config(args: argparse.Namespace, stored: dict):
    from fastgen.train import TrainConfig
    d = TRAIN_DEFAULTS
    values = dict(batch_size=given(args, "batch_size", d["batch_size"]), lr=given(args, "lr", d["lr"]),
                  seed=given(args, "seed", d["seed"]), eval_every=args.eval_every,
                  checkpoint_every=args.checkpoint_every, micro_batches=given(args, "micro_batches", 1))
    values.update({k: v for k, v in stored.items() if k in TrainConfig.__dataclass_fields__})
    steps = given(args, "steps", stored.get("max_steps", d["steps"]))
    values.update(max_steps=steps, epochs=10 ** 9, progress=True)  # max_steps ends the run
    values["eval_every"] = values["eval_every"] or max(1, steps // 5)
    values["checkpoint_every"] = values["checkpoint_every"] or max(1, steps // 5)
    try:
        return TrainConfig(**values)
    except ValueError as e:
        raise CLIError(str(e)) from None


def _resumed(args: argparse.Namespace):
    """The run in --out as it was started; only --steps may change."""
    from fastgen.recipes.runs import check_resume_flags, check_run_folder, differing_flags
    out = Path(args.out)
    check_run_folder(out, resume=True)
    ckpt, run = recipes().read_run(out)
    stored = dict(ckpt.extra.get("config") or {})
    problems = differing_flags({"data": args.data, "variant": args.variant,
                                **{n: getattr(args, n) for n in ("binarize", "max_train")}},
                               {**run["data"], "data": run["data"]["source"], "variant": run["variant"]})
    problems += differing_flags({n: getattr(args, n) for n in _SIZES}, run["model"])
    problems += differing_flags({n: getattr(args, n) for n in _SCHEDULE}, run["training"])
    problems += differing_flags({n: getattr(args, n) for n in _TRAIN_SETTINGS}, stored)
    check_resume_flags(out, problems, "--steps")
    return run, _train_config(args, stored)


def _train(args: argparse.Namespace, out: Path):
    rec = recipes()
    if args.resume:
        run, config = _resumed(args)
        data, variant, model, training = run["data"], run["variant"], run["model"], run["training"]
    else:
        d = TRAIN_DEFAULTS
        source = given(args, "data", d["data"])
        data = {"source": source} if source == "toy" else {"source": source, "path": None,
                                                           "binarize": args.binarize, "max_train": args.max_train}
        variant, config = given(args, "variant", d["variant"]), _train_config(args, {})
        model = {n: getattr(args, n) for n in _SIZES}
        training = {"schedule": given(args, "schedule", d["schedule"]),
                    "adversary_steps": given(args, "adversary_steps", d["adversary_steps"]),
                    "adversary_lr": given(args, "adversary_lr", d["adversary_lr"]),
                    "lr_decay_start": given(args, "lr_decay_start",
                                            d["toy_lr_decay_start"] if source == "toy" else None),
                    "lr_half_life": given(args, "lr_half_life", d["lr_half_life"])}
    return rec.train_run(variant, data, config, out, model=model, resume=args.resume, log=print, **training)


def report_training(result) -> None:
    summary = result.summary
    print(f"trained {summary['steps_this_session']} steps this session (now at step {summary['step']})")
    final = {k: v for k, v in (summary.get("eval") or {}).items() if k.startswith("eval_")}
    if final:
        print("validation: " + ", ".join(f"{k[5:]} {v:.3f}" for k, v in final.items()))


def _add_eval_arguments(m: argparse.ArgumentParser) -> None:
    add_eval_flags(m, "fastgen train avb", split_help="default %(default)s",
                   out_help="JSON to write (default RUN/eval.json)")
    m.add_argument("--max-rows", type=positive_int, default=100, metavar="N",
                   help="rows (images) evaluated (default %(default)s: AIS is costly)")
    m.add_argument("--ais-steps", type=positive_int, default=500, help="intermediate distributions (default %(default)s)")
    m.add_argument("--ais-chains", type=positive_int, default=16, help="chains per row (default %(default)s)")
    m.add_argument("--leapfrog", type=positive_int, default=10, help="leapfrog steps per HMC move (default %(default)s)")
    m.add_argument("--seed", type=non_negative_int, default=0, help="evaluation seed (default %(default)s)")
    m.add_argument("--paired-with", action="append", default=[], metavar="EVAL_JSON",
                   help="another run's eval.json on the same images: print the per-image differences' mean with a "
                        "95%% interval (repeatable)")


def _paired(result: dict, paths: list, rec) -> dict:
    """{other variant or path: {metric: paired difference}} against each --paired-with report."""
    out = {}
    for path in paths:
        try:
            other = json.loads(Path(path).read_text())
        except (OSError, ValueError) as e:
            raise CLIError(f"--paired-with {path}: cannot read an evaluation JSON ({e})") from None
        with user_errors():
            out[other.get("variant", str(path))] = rec.compare_reports(result, other)
    return out


def _add_sample_arguments(m: argparse.ArgumentParser) -> None:
    add_sample_flags(m, "fastgen train avb", n=16,
                     out_help="image grid (images) or the posterior figure (toy) to write")


class AVBFamily(Family):
    name, title = "avb", "AVB"
    verbs = ("train", "eval", "sample", "demo")
    sample_files = "PNG"
    demo_budget = DemoBudget(full=40, quick=5)  # quick: what the ten-family total of 120 s leaves
    help = {"train": "Adversarial Variational Bayes (the paper's toy by default)",
            "eval": "evaluate AVB: ELBO estimate and AIS log-likelihood", "sample": "sample AVB",
            "demo": "Train AVB and a Gaussian VAE on the paper's four-point toy and draw their posteriors."}
    description = {
        "train": "Train AVB (implicit encoder + adversary), AVB with adaptive contrast, or the Gaussian VAE with "
                 "the same decoder, with the multi-phase Trainer (every optimizer checkpointed; --resume).",
        "eval": "Print the ELBO estimate (AVB: through the adversary T, as the paper) and the AIS log p(x) "
                "(HMC, adaptive step size) with standard errors, and write eval.json beside the checkpoint.",
        "sample": "Images: decoder means at prior draws, as a grid PNG. Toy: the posterior figure.",
    }

    def add_arguments(self, verb: str, parser: argparse.ArgumentParser) -> None:
        {"train": _add_train_arguments, "eval": _add_eval_arguments, "sample": _add_sample_arguments}[verb](parser)

    def train(self, args: argparse.Namespace) -> int:
        return train_command(args, self.name, lambda out: _train(args, out), checkpoint_default="steps / 5",
                             position=lambda s: str(s["step"]), length_flag="--steps", report=report_training,
                             done="")

    def evaluate(self, args: argparse.Namespace) -> int:
        set_threads(args)
        check_out_file(optional_path(args.out), "--out", JSON_SUFFIXES, "the evaluation")
        rec = recipes()
        with user_errors():
            model, run, ckpt = rec.load_run(args.checkpoint)
            result = rec.evaluate_run(model, run, args.split, args.max_rows, args.ais_steps, args.ais_chains,
                                      args.leapfrog, seed=args.seed, progress=sys.stderr.isatty())
        paired = _paired(result, args.paired_with, rec)
        out = Path(args.out) if args.out else ckpt.directory.parent / "eval.json"
        write_text(out, json.dumps({**result, "variant": run["variant"], "checkpoint_step": ckpt.step,
                                    **({"paired": paired} if paired else {})}, indent=1))
        print(f"{run['variant']} at step {ckpt.step}, {result['n']} {args.split} rows of {result['data']}:")
        print(f"  ELBO estimate {result['elbo']:.3f} ± {result['elbo_sem']:.3f}, AIS log p(x) {result['ais']:.3f} ± "
              f"{result['ais_sem']:.3f} nats (s.e.; AIS acceptance {result['ais_acceptance']:.2f})")
        if "toy" in result:
            print("  toy bounds: " + ", ".join(f"{k} {v:.3f}" for k, v in result["toy"].items()))
        for other, metrics in paired.items():
            print(f"  paired with {other} on the same {result['n']} rows (mean of {run['variant']} - {other}, "
                  "95% t-interval): " + ", ".join(f"{m} {d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}] "
                                                  f"(higher on {d['first_higher']:.0%})" for m, d in metrics.items()))
        print(f"written to {out}")
        return 0

    def sample(self, args: argparse.Namespace) -> int:
        set_threads(args)
        png = Path(args.out)
        check_out_file(png, "--out", IMAGE_SUFFIXES, "the figure")
        rec = recipes()
        with user_errors():
            model, run, ckpt = rec.load_run(args.checkpoint)
        png.parent.mkdir(parents=True, exist_ok=True)
        import torch
        if run["data"]["source"] == rec.TOY:
            rec.posterior_figure([(run["variant"], model)], generator=torch.Generator().manual_seed(args.seed)).save(png)
            print(f"posterior draws z ~ q(z|x) of the four points: {png}")
            return 0
        from fastgen.viz.raster import sample_grid
        rows = rec.sample_rows(model, args.n, args.seed)
        sample_grid(rows.view(-1, 1, 28, 28), 256, scale=3).save(png)
        print(f"{run['variant']} (checkpoint step {ckpt.step}), {args.n} decoder means at z ~ p(z): {png}")
        return 0

    def demo(self, out: Path, quick: bool, budget: float) -> list[tuple[str, Path]]:
        from fastgen.cli.avb_demo import demo_part
        return demo_part(out, quick, budget)


FAMILY = AVBFamily()
