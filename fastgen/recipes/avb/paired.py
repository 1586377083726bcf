"""Paired comparison of two evaluations on the same images: the per-image differences of their ELBO and AIS
figures, with a confidence interval for the mean difference.

Images differ far more in difficulty (tens of nats) than two models trained on them differ on average
(a few nats), so the standard errors of two separate means hide a difference that the per-image
differences show: each image is its own control.
"""
from __future__ import annotations

import math
from statistics import NormalDist
from typing import Sequence

from fastgen.recipes.runs import RecipeError

METRICS = ("elbo", "ais")
_SAME = ("data", "split", "description", "n")  # what two reports must share to be paired


def t_quantile(p: float, df: int) -> float:
    """The p-quantile of Student's t with ``df`` degrees of freedom, from the normal quantile by the
    Cornish-Fisher expansion (Abramowitz & Stegun 26.7.5; at df >= 5 within 1e-3 of the tables for a 95%
    interval, 4e-3 for a 99% one)."""
    if not 0 < p < 1:
        raise ValueError(f"p must lie in (0, 1), got {p!r}")
    if not isinstance(df, int) or df < 5:
        raise ValueError(f"df must be an int >= 5 (the expansion's range), got {df!r}")
    z = NormalDist().inv_cdf(p)
    terms = ((z ** 3 + z) / 4, (5 * z ** 5 + 16 * z ** 3 + 3 * z) / 96,
             (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / 384,
             (79 * z ** 9 + 776 * z ** 7 + 1482 * z ** 5 - 1920 * z ** 3 - 945 * z) / 92160)
    return z + sum(term / df ** (i + 1) for i, term in enumerate(terms))


def paired_difference(first: Sequence[float], second: Sequence[float], level: float = 0.95) -> dict:
    """Mean of first[i] - second[i] with its standard error and a two-sided ``level`` t-interval, and
    the share of images where first is higher."""
    if len(first) != len(second):
        raise RecipeError(f"paired values need the same images: {len(first)} and {len(second)} values")
    n = len(first)
    if n < 6:
        raise RecipeError(f"a paired interval needs at least 6 images, got {n}")
    diffs = [a - b for a, b in zip(first, second)]
    mean = sum(diffs) / n
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    sem = sd / math.sqrt(n)
    half = t_quantile(0.5 + level / 2, n - 1) * sem
    return {"mean": mean, "sd": sd, "sem": sem, "low": mean - half, "high": mean + half, "level": level, "n": n,
            "first_higher": sum(d > 0 for d in diffs) / n}


def compare_reports(report: dict, other: dict, level: float = 0.95) -> dict:
    """{metric: paired_difference(report's per-image values, other's)} for the ELBO and AIS figures of two
    ``fastgen eval avb`` reports on the same images; RecipeError when they were not."""
    for key in _SAME:
        if report.get(key) != other.get(key):
            raise RecipeError(f"the two evaluations differ in {key} ({report.get(key)!r} vs {other.get(key)!r}): "
                              "evaluate both runs on the same split and --max-rows")
    if "per_row" not in other:
        raise RecipeError("the other evaluation has no per-image values (written by an older fastgen eval avb): "
                          "evaluate it again")
    return {m: paired_difference(report["per_row"][m], other["per_row"][m], level) for m in METRICS}


__all__ = ["METRICS", "compare_reports", "paired_difference", "t_quantile"]
