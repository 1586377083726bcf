"""The PixelRNN sampling benchmark on tiny models: a row per (setting, path), the naive extrapolation
and the whole naive image both timed, and a markdown table (no speed is asserted here: that is the
benchmark's job)."""
import pytest

import fastgen
from fastgen.benchmarking import pixelrnn_sampling as bench
from fastgen.models import PixelRNN, PixelRNNConfig

pytestmark = pytest.mark.skipif(not fastgen._extension.available(), reason="fastgen._C not built")


def test_runner_times_every_path_and_formats_a_table():
    settings = tuple((f"tiny {layer}", PixelRNNConfig.mnist(height=3, width=4, layers=1, hidden=4, layer=layer))
                     for layer in ("row", "diagonal"))
    rows, floors = bench.sampling_results(quick=True, whole_naive=True, settings=settings)
    assert [(r["setting"], r["path"]) for r in rows] == [(name, p) for name, _ in settings
                                                        for p in ("naive*", "naive", "fastgen")]
    assert all(r["seconds"] > 0 and r["floor_seconds"] > 0 for r in rows)
    table = bench.format_sampling_markdown(rows, floors)
    assert table.count("\n| tiny") == 6 and "| 1× |" in table


def test_work_counts_live_conv_and_state_to_state_weights():
    model = PixelRNN(PixelRNNConfig.mnist(height=3, width=4, layers=2, hidden=4, layer="diagonal"))
    h = 4
    # per layer: two 1x1 input-to-state (2h -> 4h) and two 2-tap state-to-state (h -> 4h), the 1x1 out (h -> 2h);
    # mask B on one colour group keeps every 1x1 weight; the first layer's 7x7 mask A keeps 24 of 49 taps
    per_layer = 2 * (2 * h * 4 * h) + 2 * (4 * h * h * 2) + h * 2 * h
    head = 2 * h * 2 * h + 2 * h * 1
    assert bench.macs_per_pixel(model) == 24 * 2 * h + 2 * per_layer + head
