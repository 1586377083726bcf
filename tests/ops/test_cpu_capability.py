"""Which CPU kernel build (AVX2+FMA or generic) the extension picked, against what it should pick.
tests/test_build.py runs this module again under FASTGEN_CPU_CAPABILITY=generic."""
import os

import pytest
import torch

import fastgen
from fastgen.benchmarking.timing import cpu_flags

pytestmark = pytest.mark.skipif(not fastgen._extension.available(), reason="fastgen._C not built")


def expected_capability() -> str:
    if os.environ.get("FASTGEN_CPU_CAPABILITY") == "generic":
        return "generic"
    return "avx2" if {"avx2", "fma"} <= cpu_flags() else "generic"


def test_picked_cpu_build_matches_the_cpu_and_the_override():
    # On an AVX2+FMA machine a broken feature check would silently run the slow portable build.
    assert hasattr(torch.ops.fastgen, "cpu_capability"), (
        "fastgen._C lacks torch.ops.fastgen.cpu_capability() -> str (the name of the kernel table picked "
        "by fastgen::cpu_has_avx2_fma): rebuild the extension")
    assert torch.ops.fastgen.cpu_capability() == expected_capability()
