"""Every CPU build of the PixelRNN recurrences against the twin. The kernel table is fixed per process,
so each build (portable, AVX2, AVX-512 where the CPU has it; FASTGEN_CPU_CAPABILITY picks) runs in a
child process. The step GEMMs' register tiles differ per build (6 rows by 2 ymm vectors, 12 rows by
2 zmm vectors), so the cases reach a full tile plus every kind of remainder: rows and diagonals of 13
and 14 cells, 64 gate columns (two zmm pairs) and 20 (one padded zmm), h = 16 and 5; the AVX-512
build's per-cell math runs 16, then 8, then 1 channel at a time, so h = 24 and 8 reach its 8-wide step; float32 and
float64, the output and every gradient (a wrong tile remainder or column padding in one build only
would pass the main tests, which run the best build alone)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

import fastgen

pytestmark = pytest.mark.skipif(not fastgen._extension.available(), reason="fastgen._C not built")

_SCRIPT = """
import torch, fastgen
from fastgen.reference import pixel_lstm as ref
from tests.cases import pixel_lstm as cases
from tests.helpers import fresh_generator

class Cpu:
    @staticmethod
    def row_lstm(*a):
        with fastgen.use_backend("cpu"):
            return fastgen.ops.row_lstm(*a)
    @staticmethod
    def diagonal_lstm(*a):
        with fastgen.use_backend("cpu"):
            return fastgen.ops.diagonal_lstm(*a)

worst = {torch.float32: 0.0, torch.float64: 0.0}
picked = [cases.Case("row", 2, 16, 3, 14, "14 cells a row"), cases.Case("row", 1, 5, 4, 13, "13 cells, h = 5", k=5),
          cases.Case("diagonal", 1, 16, 14, 14, "diagonals up to 14 cells", reverse=True),
          cases.Case("diagonal", 2, 5, 13, 6, "h = 5"),
          cases.Case("row", 2, 24, 3, 7, "h = 24: a 16-wide and an 8-wide cell block"),
          cases.Case("diagonal", 1, 8, 5, 6, "h = 8: the 8-wide cell block alone", reverse=True)]
for case in picked:
    t = case.draw(fresh_generator())
    want = cases.results(case.call(ref), t)
    for dtype in worst:
        got = cases.results(case.call(Cpu), {k: None if v is None else v.to(dtype) for k, v in t.items()})
        for name, w in want.items():
            err = ((got[name].double() - w).norm() / w.norm()).item()
            worst[dtype] = max(worst[dtype], err)
print(worst[torch.float32], worst[torch.float64])
"""


@pytest.mark.parametrize("capability", ["generic", "avx2", "best"])
def test_every_cpu_build_matches_reference(capability):
    env = dict(os.environ, FASTGEN_CPU_CAPABILITY=capability)
    out = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True, timeout=300,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr[-2000:]
    f32, f64 = map(float, out.stdout.split())
    assert f32 < 1e-5 and f64 < 1e-12, (capability, f32, f64)
