"""Triton PixelRNN recurrences (fastgen.triton.pixel_lstm) vs the float64 twin, under the interpreter, on
the case list the CPU and GPU tests share (tests/cases/pixel_lstm.py): values and every gradient in
float64 and float32, odd sizes, both directions, saturated and tiny gates; the launchers' outputs and
saved state in exactly the C++ ops' layouts (so they can stand in the ops' CUDA slots); strided
inputs; and the op-level route (backend "triton" runs these kernels, not the twin).

tests.triton.device sets TRITON_INTERPRET=1 before triton is imported and picks the device. Every test
draws fresh random inputs; the seed is printed (pin it with FASTGEN_TEST_SEED=<int>). Cases costly
under the interpreter (each step of the recurrence costs milliseconds there) are marked slow (run them
with --runslow).
"""
from tests.triton.device import DEVICE  # first: sets TRITON_INTERPRET=1 before triton is imported

import os  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

import fastgen  # noqa: E402
from fastgen import _extension, ops  # noqa: E402
from fastgen.reference import pixel_lstm as ref  # noqa: E402
from fastgen.triton import pixel_lstm as kernels  # noqa: E402
from tests.cases import params  # noqa: E402
from tests.cases import pixel_lstm as cases  # noqa: E402
from tests.helpers import assert_rel_close, poisoned_empty  # noqa: E402

INTERPRETED = DEVICE == "cpu"
REL_TOL = {torch.float32: 1e-5, torch.float64: 1e-12}
QUICK = [c for c in cases.CASES if c.interpreter == "quick"]


def slow_here(case) -> bool:
    return INTERPRETED and case.interpreter == "slow"


@pytest.fixture(autouse=True)
def _fresh_seed():
    seed = int(os.environ.get("FASTGEN_TEST_SEED", int.from_bytes(os.urandom(4), "little")))
    torch.manual_seed(seed)
    print(f"seed={seed}")
    yield


def _gen() -> torch.Generator:
    return torch.Generator().manual_seed(int(torch.randint(0, 2**31, ())))


def _cast(t: dict, dtype, device) -> dict:
    return {k: None if v is None else v.to(device, dtype) for k, v in t.items()}


def _compare(case, t: dict, dtype) -> dict:
    """Triton in dtype vs the float64 twin on the same (rounded) inputs: the output and every gradient
    (pre, w_ss, and bias for a Row LSTM with one) within REL_TOL[dtype]. Returns Triton's results."""
    low = _cast(t, dtype, "cpu")
    with poisoned_empty():  # an element the kernels never write would be NaN
        got = cases.results(case.call(kernels), _cast(low, dtype, DEVICE))
    want = cases.results(case.call(ref), _cast(low, torch.float64, "cpu"))
    assert got.keys() == want.keys()
    for key in want:
        assert got[key].dtype == dtype, f"{key}: {got[key].dtype}"
        assert_rel_close(got[key], want[key], REL_TOL[dtype], f"{case.id} {key} ({dtype})")
    return got


# ---------------------------------------------------------------- values and gradients vs the twin
@pytest.mark.parametrize("case", params(cases.CASES, slow_here))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_matches_reference(case, dtype):
    """Also the regimes: saturated gates (an exp that overflows gives inf / NaN, which assert_rel_close
    rejects) and tiny pre-activations (a tanh computed as 1 - 2 / (exp(2x) + 1) cancels to 0 there)."""
    _compare(case, case.draw(_gen()), dtype)


def test_saturated_gates_are_really_saturated():
    """The saturated cases must put most sigmoid gates within 1e-6 of 0 or 1 (else they test nothing)."""
    case = next(c for c in QUICK if c.pre_scale >= 50 and c.kind == "row")
    t = _cast(case.draw(_gen()), torch.float32, DEVICE)
    _, act, _ = kernels.row_lstm_fwd(t["pre"], t["w_ss"], t["bias"])
    sigmoids = torch.cat([act[..., :2 * case.hidden], act[..., 3 * case.hidden:4 * case.hidden]], -1)
    assert ((sigmoids < 1e-6) | (sigmoids > 1 - 1e-6)).float().mean() > 0.6


@pytest.mark.parametrize("dtype", [torch.float16, torch.int32])
def test_launchers_refuse_other_dtypes(dtype):
    pre = torch.zeros(1, 8, 2, 2, device=DEVICE).to(dtype)
    with pytest.raises(TypeError, match=f"pixel_lstm \\(triton\\): takes float32 or float64 tensors, got {dtype}"):
        kernels.row_lstm_fwd(pre, torch.zeros(8, 2, 3, device=DEVICE).to(dtype), None)


# ---------------------------------------------------------------- the C++ ops' schemas and layouts
needs_cpu_op = pytest.mark.skipif(not _extension.available(), reason="fastgen._C not built (the CPU ops)")


