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
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import torch

import fastgen
from fastgen.benchmarking.timing import (DEFAULT_TIMING, QUICK_TIMING, MachineFloors, machine_line, measure_floors,
                                         threads as _threads, time_call)
from fastgen.ops import masked_conv2d
from fastgen.reference import masked_conv as _ref

PROVIDERS = ("onednn", "compile", "fastgen-cpu")
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


def _providers(shape: Shape) -> dict[str, Callable]:
    def reference(x, w, b):
        return _ref.masked_conv2d(x, w, b, shape.mask, shape.groups)

    def kernel(x, w, b):
        with fastgen.use_backend("cpu"):
            return masked_conv2d(x, w, b, shape.mask, shape.groups)

    return {"onednn": reference, "compile": torch.compile(reference, dynamic=False), "fastgen-cpu": kernel}


def _call(conv: Callable, workload: str, x, w, b, grad_out) -> Callable[[], object]:
    if workload == "forward":
        def run():
            with torch.no_grad():
                return conv(x, w, b)
        return run
    wrt = [t for t in (x, w, b) if t.requires_grad]
    return lambda: torch.autograd.grad(conv(x, w, b), wrt, grad_out)


def masked_conv_results(threads: Iterable[int] = (1, 2), quick: bool = False,
                        shapes: Iterable[Shape] = SHAPES) -> dict:
    """{"machine", "floors", "rows"}: one row per (shape, workload, threads) with each provider's
    median seconds, fastgen's speedups over the baselines and its % of the matmul floor."""
    thread_counts = tuple(threads)
    config = QUICK_TIMING if quick else DEFAULT_TIMING
    floors = measure_floors(thread_counts, quick=quick)
    rows = []
    gen = torch.Generator().manual_seed(0)
    for shape in shapes:
        x = torch.randn(shape.B, shape.Cin, shape.H, shape.W, generator=gen).requires_grad_(not shape.first_layer)
        w = (torch.randn(shape.Cout, shape.Cin, shape.k, shape.k, generator=gen) * 0.1).requires_grad_()
        b = torch.randn(shape.Cout, generator=gen).requires_grad_()
        grad_out = torch.randn(shape.B, shape.Cout, shape.H, shape.W, generator=gen)
        for n in thread_counts:
            with _threads(n):
                providers = _providers(shape)  # compiled per thread count: Inductor bakes it in
                for workload in WORKLOADS:
                    times = {p: time_call(_call(fn, workload, x, w, b, grad_out), config).median
                             for p, fn in providers.items()}
                    ours = times["fastgen-cpu"]
                    rows.append({"shape": shape.name, "workload": workload, "threads": n, "seconds": times,
                                 "speedup": {p: times[p] / ours for p in PROVIDERS if p != "fastgen-cpu"},
                                 "floor_pct": 100 * shape.flops(workload) / floors.flops_per_s(n) / ours})
    return {"machine": machine_line(), "floors": floors, "rows": rows}


def format_masked_conv_markdown(results: dict) -> str:
    floors: MachineFloors = results["floors"]
    lines = [f"Machine: {results['machine']}", f"Floor: {floors.describe()}", "",
             "| shape | workload | threads | onednn ms | compile ms | fastgen-cpu ms | vs onednn | vs compile "
             "| % of floor |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results["rows"]:
        s = r["seconds"]
        lines.append(f"| {r['shape']} | {r['workload']} | {r['threads']} | {s['onednn'] * 1e3:.2f} | "
                     f"{s['compile'] * 1e3:.2f} | {s['fastgen-cpu'] * 1e3:.2f} | {r['speedup']['onednn']:.2f}x | "
                     f"{r['speedup']['compile']:.2f}x | {r['floor_pct']:.0f}% |")
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    print(format_masked_conv_markdown(masked_conv_results(quick="--quick" in sys.argv)))
