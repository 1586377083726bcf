"""Which CPU kernel build (AVX-512, AVX2+FMA or generic) each family picked, against what it should pick.
tests/test_build.py runs this module again under FASTGEN_CPU_CAPABILITY=generic."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import fastgen
from fastgen.benchmarking.timing import cpu_flags, kernel_builds, machine_line

pytestmark = pytest.mark.skipif(not fastgen._extension.available(), reason="fastgen._C not built")

ROOT = Path(__file__).resolve().parents[2]
CPU_SOURCES = ROOT / "csrc" / "cpu"
AVX512_FLAGS = {"avx512f", "avx512vl", "avx512dq", "avx512bw"}


def narrow_build(flags: set[str]) -> str:
    """What a family without an AVX-512 build runs (fastgen::cpu_has_avx2_fma)."""
    if os.environ.get("FASTGEN_CPU_CAPABILITY") == "generic":
        return "generic"
    return "avx2" if {"avx2", "fma"} <= flags else "generic"


def wide_build(flags: set[str]) -> str:
    """What a family with an AVX-512 build runs (fastgen::cpu_has_avx512)."""
    narrow = narrow_build(flags)
    if narrow == "avx2" and os.environ.get("FASTGEN_CPU_CAPABILITY") != "avx2" and AVX512_FLAGS <= flags:
        return "avx512"
    return narrow


def families_from_sources() -> tuple[set[str], set[str]]:
    """Every family with a kernel table (csrc/cpu/<family>_kernels.h) and those with an AVX-512 build
    (csrc/cpu/<family>_avx512.cpp or <family>_kernels_avx512.cpp)."""
    families = {p.name[: -len("_kernels.h")] for p in CPU_SOURCES.glob("*_kernels.h")}
    wide = {p.name[: -len("_avx512.cpp")].removesuffix("_kernels") for p in CPU_SOURCES.glob("*_avx512.cpp")}
    return families, wide


def test_picked_cpu_build_matches_the_cpu_and_the_override():
    # On an AVX2+FMA machine a broken feature check would silently run the slow portable build; on an
    # AVX-512 one, the old answer "avx2" hid that masked_conv and items run their AVX-512 builds.
    assert torch.ops.fastgen.cpu_capability() == wide_build(cpu_flags())


@pytest.mark.skipif(not CPU_SOURCES.is_dir(), reason="needs the source tree (csrc/cpu)")
def test_every_family_reports_the_build_it_has_and_the_cpu_allows():
    # A family added to csrc/cpu without a line in vector_math.cpp's kFamilies, or given an AVX-512
    # build that the list does not mention, fails here instead of being reported as avx2.
    families, wide = families_from_sources()
    builds = torch.ops.fastgen.cpu_kernel_builds()
    assert set(builds) == families
    assert wide <= families and {"masked_conv", "items"} <= wide
    flags = cpu_flags()
    assert builds == {f: wide_build(flags) if f in wide else narrow_build(flags) for f in families}


def test_avx2_override_turns_the_avx512_builds_off():
    """FASTGEN_CPU_CAPABILITY is read once per process: a child process asks for the AVX2 build."""
    code = "import torch, fastgen; b = torch.ops.fastgen.cpu_kernel_builds(); print(sorted(set(b.values())))"
    env = dict(os.environ, FASTGEN_CPU_CAPABILITY="avx2")
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert child.returncode == 0, child.stderr[-2000:]
    expected = "avx2" if {"avx2", "fma"} <= cpu_flags() else "generic"
    assert child.stdout.strip() == str([expected])


def test_bench_headers_name_the_kernel_builds():
    line, builds = machine_line(), torch.ops.fastgen.cpu_kernel_builds()
    assert kernel_builds() in line and line.count("fastgen CPU kernels") == 1
    for build in set(builds.values()):
        assert build in kernel_builds()
    if len(set(builds.values())) > 1:  # the minority builds are listed by family
        assert "masked_conv" in kernel_builds() and "items" in kernel_builds()
