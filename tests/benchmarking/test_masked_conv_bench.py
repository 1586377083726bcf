"""fastgen bench masked-conv (fastgen.benchmarking.masked_conv): a tiny run without torch.compile, the
FLOP count of the live weights, and the README table rendered from its markdown."""
import pytest

import fastgen
from fastgen.benchmarking import masked_conv as M
from fastgen.benchmarking import readme_tables as rt

pytestmark = pytest.mark.skipif(not fastgen._extension.available(), reason="fastgen._C not built")


def test_live_weights_counted_by_hand():
    # 3x3 mask B, colour groups of 2 channels: 4 whole taps x 6 x 6, and at the centre output
    # channel pairs see 2, 4 and 6 inputs (counting the dense 9 taps, or the whole centre, fails)
    shape = M.Shape("tiny", 2, 6, 6, 8, 8, 3, "B", 3)
    assert shape.live_weights() == 4 * 36 + 2 * (2 + 4 + 6)
    assert shape.flops("forward") == 2 * 2 * 8 * 8 * 168
    assert shape.flops("forward+backward") == 3 * shape.flops("forward")
    first = M.Shape("tiny first", 2, 3, 6, 8, 8, 3, "A", 3, first_layer=True)
    assert first.flops("forward+backward") == 2 * first.flops("forward")  # no grad_x for the image


def test_tiny_run_rows_and_readme_table():
    shape = M.Shape("tiny 3x3 B colour", 2, 6, 6, 8, 8, 3, "B", 3)
    results = M.masked_conv_results(threads=(1,), quick=True, shapes=[shape], providers=("onednn", "fastgen-cpu"),
                                    clock="cpu")
    rows = results["rows"]
    assert [(r["workload"], r["threads"]) for r in rows] == [("forward", 1), ("forward+backward", 1)]
    floor = results["floor_flops_per_thread"]
    for r in rows:
        s = r["seconds"]
        assert r["speedup"] == {"onednn": pytest.approx(s["onednn"] / s["fastgen-cpu"])}
        assert r["floor_pct"] == pytest.approx(100 * shape.flops(r["workload"]) / floor / s["fastgen-cpu"])
    text = M.format_masked_conv_markdown(results)
    table = rt.masked_conv_table(rt.parse_results(text, "masked_conv.md"))
    assert table[0].startswith("_From `benchmarks/results/masked_conv.md`: ")
    assert [line.split(" | ")[1] for line in table[-2:]] == ["forward", "forward+backward"]
    assert table[-1].split(" | ")[4] == ""  # the compile column left empty, not made up


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="providers must be a subset of .* including 'fastgen-cpu'"):
        M.masked_conv_results(threads=(1,), providers=("onednn",))
    with pytest.raises(ValueError, match="clock='cpu' times one thread only"):
        M.masked_conv_results(threads=(1, 2), clock="cpu")
    with pytest.raises(ValueError, match="clock must be one of"):
        M.masked_conv_results(threads=(1,), clock="gpu")
