"""Benchmark of WaveNet generation: samples per second of every path, side by side in one run.

Paths: naive (full recomputation over the receptive field per sample, timed at steady state with a
full receptive field of history), reference (Paine et al.'s
queues in plain PyTorch), fastgen cpu (the C++ kernel; float32 weights, and bfloat16 weights), at
batch 1 on 1 thread and batch 16 on 2 threads, for two model sizes:
  R=64, S=128, 20 layers (2 stacks of 10), 256 classes  (the issue's target model)
  R=128, S=256, 30 layers (3 stacks of 10), 256 classes
Floor per generation step: the weight set streamed once (bytes at the read bandwidth measured for a
working set of exactly that size, resident where the weights are: the limit at batch 1) or the FLOPs at the measured matmul rate (the limit for large batches),
whichever is slower. Real-time factor = samples/s per row / 16,000.

Training runs the dilated causal convolution with F.conv1d (oneDNN); causal_conv_results measures it
beside two matmul formulations, which is how the model's choice was made.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from fastgen.benchmarking.timing import TimingConfig, machine_line, measure_floors, threads, time_call
from fastgen.models import WaveNet, WaveNetConfig
from fastgen.reference import wavenet as reference

SAMPLE_RATE = 16_000
MODELS = {
    "R64 S128 L20": WaveNetConfig(),
    "R128 S256 L30": WaveNetConfig(residual_channels=128, skip_channels=256, stacks=3),
}
# (batch, threads) settings and the samples generated per timed call for each path.
SETTINGS = ((1, 1), (16, 2))
SAMPLES_PER_CALL = {"naive": 8, "reference": 200, "cpu": 4000, "cpu bf16": 4000}
QUICK_SAMPLES_PER_CALL = {"naive": 3, "reference": 50, "cpu": 800, "cpu bf16": 800}


@dataclass(frozen=True)
class WorkPerSample:
    macs: int          # multiply-adds of one generation step of one row
    weight_values: int  # weight values read once per step (shared by the rows of a batch)

    @classmethod
    def of(cls, cfg: WaveNetConfig) -> "WorkPerSample":
        R, S, H, C, L, k = (cfg.residual_channels, cfg.skip_channels, cfg.head_channels, cfg.classes, cfg.layers,
                            cfg.kernel_size)
        macs = L * (k * R * 2 * R + R * S) + (L - 1) * R * R + S * H + H * C
        biases = L * 2 * R + (L - 1) * R + S + H + C
        return cls(macs=macs, weight_values=macs + biases)


def _naive_steps(model: WaveNet, batch: int, n: int):
    """n steps of the naive path at steady state: each a forward over a full receptive field of
    inputs (generate(backend="naive") from silence starts with short histories, so timing it would
    flatter the definition)."""
    gen = torch.Generator().manual_seed(0)
    window = torch.randint(0, model.config.classes, (batch, model.config.receptive_field), generator=gen)

    def run():
        with torch.no_grad():
            for _ in range(n):
                logits = model.logits_from(window, lambda l: None)[:, :, -1]
                reference.sample_tokens(logits, torch.rand(batch, generator=gen), 1.0)
    return run


def path_call(model: WaveNet, path: str, batch: int, n: int):
    """One timed call of a path: "naive", "reference", or a cached backend with its weights' dtype
    ("cpu", "cpu bf16", "cuda", "cuda bf16", "triton"; the GPU ones with ``model`` on the GPU)."""
    if path == "naive":
        return _naive_steps(model, batch, n)
    if path == "reference":
        return lambda: model.generate(n, batch, backend=path, seed=0)
    backend, _, weights = path.partition(" ")
    cache = model.allocate_cache(batch, weight_dtype=torch.bfloat16 if weights == "bf16" else torch.float32, seed=0)
    return lambda: model.generate(n, cache=cache, backend=backend)


def wavenet_results(quick: bool = False, models: dict[str, WaveNetConfig] | None = None,
                    settings=SETTINGS, paths=tuple(SAMPLES_PER_CALL)) -> tuple[list[dict], object]:
    """One row per (model, batch, threads, path): samples/s, floor, and the work per sample."""
    per_call = QUICK_SAMPLES_PER_CALL if quick else SAMPLES_PER_CALL
    timing = TimingConfig(warmup=1, warmup_time=0.0, min_repeats=3 if quick else 5, min_time=0.2 if quick else 1.0)
    models = models or MODELS
    weight_sets = {WorkPerSample.of(cfg).weight_values * nbytes for cfg in models.values() for nbytes in (2, 4)}
    floors = measure_floors(sorted({t for _, t in settings}), quick=quick, read_sets=weight_sets)
    rows = []
    for name, cfg in models.items():
        torch.manual_seed(0)
        model = WaveNet(cfg).eval()
        work = WorkPerSample.of(cfg)
        for batch, n_threads in settings:
            with threads(n_threads):
                for path in paths:
                    if path == "naive" and batch > 1:
                        continue  # ~1000x slower than the cached paths; batch 1 makes the point
                    n = per_call[path]
                    result = time_call(path_call(model, path, batch, n), timing)
                    bytes_per_value = 2 if path == "cpu bf16" else 4
                    step_bytes = work.weight_values * bytes_per_value
                    floor_step = floors.weight_stream_seconds(2 * work.macs * batch, step_bytes, n_threads)
                    rows.append({
                        "model": name, "batch": batch, "threads": n_threads, "path": path,
                        "samples_per_s": batch * n / result.median,
                        "floor_samples_per_s": batch / floor_step,
                        "mflop_per_sample": 2 * work.macs / 1e6,
                        "weight_mb": step_bytes / 1e6,
                        "other_load": result.other_load,
                    })
    return rows, floors


# --- GPU generation (only with a GPU) -------------------------------------------------------------

# The reference queues on CUDA tensors (a few dozen small kernel launches per sample: the baseline a
# PyTorch user has on a GPU), and the persistent kernels: one launch per call, weights read from
# shared memory or L2, one block (CUDA) or program (Triton) per row.
GPU_SAMPLES_PER_CALL = {"reference": 100, "cuda": 16000, "cuda bf16": 16000, "triton": 16000}
QUICK_GPU_SAMPLES_PER_CALL = {"reference": 30, "cuda": 4000, "cuda bf16": 4000, "triton": 4000}
GPU_BATCHES = (1, 16, 256)


def gpu_wavenet_results(quick: bool = False, models: dict[str, WaveNetConfig] | None = None,
                        batches=GPU_BATCHES, paths=tuple(GPU_SAMPLES_PER_CALL),
                        log: Callable[[str], None] = lambda message: None) -> list[dict]:
    """One row per (model, batch, path) on the GPU: samples/s, each call synchronised."""
    if not torch.cuda.is_available():
        raise RuntimeError("gpu_wavenet_results: no CUDA device")
    per_call = QUICK_GPU_SAMPLES_PER_CALL if quick else GPU_SAMPLES_PER_CALL
    timing = TimingConfig(warmup=1, warmup_time=0.0, min_repeats=3 if quick else 5, min_time=0.2 if quick else 1.0)
    rows = []
    for name, cfg in (models or MODELS).items():
        torch.manual_seed(0)
        model = WaveNet(cfg).eval().cuda()
        for batch in batches:
            for path in paths:
                if path == "reference" and batch > 16:
                    continue  # launch-bound at any batch; the small batches make the point
                n = per_call[path]
                result = time_call(path_call(model, path, batch, n), timing, sync=torch.cuda.synchronize)
                rows.append({"model": name, "batch": batch, "path": path, "samples_per_s": batch * n / result.median})
                log(f"[wavenet] {name} batch {batch} {path}: {rows[-1]['samples_per_s']:,.0f} samples/s")
    return rows


def format_gpu_wavenet_markdown(rows: list[dict]) -> str:
    lines = [
        "# WaveNet generation on the GPU",
        "",
        f"- GPU: {torch.cuda.get_device_name() if torch.cuda.is_available() else 'none'}; "
        f"{_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC",
        "- samples/s = all rows together, each call synchronised; real time = samples/s per row / 16,000;",
        "  speedup vs the reference queues on the GPU at the same batch.",
        "",
        "| model | batch | path | samples/s | real time × | speedup vs reference |",
        "|---|---:|---|---:|---:|---:|",
    ]
    base = {(r["model"], r["batch"]): r["samples_per_s"] for r in rows if r["path"] == "reference"}
    for r in rows:
        ref = base.get((r["model"], r["batch"]))
        speedup = f"{r['samples_per_s'] / ref:.1f}×" if ref else ""
        lines.append(f"| {r['model']} | {r['batch']} | {r['path']} | {r['samples_per_s']:,.0f} | "
                     f"{r['samples_per_s'] / r['batch'] / SAMPLE_RATE:.2f} | {speedup} |")
    return "\n".join(lines) + "\n"


# --- training: the dilated causal convolution -----------------------------------------------------

def _causal_conv_variants(x: Tensor, w: Tensor, b: Tensor, d: int) -> dict[str, Callable[[], Tensor]]:
    """Three ways to compute one kernel-2 dilated causal convolution [B, R, T] -> [B, 2R, T]."""
    B, _, T = x.shape

    def conv1d():
        return F.conv1d(F.pad(x, (d, 0)), w, b, dilation=d)

    def two_matmuls():
        shifted = F.pad(x, (d, 0))[:, :, :T]
        return torch.baddbmm(b[None, :, None].expand(B, -1, -1), w[:, :, 0].expand(B, -1, -1), shifted) + w[:, :, 1] @ x

    def stacked_linear():
        xt = F.pad(x, (d, 0)).transpose(1, 2)
        taps = torch.cat([xt[:, :T], xt[:, d:]], dim=2)
        return F.linear(taps, w.permute(0, 2, 1).reshape(w.shape[0], -1), b).transpose(1, 2)

    return {"F.conv1d": conv1d, "two matmuls": two_matmuls, "stacked taps, one linear": stacked_linear}


def causal_conv_results(quick: bool = False, batch: int = 8, residual: int = 64, length: int = 4096,
                        dilation: int = 64) -> tuple[list[dict], float]:
    """Forward+backward time of each formulation of WaveNet's training convolution, 1 thread."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, residual, length, generator=gen, requires_grad=True)
    w = torch.randn(2 * residual, residual, 2, generator=gen, requires_grad=True)
    b = torch.randn(2 * residual, generator=gen, requires_grad=True)
    timing = TimingConfig(warmup=2, warmup_time=0.0, min_repeats=5 if quick else 15, min_time=0.2 if quick else 1.0)
    flops = 3 * 2 * batch * length * (2 * residual) * (2 * residual)  # forward + two backward products
    rows = []
    with threads(1):
        gflops = measure_floors((1,), quick=True).matmul_gflops_per_thread
        for name, fn in _causal_conv_variants(x, w, b, dilation).items():
            result = time_call(lambda: fn().sum().backward(), timing)
            rows.append({"variant": name, "ms": result.median * 1e3, "gflops": flops / result.median / 1e9})
    return rows, gflops


