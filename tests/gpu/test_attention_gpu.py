"""CUDA and Triton attention kernels on a real GPU against the float64 reference (skipped without one).

Run on a GPU machine with `python -m pytest tests/gpu -v`. fp16/bf16 may err no more than twice
PyTorch's own error in that dtype (the reference run in that dtype against the float64 reference).
"""
from __future__ import annotations

import pytest
import torch

import fastgen
from fastgen import _extension, ops
from fastgen.reference import attention as ref
from tests.cases import assert_bad_input, bad_inputs_for, params
from tests.cases import attention as cases
from tests.helpers import assert_rel_close, fresh_generator, triton_available, twice_torch_error

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]


def backends():
    # "compiled": CUDA C++ kernels, or the Triton kernels registered in their place
    return ((["compiled"] if _extension.has_kernel("attention_read", "CUDA") else [])
            + (["triton-direct"] if triton_available() else []))


def run(backend, x, p, w, canvas, N, H, W):
    if backend == "triton-direct":
        from fastgen.triton import attention as tri

        return tri.read_forward(x, p, N), tri.write_forward(w, p, H, W, canvas)
    return ops.attention_read(x, p, N), ops.attention_write(w, p, H, W, canvas)


@pytest.mark.parametrize("backend", backends())
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", params(cases.SHAPES))
def test_forward_matches_reference(backend, dtype, shape):
    B, C, H, W, N = shape.dims
    gen = fresh_generator()
    t = cases.draw(*shape.dims, gen)
    x64, p64, w64, c64 = t["x"], t["params"], t["w"], t["canvas"]
    cast = lambda t: t.to("cuda", dtype)  # noqa: E731
    got_read, got_write = run(backend, cast(x64), cast(p64), cast(w64), cast(c64), N, H, W)
    exact_read, exact_write = ref.attention_read(x64, p64, N), ref.attention_write(w64, p64, H, W, c64)
    same_read = ref.attention_read(cast(x64), cast(p64), N)
    same_write = ref.attention_write(cast(w64), cast(p64), H, W, cast(c64))
    for got, exact, same, what in ((got_read, exact_read, same_read, "read"), (got_write, exact_write, same_write, "write")):
        tol = 1e-5 if dtype in (torch.float32, torch.float64) else twice_torch_error(same, exact) + 1e-3
        assert_rel_close(got.cpu(), exact, tol, f"{backend} {what} {dtype}", gen.initial_seed())


def gradient_backends():
    """The default route, and use_backend("triton") where the CUDA ops are the C++ kernels (then the
    Triton autograd functions of fastgen.triton.attention run instead)."""
    return ["auto"] + (["triton"] if "triton-direct" in backends() and "compiled" in backends() else [])


@pytest.mark.parametrize("backend", gradient_backends())
@pytest.mark.parametrize("shape", params(cases.SHAPES))
def test_gradients_match_reference_float32(shape, backend):
    B, C, H, W, N = shape.dims
    gen = fresh_generator()
    t = cases.draw(*shape.dims, gen)
    x, p, w = t["x"], t["params"], t["w"]

    def grads(fn_read, fn_write, device, dtype):
        xs, ps, ws = (t.to(device, dtype).requires_grad_() for t in (x, p, w))
        loss = fn_read(xs, ps, N).square().sum() + fn_write(ws, ps, H, W).sin().sum()
        return [g.double().cpu() for g in torch.autograd.grad(loss, (xs, ps, ws))]

    with fastgen.use_backend(backend):
        got = grads(ops.attention_read, ops.attention_write, "cuda", torch.float32)
    exact = grads(ref.attention_read, ref.attention_write, "cpu", torch.float64)
    same = grads(ref.attention_read, ref.attention_write, "cuda", torch.float32)
    for g, e, s, name in zip(got, exact, same, ("x", "params", "w")):
        assert_rel_close(g, e, twice_torch_error(s, e, 1e-5), f"grad {name}", gen.initial_seed())


def test_backend_names_on_gpu():
    x = torch.rand(2, 1, 8, 8, device="cuda")
    p = torch.zeros(2, 5, device="cuda")
    with fastgen.use_backend("cpu"), pytest.raises(RuntimeError, match="CPU tensors"):
        ops.attention_read(x, p, 3)
    with fastgen.use_backend("reference"):
        torch.testing.assert_close(ops.attention_read(x, p, 3), ref.attention_read(x, p, 3))


@pytest.mark.parametrize("case", bad_inputs_for(cases.wrapper_bad_inputs(ops), "cuda"))
def test_bad_input_is_named_on_gpu(case):
    """The CPU tests' bad-input cases that hold on CUDA tensors too."""
    assert_bad_input(case, "cuda")