@needs_cpu_op
@pytest.mark.parametrize("kind,reverse", [("row", False), ("diagonal", False), ("diagonal", True)])
def test_launchers_return_the_cpu_ops_outputs_and_layouts(kind, reverse):
    """The launchers stand in fastgen::row_lstm / diagonal_lstm and their backward ops on CUDA: the same
    outputs (h, act [B,H,W,5h] in i f g o tanh(c) order, c), strides, and a backward that takes the CPU
    op's saved state. A kernel with act's gates in pre's o f i g order, or h in NCHW, fails here."""
    case = cases.Case(kind, 1, 3, 2, 3, "layouts", reverse=reverse)
    t = _cast(case.draw(_gen()), torch.float64, "cpu")
    if kind == "row":
        fwd, cpu_fwd = kernels.row_lstm_fwd, torch.ops.fastgen.row_lstm
        bwd, cpu_bwd = kernels.row_lstm_bwd, torch.ops.fastgen.row_lstm_backward
        args, extra = (t["pre"], t["w_ss"], t["bias"]), ()
    else:
        fwd, cpu_fwd = kernels.diagonal_lstm_fwd, torch.ops.fastgen.diagonal_lstm
        bwd, cpu_bwd = kernels.diagonal_lstm_bwd, torch.ops.fastgen.diagonal_lstm_backward
        args, extra = (t["pre"], t["w_ss"], reverse), (reverse,)
    want = cpu_fwd(*args)
    with poisoned_empty():
        got = fwd(*(a.to(DEVICE) if isinstance(a, torch.Tensor) else a for a in args))
    for name, g, w in zip(("h", "act", "c"), got, want):
        assert g.shape == w.shape and g.stride() == w.stride(), f"{name}: {g.shape} {g.stride()} vs {w.stride()}"
        assert_rel_close(g.cpu(), w, REL_TOL[torch.float64], f"{kind} {name}")
    state = [v.to(DEVICE) for v in (t["grad_out"], *want, t["w_ss"])]
    want_b = cpu_bwd(t["grad_out"], *want, t["w_ss"], *extra)
    with poisoned_empty():
        got_b = bwd(*state, *extra)
    for name, g, w in zip(("grad_pre", "grad_w_ss"), got_b, want_b):
        assert g.shape == w.shape and g.stride() == w.stride(), f"{name}: {g.shape} {g.stride()} vs {w.stride()}"
        assert_rel_close(g.cpu(), w, REL_TOL[torch.float64], f"{kind} {name}")


def test_strided_inputs():
    """pre sliced out of a larger tensor and grad_h transposed: the kernels read them by their strides."""
    gen = _gen()
    pre = torch.randn(1, 24, 7, 8, generator=gen, dtype=torch.float64)[:, 1::2, 1:4, ::2]  # [1, 12, 3, 4]
    w_ss = torch.randn(12, 3, 2, generator=gen, dtype=torch.float64)
    grad = torch.randn(1, 3, 4, 3, generator=gen, dtype=torch.float64).transpose(2, 3)
    t = {"pre": pre, "w_ss": w_ss, "bias": None, "grad_out": grad}
    assert not pre.is_contiguous() and not grad.is_contiguous()
    case = cases.Case("diagonal", 1, 3, 3, 4, "strided", reverse=True)
    got = cases.results(case.call(kernels), {k: v if v is None or DEVICE == "cpu" else _strided_copy(v)
                                             for k, v in t.items()})
    want = cases.results(case.call(ref), t)
    for key in want:
        assert_rel_close(got[key], want[key], REL_TOL[torch.float64], f"strided {key}")


def _strided_copy(t: torch.Tensor) -> torch.Tensor:
    """t on DEVICE with the same strides (Tensor.to makes a strided slice contiguous)."""
    return torch.empty_strided(t.size(), t.stride(), dtype=t.dtype, device=DEVICE).copy_(t)


# ---------------------------------------------------------------- the op-level route
def _spy(monkeypatch, module, name) -> list:
    calls = []
    real = getattr(module, name)
    monkeypatch.setattr(module, name, lambda *a, **k: calls.append(name) or real(*a, **k))
    return calls


@pytest.mark.parametrize("op", ["row_lstm", "diagonal_lstm"])
def test_backend_triton_runs_these_kernels(op, monkeypatch):
    """fastgen.ops.<op> under backend "triton" calls fastgen.triton.pixel_lstm (not the twin, not the C++
    CPU op) and gives the twin's output and gradients; a route that silently ran the twin would still
    match, so the spies count the calls."""
    case = cases.Case("row" if op == "row_lstm" else "diagonal", 1, 2, 2, 3, "route")
    t = _cast(case.draw(_gen()), torch.float64, DEVICE)
    triton_calls = _spy(monkeypatch, kernels, op)
    twin_calls = _spy(monkeypatch, ref, op)
    with fastgen.use_backend("triton"):
        got = cases.results(case.call(ops), t)
    assert (triton_calls, twin_calls) == ([op], [])
    want = cases.results(case.call(ref), _cast(t, torch.float64, "cpu"))
    assert twin_calls == [op]
    for key in want:
        assert_rel_close(got[key], want[key], REL_TOL[torch.float64], f"route {op} {key}")
