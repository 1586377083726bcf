"""Benchmark of PixelCNN / Gated PixelCNN sampling: naive vs cached (plain PyTorch) vs fastgen (the
C++ fast sampler), side by side in one run, 1 thread.

Settings (issue 13's targets): the MNIST configurations (28x28 binary; PixelCNNConfig.mnist(),
GatedPixelCNNConfig.mnist()) at batch 1, and the colour PixelCNN (PixelCNNConfig(): 32x32x3, 256
levels, 15 blocks, h = 126) at batch 16.
naive    one full forward per sub-pixel. Its cost does not depend on the position, so it is timed per
         sub-pixel (a forward and the draw, median of repeats) and multiplied by C x H x W: stated in
         the table ("extrapolated"); a whole naive sample at batch 16 colour takes hours.
cached   sampling.sample_cached, whole images.
fastgen  fast_sampling.sample_fast, whole images (the plan of packed weights is made once per set of
         weights and reused; its one-off cost is reported beside the table).
Floor per image batch: every pixel computes each layer once, so the work is the live (unmasked)
weights x 2 FLOPs x pixels x batch, at the matmul rate measured in the same run; at batch 1 each
pixel also reads every weight once, at the read bandwidth measured for a working set of that size.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from fastgen.benchmarking.pixel_sampling_table import packing_seconds, sampling_markdown
from fastgen.benchmarking.timing import TimingConfig, measure_floors, threads, time_call
from fastgen.models import GatedPixelCNN, PixelCNN
from fastgen.models.pixelcnn import fast_sampling, sampling
from fastgen.models.pixelcnn.gated import GatedPixelCNNConfig
from fastgen.models.pixelcnn.model import PixelCNNConfig, PixelModel
from fastgen.models.pixelcnn.plan import build_plan
from fastgen.nn.masked_conv import MaskedConv2d


@dataclass(frozen=True)
class Setting:
    name: str
    model_class: type
    config: object
    batch: int


SETTINGS = (
    Setting("PixelCNN MNIST (28x28 binary, 7 blocks, h=32)", PixelCNN, PixelCNNConfig.mnist(), 1),
    Setting("Gated PixelCNN MNIST (28x28 binary, 7 layers, p=32)", GatedPixelCNN, GatedPixelCNNConfig.mnist(), 1),
    Setting("PixelCNN colour (32x32x3, 256 levels, 15 blocks, h=126)", PixelCNN, PixelCNNConfig(), 16),
)
PATHS = ("naive", "cached", "fastgen")


def live_weights(model: PixelModel) -> int:
    """Multiply-adds per pixel of one evaluation of every layer: the unmasked weights."""
    return sum(int(m.weight_mask.sum()) for m in model.modules() if isinstance(m, MaskedConv2d))


def _naive_subpixel(model: PixelModel, batch: int):
    """One naive step: a full forward of a half-drawn image and the draw of one sub-pixel."""
    cfg = model.config
    gen = torch.Generator().manual_seed(0)
    levels = torch.randint(0, cfg.levels, (batch, cfg.channels, cfg.height, cfg.width), generator=gen)
    u = torch.rand(batch, generator=gen)
    r, c = cfg.height // 2, cfg.width // 2

    def run():
        with torch.no_grad():
            logits = model.split_logits(model.network(model.network_input(levels)))
            levels[:, 0, r, c] = sampling.draw_levels(logits[:, 0, r, c], u)
    return run


def _timed(fn, quick: bool, slow: bool):
    repeats = 1 if slow else (3 if quick else 5)
    return time_call(fn, TimingConfig(warmup=0 if slow else 1, warmup_time=0.0, min_repeats=repeats,
                                      min_time=0.0 if slow else (0.2 if quick else 1.0)))


def sampling_results(quick: bool = False, settings=SETTINGS, paths=PATHS,
                     log=lambda message: None) -> tuple[list[dict], object]:
    """One row per (setting, path): seconds per batch of images (1 thread), the floor, the work."""
    models = {}
    for s in settings:
        torch.manual_seed(0)
        models[s.name] = s.model_class(s.config).eval()
    weight_bytes = {4 * live_weights(m) for m in models.values()}
    floors = measure_floors((1,), quick=quick, read_sets=weight_bytes)
    rows = []
    with threads(1):
        for s in settings:
            model, cfg = models[s.name], s.config
            pixels, subpixels = cfg.height * cfg.width, cfg.channels * cfg.height * cfg.width
            macs = live_weights(model)
            plan_s = packing_seconds(build_plan, model)
            floor = pixels * floors.weight_stream_seconds(2 * macs * s.batch, 4 * macs, 1)
            for path in paths:
                gen = torch.Generator().manual_seed(0)
                u = torch.rand(s.batch, cfg.channels, cfg.height, cfg.width, generator=gen)
                if path == "naive":
                    seconds = _timed(_naive_subpixel(model, s.batch), quick, slow=False).median * subpixels
                else:
                    sampler = sampling.sample_cached if path == "cached" else fast_sampling.sample_fast
                    slow = path == "cached" and s.batch > 1
                    seconds = _timed(lambda: sampler(model, s.batch, u), quick, slow).median
                rows.append({"setting": s.name, "batch": s.batch, "path": path, "seconds": seconds,
                             "floor_seconds": floor, "gflop": 2 * macs * pixels * s.batch / 1e9,
                             "weight_mb": 4 * macs / 1e6, "plan_seconds": plan_s,
                             "extrapolated": path == "naive"})
                log(f"[pixelcnn sampling] {s.name} batch {s.batch} {path}: {seconds:.3f} s")
    return rows, floors


def format_sampling_markdown(rows: list[dict], floors) -> str:
    notes = [
        "- s/batch = seconds to sample the whole batch of images; speedup vs naive in the same run;",
        "  naive* = one sub-pixel's forward + draw timed (median) and multiplied by C x H x W (its cost does not",
        "  depend on the position); % of floor = floor / measured (floor: live weights x 2 FLOPs per pixel at the",
        "  measured matmul rate, or at batch 1 the weights read once per pixel, whichever is slower).",
    ]
    columns = ["setting", "batch", "path", "s/batch", "images/s", "speedup vs naive", "GFLOP/batch", "weights MB",
               "% of floor"]
    naive = {(r["setting"], r["batch"]): r["seconds"] for r in rows if r["path"] == "naive"}

    def cells(r: dict) -> list[str]:
        base = naive.get((r["setting"], r["batch"]))
        return [r["setting"], str(r["batch"]), r["path"] + ("*" if r["extrapolated"] else ""), f"{r['seconds']:,.3f}",
                f"{r['batch'] / r['seconds']:,.2f}", f"{base / r['seconds']:,.0f}×" if base else "",
                f"{r['gflop']:.2f}", f"{r['weight_mb']:.2f}", f"{100 * r['floor_seconds'] / r['seconds']:.1f}%"]

    return sampling_markdown("PixelCNN sampling benchmark (1 thread)", floors, notes, columns, rows, cells)


def run_sampling_benchmark(quick: bool = False, log=lambda message: None) -> str:
    """The markdown of `fastgen bench pixelcnn`."""
    return format_sampling_markdown(*sampling_results(quick, log=log))
