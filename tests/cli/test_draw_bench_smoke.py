"""Smoke test of the DRAW benchmark (tiny model, few repeats; no speed assertions)."""
from fastgen.benchmarking.draw import draw_results, format_draw_markdown
from fastgen.models import AlignDRAWConfig, DRAWConfig


def test_draw_benchmark_rows_and_table():
    cfg = DRAWConfig(T=3, enc_size=16, dec_size=16, z_size=4)
    tiny_aligndraw = AlignDRAWConfig(T=2, infer_size=8, gen_size=8, z_size=3, embed_size=4, lang_size=4, align_size=5)
    rows = draw_results((1,), quick=True, config=cfg, aligndraw_config=tiny_aligndraw)
    assert {(r["workload"], r["provider"]) for r in rows} == {
        ("sample, batch 1", "reference"), ("sample, batch 1", "fastgen loop"), ("sample, batch 1", "fastgen fused"),
        ("train step, B=64", "reference"), ("train step, B=64", "fastgen"),
        ("AlignDRAW train step, B=64", "reference"), ("AlignDRAW train step, B=64", "fastgen"),
    }
    assert all(r["median_us"] > 0 for r in rows)
    table = format_draw_markdown(rows, cfg)
    assert "| sample, batch 1 | 1 | fastgen fused |" in table and "T=3" in table
    assert "| AlignDRAW train step, B=64 | 1 | fastgen |" in table and "- AlignDRAW:" in table


def test_gpu_rows_need_a_gpu():
    import pytest
    import torch

    from fastgen.benchmarking.draw import gpu_draw_results

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: benchmarks/gpu.py runs these rows")
    with pytest.raises(RuntimeError, match="no CUDA device"):
        gpu_draw_results(quick=True)
