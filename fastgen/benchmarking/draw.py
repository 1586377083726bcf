"""Benchmark of the DRAW model: batch-1 sampling and a training step, fastgen ops vs reference ops.

Rows (the paper's MNIST model: 28x28, T=64, LSTMs of 256, z of 100, read 2x2, write 5x5):
  sample, batch 1   reference: DRAW.sample step by step on fastgen.reference ops (the baseline);
                    fastgen loop: the same loop on the fastgen cpu attention ops;
                    fastgen fused: fastgen.ops.draw_generate, the whole T-step pass in one call
                    (what DRAW.sample runs on the cpu backend)
  train step, B=64  loss + backward on binarised images: the model on the reference backend (plain
                    nn.LSTMCell / nn.Linear and reference attention) vs the cpu backend
                    (fastgen.models.draw.bptt's hand-written core: the attention kernels, the
                    fused LSTM pointwise op, per-sequence weight gradients)
  AlignDRAW train step, B=64
                    the same for AlignDRAW's paper configuration (60x60, T=32, LSTMs of 300, z of
                    150, read and write 8x8) on random captions (fastgen.models.aligndraw.bptt)
Floor for sampling: the decoder weights (4D x (Z + D) floats, 1.46 MB for this model) are read once
per step, so T times that many bytes at the read bandwidth measured for a working set of that size.
"""
from __future__ import annotations

import datetime as _dt

import torch

from fastgen.backend import use_backend
from fastgen.benchmarking.timing import DEFAULT_TIMING, QUICK_TIMING, machine_line, measure_floors, threads, time_call
from fastgen.models import AlignDRAW, AlignDRAWConfig, DRAW, DRAWConfig


def _sample_loop(model: DRAW, generator: torch.Generator):
    # return_windows forces the step-by-step loop (the fused op returns only the final canvas)
    return lambda: model.sample(1, generator, return_windows=True)


def _training_step(model, inputs: tuple, generator: torch.Generator):
    """One loss + backward of ``model`` on ``inputs`` (a training step without the optimizer)."""
    def step():
        loss, _ = model.loss(*inputs, generator)
        loss.backward()
    return step


def _aligndraw_training_step(cfg: AlignDRAWConfig, gen: torch.Generator, batch: int = 64):
    """_training_step of AlignDRAW on binarised images with random captions of 4 to 12 words."""
    torch.manual_seed(0)
    model = AlignDRAW(cfg)
    images = (torch.rand(batch, cfg.channels, cfg.height, cfg.width, generator=gen) > 0.8).float()
    lengths = torch.randint(4, 13, (batch,), generator=gen)
    tokens = torch.randint(0, cfg.vocab_size, (batch, 12), generator=gen)
    return _training_step(model, (images, tokens, lengths), gen)


def draw_results(thread_counts=(1,), quick: bool = False, config: DRAWConfig | None = None,
                 aligndraw_config: AlignDRAWConfig | None = None) -> list[dict]:
    timing = QUICK_TIMING if quick else DEFAULT_TIMING
    cfg = config or DRAWConfig()
    torch.manual_seed(0)
    model = DRAW(cfg)
    gen = torch.Generator().manual_seed(0)
    images = (torch.rand(64, cfg.channels, cfg.height, cfg.width, generator=gen) > 0.5).float()
    step_bytes = 4 * 4 * cfg.dec_size * (cfg.z_size + cfg.dec_size)  # float32 decoder weights, read once a step
    train_step = _training_step(model, (images,), gen)
    align_step = _aligndraw_training_step(aligndraw_config or AlignDRAWConfig(), gen)
    # Measured for every thread count at once: the floor at t threads is the best read at up to t.
    floors = measure_floors(thread_counts, timing, read_sets=(step_bytes,))
    rows = []
    for t in thread_counts:
        with threads(t):
            cases = {
                ("sample, batch 1", "reference"): ("reference", _sample_loop(model, gen)),
                ("sample, batch 1", "fastgen loop"): ("cpu", _sample_loop(model, gen)),
                ("sample, batch 1", "fastgen fused"): ("cpu", lambda: model.sample(1, gen)),
                ("train step, B=64", "reference"): ("reference", train_step),
                ("train step, B=64", "fastgen"): ("cpu", train_step),
            }
            cases[("AlignDRAW train step, B=64", "reference")] = ("reference", align_step)
            cases[("AlignDRAW train step, B=64", "fastgen")] = ("cpu", align_step)
            for (workload, provider), (backend, fn) in cases.items():
                with use_backend(backend):
                    timing_result = time_call(fn, timing)
                floor_us = (cfg.T * step_bytes / floors.read_bytes_per_s(t, step_bytes) * 1e6
                            if "sample" in workload else None)
                rows.append({"workload": workload, "provider": provider, "threads": t,
                             "median_us": timing_result.median_us, "floor_us": floor_us,
                             "other_load": timing_result.other_load})
    return rows


