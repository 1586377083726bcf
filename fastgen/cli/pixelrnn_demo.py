"""PixelRNN's part of ``fastgen demo``: PixelCNN's demo part (fastgen.cli.pixelcnn_demo: a short
training run on the binary MNIST subset into OUT/pixelrnn-run, a sample grid, the raster GIF, the
training curve, the sampling speed against naive) with a tiny Diagonal BiLSTM and PixelRNN's sampler."""
from __future__ import annotations

import inspect
from pathlib import Path

from fastgen.cli import pixelcnn_demo
from fastgen.cli.pixelcnn_demo import PixelDemoRun

# Sized for the part's budget on 2 idle cores (measured as CPU seconds on one thread of a loaded machine: quick
# ~4 s, full ~15 s); the samples come from PixelRNN.sample's default sampler (the cached C++ one).
_TINY = dict(layer="diagonal", layers=1, hidden=8, output_hidden=16)
DEMO_RUNS = {
    "quick": PixelDemoRun(_TINY, steps=15, batch_size=16, lr=3e-3, max_val=32, evals=1, samples=4),
    "full": PixelDemoRun(_TINY, steps=100, batch_size=16, lr=3e-3, max_val=100, evals=4, samples=9),
}
NOTE = "the samples and this time come from PixelRNN.sample's default sampler."


def demo_part(kind, title: str, out: Path, quick: bool, budget: float) -> list[tuple[str, Path]]:
    default = inspect.signature(kind.model_class.sample).parameters["method"].default
    samplers = ((None, f"PixelRNN.sample's default, method={default!r}"),)
    return pixelcnn_demo.demo_part(kind, title, out, quick, budget, DEMO_RUNS, samplers, NOTE)


__all__ = ["DEMO_RUNS", "demo_part"]
