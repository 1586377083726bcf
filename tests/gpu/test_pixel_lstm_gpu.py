"""CUDA and Triton kernels of PixelRNN's recurrences (row_lstm, diagonal_lstm) on a real GPU against
the float64 twin (fastgen.reference.pixel_lstm), skipped without one, on the case list the CPU and
interpreter tests share (tests/cases/pixel_lstm.py: odd sizes, both directions, saturated and tiny
gates). Run on a GPU machine with `python -m pytest tests/gpu -v` (scripts/gpu_check.sh runs it).

Implementations under test:
  "cuda-op"  torch.ops.fastgen.row_lstm / diagonal_lstm on CUDA tensors with the C++ autograd over the
             *_backward ops: the CUDA C++ kernels (csrc/cuda/pixel_lstm.cu) when fastgen was built
             with them (else whatever fills the ops' CUDA slot);
  "cuda", "triton"  fastgen.ops under fastgen.use_backend(...) where the op declares that kernel; each
             call first asserts that the route really picks it (else the twin would be tested
             against itself);
  "op"       fastgen.ops under the default backend rule.
float32 / float64 must match the float64 twin to 1e-5 / 1e-12 (relative), values and every gradient.
"""
from __future__ import annotations

import contextlib

import pytest
import torch

import fastgen
from fastgen import _extension, ops
from fastgen.ops import _route
from fastgen.reference import pixel_lstm as ref
from tests.cases import assert_bad_input, bad_inputs_for, params
from tests.cases import pixel_lstm as cases
from tests.helpers import assert_rel_close, fresh_generator, poisoned_empty, triton_available, twice_torch_error

REL_TOL = {torch.float32: 1e-5, torch.float64: 1e-12}
ULP = {torch.float16: 2.0**-10, torch.bfloat16: 2.0**-8}
CUDA_BUILT = _extension.has_kernel("row_lstm", "CUDA") and _extension.has_kernel("diagonal_lstm", "CUDA")
OP_OF = {"row": "row_lstm", "diagonal": "diagonal_lstm"}


def implementations() -> list[str]:
    declared = _route.declared()["row_lstm"]
    return (["op"] + (["cuda-op"] if CUDA_BUILT else []) + (["cuda"] if declared.cuda else [])
            + (["triton"] if declared.triton and triton_available() else []))


IMPLEMENTATIONS = implementations()


def runner(impl: str, case: cases.Case, dtype: torch.dtype):
    """(context manager, pre, w_ss, bias -> h) of one implementation."""
    if impl == "cuda-op":
        f = torch.ops.fastgen
        if case.kind == "row":
            return contextlib.nullcontext(), lambda pre, w, b: f.row_lstm(pre, w, b)[0]
        return contextlib.nullcontext(), lambda pre, w, b: f.diagonal_lstm(pre, w, case.reverse)[0]
    if impl in ("cuda", "triton"):
        kernels = _route.declared()[OP_OF[case.kind]]
        if dtype not in getattr(kernels, impl):
            pytest.skip(f"{OP_OF[case.kind]} declares no {impl} kernel for {dtype}")
        with fastgen.use_backend(impl):  # the mechanism: this backend, not the twin, runs
            assert _route.resolve(kernels, torch.device("cuda"), dtype) == impl
        return fastgen.use_backend(impl), case.call(ops)
    return contextlib.nullcontext(), case.call(ops)


def to(t: dict, dtype, device) -> dict:
    return {k: None if v is None else v.to(device, dtype) for k, v in t.items()}


def run(impl, case, t: dict, dtype) -> dict:
    context, call = runner(impl, case, dtype)
    with context:
        return cases.results(call, to(t, dtype, "cuda"))


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", params(cases.CASES))
def test_matches_reference(impl, dtype, case):
    gen = fresh_generator()
    t = case.draw(gen)
    with poisoned_empty():  # a cell, gate or weight gradient never written stays NaN and fails
        got = run(impl, case, t, dtype)
    want = cases.results(case.call(ref), t)
    assert got.keys() == want.keys()
    for key in want:
        assert got[key].dtype == dtype, key
        assert_rel_close(got[key], want[key], REL_TOL[dtype], f"{impl} {case.id} {key} {dtype}", gen.initial_seed())


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("kind, k, reverse", [("row", 3, False), ("row", 5, False), ("diagonal", 2, False),
                                              ("diagonal", 2, True)], ids=["row-k3", "row-k5", "left", "right"])
