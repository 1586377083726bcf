"""Benchmark of IRGAN's item ops (fastgen.ops.sample_items / topk_items) against the plain-PyTorch twin.

Providers:
  twin     the [U, I] score matrix: torch.addmm, then for sampling an in-place division by T, softmax
           and torch.multinomial (k draws with replacement); for top-k, the excluded entries set to
           -inf in place and torch.topk
  fastgen  the op under use_backend("cpu"): item tiles streamed past groups of users, no matrix
Time: median of repeated calls in this process. Peak memory: for each provider a fresh subprocess
allocates the inputs, reads VmHWM from /proc/self/status, makes one call and reads it again: the delta
is the call's peak resident memory beyond its inputs (measured), printed beside the twin's matrix bytes
counted analytically (scores, plus probabilities for sampling). "% of floor": one pass of scores,
2 U I d FLOPs, at this machine's float32 matmul rate (512^3 torch.mm, measured in the same run), over
the kernel's time (the sampler recomputes the tiles its draws land in on top of that pass).
"""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from typing import Callable, Iterable

import torch

import fastgen
from fastgen.benchmarking.timing import (QUICK_TIMING, TimingConfig, machine_line, measure_matmul_gflops,
                                         threads as _threads, time_call)
from fastgen.memory import format_bytes, memory_limit
from fastgen.ops import sample_items, topk_items

OPS = ("sample_items", "topk_items")
PROVIDERS = ("twin", "fastgen")
TEMPERATURE = 0.2
EXCLUDED_PER_USER = 50  # train items removed from each user's ranking
# big shapes: few repeats (a twin call takes seconds and gigabytes)
LARGE_TIMING = TimingConfig(warmup=1, warmup_time=0.0, min_repeats=3, min_time=0.0)


@dataclass(frozen=True)
class Shape:
    name: str
    U: int
    I: int
    d: int
    k: int  # draws per user (sampling) and places (top-k)

    def flops(self) -> float:
        return 2.0 * self.U * self.I * self.d

    def twin_matrix_bytes(self, op: str) -> int:
        return self.U * self.I * 4 * (2 if op == "sample_items" else 1)

    @property
    def large(self) -> bool:
        return self.U * self.I > 10**8


SHAPES = [
    Shape("MovieLens-100k, d=5", 943, 1682, 5, 16),
    Shape("MovieLens-100k, d=64", 943, 1682, 64, 16),
    Shape("1M items, d=64", 1024, 1_000_000, 64, 16),
]
QUICK_SHAPES = SHAPES[:2] + [Shape("100k items, d=64", 1024, 100_000, 64, 16)]


def inputs(shape: Shape) -> dict:
    gen = torch.Generator().manual_seed(0)
    U, I, d = shape.U, shape.I, shape.d
    excluded = torch.randint(0, I, (U * EXCLUDED_PER_USER,), generator=gen)
    return {"user": torch.randn(U, d, generator=gen), "item": torch.randn(I, d, generator=gen) / d ** 0.5,
            "bias": torch.randn(I, generator=gen), "uniforms": torch.rand(U, shape.k, generator=gen),
            "indptr": torch.arange(0, U * EXCLUDED_PER_USER + 1, EXCLUDED_PER_USER), "excluded": excluded}


def call(op: str, provider: str, shape: Shape, t: dict) -> Callable[[], object]:
    rows = torch.arange(shape.U).repeat_interleave(EXCLUDED_PER_USER)
    if provider == "twin" and op == "sample_items":
        def run():
            p = torch.softmax(torch.addmm(t["bias"], t["user"], t["item"].T).div_(TEMPERATURE), dim=1)
            return torch.multinomial(p, shape.k, replacement=True)
    elif provider == "twin":
        def run():
            s = torch.addmm(t["bias"], t["user"], t["item"].T)
            s[rows, t["excluded"]] = float("-inf")
            return torch.topk(s, shape.k, dim=1)
    elif op == "sample_items":
        def run():
            with fastgen.use_backend("cpu"):
                return sample_items(t["user"], t["item"], t["bias"], t["uniforms"], TEMPERATURE)
    else:
        def run():
            with fastgen.use_backend("cpu"):
                return topk_items(t["user"], t["item"], t["bias"], shape.k, (t["indptr"], t["excluded"]))
    return run


def _vm_hwm() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("fastgen.benchmarking.irgan_ops: no VmHWM in /proc/self/status")


