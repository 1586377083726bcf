"""Smoke test of the WaveNet generation benchmark (tiny model, few repeats; no speed assertions)."""
import pytest

import fastgen
from fastgen.benchmarking.wavenet import WorkPerSample, format_wavenet_markdown, wavenet_results
from fastgen.models import WaveNetConfig

pytestmark = pytest.mark.skipif(not fastgen._extension.available(), reason="fastgen._C not built")


def test_work_count_of_the_issue_model():
    work = WorkPerSample.of(WaveNetConfig())
    # 20 layers x (2*64*128 gate + 64*128 skip) + 19 x 64*64 residual + 128*128 + 128*256 head
    assert work.macs == 20 * (2 * 64 * 128 + 64 * 128) + 19 * 64 * 64 + 128 * 128 + 128 * 256
    assert 2.4e6 < 4 * work.weight_values < 2.6e6  # "~2.5 MB weight set" in float32


def test_wavenet_benchmark_rows_and_table():
    tiny = WaveNetConfig(residual_channels=8, skip_channels=16, layers_per_stack=3, stacks=1, classes=16)
    rows, floors = wavenet_results(quick=True, models={"tiny": tiny}, settings=((1, 1), (2, 1)))
    assert {(r["batch"], r["path"]) for r in rows} == {
        (1, "naive"), (1, "reference"), (1, "cpu"), (1, "cpu bf16"), (2, "reference"), (2, "cpu"), (2, "cpu bf16")}
    assert all(r["samples_per_s"] > 0 and r["floor_samples_per_s"] > 0 for r in rows)
    table = format_wavenet_markdown(rows, floors)
    assert "| tiny | 1 | 1 | cpu" in table and "real time" in table


def test_causal_conv_formulations_agree():
    import torch

    from fastgen.benchmarking.wavenet import _causal_conv_variants

    gen = torch.Generator().manual_seed(0)
    x, w, b = torch.randn(2, 6, 40, generator=gen), torch.randn(12, 6, 2, generator=gen), torch.randn(12, generator=gen)
    outs = [fn() for fn in _causal_conv_variants(x, w, b, d=4).values()]
    assert all(o.shape == (2, 12, 40) and torch.allclose(o, outs[0], atol=1e-5) for o in outs)


def test_gpu_table_and_path_names():
    """The GPU section's pieces that need no GPU: a path name picks the backend and the weights' dtype
    (run here on the CPU backend), the table's speedups are against the reference at the same batch,
    and asking for GPU rows without a GPU says so."""
    import torch

    from fastgen.benchmarking import wavenet as bench
    from fastgen.models import WaveNet

    model = WaveNet(WaveNetConfig(residual_channels=8, skip_channels=16, layers_per_stack=3, stacks=1, classes=16))
    for path in ("cpu", "cpu bf16", "reference"):
        assert bench.path_call(model.eval(), path, 2, 5)().shape == (2, 5)
    rows = [{"model": "m", "batch": 4, "path": "reference", "samples_per_s": 200.0},
            {"model": "m", "batch": 4, "path": "cuda", "samples_per_s": 64_000.0}]
    table = bench.format_gpu_wavenet_markdown(rows)
    assert "| m | 4 | cuda | 64,000 | 1.00 | 320.0× |" in table
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA device"):
            bench.gpu_wavenet_results(quick=True)