def test_large_layer(impl, kind, k, reverse):
    """The colour configuration's layer (h = 128) on a 32 x 40 image, batch 3, float32: many passes of a
    block's threads per step, many tiles of the weight-gradient product, the longest diagonals. The
    float64 twin runs on the GPU here (it is large)."""
    case = cases.Case(kind, 3, 128, 32, 40, "large layer", k=k, reverse=reverse)
    gen = fresh_generator()
    t = case.draw(gen)
    got = run(impl, case, t, torch.float32)
    want = cases.results(case.call(ref), to(t, torch.float64, "cuda"))
    for key in want:
        assert_rel_close(got[key], want[key], REL_TOL[torch.float32], f"{impl} {case.id} {key}", gen.initial_seed())


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("case", params([cases.CASES[0], cases.CASES[9], cases.CASES[10]]))
def test_strided_inputs_are_read_in_place(impl, case):
    """pre a channels-last slice of a larger tensor and grad_h transposed in memory give the results of
    contiguous ones (the kernels take any strides: a kernel assuming NCHW reads the wrong elements)."""
    gen = fresh_generator()
    t = to(case.draw(gen), torch.float64, "cuda")
    B, C, H, W = t["pre"].shape
    big = torch.randn(B, C + 3, H + 1, W + 2, dtype=torch.float64, device="cuda").contiguous(
        memory_format=torch.channels_last)
    big[:, 2:C + 2, 1:, 1:W + 1] = t["pre"]
    strided = dict(t, pre=big[:, 2:C + 2, 1:, 1:W + 1],
                   grad_out=t["grad_out"].transpose(2, 3).contiguous().transpose(2, 3))
    assert not strided["pre"].is_contiguous() and not strided["grad_out"].is_contiguous()
    context, call = runner(impl, case, torch.float64)
    with context:
        got = cases.results(call, strided)
        want = cases.results(call, t)
    for key in want:
        assert_rel_close(got[key], want[key], 1e-13, f"{impl} {case.id} {key}", gen.initial_seed())


@pytest.mark.skipif(not CUDA_BUILT, reason="fastgen was built without the CUDA pixel_lstm kernels")
@pytest.mark.parametrize("case", params([cases.CASES[0], cases.CASES[1], cases.CASES[9], cases.CASES[10]]))
def test_saved_state_is_the_cpu_layout(case):
    """The CUDA forward's act [B,H,W,5h] and c [B,H,W,h] equal the CPU op's, and either device's backward
    fed the other's saved state gives the same gradients: the layouts really are shared (a kernel that
    stored the gates in another order would pass the value tests and fail here)."""
    gen = fresh_generator()
    t = case.draw(gen)
    f = torch.ops.fastgen
    args = (lambda d: (t["pre"].to(d), t["w_ss"].to(d), None if t["bias"] is None else t["bias"].to(d))
            if case.kind == "row" else (t["pre"].to(d), t["w_ss"].to(d), case.reverse))
    forward, backward = (f.row_lstm, f.row_lstm_backward) if case.kind == "row" else (f.diagonal_lstm,
                                                                                       f.diagonal_lstm_backward)
    extra = () if case.kind == "row" else (case.reverse,)
    cpu, gpu = forward(*args("cpu")), forward(*args("cuda"))
    for name, a, b in zip(("h", "act", "c"), gpu, cpu):
        assert a.shape == b.shape and a.stride() == b.stride(), name
        assert_rel_close(a.cpu(), b, 1e-12, f"{case.id} {name}", gen.initial_seed())
    want = backward(t["grad_out"], *cpu, t["w_ss"], *extra)
    got = backward(t["grad_out"].cuda(), *(x.cuda() for x in cpu), t["w_ss"].cuda(), *extra)
    for name, a, b in zip(("grad_pre", "grad_w_ss"), got, want):
        assert_rel_close(a.cpu(), b, 1e-12, f"{case.id} {name}", gen.initial_seed())


