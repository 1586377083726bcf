"""Benchmark of PixelRNN's recurrences (fastgen.ops.row_lstm, diagonal_lstm): one layer's recurrence
on the paper's MNIST and colour configurations.

Providers (columns):
  eager        fastgen.reference.pixel_lstm: the readable twin (a loop of conv1d + pointwise per step;
               the Diagonal LSTM on the skewed image, as public implementations run it)
  compile      torch.compile of that twin (compiled once per shape and thread count, untimed)
  fastgen-cpu  the C++ kernels under use_backend("cpu")
Workloads: forward (no_grad) and forward+backward (gradients of pre, w_ss and the Row LSTM's bias).
FLOPs count the state-to-state products on the H W pixels only (the skewed image has H (W + H - 1)
cells): 2 x 4h x h x taps per pixel forward; the backward's input and weight gradients 2x that.
"% of floor" = FLOPs / (measured float32 matmul FLOP/s per thread x threads) / time.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import torch

import fastgen
from fastgen.benchmarking.timing import (DEFAULT_TIMING, QUICK_TIMING, MachineFloors, TimingConfig, machine_line,
                                         measure_floors, threads as _threads, time_call)
from fastgen.ops import diagonal_lstm, row_lstm
from fastgen.reference import pixel_lstm as _ref

PROVIDERS = ("eager", "compile", "fastgen-cpu")
# The colour layers' eager Diagonal LSTM takes tens of seconds a call: few repeats, capped in time.
SLOW_TIMING = TimingConfig(warmup=1, warmup_time=0.0, min_repeats=5, min_time=0.5, max_time=20.0)
WORKLOADS = ("forward", "forward+backward")


@dataclass(frozen=True)
class Shape:
    name: str
    layer: str  # "row" (k = 3, bias) or "diagonal" (one direction)
    B: int
    hidden: int
    H: int
    W: int

    @property
    def taps(self) -> int:
        return 3 if self.layer == "row" else 2

    def flops(self, workload: str) -> float:
        forward = 2.0 * self.B * self.H * self.W * 4 * self.hidden * self.hidden * self.taps
        return forward if workload == "forward" else 3 * forward


SHAPES = [
    Shape("MNIST Row LSTM", "row", 16, 16, 28, 28),
    Shape("MNIST Diagonal LSTM", "diagonal", 16, 16, 28, 28),
    Shape("colour Row LSTM", "row", 16, 128, 32, 32),
    Shape("colour Diagonal LSTM", "diagonal", 16, 128, 32, 32),
]


def _providers(shape: Shape) -> dict[str, Callable]:
    if shape.layer == "row":
        def reference(pre, w, b):
            return _ref.row_lstm(pre, w, b)

        def kernel(pre, w, b):
            with fastgen.use_backend("cpu"):
                return row_lstm(pre, w, b)
    else:
        def reference(pre, w, b):
            return _ref.diagonal_lstm(pre, w)

        def kernel(pre, w, b):
            with fastgen.use_backend("cpu"):
                return diagonal_lstm(pre, w)

    return {"eager": reference, "compile": torch.compile(reference, dynamic=False), "fastgen-cpu": kernel}


def _call(fn: Callable, workload: str, pre, w, b, grad_out) -> Callable[[], object]:
    if workload == "forward":
        def run():
            with torch.no_grad():
                return fn(pre, w, b)
        return run
    wrt = [pre, w] + ([b] if b is not None else [])
    return lambda: torch.autograd.grad(fn(pre, w, b), wrt, grad_out)


def pixel_lstm_results(threads: Iterable[int] = (1, 2), quick: bool = False, shapes: Iterable[Shape] = SHAPES,
                       providers: Iterable[str] = PROVIDERS) -> dict:
    """{"machine", "floors", "rows"}: one row per (shape, workload, threads) with each provider's
    median seconds, fastgen's speedups over the others and its % of the matmul floor."""
    thread_counts, wanted = tuple(threads), tuple(providers)
    floors = measure_floors(thread_counts, quick=quick)
    rows = []
    gen = torch.Generator().manual_seed(0)
    for shape in shapes:
        n = shape.hidden
        pre = torch.randn(shape.B, 4 * n, shape.H, shape.W, generator=gen).requires_grad_()
        w = (torch.randn(4 * n, n, shape.taps, generator=gen) / (n * shape.taps) ** 0.5).requires_grad_()
        b = torch.randn(4 * n, generator=gen).requires_grad_() if shape.layer == "row" else None
        grad_out = torch.randn(shape.B, n, shape.H, shape.W, generator=gen)
        config = QUICK_TIMING if quick else SLOW_TIMING if shape.hidden >= 64 else DEFAULT_TIMING
        for count in thread_counts:
            with _threads(count):
                fns = {p: fn for p, fn in _providers(shape).items() if p in wanted or p == "fastgen-cpu"}
                for workload in WORKLOADS:
                    times = {p: time_call(_call(fn, workload, pre, w, b, grad_out), config).median
                             for p, fn in fns.items()}
                    ours = times["fastgen-cpu"]
                    rows.append({"shape": shape.name, "workload": workload, "threads": count, "seconds": times,
                                 "speedup": {p: times[p] / ours for p in times if p != "fastgen-cpu"},
                                 "floor_pct": 100 * shape.flops(workload) / floors.flops_per_s(count) / ours})
    return {"machine": machine_line(), "floors": floors, "rows": rows}


def format_pixel_lstm_markdown(results: dict) -> str:
    floors: MachineFloors = results["floors"]
    lines = [f"Machine: {results['machine']}", f"Floor: {floors.describe()}", "",
             "| layer | workload | threads | eager ms | compile ms | fastgen-cpu ms | vs eager | vs compile "
             "| % of floor |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]

    def ms(r, p):
        return f"{r['seconds'][p] * 1e3:.2f}" if p in r["seconds"] else "-"

    def ratio(r, p):
        return f"{r['speedup'][p]:.1f}x" if p in r["speedup"] else "-"

    for r in results["rows"]:
        lines.append(f"| {r['shape']} | {r['workload']} | {r['threads']} | {ms(r, 'eager')} | {ms(r, 'compile')} | "
                     f"{ms(r, 'fastgen-cpu')} | {ratio(r, 'eager')} | {ratio(r, 'compile')} | {r['floor_pct']:.0f}% |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Benchmark fastgen.ops.row_lstm / diagonal_lstm (one layer, CPU).")
    parser.add_argument("--quick", action="store_true", help="fewer repeats (median of >= 10 calls)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts (default 1 2)")
    parser.add_argument("--shapes", nargs="+", choices=[s.name for s in SHAPES], metavar="NAME",
                        help=f"shapes to run (default all): {', '.join(repr(s.name) for s in SHAPES)}")
    parser.add_argument("--providers", nargs="+", choices=PROVIDERS, default=list(PROVIDERS),
                        help="columns to time besides fastgen-cpu (compiling the Diagonal twin takes minutes)")
    args = parser.parse_args(argv)
    shapes = [s for s in SHAPES if args.shapes is None or s.name in args.shapes]
    print(format_pixel_lstm_markdown(pixel_lstm_results(args.threads, args.quick, shapes, args.providers)))


if __name__ == "__main__":
    main()
