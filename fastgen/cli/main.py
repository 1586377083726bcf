"""The ``fastgen`` command line (also ``python -m fastgen``), built from the family table
(fastgen.recipes.registry): ``fastgen {train,eval,sample,bench} <family>`` for the families serving
that verb, ``fastgen bench gpu`` over their GPU sections, and ``fastgen demo [family]``.

  fastgen demo  [FAMILY] [--out DIR] [--quick] [--threads N]
  fastgen bench attention|draw|wavenet|gpu [--threads 1 2] [--quick] [--out FILE]
  fastgen train draw|aligndraw|wavenet --out DIR [...]      (`fastgen train MODEL --help`)
  fastgen eval draw|aligndraw|wavenet --checkpoint DIR [...]
  fastgen sample draw|aligndraw|wavenet --checkpoint DIR --out FILE [...]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Optional, Sequence

from fastgen.cli.args import (PROG, REPORT_SUFFIXES, CLIError, check_out_file, default_threads, optional_path,
                              positive_int, write_text)
from fastgen.cli.demo import add_demo
from fastgen.recipes import registry
from fastgen.recipes.family import Family


def _or_list(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def _sample_line(families: Sequence[Family]) -> str:
    """DRAW / AlignDRAW (PNG, GIF) or WaveNet (WAV, PNG): neighbours writing the same files grouped."""
    groups: list[tuple[list[str], str]] = []
    for f in families:
        if groups and groups[-1][1] == f.sample_files:
            groups[-1][0].append(f.title)
        else:
            groups.append(([f.title], f.sample_files))
    return _or_list([" / ".join(titles) + (f" ({files})" if files else "") for titles, files in groups])


# verb -> (its line in `fastgen --help` from the families serving it, its description)
VERBS: dict[str, tuple[Callable[[list[Family]], str], str]] = {
    "train": (lambda fs: f"train {_or_list([f.title for f in fs])} (log.csv, checkpoint, periodic evaluation)",
              "Train a model with fastgen.train's Trainer: tqdm progress, log.csv, summary.json and a checkpoint "
              "in --out, and the model's metric on held-out data at regular steps. The checkpoint stores the "
              "model config, the data and the training settings, so eval, sample and --resume rebuild "
              "everything from it (see `fastgen train MODEL --help`)."),
    "eval": (lambda fs: f"test NLL of a trained {' / '.join(f.title for f in fs)} (eval.json)",
             "Print a trained model's test metric with what it was measured on, and write eval.json beside "
             "the checkpoint (see `fastgen eval MODEL --help`)."),
    "sample": (lambda fs: f"samples from a trained {_sample_line(fs)}",
               "Sample from a checkpoint into files (see `fastgen sample MODEL --help`)."),
}


def _add_verb(commands: argparse._SubParsersAction, verb: str) -> None:
    families = registry.families(verb)
    line, description = VERBS[verb]
    p = commands.add_parser(verb, help=line(families), description=description)
    models = p.add_subparsers(dest="model", metavar="MODEL", required=True)
    for family in families:
        m = models.add_parser(family.name, help=family.help[verb], description=family.description.get(verb))
        family.add_arguments(verb, m)
        m.set_defaults(handler=family.command(verb))


# --- bench ----------------------------------------------------------------------------------------

def _print_report(run: Callable[[argparse.Namespace], str], args: argparse.Namespace) -> int:
    check_out_file(optional_path(args.out), "--out", REPORT_SUFFIXES, "the markdown table")
    args.threads = tuple(args.threads) if args.threads else default_threads()
    report = run(args)
    print(report)
    if args.out:
        write_text(Path(args.out), report)
        print(f"written to {args.out}", file=sys.stderr)
    return 0


def _gpu_report(args: argparse.Namespace) -> str:
    import torch
    if not torch.cuda.is_available():
        cpu = "|".join(f.name for f in registry.families("bench"))
        raise CLIError(f"bench gpu needs a CUDA device and none is visible to torch; the CPU benchmarks are "
                       f"`fastgen bench {cpu}`")
    from fastgen.benchmarking.gpu import run_gpu_benchmark
    return run_gpu_benchmark(quick=args.quick)


def _add_bench(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("bench", help="benchmark a kernel family (markdown table)",
                            description="Benchmark a kernel family against its reference; prints "
                                        "a markdown table.")
    families = p.add_subparsers(dest="family", metavar="FAMILY", required=True)
    gpu_titles = ", ".join(f.title for f in registry.families("gpu"))
    entries = [(f.name, f.help["bench"], f) for f in registry.families("bench")]
    entries.append(("gpu", f"every GPU path beside eager and torch.compile on the same GPU ({gpu_titles}); "
                           "--threads does not apply", None))
    for name, help_text, family in entries:
        a = families.add_parser(name, help=help_text)
        a.add_argument("--threads", type=positive_int, nargs="+", metavar="T",
                       help="thread counts to time (default: 1 and all, i.e. "
                            f"{' '.join(map(str, default_threads()))})")
        a.add_argument("--quick", action="store_true", help="fewer shapes and repeats")
        a.add_argument("--out", metavar="FILE", help="also write the markdown table to FILE")
        run = _gpu_report if family is None else family.bench
        if family is not None:
            family.add_arguments("bench", a)
        a.set_defaults(handler=lambda args, run=run: _print_report(run, args))


# --- entry point ----------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Fast kernels for classic generative models.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_demo(commands)
    _add_bench(commands)
    for verb in VERBS:
        _add_verb(commands, verb)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the CLI; returns the exit status (console-script and ``python -m fastgen`` entry)."""
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except CLIError as e:
        print(f"{PROG} {args.command}: {e}", file=sys.stderr)
        return 2
