"""Benchmark of PixelRNN sampling: naive vs fastgen (the C++ cached sampler), side by side in one run,
1 thread, batch 1, on the paper's binary-MNIST model (PixelRNNConfig.mnist(): 28x28, 7 layers, h = 16)
with Row LSTM and with Diagonal BiLSTM layers (issue #14's target: fastgen >= 50x naive).

naive    one full forward per sub-pixel (PixelModel.sample(method="naive")). Its cost does not depend on
         the position, so it is timed per sub-pixel (a forward and the draw, median of repeats) and
         multiplied by C x H x W: stated in the table ("naive*", extrapolated). ``whole_naive=True`` also
         times one whole naive image per setting (a check on the extrapolation; tens of seconds each).
fastgen  fast_sampling.sample_fast, whole images (the plan of packed weights is made once per set of
         weights and reused; its one-off cost is reported beside the table).
Floor per image: every pixel computes each layer once (the Diagonal's right direction once per pixel
too, a row at a time), so the work is the live (unmasked) weights plus the state-to-state weights,
x 2 FLOPs x pixels, at the matmul rate measured in the same run; at batch 1 each pixel also reads
every weight once, at the read bandwidth measured for a working set of that size.

    python -m fastgen.benchmarking.pixelrnn_sampling [--quick] [--whole-naive]
"""
from __future__ import annotations

import torch

from fastgen.benchmarking.pixel_sampling_table import packing_seconds, sampling_markdown
from fastgen.benchmarking.pixelcnn_sampling import _naive_subpixel, _timed, live_weights
from fastgen.benchmarking.timing import measure_floors, threads
from fastgen.models import PixelRNN, PixelRNNConfig
from fastgen.models.pixelrnn import fast_sampling
from fastgen.models.pixelrnn.plan import build_plan

SETTINGS = (
    ("PixelRNN MNIST Row LSTM (28x28 binary, 7 layers, h=16, k=3)", PixelRNNConfig.mnist(layer="row")),
    ("PixelRNN MNIST Diagonal BiLSTM (28x28 binary, 7 layers, h=16)", PixelRNNConfig.mnist(layer="diagonal")),
)


def macs_per_pixel(model: PixelRNN) -> int:
    """Multiply-adds per pixel of one evaluation of every layer: live conv weights + state-to-state."""
    return live_weights(model) + sum(w.numel() for layer in model.layers for w in layer.state_to_state)


def sampling_results(quick: bool = False, whole_naive: bool = False, settings=SETTINGS,
                     log=lambda message: None) -> tuple[list[dict], object]:
    """One row per (setting, path): seconds per image (batch 1, 1 thread), the floor, the work."""
    models = {}
    for name, cfg in settings:
        torch.manual_seed(0)
        models[name] = PixelRNN(cfg).eval()
    floors = measure_floors((1,), quick=quick, read_sets={4 * macs_per_pixel(m) for m in models.values()})
    rows = []
    with threads(1):
        for name, cfg in settings:
            model = models[name]
            pixels, subpixels = cfg.height * cfg.width, cfg.channels * cfg.height * cfg.width
            macs = macs_per_pixel(model)
            plan_s = packing_seconds(build_plan, model)
            floor = pixels * floors.weight_stream_seconds(2 * macs, 4 * macs, 1)
            u = torch.rand(1, cfg.channels, cfg.height, cfg.width, generator=torch.Generator().manual_seed(0))
            timed = {"naive*": _timed(_naive_subpixel(model, 1), quick, slow=False).median * subpixels}
            if whole_naive:
                timed["naive"] = _timed(lambda: model.sample(1, uniforms=u, method="naive"), quick, slow=True).median
            timed["fastgen"] = _timed(lambda: fast_sampling.sample_fast(model, 1, u), quick, slow=False).median
            for path, seconds in timed.items():
                rows.append({"setting": name, "path": path, "seconds": seconds, "floor_seconds": floor,
                             "gflop": 2 * macs * pixels / 1e9, "weight_mb": 4 * macs / 1e6, "plan_seconds": plan_s})
                log(f"[pixelrnn sampling] {name} {path}: {seconds:.3f} s")
    return rows, floors


def format_sampling_markdown(rows: list[dict], floors) -> str:
    notes = [
        "- s/image = seconds to sample one image; speedup vs naive* (the extrapolated naive) in the same run;",
        "  naive* = one sub-pixel's full forward + draw timed (median) and multiplied by C x H x W (its cost does not",
        "  depend on the position); naive = one whole naive image timed, where run; % of floor = floor / measured",
        "  (floor: live conv + state-to-state weights x 2 FLOPs per pixel at the measured matmul rate, or the weights",
        "  read once per pixel, whichever is slower).",
    ]
    columns = ["setting", "path", "s/image", "images/s", "speedup vs naive*", "GFLOP/image", "weights MB", "% of floor"]
    naive = {r["setting"]: r["seconds"] for r in rows if r["path"] == "naive*"}

    def cells(r: dict) -> list[str]:
        return [r["setting"], r["path"], f"{r['seconds']:,.4f}", f"{1 / r['seconds']:,.2f}",
                f"{naive[r['setting']] / r['seconds']:,.0f}×", f"{r['gflop']:.3f}", f"{r['weight_mb']:.3f}",
                f"{100 * r['floor_seconds'] / r['seconds']:.1f}%"]

    return sampling_markdown("PixelRNN sampling benchmark (batch 1, 1 thread)", floors, notes, columns, rows, cells)


def run_sampling_benchmark(quick: bool = False, whole_naive: bool = False, log=lambda message: None) -> str:
    """The markdown table of this benchmark."""
    return format_sampling_markdown(*sampling_results(quick, whole_naive, log=log))


if __name__ == "__main__":
    import sys

    print(run_sampling_benchmark(quick="--quick" in sys.argv, whole_naive="--whole-naive" in sys.argv,
                                 log=lambda line: print(line, file=sys.stderr, flush=True)))