def gpu_draw_results(quick: bool = False, config: DRAWConfig | None = None,
                     backends=("reference", "cuda"), log=lambda message: None) -> list[dict]:
    """The same training step and batch-1 sampling loop on the GPU, one row per backend (each call
    synchronised). DRAW on CUDA runs its step loop; only the attention ops change with the backend."""
    if not torch.cuda.is_available():
        raise RuntimeError("gpu_draw_results: no CUDA device")
    timing = QUICK_TIMING if quick else DEFAULT_TIMING
    cfg = config or DRAWConfig()
    torch.manual_seed(0)
    model = DRAW(cfg).cuda()
    gen = torch.Generator(device="cuda").manual_seed(0)
    images = (torch.rand(64, cfg.channels, cfg.height, cfg.width, generator=gen, device="cuda") > 0.5).float()
    rows = []
    for workload, fn in (("sample, batch 1", lambda: model.sample(1, gen)),
                         ("train step, B=64", _training_step(model, (images,), gen))):
        for backend in backends:
            with use_backend(backend):
                result = time_call(fn, timing, sync=torch.cuda.synchronize)
            rows.append({"workload": workload, "provider": backend, "threads": "GPU",
                         "median_us": result.median_us, "floor_us": None, "other_load": result.other_load})
            log(f"[draw] {workload} {backend}: {result.median_us / 1e3:.2f} ms")
    return rows


def format_draw_markdown(rows: list[dict], config: DRAWConfig | None = None) -> str:
    cfg = config or DRAWConfig()
    lines = [
        "# DRAW benchmark (fastgen ops vs reference ops)",
        "",
        f"- Machine: {machine_line()}",
        f"- Date: {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- Model: {cfg.height}x{cfg.width}, T={cfg.T}, LSTMs {cfg.enc_size}/{cfg.dec_size}, z {cfg.z_size}, "
        f"read {cfg.read_N}, write {cfg.write_N}; median per call after warm-up",
        *(["- AlignDRAW: the paper's MNIST-with-captions configuration (60x60, T=32, LSTMs 300, z 150, read and "
           "write 8x8), random captions of 4 to 12 words"]
          if any(r["workload"].startswith("AlignDRAW") for r in rows) else []),
        "",
        "| workload | threads | provider | ms | speedup vs reference | % of floor |",
        "|---|---:|---|---:|---:|---:|",
    ]
    base = {(r["workload"], r["threads"]): r["median_us"] for r in rows if r["provider"] == "reference"}
    for r in rows:
        speedup = base[(r["workload"], r["threads"])] / r["median_us"]
        floor = f"{100 * r['floor_us'] / r['median_us']:.0f}%" if r["floor_us"] else ""
        lines.append(f"| {r['workload']} | {r['threads']} | {r['provider']} | {r['median_us'] / 1e3:.2f} | "
                     f"{speedup:.2f}× | {floor} |")
    return "\n".join(lines) + "\n"


def run_draw_benchmark(threads: tuple[int, ...] = (1,), quick: bool = False) -> str:
    """The markdown table of `fastgen bench draw`."""
    return format_draw_markdown(draw_results(threads, quick))
