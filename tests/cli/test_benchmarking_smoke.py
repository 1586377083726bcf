"""Smoke tests of the benchmark harness (fastgen.benchmarking): tiny shapes, a handful of repeats.

They check that the harness runs end to end and that the report has the expected shape; they never
assert anything about speed (timed unit tests on a shared machine are noise).
"""
from __future__ import annotations

import contextlib

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import fastgen.benchmarking.attention as A
from fastgen.benchmarking.timing import (
    MachineFloors,
    TimingConfig,
    summarize,
    threads,
    time_call,
)
from fastgen.reference import attention as ref

TINY = TimingConfig(warmup=1, warmup_time=0.0, min_repeats=3, min_time=0.0)
TINY_SHAPES = [(2, 1, 8, 8, 3)]
FAKE_FLOORS = MachineFloors(matmul_gflops_per_thread=50.0,
                            stream_gbps={1: {"small": 40.0, "large": 10.0}})


def _stand_in_ops():
    """The reference functions posing as fastgen.ops (so the fastgen column has numbers)."""
    return ref.attention_read, ref.attention_write, lambda name: contextlib.nullcontext()


def test_time_call_counts_and_positive():
    calls = []
    t = time_call(lambda: calls.append(1), TINY)
    assert t.repeats >= 3 and len(calls) >= 4  # warm-up + timed
    assert 0 < t.minimum <= t.q1 <= t.median <= t.q3
    s = summarize([3.0, 1.0, 2.0])
    assert (s.minimum, s.median, s.repeats) == (1.0, 2.0, 3)


def test_threads_restores():
    before = torch.get_num_threads()
    with threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError):
        with threads(0):
            pass


@pytest.mark.parametrize("shape", [A.Shape(2, 3, 7, 11, 4), A.Shape(1, 1, 28, 28, 12)])
def test_flop_formulas_match_flop_counter(shape):
    """Forward FLOPs equal torch's own count of the reference; backward differs from the
    reference's autograd only by the intermediates our kernels recompute (Fy x and Fy^T w)."""
    x, p_read, p_write = A.make_inputs(shape, requires_grad=True)
    with FlopCounterMode(display=False) as fwd:
        image = ref.attention_write(ref.attention_read(x, p_read, shape.N), p_write, shape.H, shape.W)
    assert fwd.get_total_flops() == A.workload_flops(shape, "forward")
    with FlopCounterMode(display=False) as bwd:
        image.sum().backward()
    B, C, N, H, W = shape.B, shape.C, shape.N, shape.H, shape.W
    recomputed = B * C * 2 * (N * H * W + H * N * N)
    assert (bwd.get_total_flops() + recomputed
            == A.workload_flops(shape, "forward+backward") - A.workload_flops(shape, "forward"))
    # the brief's square-image formulas
    s = A.Shape(64, 2, 28, 28, 12)
    per_bc = 2 * (12 * 28 * 28 + 12 * 12 * 28)
    assert A.read_forward_flops(s) == A.write_forward_flops(s) == 64 * 2 * per_bc


def test_results_and_markdown_with_stand_in(monkeypatch):
    monkeypatch.setattr(A, "_fastgen_ops", _stand_in_ops)
    results = A.attention_results(threads=(1,), providers=["eager", "fastgen-cpu"],
                                  shapes=TINY_SHAPES, timing=TINY, floors=FAKE_FLOORS,
                                  busy_retries=0)
    assert len(results) == 2 * 2  # workloads x providers
    for r in results:
        assert r["available"], r
        assert r["median_us"] > 0 and r["q1_us"] > 0 and r["repeats"] >= 3
        assert r["floor_us"] > 0 and r["pct_floor"] > 0 and r["flops"] > 0 and r["min_bytes"] > 0
        assert r["rel_err"] == 0.0
    md = A.format_attention_markdown(results, floors=FAKE_FLOORS, timing=TINY)
    assert md.startswith("# ")
    for heading in ("## forward, 1 thread", "## forward+backward, 1 thread"):
        assert heading in md
    header = next(line for line in md.splitlines() if line.startswith("| shape"))
    for col in ("MFLOP", "min MB", "floor µs", "eager µs", "eager % floor", "fastgen-cpu µs",
                "fastgen-cpu % floor", "fastgen vs eager"):
        assert col in header
    row = next(line for line in md.splitlines() if line.startswith("| 2×1×8×8, N=3"))
    assert "n/a" not in row and "×" in row.split("|")[-2]


