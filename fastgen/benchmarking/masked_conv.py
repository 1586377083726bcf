"""Benchmark of the masked convolutions (fastgen.ops.masked_conv2d) on PixelCNN's layer shapes.

Providers (columns):
  onednn       fastgen.reference.masked_conv2d: F.conv2d on the masked dense weight (oneDNN on the CPU),
               the mask applied in the graph as training needs it
  compile      torch.compile of that reference (compiled once per shape and thread count, untimed)
  fastgen-cpu  fastgen.ops.masked_conv2d under use_backend("cpu"): the kernel that skips masked taps
Workloads: forward (no_grad) and forward+backward (gradients of weight, bias, and of x unless the
layer is a first layer, whose input is the image).
FLOPs count live weights only (2 per live multiply-add, border taps included): forward 1x, grad_x
1x, grad_weight 1x. "% of floor" = FLOPs / (measured float32 matmul FLOP/s per thread x threads)
/ time: how close to this machine's matmul peak the kernel runs.
Clocks: "wall" (the harness's wall-clock medians, 1 and 2 threads) or "cpu" (1 thread only: the
median of each call's thread CPU time, the floor's matmul timed alike). On a shared machine whose
other processes keep every core busy, wall times mostly measure the scheduler; a thread's CPU time
still counts only the cycles it ran (cache and hyperthread contention remain).
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable, Iterable

import torch

import fastgen
from fastgen.benchmarking.timing import (DEFAULT_TIMING, MATMUL_SIZE, QUICK_TIMING, TimingConfig, machine_line,
                                         measure_floors, threads as _threads, time_call)
from fastgen.ops import masked_conv2d
from fastgen.reference import masked_conv as _ref

PROVIDERS = ("onednn", "compile", "fastgen-cpu")
CLOCKS = ("wall", "cpu")
WORKLOADS = ("forward", "forward+backward")


@dataclass(frozen=True)
class Shape:
    name: str
    B: int
    Cin: int
    Cout: int
    H: int
    W: int
    k: int
    mask: str
    groups: int
    first_layer: bool = False  # x is the image: no grad_x

    def live_weights(self) -> int:
        return int(_ref.conv_mask(self.Cout, self.Cin, self.k, self.k, self.mask, self.groups).sum())

    def flops(self, workload: str) -> float:
        forward = 2.0 * self.B * self.H * self.W * self.live_weights()
        return forward if workload == "forward" else forward * (2 if self.first_layer else 3)


# 126 and 255, not the 128 and 256: colour groups need channel counts divisible by 3.
SHAPES = [
    Shape("PixelCNN 3x3 B colour", 16, 126, 126, 32, 32, 3, "B", 3),
    Shape("PixelCNN 7x7 A colour (first layer)", 16, 3, 255, 32, 32, 7, "A", 3, first_layer=True),
    Shape("MNIST 7x7 A (first layer)", 16, 1, 32, 28, 28, 7, "A", 1, first_layer=True),
    Shape("MNIST 3x3 B", 16, 32, 32, 28, 28, 3, "B", 1),
]


def _providers(shape: Shape, names: Iterable[str]) -> dict[str, Callable]:
    def reference(x, w, b):
        return _ref.masked_conv2d(x, w, b, shape.mask, shape.groups)

    def kernel(x, w, b):
        with fastgen.use_backend("cpu"):
            return masked_conv2d(x, w, b, shape.mask, shape.groups)

    make = {"onednn": lambda: reference, "compile": lambda: torch.compile(reference, dynamic=False),
            "fastgen-cpu": lambda: kernel}
    return {name: make[name]() for name in names}


def _call(conv: Callable, workload: str, x, w, b, grad_out) -> Callable[[], object]:
    if workload == "forward":
        def run():
            with torch.no_grad():
                return conv(x, w, b)
        return run
    wrt = [t for t in (x, w, b) if t.requires_grad]
    return lambda: torch.autograd.grad(conv(x, w, b), wrt, grad_out)


def _cpu_time_median(fn: Callable[[], object], config: TimingConfig) -> float:
    """Median thread CPU time of fn's calls after warm-up (at least min_repeats calls and min_time s)."""
    for _ in range(config.warmup):
        fn()
    samples: list[float] = []
    while len(samples) < config.min_repeats or sum(samples) < config.min_time:
        start = time.thread_time()
        fn()
        samples.append(time.thread_time() - start)
        if sum(samples) > config.max_time:
            break
    return statistics.median(samples)


def _cpu_matmul_flops(config: TimingConfig) -> float:
    a, b = torch.randn(MATMUL_SIZE, MATMUL_SIZE), torch.randn(MATMUL_SIZE, MATMUL_SIZE)
    with _threads(1):
        return 2 * MATMUL_SIZE ** 3 / _cpu_time_median(lambda: torch.mm(a, b), config)


