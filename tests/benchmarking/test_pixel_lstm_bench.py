"""The PixelRNN benchmark runner on tiny shapes: one row per (shape, workload, thread count), ratios
from the same run, and a markdown table (no speed is asserted here: that is the benchmark's job)."""
import pytest

import fastgen
from fastgen.benchmarking import pixel_lstm as bench

pytestmark = pytest.mark.skipif(not fastgen._extension.available(), reason="fastgen._C not built")


def test_runner_times_every_provider_asked_and_formats_a_table():
    shapes = [bench.Shape("tiny row", "row", 2, 3, 4, 5), bench.Shape("tiny diagonal", "diagonal", 2, 3, 4, 5)]
    results = bench.pixel_lstm_results(threads=(1,), quick=True, shapes=shapes, providers=("eager", "fastgen-cpu"))
    rows = results["rows"]
    assert [(r["shape"], r["workload"]) for r in rows] == [(s.name, w) for s in shapes for w in bench.WORKLOADS]
    for r in rows:
        assert set(r["seconds"]) == {"eager", "fastgen-cpu"} and min(r["seconds"].values()) > 0
        assert r["speedup"]["eager"] == pytest.approx(r["seconds"]["eager"] / r["seconds"]["fastgen-cpu"])
    table = bench.format_pixel_lstm_markdown(results)
    assert table.count("\n| tiny") == 4 and "| - |" in table  # compile not asked: shown as "-"
    # 2 x 4h x h x taps FLOPs per pixel forward, 3x that with the backward
    assert shapes[0].flops("forward") == 2 * 2 * 4 * 5 * 12 * 3 * 3
    assert shapes[1].flops("forward+backward") == 3 * 2 * 2 * 4 * 5 * 12 * 3 * 2