def peak_bytes(op: str, provider: str, shape: Shape, n_threads: int) -> int | None:
    """VmHWM growth of one call in a fresh process (None where /proc is missing or the run fails)."""
    code = ("import json, sys, torch; from fastgen.benchmarking import irgan_ops as b; "
            f"torch.set_num_threads({n_threads}); s = b.Shape(**json.loads(sys.argv[1])); t = b.inputs(s); "
            f"run = b.call({op!r}, {provider!r}, s, t); h = b._vm_hwm(); run(); print(b._vm_hwm() - h)")
    arg = json.dumps(shape.__dict__)
    done = subprocess.run([sys.executable, "-c", code, arg], capture_output=True, text=True)
    return int(done.stdout.split()[-1]) if done.returncode == 0 and done.stdout.split() else None


def _twin_fits(op: str, shape: Shape) -> bool:
    """Whether the twin's matrices (plus half again for the softmax / multinomial temporaries) fit the
    memory available now: on a shared machine, running out would take other processes down too."""
    try:
        with open("/proc/meminfo") as f:
            available = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration):
        available = memory_limit()
    return 1.5 * shape.twin_matrix_bytes(op) < available


def irgan_ops_results(threads: Iterable[int] = (1,), quick: bool = False) -> dict:
    """{"machine", "matmul_gflops", "rows"}: per (op, shape, threads) each provider's median seconds
    and peak bytes, the speedup and fastgen's % of the one-pass FLOP floor."""
    gflops = measure_matmul_gflops(QUICK_TIMING)
    rows = []
    for shape in QUICK_SHAPES if quick else SHAPES:
        t = inputs(shape)
        for n in threads:
            with _threads(n):
                for op in OPS:
                    config = LARGE_TIMING if shape.large else QUICK_TIMING
                    row = {"op": op, "shape": shape, "threads": n, "seconds": {}, "peak": {}}
                    for provider in PROVIDERS:
                        if provider == "twin" and not _twin_fits(op, shape):
                            row["seconds"][provider] = row["peak"][provider] = None
                            continue
                        row["seconds"][provider] = time_call(call(op, provider, shape, t), config).median
                        row["peak"][provider] = peak_bytes(op, provider, shape, n)
                    twin = row["seconds"]["twin"]
                    row["speedup"] = None if twin is None else twin / row["seconds"]["fastgen"]
                    row["floor_pct"] = 100 * shape.flops() / (gflops * 1e9 * n) / row["seconds"]["fastgen"]
                    rows.append(row)
    return {"machine": machine_line(), "matmul_gflops": gflops, "rows": rows}


def format_irgan_ops_markdown(results: dict) -> str:
    def mem(b):
        return "n/a" if b is None else format_bytes(b)

    lines = [f"Machine: {results['machine']}",
             f"Floor: float32 matmul {results['matmul_gflops']:.1f} GFLOP/s per thread (512^3 torch.mm), one "
             "pass of scores = 2 U I d FLOPs; T = 0.2; top-k excludes 50 items per user", "",
             "| op | shape (U x I x d, k) | threads | twin s | fastgen s | speedup | twin matrix (analytic) "
             "| twin peak (VmHWM) | fastgen peak (VmHWM) | fastgen % of floor |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results["rows"]:
        s, sec, peak = r["shape"], r["seconds"], r["peak"]
        twin = "skipped (memory)" if sec["twin"] is None else f"{sec['twin']:.3f}"
        speedup = "n/a" if r["speedup"] is None else f"{r['speedup']:.2f}x"
        lines.append(f"| {r['op']} | {s.name}: {s.U} x {s.I} x {s.d}, k={s.k} | {r['threads']} | {twin} | "
                     f"{sec['fastgen']:.3f} | {speedup} | {format_bytes(s.twin_matrix_bytes(r['op']))} | "
                     f"{mem(peak['twin'])} | {mem(peak['fastgen'])} | {r['floor_pct']:.0f}% |")
    return "\n".join(lines)


def items_bench_markdown(threads: Iterable[int] = (1,), quick: bool = False) -> str:
    """The markdown table `fastgen bench irgan` prints (see the module doc)."""
    return format_irgan_ops_markdown(irgan_ops_results(tuple(threads), quick))


if __name__ == "__main__":
    print(items_bench_markdown(quick="--quick" in sys.argv))