@pytest.mark.skipif(not CUDA_BUILT, reason="fastgen was built without the CUDA pixel_lstm kernels")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["f16", "bf16"])
@pytest.mark.parametrize("case", params([c for c in cases.CASES if (c.pre_scale, c.w_scale) == (1.0, 1.0)][:12]))
def test_low_precision(dtype, case):
    """float16 / bfloat16 storage with float arithmetic: no worse than twice the twin's own error in that
    dtype (run on the GPU), and at least one ulp of the dtype."""
    gen = fresh_generator()
    t = case.draw(gen)
    got = run("cuda-op", case, t, dtype)
    want = cases.results(case.call(ref), t)
    own = cases.results(case.call(ref), to(t, dtype, "cuda"))
    for key in want:
        assert got[key].dtype == dtype, key
        tol = twice_torch_error(own[key], want[key], ULP[dtype])
        assert_rel_close(got[key], want[key], tol, f"cuda-op {case.id} {key} {dtype}", gen.initial_seed())


@pytest.mark.parametrize("impl", [i for i in IMPLEMENTATIONS if i != "cuda-op"])
def test_bilstm_shifts_the_right_direction_down(impl):
    """The whole layer's recurrence through fastgen.ops: the right-to-left map un-mirrored and shifted
    down one row (a port that forgets either differs from the twin in every row)."""
    gen = fresh_generator()
    f64 = dict(generator=gen, dtype=torch.float64)
    pre_l, pre_r = torch.randn(2, 12, 6, 5, **f64), torch.randn(2, 12, 6, 5, **f64)
    w_l, w_r = torch.randn(12, 3, 2, **f64) * 0.5, torch.randn(12, 3, 2, **f64) * 0.5
    context, _ = runner(impl, cases.Case("diagonal", 2, 3, 6, 5, "bilstm"), torch.float32)
    with context:
        got = ops.diagonal_bilstm(*(x.to("cuda", torch.float32) for x in (pre_l, pre_r, w_l, w_r)))
    want = ref.diagonal_bilstm(pre_l, pre_r, w_l, w_r)
    assert_rel_close(got.cpu(), want, REL_TOL[torch.float32], f"{impl} bilstm", gen.initial_seed())


@pytest.mark.parametrize("case", bad_inputs_for(cases.BAD_INPUTS, "cuda"))
def test_bad_input_is_named_on_gpu(case):
    assert_bad_input(case, "cuda")


@pytest.mark.skipif(not CUDA_BUILT, reason="fastgen was built without the CUDA pixel_lstm kernels")
def test_cuda_kernels_check_their_own_arguments():
    """Straight calls to the CUDA ops (past the Python checks) fail with the CPU ops' messages
    (fastgen/pixel_lstm_checks.h), plus the CUDA binding's own device rule."""
    f = torch.ops.fastgen
    pre, w = torch.randn(1, 12, 4, 4, device="cuda"), torch.randn(12, 3, 3, device="cuda")
    with pytest.raises(RuntimeError, match="row_lstm: the state-to-state kernel width k must be odd and >= 3, got 2"):
        f.row_lstm(pre, torch.randn(12, 3, 2, device="cuda"), None)
    with pytest.raises(RuntimeError, match=r"diagonal_lstm: w_ss must be \[4h, h, 2\]"):
        f.diagonal_lstm(pre, w, False)
    with pytest.raises(RuntimeError, match="row_lstm: pre has 12 channels but w_ss expects 16"):
        f.row_lstm(pre, torch.randn(16, 4, 3, device="cuda"), None)
    with pytest.raises(RuntimeError, match=r"row_lstm: bias must be \[4h\] = \[12\]"):
        f.row_lstm(pre, w, torch.randn(4, device="cuda"))
    with pytest.raises(RuntimeError, match="row_lstm: the CUDA kernel needs CUDA tensors, got w_ss on cpu"):
        f.row_lstm(pre, w.cpu(), None)
    with pytest.raises(RuntimeError, match="row_lstm: pre must be float32, float64, float16 or bfloat16 on CUDA"):
        f.row_lstm(pre.int(), w.int(), None)
    h, act, c = f.row_lstm(pre, w, None)
    with pytest.raises(RuntimeError, match="row_lstm_backward: act must have shape"):
        f.row_lstm_backward(torch.randn(1, 3, 4, 4, device="cuda"), h, act[..., :-1], c, w)
    with pytest.raises(RuntimeError, match="diagonal_lstm_backward: grad_h must have shape"):
        f.diagonal_lstm_backward(torch.randn(1, 3, 4, 5, device="cuda"), h, act, c,
                                 torch.randn(12, 3, 2, device="cuda"), False)
