"""The CPU kernels' shared vector exp (csrc/include/fastgen/small_gemm.h, vexp_nonpositive) against
torch.exp over [-1e4, 0], in both instruction-set builds. It once had no floor: below about -87 the
2^n exponent bits wrapped and "probabilities" came out huge or negative, so the WaveNet sampler drew
class 0 or C-1 (a full-scale click) whenever logits were spread or the temperature low."""
import os
import subprocess
import sys

import pytest
import torch

import fastgen

pytestmark = pytest.mark.skipif(not fastgen._extension.available(), reason="fastgen._C not built")

FLT_MIN = torch.finfo(torch.float32).tiny  # smallest normal float32
REL_TOL = 3e-7  # degree-7 series (6e-9) plus a few roundings of the float arithmetic


def inputs() -> torch.Tensor:
    dense = torch.linspace(-1e4, 0.0, 1_000_003)
    near_zero = -torch.logspace(-30, 2.2, 200_001)  # -1e-30 .. -158: every binade the sampler sees
    edges = torch.tensor([0.0, -0.0, -1e-45, -87.0, -87.33, -87.3365, -87.337, -87.5, -88.7, -103.9, -104.0,
                          -126.0, -1e4, float("-inf")])
    fresh = -torch.rand(100_000) * 200.0  # fresh every run
    return torch.cat([dense, near_zero, edges, fresh])


def check(x: torch.Tensor, y: torch.Tensor) -> None:
    exact = torch.exp(x.double())
    assert not torch.isnan(y).any(), "NaN from a finite (or -inf) input"
    assert (y >= 0).all(), f"negative exp: {y[y < 0][:5].tolist()} at x = {x[y < 0][:5].tolist()}"
    assert (y <= 1).all(), f"exp of a non-positive x above 1: {y[y > 1][:5].tolist()} at x = {x[y > 1][:5].tolist()}"
    normal = exact >= FLT_MIN
    rel = ((y.double() - exact).abs() / exact)[normal]
    worst = rel.argmax()
    print(f"max rel error {rel.max().item():.2e} at x = {x[normal][worst].item()!r}; "
          f"{int((~normal).sum())} inputs below the normal range")
    assert rel.max().item() < REL_TOL
    # Below float's normal range the true value is under FLT_MIN: the helper returns 0 or a tiny value.
    assert (y[~normal].double() <= FLT_MIN).all()


def test_matches_torch_exp_over_the_whole_range():
    x = inputs()
    check(x, torch.ops.fastgen.exp_nonpositive(x))


def test_nan_propagates():
    y = torch.ops.fastgen.exp_nonpositive(torch.tensor([-1.0, float("nan"), -100.0, -3.0, 0.0, -1e9, -0.5, -2.0, -7.0]))
    assert torch.isnan(y[1]) and not torch.isnan(y[torch.arange(9) != 1]).any()


def test_the_generic_build_too():
    """FASTGEN_CPU_CAPABILITY=generic is read once per process: a child process runs the other build."""
    code = ("import torch, fastgen, sys; sys.path.insert(0, '.'); from tests.ops.test_vector_exp import check, inputs;"
            "assert torch.ops.fastgen.cpu_capability() == 'generic';"
            "x = inputs(); check(x, torch.ops.fastgen.exp_nonpositive(x)); print('ok')")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root,
                           env=dict(os.environ, FASTGEN_CPU_CAPABILITY="generic"), timeout=120)
    assert child.returncode == 0 and "ok" in child.stdout, child.stdout + child.stderr[-2000:]


def test_bad_input_is_named():
    with pytest.raises(RuntimeError, match="exp_nonpositive: needs float32"):
        torch.ops.fastgen.exp_nonpositive(torch.zeros(3, dtype=torch.float64))
