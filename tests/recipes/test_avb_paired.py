"""fastgen.recipes.avb.paired: the t-quantile against the tables, the paired interval against a hand
computation, and reports that are not on the same images refused."""
from __future__ import annotations

import math

import pytest

from fastgen.recipes.avb.paired import compare_reports, paired_difference, t_quantile
from fastgen.recipes.runs import RecipeError


@pytest.mark.parametrize("p, df, table", [(0.975, 5, 2.5706), (0.975, 10, 2.2281), (0.975, 99, 1.9842),
                                          (0.95, 20, 1.7247), (0.995, 30, 2.7500), (0.025, 12, -2.1788)])
def test_t_quantile_matches_the_tables(p, df, table):
    assert t_quantile(p, df) == pytest.approx(table, abs=1.5e-3)


def test_paired_interval_by_hand():
    # differences 1, 2, 3, 4, 5, 9: mean 4, squared deviations 9+4+1+0+1+25 = 40, sd sqrt(40/5), t(0.975, 5) = 2.5706
    first = [11.0, 2.0, -7.0, 14.0, 5.5, 109.0]
    second = [a - d for a, d in zip(first, [1, 2, 3, 4, 5, 9])]
    out = paired_difference(first, second)
    sem = math.sqrt(40 / 5) / math.sqrt(6)
    assert out["mean"] == pytest.approx(4) and out["sem"] == pytest.approx(sem)
    half = 2.5706 * sem
    assert out["low"] == pytest.approx(4 - half, abs=1e-3) and out["high"] == pytest.approx(4 + half, abs=1e-3)
    assert out["first_higher"] == 1.0 and out["n"] == 6
    # the images' own spread (~40 nats here) does not enter: an unpaired interval would straddle 0
    assert out["low"] > 0


def test_swapping_the_pair_flips_the_sign():
    a, b = [1.0, 4.0, 2.0, 8.0, 5.0, 7.0, 3.0], [2.0, 1.0, 2.5, 6.0, 5.5, 1.0, 0.0]
    ab, ba = paired_difference(a, b), paired_difference(b, a)
    assert ab["mean"] == pytest.approx(-ba["mean"]) and ab["low"] == pytest.approx(-ba["high"])


def _report(values, **changes):
    return {"data": "fashion-mnist", "split": "test", "description": "d", "n": len(values),
            "per_row": {"elbo": list(values), "ais": [v + 1 for v in values]}, **changes}


def test_compare_reports_and_refusals():
    mine, other = _report([float(i) for i in range(8)]), _report([i - 0.5 for i in range(8)])
    out = compare_reports(mine, other)
    assert set(out) == {"elbo", "ais"} and out["ais"]["mean"] == pytest.approx(0.5) and out["ais"]["sd"] == 0
    with pytest.raises(RecipeError, match="differ in split"):
        compare_reports(mine, _report([0.0] * 8, split="val"))
    with pytest.raises(RecipeError, match="differ in n"):
        compare_reports(mine, _report([0.0] * 9))
    with pytest.raises(RecipeError, match="no per-image values"):
        compare_reports(mine, {k: v for k, v in other.items() if k != "per_row"})
    with pytest.raises(RecipeError, match="at least 6 images"):
        paired_difference([1.0] * 3, [2.0] * 3)
    with pytest.raises(ValueError, match="df must be an int >= 5"):
        t_quantile(0.975, 2)