def format_causal_conv_markdown(rows: list[dict], peak_gflops: float) -> str:
    lines = ["## Training: dilated causal convolution (B=8, R=64, T=4096, d=64, kernel 2), forward+backward, 1 thread",
             "", f"Matmul peak measured in the same run: {peak_gflops:.1f} GFLOP/s.", "",
             "| formulation | ms | GFLOP/s | % of matmul peak |", "|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['variant']} | {r['ms']:.2f} | {r['gflops']:.1f} | {100 * r['gflops'] / peak_gflops:.0f}% |")
    return "\n".join(lines) + "\n"


def format_wavenet_markdown(rows: list[dict], floors) -> str:
    lines = [
        "# WaveNet generation benchmark",
        "",
        f"- Machine: {machine_line()}",
        f"- Floors: {floors.describe()}",
        f"- Date: {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC",
        "- samples/s = all rows together; real time = samples/s per row / 16,000 (>= 1 is real time at 16 kHz);",
        "  speedup vs the reference queue path in the same setting; % of floor = measured / floor rate.",
        "",
        "| model | batch | threads | path | samples/s | real time × | speedup vs reference | MFLOP/sample | "
        "weights MB/step | floor samples/s | % of floor |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    base = {(r["model"], r["batch"], r["threads"]): r["samples_per_s"] for r in rows if r["path"] == "reference"}
    for r in rows:
        ref = base.get((r["model"], r["batch"], r["threads"]))
        speedup = f"{r['samples_per_s'] / ref:.1f}×" if ref else ""
        load = " (busy machine)" if r["other_load"] is not None and r["other_load"] > 0.25 else ""
        lines.append(
            f"| {r['model']} | {r['batch']} | {r['threads']} | {r['path']}{load} | {r['samples_per_s']:,.0f} | "
            f"{r['samples_per_s'] / r['batch'] / SAMPLE_RATE:.3f} | {speedup} | {r['mflop_per_sample']:.2f} | "
            f"{r['weight_mb']:.2f} | {r['floor_samples_per_s']:,.0f} | "
            f"{100 * r['samples_per_s'] / r['floor_samples_per_s']:.0f}% |")
    return "\n".join(lines) + "\n"


def run_wavenet_benchmark(threads: tuple[int, ...] = (1, 2), quick: bool = False) -> str:
    """The markdown table of `fastgen bench wavenet`: batch 1 on 1 thread, batch 16 on the most threads."""
    settings = ((1, 1), (16, max(threads)))
    return (format_wavenet_markdown(*wavenet_results(quick, settings=settings)) + "\n"
            + format_causal_conv_markdown(*causal_conv_results(quick)))