def masked_conv_results(threads: Iterable[int] = (1, 2), quick: bool = False,
                        shapes: Iterable[Shape] = SHAPES, providers: Iterable[str] = PROVIDERS,
                        clock: str = "wall") -> dict:
    """{"machine", "date", "clock", "floor", "floor_flops_per_thread", "rows"}: one row per (shape, workload, threads) with each provider's
    median seconds, fastgen's speedups over the baselines and its % of the matmul floor. providers: a
    subset of PROVIDERS that includes fastgen-cpu."""
    names = tuple(providers)
    if "fastgen-cpu" not in names or not set(names) <= set(PROVIDERS):
        raise ValueError(f"providers must be a subset of {PROVIDERS} including 'fastgen-cpu', got {names}")
    thread_counts = tuple(threads)
    if clock not in CLOCKS:
        raise ValueError(f"clock must be one of {CLOCKS}, got {clock!r}")
    if clock == "cpu" and thread_counts != (1,):
        raise ValueError(f"clock='cpu' times one thread only (threads=(1,)), got threads={thread_counts}")
    config = QUICK_TIMING if quick else DEFAULT_TIMING
    if clock == "wall":
        floors = measure_floors(thread_counts, quick=quick)
        floor_flops, floor_line = floors.flops_per_s, floors.describe()
    else:
        per_thread = _cpu_matmul_flops(config)
        floor_flops = lambda n: per_thread * n  # noqa: E731
        floor_line = (f"float32 matmul {per_thread / 1e9:.1f} GFLOP/s per thread ({MATMUL_SIZE}x{MATMUL_SIZE} "
                      "torch.mm, 1 thread, thread CPU time)")
    timer = (lambda fn: time_call(fn, config).median) if clock == "wall" else (lambda fn: _cpu_time_median(fn, config))
    rows = []
    gen = torch.Generator().manual_seed(0)
    for shape in shapes:
        x = torch.randn(shape.B, shape.Cin, shape.H, shape.W, generator=gen).requires_grad_(not shape.first_layer)
        w = (torch.randn(shape.Cout, shape.Cin, shape.k, shape.k, generator=gen) * 0.1).requires_grad_()
        b = torch.randn(shape.Cout, generator=gen).requires_grad_()
        grad_out = torch.randn(shape.B, shape.Cout, shape.H, shape.W, generator=gen)
        for n in thread_counts:
            with _threads(n):
                # compiled afresh per shape and thread count (Inductor bakes the count in); without the
                # reset the recompilations pile up on one code object past dynamo's limit, and later
                # shapes silently ran eager in the "compile" column
                torch._dynamo.reset()
                convs = _providers(shape, names)
                for workload in WORKLOADS:
                    times = {p: timer(_call(fn, workload, x, w, b, grad_out)) for p, fn in convs.items()}
                    ours = times["fastgen-cpu"]
                    rows.append({"shape": shape.name, "workload": workload, "threads": n, "seconds": times,
                                 "speedup": {p: times[p] / ours for p in names if p != "fastgen-cpu"},
                                 "floor_pct": 100 * shape.flops(workload) / floor_flops(n) / ours})
    return {"machine": machine_line(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "clock": clock,
            "floor": floor_line, "floor_flops_per_thread": floor_flops(1), "rows": rows}


def format_masked_conv_markdown(*runs: dict) -> str:
    """One table per run (a wall-clock run, a CPU-time run), the first one's machine and date."""
    lines = ["# Masked convolutions (fastgen.ops.masked_conv2d) vs the masked dense convolution", "",
             f"- Machine: {runs[0]['machine']}", f"- Date: {runs[0]['date']}",
             "- FLOPs: live weights only (2 per multiply-add); forward+backward = forward + grad_weight "
             "(+ grad_x except on a first layer); % of floor = FLOPs / (matmul floor x threads) / fastgen time",
             "- Providers: onednn and compile are F.conv2d on the masked dense weight, eager and torch.compile'd; "
             "fastgen-cpu is the kernel that skips masked taps"]
    for results in runs:
        clock = "wall clock" if results["clock"] == "wall" else "thread CPU time, 1 thread"
        lines += ["", f"## Median ms per call, {clock}", "", f"Floor: {results['floor']}", "",
                  "| shape | workload | threads | onednn ms | compile ms | fastgen-cpu ms | vs onednn | vs compile "
                  "| % of floor |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        for r in results["rows"]:
            ms = {p: f"{r['seconds'][p] * 1e3:.2f}" if p in r["seconds"] else "" for p in PROVIDERS}
            vs = {p: f"{r['speedup'][p]:.2f}x" if p in r["speedup"] else "" for p in ("onednn", "compile")}
            lines.append(f"| {r['shape']} | {r['workload']} | {r['threads']} | {ms['onednn']} | {ms['compile']} | "
                         f"{ms['fastgen-cpu']} | {vs['onednn']} | {vs['compile']} | {r['floor_pct']:.0f}% |")
    return "\n".join(lines)


def run_masked_conv_benchmark(threads: Iterable[int] = (1, 2), quick: bool = False, clocks: Iterable[str] = CLOCKS) -> str:
    """The markdown report of `fastgen bench masked-conv`: a table per clock ("cpu" at 1 thread only);
    quick=True: fewer repeats, the two PixelCNN colour layers only."""
    shapes = SHAPES[:2] if quick else SHAPES
    runs = [masked_conv_results(threads if clock == "wall" else (1,), quick=quick, shapes=shapes, clock=clock)
            for clock in clocks]
    return format_masked_conv_markdown(*runs)


if __name__ == "__main__":
    import sys

    print(run_masked_conv_benchmark(quick="--quick" in sys.argv))
