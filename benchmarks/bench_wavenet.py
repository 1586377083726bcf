"""pytest-benchmark cases for WaveNet generation: every path, both models, batch 1 and 16.

    pytest benchmarks/bench_wavenet.py --benchmark-only --benchmark-group-by=group

Each case times one generate() call of SAMPLES_PER_CALL[path] samples per row (the naive path at
steady state, a full receptive field of history per sample); extra_info carries samples/s and the
real-time factor at 16 kHz. The markdown table for the README comes from
`fastgen bench wavenet --out benchmarks/results/wavenet.md`, not from here.
"""
from __future__ import annotations

import pytest
import torch

import fastgen
from fastgen.benchmarking.timing import threads as use_threads
from fastgen.benchmarking.wavenet import MODELS, SAMPLE_RATE, SAMPLES_PER_CALL, SETTINGS, path_call
from fastgen.models import WaveNet


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: f"B{s[0]}-{s[1]}thr")
@pytest.mark.parametrize("path", list(SAMPLES_PER_CALL))
@pytest.mark.parametrize("model_name", list(MODELS))
def test_wavenet_generation(benchmark, model_name, path, setting):
    batch, n_threads = setting
    if path == "naive" and batch > 1:
        pytest.skip("naive path timed at batch 1 only")
    if path.startswith("cpu") and not fastgen._extension.available():
        pytest.skip("fastgen._C not built")
    benchmark.group = f"wavenet {model_name} B{batch} {n_threads}thr"
    torch.manual_seed(0)
    model = WaveNet(MODELS[model_name]).eval()
    n = SAMPLES_PER_CALL[path]
    call = path_call(model, path, batch, n)
    with use_threads(n_threads):
        benchmark.pedantic(call, rounds=5, warmup_rounds=1)
    rate = batch * n / benchmark.stats.stats.median
    benchmark.extra_info.update(samples_per_s=rate, real_time=rate / batch / SAMPLE_RATE)
