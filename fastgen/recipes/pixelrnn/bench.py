"""``fastgen bench pixelrnn``: one layer's recurrence (fastgen.benchmarking.pixel_lstm: forward and
forward+backward against the eager twin and torch.compile of it, with % of the FLOP floor on valid
cells) and a whole-model training step, side by side in one run, at each thread count asked for.

Whole-model step: loss forward, backward and an Adam step of PixelRNNConfig.mnist(layer=...) (the
paper's MNIST model: 7 layers, h = 16, 28x28 binary) at batch 16, timed with every fastgen op on
its fast CPU kernel ("fastgen-cpu") and on its plain-PyTorch twin (``use_backend("reference")``,
"eager"). torch.compile of the whole model is left out: Inductor unrolls the twins' per-row and
per-diagonal loops, and compiling one layer's Diagonal LSTM alone took minutes on this machine.
``quick``: small shapes (batch 2-4, h = 8, 8x8 images, one layer) and no torch.compile, for tests.
"""
from __future__ import annotations

from typing import Callable, Iterable, Sequence

import torch

import fastgen
from fastgen.benchmarking import pixel_lstm
from fastgen.benchmarking.timing import DEFAULT_TIMING, QUICK_TIMING, threads, time_call
from fastgen.models.pixelrnn import LAYERS, PixelRNN, PixelRNNConfig
from fastgen.recipes.pixelrnn.model import LAYER_TITLES

CONFIGS = ("mnist", "colour")
MODEL_BATCH = 16
_LAYER_OF_SHAPE = {"row": "Row LSTM", "diagonal": "Diagonal LSTM"}


def layer_shapes(layers: Sequence[str], configs: Sequence[str], quick: bool) -> list:
    """pixel_lstm's shapes for the layers and configurations asked for (quick: one tiny shape per layer)."""
    if quick:
        return [pixel_lstm.Shape(f"tiny {_LAYER_OF_SHAPE[layer]}", layer, 2, 8, 8, 8) for layer in layers]
    return [s for s in pixel_lstm.SHAPES if s.layer in layers and s.name.split()[0].lower() in configs]


def model_config(layer: str, quick: bool) -> PixelRNNConfig:
    return PixelRNNConfig.mnist(layer=layer, **(dict(height=8, width=8, layers=1, hidden=8) if quick else {}))


def training_step(model: PixelRNN, batch: torch.Tensor, backend: str) -> Callable[[], None]:
    """One Adam step of the model's mean NLL on ``batch`` with every fastgen op on ``backend``."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step() -> None:
        with fastgen.use_backend(backend):
            loss, _ = model.loss(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return step


def model_step_rows(layers: Sequence[str], thread_counts: Iterable[int], quick: bool) -> list[dict]:
    """One row per (layer, threads): median seconds of a training step on each backend and the ratio."""
    rows = []
    gen = torch.Generator().manual_seed(0)
    timing = QUICK_TIMING if quick else DEFAULT_TIMING
    for layer in layers:
        cfg = model_config(layer, quick)
        batch = torch.randint(0, 2, (4 if quick else MODEL_BATCH, 1, cfg.height, cfg.width), generator=gen)
        for count in thread_counts:
            with threads(count):
                torch.manual_seed(0)
                model = PixelRNN(cfg)
                seconds = {backend: time_call(training_step(model, batch, backend), timing).median
                           for backend in ("reference", "cpu")}
            rows.append({"layer": layer, "config": cfg, "batch": len(batch), "threads": count,
                         "eager": seconds["reference"], "fastgen": seconds["cpu"]})
    return rows


def format_model_rows(rows: list[dict]) -> str:
    lines = ["| model | batch | threads | eager ms | fastgen-cpu ms | vs eager |", "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        cfg = r["config"]
        what = (f"{LAYER_TITLES[r['layer']]}, {cfg.layers} layer{'s' if cfg.layers != 1 else ''} of h={cfg.hidden}, "
                f"{cfg.height}x{cfg.width}")
        lines.append(f"| {what} | {r['batch']} | {r['threads']} | {r['eager'] * 1e3:.1f} | {r['fastgen'] * 1e3:.1f} "
                     f"| {r['eager'] / r['fastgen']:.1f}x |")
    return "\n".join(lines)


def run_pixelrnn_benchmark(threads: Iterable[int] = (1, 2), quick: bool = False, layers: Sequence[str] = LAYERS,
                           configs: Sequence[str] = CONFIGS, log: Callable[[str], None] = lambda line: None) -> str:
    """The markdown report of ``fastgen bench pixelrnn`` (see the module docstring)."""
    for name, values, allowed in (("layers", layers, LAYERS), ("configs", configs, CONFIGS)):
        unknown = [v for v in values if v not in allowed]
        if unknown or not values:
            raise ValueError(f"run_pixelrnn_benchmark: {name} must be a non-empty subset of {allowed}, got {values!r}")
    thread_counts = tuple(threads)
    providers = ("eager", "fastgen-cpu") if quick else pixel_lstm.PROVIDERS
    log("timing one layer's recurrence (fastgen.benchmarking.pixel_lstm) ...")
    layer = pixel_lstm.pixel_lstm_results(thread_counts, quick=quick, shapes=layer_shapes(layers, configs, quick),
                                          providers=providers)
    sections = ["# PixelRNN: one layer's recurrence, and a whole-model training step (CPU)", "",
                pixel_lstm.format_pixel_lstm_markdown(layer)]
    if quick:
        sections.append("\n--quick: tiny shapes, torch.compile not timed.")
    if "mnist" in configs:
        log("timing whole-model training steps ...")
        sections += ["", "## Whole-model training step (loss forward + backward + Adam)", "",
                     format_model_rows(model_step_rows(layers, thread_counts, quick)), "",
                     "eager: every fastgen op on its plain-PyTorch twin (use_backend('reference')); fastgen-cpu: the "
                     "C++ kernels. torch.compile of the whole model is not timed (see fastgen.recipes.pixelrnn.bench)."]
    return "\n".join(sections)


__all__ = ["CONFIGS", "format_model_rows", "layer_shapes", "model_step_rows", "run_pixelrnn_benchmark"]