def test_gpu_columns_compare_against_gpu_baselines():
    """A GPU-only table: speedups of each fastgen GPU column against eager and compile on the GPU,
    and no CPU floor column (the floors are the CPU's)."""
    def row(provider, us):
        return dict(workload="forward", threads=1, shape="2×1×8×8, N=3", provider=provider, available=True,
                    reason=None, median_us=us, q1_us=us, q3_us=us, flops=1e6, min_bytes=1e6, floor_us=1.0,
                    pct_floor=None, rel_err=0.0, compile_s=None, other_load=0.0, busy=False)

    rows = [row("eager-cuda", 300.0), row("compile-cuda", 150.0), row("fastgen-triton", 60.0),
            row("fastgen-cuda", 50.0)]
    assert A.ratio_columns([r["provider"] for r in rows]) == [
        ("fastgen-triton", "eager-cuda"), ("fastgen-triton", "compile-cuda"),
        ("fastgen-cuda", "eager-cuda"), ("fastgen-cuda", "compile-cuda")]
    lines = A.format_attention_markdown(rows).splitlines()
    header = next(line for line in lines if line.startswith("| shape")).split(" | ")
    values = next(line for line in lines if line.startswith("| 2×1×8×8")).split(" | ")
    cells = dict(zip(header, values))
    assert "floor µs" not in cells
    assert cells["fastgen-cuda vs eager-cuda"] == "6.00×" and cells["fastgen-triton vs compile-cuda"] == "2.50×"


def test_fastgen_column_na_with_reason(monkeypatch):
    def broken():
        raise A.ProviderUnavailable("import fastgen.ops failed: ImportError: boom")

    monkeypatch.setattr(A, "_fastgen_ops", broken)
    results = A.attention_results(threads=(1,), providers=["eager", "fastgen-cpu"],
                                  shapes=TINY_SHAPES, workloads=["forward"], timing=TINY,
                                  floors=FAKE_FLOORS, busy_retries=0)
    fast = [r for r in results if r["provider"] == "fastgen-cpu"]
    assert fast and not fast[0]["available"] and "boom" in fast[0]["reason"]
    md = A.format_attention_markdown(results, floors=FAKE_FLOORS)
    assert "fastgen-cpu: n/a — import fastgen.ops failed: ImportError: boom" in md


def test_run_attention_benchmark_quick_real_providers():
    """End to end with the real fastgen.ops (numbers or n/a, either is fine) and real floors."""
    md = A.run_attention_benchmark(threads=(1,), quick=True, providers=["eager", "fastgen-cpu"],
                                   shapes=TINY_SHAPES, timing=TINY, busy_retries=0)
    assert "Machine:" in md and "GFLOP/s per thread" in md and "GB/s" in md
    assert f"torch {torch.__version__}" in md
    assert "## forward, 1 thread" in md and "## forward+backward, 1 thread" in md
    rows = [line for line in md.splitlines() if line.startswith("| 2×1×8×8, N=3")]
    assert len(rows) == 2
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        eager_us = float(cells[4].split()[0])
        assert eager_us > 0
        assert cells[6] == "n/a" or float(cells[6].split()[0]) > 0  # fastgen-cpu µs


def test_bad_arguments():
    with pytest.raises(ValueError, match="provider"):
        A.attention_results(providers=["nope"], shapes=TINY_SHAPES, floors=FAKE_FLOORS)
    with pytest.raises(ValueError, match="workload"):
        A.attention_results(workloads=["sideways"], shapes=TINY_SHAPES, floors=FAKE_FLOORS)
    with pytest.raises(ValueError, match="B, C, H, W, N"):
        A.attention_results(shapes=[(1, 2, 3)], floors=FAKE_FLOORS)


def test_gpu_report_sections_and_missing_gpu(monkeypatch, capsys):
    """`fastgen bench gpu` without a GPU says so; with one (faked here) every section is reported, a
    failing one in its place with its traceback, and the report is handed over after each section."""
    from fastgen import cli
    from fastgen.benchmarking import gpu

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert cli.main(["bench", "gpu"]) == 2
    assert "needs a CUDA device" in capsys.readouterr().err
    with pytest.raises(RuntimeError, match="needs a CUDA device"):
        gpu.gpu_report(quick=True)

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(gpu, "machine_line", lambda: "test machine")

    def broken(quick):
        raise ValueError("boom")

    # the sections are the families' GPU benchmarks, in the family table's order
    assert [name for name in gpu.gpu_sections() if name in ("attention", "draw", "wavenet")] == [
        "attention", "draw", "wavenet"]
    monkeypatch.setattr(gpu, "gpu_sections",
                        lambda: {"attention": lambda quick: "# Title\n\n## table\nrow", "wavenet": broken})
    with pytest.raises(ValueError, match="unknown GPU benchmark section"):
        gpu.gpu_report(sections=["draw"])
    seen = []
    report, ok = gpu.gpu_report(quick=True, sections=["attention", "wavenet"], on_section=seen.append)
    assert not ok and len(seen) == 2 and seen[-1] == report
    assert "## Title\n\n### table\nrow" in report
    assert "## wavenet: FAILED" in report and "ValueError: boom" in report
