"""``fastgen eval draw|aligndraw``: the test (or validation) NLL bound of a run (eval.json), optionally paired with
another run's on the same images (--compare), and AlignDRAW's caption fidelity (--fidelity)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fastgen.cli.args import (JSON_SUFFIXES, CLIError, add_threads_flag, check_out_file, non_negative_int,
                              optional_path, positive_int, set_threads, user_errors, write_text)
from fastgen.cli.draw import recipes


def add_eval_arguments(m: argparse.ArgumentParser, kind: str) -> None:
    m.add_argument("--checkpoint", required=True, metavar="DIR",
                   help="a `fastgen train` --out folder, or its checkpoint/ subfolder")
    m.add_argument("--data", metavar="SOURCE|PATH",
                   help="evaluate on another data source's split (default: the run's); the "
                        "binarisation stays the run's")
    m.add_argument("--split", choices=("test", "val"), default="test",
                   help="test (default): the figure to report, read once for the model you chose; val: the "
                        "validation split, for choosing")
    m.add_argument("--max-images", type=positive_int, metavar="N", help="first N images of the split (default: all)")
    m.add_argument("--seed", type=non_negative_int, help="seed of the z samples (default: the run's eval seed)")
    m.add_argument("--batch-size", type=positive_int, default=250, metavar="B", help="default %(default)s")
    m.add_argument("--out", metavar="FILE",
                   help="where to write the JSON (default: RUN/eval.json, with --split val RUN/eval_val.json)")
    m.add_argument("--compare", metavar="DIR",
                   help="another run of the same model and data: also report its bound on the same "
                        "images and z seed, and the paired difference with its standard error")
    add_threads_flag(m)
    if kind != "aligndraw":
        return
    from fastgen.eval.caption_fidelity import DEFAULT_MARGIN, METHODS

    f = m.add_argument_group("caption fidelity (fastgen.eval.caption_fidelity)")
    f.add_argument("--fidelity", action="store_true",
                   help="also generate images for captions (see --fidelity-split) and report the "
                        "share of named digits a digit classifier finds where the caption says")
    f.add_argument("--samples-per-caption", type=positive_int, default=1, metavar="K",
                   help="images generated per caption (default %(default)s)")
    f.add_argument("--max-captions", type=positive_int, metavar="N",
                   help="first N captions of each split (default: all 1,000)")
    f.add_argument("--fidelity-split", choices=("val", "test"), default="val",
                   help="val (default): the validation captions, for choosing a checkpoint or a "
                        "setting; test: the test and held-out captions, read once for the figure "
                        "you report")
    f.add_argument("--localisation", choices=METHODS, default="average",
                   help="how a named digit is located (fastgen.eval.caption_fidelity; default "
                        "%(default)s)")
    f.add_argument("--margin", type=non_negative_int, default=DEFAULT_MARGIN, metavar="PX",
                   help="pixels the search range is widened by (default %(default)s)")


def _comparison_run(run: dict, args: argparse.Namespace, kind: str, spec):
    """eval --compare OTHER: (OTHER's model, its checkpoint), once OTHER is known to be evaluable on
    this run's images (same data, or --data for both, and the same held-out binarisation)."""
    rec = recipes()
    other, other_run, other_ckpt = rec.load_run(args.compare, kind)
    mine, theirs = rec.spec_from_run(run), rec.spec_from_run(other_run)
    if spec is None and mine.name != theirs.name:
        raise rec.RecipeError(f"cannot compare: {args.compare} was trained on {theirs.name}, this run on "
                              f"{mine.name} (--data evaluates both on one source)")
    if mine.held_out_protocol() != theirs.held_out_protocol():
        raise rec.RecipeError(f"cannot compare: the held-out sets are binarised differently "
                              f"({mine.held_out_protocol()} here, {theirs.held_out_protocol()} there)")
    return other, other_ckpt


def _caption_fidelity(model, run: dict, ckpt, args: argparse.Namespace) -> tuple[dict, list[str]]:
    """eval aligndraw --fidelity: caption fidelity on the validation captions, or with --fidelity-split
    test on the test and held-out captions (read those once, for a model chosen on validation), with
    the digit classifier's accuracy on that split's digit pool and the oracle score of its real
    canvases (fastgen.eval)."""
    from fastgen.eval import FidelityError, caption_fidelity, load_or_train_classifier, oracle_fidelity
    from fastgen.eval.digit_classifier import pool_accuracy
    from fastgen.eval.selection import data_settings

    split = args.fidelity_split
    splits = ("test", "heldout") if split == "test" else (split,)
    kw = dict(data_settings(run), max_captions=args.max_captions, method=args.localisation, margin=args.margin)
    seed = 0 if args.seed is None else args.seed
    try:
        classifier, info = load_or_train_classifier(log=lambda line: print(line, file=sys.stderr, flush=True))
        accuracy = pool_accuracy(classifier, split, info["settings"]["pool_seed"])
        oracle = oracle_fidelity(classifier, split, **kw)
        reports = {name: caption_fidelity(model, classifier, name, samples_per_caption=args.samples_per_caption,
                                          seed=seed, progress=sys.stderr.isatty(), **kw)
                   for name in splits}
    except FidelityError as e:
        raise CLIError(str(e)) from None
    result = {"metric": "share of the digits a caption names that a digit classifier finds in the "
                        "caption's place in the generated image (fastgen.eval.caption_fidelity)",
              "classifier": {"settings": info["settings"], "n_train": info["n_train"], "cached": info["cached"],
                             f"{split}_accuracy": accuracy["accuracy"], f"n_{split}": accuracy["n"]},
              f"oracle_{split}": oracle.to_dict(), **{name: r.to_dict() for name, r in reports.items()}}
    lines = [f"caption fidelity on the {split} captions, localisation {args.localisation} margin {args.margin} "
             f"(digit classifier {100 * accuracy['accuracy']:.1f}% on the {accuracy['n']:,} {split}-pool digits; "
             f"real {split} canvases score {100 * oracle.rate:.1f}%):"]
    if ckpt.step == 0:
        lines.append("  note: the checkpoint is at step 0, an untrained model")
    for r in reports.values():
        lines += ["  " + line for line in r.lines()]
    return result, lines


def evaluate(args: argparse.Namespace, kind: str, title: str) -> int:
    set_threads(args)
    rec = recipes()
    check_out_file(optional_path(args.out), "--out", JSON_SUFFIXES, "the evaluation")
    with user_errors():
        model, run, ckpt = rec.load_run(args.checkpoint, kind)
        spec = rec.DataSpec.from_arg(args.data) if args.data else None
        other, other_ckpt = _comparison_run(run, args, kind, spec) if args.compare else (None, None)
        result = rec.evaluate_run(model, run, spec, args.split, args.max_images, seed=args.seed,
                                  batch_size=args.batch_size, progress=sys.stderr.isatty(), other=other)
    split = "test" if args.split == "test" else "validation"
    report = {
        "metric": f"{split} NLL bound (negative variational lower bound, L^x + L^z)",
        "value": result["nll_bound"],
        "unit": "nats/image",
        "estimator": rec.ESTIMATOR,
        "standard_error": result["nll_bound_sem"],
        "recon": result["recon"],
        "kl": result["kl"],
        "protocol": result["protocol"],
        "split": args.split,
        "n": result["n"],
        "data": result["data"],
        "split_description": result["split_description"],
        "seed": result["seed"],
        "model": kind,
        "checkpoint": str(ckpt.directory),
        "checkpoint_step": ckpt.step,
    }
    compare_lines = []
    if other is not None:
        compare = report["compare"] = dict(result["compare"], other_checkpoint=str(other_ckpt.directory),
                                           other_checkpoint_step=other_ckpt.step)
        compare_lines = [f"  vs {other_ckpt.directory} (step {other_ckpt.step}): {compare['other_nll_bound']:.2f} "
                         f"nats/image; this minus that: {compare['difference']:+.2f} ± "
                         f"{compare['difference_sem']:.2f} (paired s.e., {compare['n']:,} images)"]
    fidelity_lines = []
    if getattr(args, "fidelity", False):
        with user_errors():
            report["fidelity"], fidelity_lines = _caption_fidelity(model, run, ckpt, args)
    default = "eval.json" if args.split == "test" else "eval_val.json"
    out = Path(args.out) if args.out else rec.find_checkpoint(args.checkpoint).parent / default
    write_text(out, json.dumps(report, indent=1))
    print(f"{title} at step {ckpt.step}: {split} NLL bound "
          f"{result['nll_bound']:.2f} ± {result['nll_bound_sem']:.2f} (s.e.) nats/image")
    print(f"  recon {result['recon']:.2f} + KL {result['kl']:.2f}; {result['n']:,} {split} images "
          f"({result['split_description']})")
    print(f"  binarisation: {result['protocol']}")
    print("  single-sample estimate per image: one z ~ q(z|x) per image, seed "
          f"{result['seed']} (an upper bound on -log p(x) only in expectation)")
    for line in compare_lines + fidelity_lines:
        print(line)
    print(f"written to {out}")
    return 0
