"""CPU attention kernels against the float64 reference on the shared case list (tests/cases/attention.py):
forward and every gradient on every shape, extreme parameters, strided layouts, gradcheck, opcheck,
torch.compile, backends, and bad input."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

import fastgen
from fastgen import ops
from fastgen.reference import attention as ref
from tests.cases import assert_bad_input, bad_inputs_for, params
from tests.cases import attention as cases
from tests.helpers import assert_rel_close, fresh_generator, poisoned_empty, rel_err

pytestmark = pytest.mark.skipif(not fastgen._extension.available(), reason="fastgen._C not built")

TOL = {torch.float32: 1e-5, torch.float64: 1e-12}
DTYPES = pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)


def check_against_reference(shape: cases.Shape, dtype: torch.dtype, op: str, with_canvas: bool = False) -> None:
    """The C++ op (outputs poisoned with NaN first) vs the float64 reference on fresh inputs; a parameter
    gradient may also err up to twice the reference's own error in dtype (cases.grad_params_tol)."""
    B, C, H, W, N = shape.dims
    gen = fresh_generator()
    seed = gen.initial_seed()
    inputs = cases.draw(*shape.dims, gen)

    def run(read, write, t):
        if op == "read":
            return cases.read_results(read, t["x"], t["params"], N, t["grad_read"])
        return cases.write_results(write, t["w"], t["params"], H, W, t["grad_write"], t["canvas"] if with_canvas else None)

    with poisoned_empty():
        fast = run(ops.attention_read, ops.attention_write, cases.cast(inputs, dtype))
    exact = run(ref.attention_read, ref.attention_write, inputs)
    own = run(ref.attention_read, ref.attention_write, cases.cast(inputs, dtype))
    assert set(fast) == set(exact)
    for key in exact:
        assert fast[key].dtype == dtype
        assert_rel_close(fast[key], exact[key], cases.grad_params_tol(key, TOL[dtype], own[key], exact[key]),
                         f"{op} {key}", seed)


@pytest.mark.parametrize("shape", params(cases.SHAPES))
@DTYPES
def test_read_matches_reference(shape, dtype):
    check_against_reference(shape, dtype, "read")


@pytest.mark.parametrize("shape", params(cases.SHAPES))
@DTYPES
@pytest.mark.parametrize("with_canvas", [False, True], ids=["image", "canvas"])
def test_write_matches_reference(shape, dtype, with_canvas):
    check_against_reference(shape, dtype, "write", with_canvas)


def test_strided_inputs():
    """Every input and output gradient sliced or transposed out of a larger tensor."""
    gen = fresh_generator()
    t, N, H, W = cases.strided_inputs(gen)
    got = cases.results(ops.attention_read, ops.attention_write, t, N, H, W)
    exact = cases.results(ref.attention_read, ref.attention_write, cases.cast(t, torch.float64), N, H, W)
    own = cases.results(ref.attention_read, ref.attention_write, t, N, H, W)
    for key in exact:
        assert_rel_close(got[key], exact[key], cases.grad_params_tol(key, 1e-5, own[key], exact[key]),
                         f"strided {key}", gen.initial_seed())


def test_channels_last_and_broadcast_inputs_need_no_copy():
    # Image-sized inputs are read through their strides: a channels-last x, and the expanded
    # (stride 0) gradient that image.sum().backward() produces.
    gen = fresh_generator()
    x = torch.rand(3, 2, 11, 13, generator=gen).to(memory_format=torch.channels_last).requires_grad_()
    p = (torch.randn(3, 5, generator=gen) * 0.5).requires_grad_()
    ops.attention_write(ops.attention_read(x, p, 4), p, 11, 13).sum().backward()
    xr = x.detach().double().requires_grad_()
    pr = p.detach().double().requires_grad_()
    ref.attention_write(ref.attention_read(xr, pr, 4), pr, 11, 13).sum().backward()
    assert_rel_close(x.grad, xr.grad, 1e-5, "grad x (channels last, expanded grad)", gen.initial_seed())
    assert_rel_close(p.grad, pr.grad, 1e-5, "grad params", gen.initial_seed())


@pytest.mark.parametrize("case", params(cases.EXTREMES))
@DTYPES
def test_extreme_parameters_stay_finite_and_exact(case, dtype):
    """Finite everywhere; as exact as the reference itself computed in the same dtype.

    Needle-thin filters make some gradients ill-conditioned (the float32 reference is off by ~1e-3
    there, and the float64 reference itself by ~1e-11), so each example's error may be up to twice
    the same-dtype reference's, or 10x the usual tolerance (1000x for float64).
    """
    gen = fresh_generator()
    seed = gen.initial_seed()
    p = case.params(gen)
    inputs = cases.draw(p.shape[0], case.C, case.H, case.W, case.N, gen, params=p)
    fast = cases.results(ops.attention_read, ops.attention_write, cases.cast(inputs, dtype), case.N, case.H, case.W)
    own = cases.results(ref.attention_read, ref.attention_write, cases.cast(inputs, dtype), case.N, case.H, case.W)
    exact = cases.results(ref.attention_read, ref.attention_write, inputs, case.N, case.H, case.W)
    scale = 10 if dtype == torch.float32 else 1000
    for key in exact:
        assert torch.isfinite(fast[key]).all(), f"{key} not finite (seed {seed})"
        for b in range(p.shape[0]):  # per example: gamma = e^10 must not hide errors where gamma = e^-10
            allowed = max(scale * TOL[dtype], 2 * rel_err(own[key][b], exact[key][b]))
            assert_rel_close(fast[key][b], exact[key][b], allowed, f"extreme {key}[{b}]", seed)


def test_filter_rows_sum_to_one_far_outside_the_image():
    # Every filter of a window far off the image must still have unit mass (no silent zero rows):
    # reading a constant image then returns gamma * constant everywhere.
    B = cases.FAR_OUTSIDE.shape[0]
    out = ops.attention_read(torch.full((B, 1, 13, 17), 3.0), cases.FAR_OUTSIDE, 6)
    torch.testing.assert_close(out, torch.full_like(out, 3.0))


def test_threads_do_not_change_results():
    gen = fresh_generator()
    x = torch.rand(64, 2, 28, 28, generator=gen)
    params = torch.randn(64, 5, generator=gen) * 0.5
    prev = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = ops.attention_read(x, params, 12)
        torch.set_num_threads(2)
        two = ops.attention_read(x, params, 12)
    finally:
        torch.set_num_threads(prev)
    assert torch.equal(one, two)


def test_generic_and_avx2_builds_agree_with_reference():
    # The kernel set is fixed per process, so run the portable build in a child process.
    script = (
        "import torch, fastgen\n"
        "from fastgen.reference import attention as ref\n"
        "g = torch.Generator().manual_seed(7)\n"
        "x = torch.rand(5, 2, 19, 23, generator=g); p = torch.randn(5, 5, generator=g) * 0.5\n"
        "o = fastgen.ops.attention_read(x, p, 6)\n"
        "r = ref.attention_read(x.double(), p.double(), 6)\n"
        "w = fastgen.ops.attention_write(o, p, 19, 23)\n"
        "rw = ref.attention_write(r, p.double(), 19, 23)\n"
        "print(max(((o - r).norm() / r.norm()).item(), ((w - rw).norm() / rw.norm()).item()))\n"
    )
    for capability in ("generic", "best"):
        env = dict(os.environ, FASTGEN_CPU_CAPABILITY=capability)
        out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
        assert float(out.stdout.strip()) < 1e-5, (capability, out.stdout)


# ---------------------------------------------------------------------------------------------
# autograd, torch.library and torch.compile


@pytest.mark.parametrize("shape", params(cases.GRADCHECK_SHAPES))
def test_gradcheck_read(shape):
    B, C, H, W, N = shape.dims
    t = cases.draw(*shape.dims, fresh_generator())
    x, p = t["x"].requires_grad_(), t["params"].requires_grad_()
    assert torch.autograd.gradcheck(lambda x, p: ops.attention_read(x, p, N), (x, p))


@pytest.mark.parametrize("shape", params(cases.GRADCHECK_SHAPES))
def test_gradcheck_write_with_canvas(shape):
    B, C, H, W, N = shape.dims
    t = cases.draw(*shape.dims, fresh_generator())
    w, p, c = (t[k].requires_grad_() for k in ("w", "params", "canvas"))
    assert torch.autograd.gradcheck(lambda w, p, c: ops.attention_write(w, p, H, W, c), (w, p, c))


@pytest.mark.parametrize("shape", params(cases.OPCHECK_SHAPES))
@pytest.mark.parametrize("requires_grad", [False, True])
def test_opcheck(shape, requires_grad):
    B, C, H, W, N = shape.dims
    t = cases.draw(*shape.dims, fresh_generator())
    grad = lambda k: t[k].clone().requires_grad_(requires_grad)  # noqa: E731
    f = torch.ops.fastgen
    torch.library.opcheck(f.attention_read.default, (grad("x"), grad("params"), N))
    torch.library.opcheck(f.attention_write.default, (grad("w"), grad("params"), H, W, None))
    torch.library.opcheck(f.attention_write.default, (grad("w"), grad("params"), H, W, grad("canvas")))
    torch.library.opcheck(f.attention_read_backward.default, (t["grad_read"], t["x"], t["params"], N))
    torch.library.opcheck(f.attention_write_backward.default, (t["grad_write"], t["w"], t["params"], H, W))


def test_torch_compile_has_no_graph_break():
    torch._dynamo.reset()
    gen = fresh_generator()
    x = torch.rand(3, 2, 12, 14, generator=gen, requires_grad=True)
    p_read = (torch.randn(3, 5, generator=gen) * 0.5).requires_grad_()
    p_write = (torch.randn(3, 5, generator=gen) * 0.5).requires_grad_()
    canvas = torch.randn(3, 2, 12, 14, generator=gen)

    def step(x, p_read, p_write, canvas):
        glimpse = ops.attention_read(x, p_read, 5)
        return ops.attention_write(torch.tanh(glimpse), p_write, 12, 14, canvas)

    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")  # fullgraph: a break is an error
    out = compiled(x, p_read, p_write, canvas)
    grads = torch.autograd.grad(out.square().sum(), (x, p_read, p_write))
    expected = step(x, p_read, p_write, canvas)
    expected_grads = torch.autograd.grad(expected.square().sum(), (x, p_read, p_write))
    torch.testing.assert_close(out, expected)
    for a, b in zip(grads, expected_grads):
        torch.testing.assert_close(a, b)


# ---------------------------------------------------------------------------------------------
# backends


def test_backend_switch_and_context_manager():
    gen = fresh_generator()
    x = torch.rand(2, 1, 8, 9, generator=gen)
    p = torch.randn(2, 5, generator=gen) * 0.5
    assert fastgen.get_backend() == "auto"
    with fastgen.use_backend("reference"):
        assert fastgen.get_backend() == "reference"
        r = ops.attention_read(x, p, 3)
        assert r.grad_fn is None or "fastgen" not in type(r.grad_fn).__name__
    assert fastgen.get_backend() == "auto"
    with fastgen.use_backend("cpu"):
        c = ops.attention_read(x, p, 3)
    torch.testing.assert_close(c, r)
    with pytest.raises(ValueError, match="unknown backend 'fast'"):
        fastgen.set_backend("fast")
    for gpu_only in ("triton", "cuda"):
        with fastgen.use_backend(gpu_only), pytest.raises(RuntimeError, match="runs on CUDA tensors"):
            ops.attention_read(x, p, 3)


def test_backend_from_environment():
    script = "import fastgen; print(fastgen.get_backend())"
    env = dict(os.environ, FASTGEN_BACKEND="reference")
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "reference"
    env["FASTGEN_BACKEND"] = "bogus"
    bad = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert bad.returncode != 0 and "unknown backend 'bogus'" in bad.stderr


# ---------------------------------------------------------------------------------------------
# bad input: a clear exception naming the op and the problem (cases shared with tests/gpu)


@pytest.mark.parametrize("case", bad_inputs_for(cases.wrapper_bad_inputs(ops), "cpu"))
def test_bad_input_is_named(case):
    assert_bad_input(case, "cpu")


@pytest.mark.parametrize("case", bad_inputs_for(cases.TORCH_OPS_BAD_INPUTS, "cpu"))
def test_bad_input_through_torch_ops_is_named(case):
    # The C++ checks guard direct torch.ops.fastgen calls, which skip the Python wrapper.
    assert_bad_input(case, "cpu")


def test_triton_backend_in_a_cuda_build_takes_the_triton_autograd_functions(monkeypatch):
    """In a build whose CUDA ops are the C++ kernels, use_backend("triton") on CUDA tensors runs
    fastgen.triton.attention.read / write (routing only: no GPU needed to decide it)."""
    from fastgen.ops import attention as attention_ops

    monkeypatch.setattr(attention_ops._extension, "has_kernel", lambda op, device: True)
    monkeypatch.setattr(attention_ops, "_TRITON_IS_CUDA_KERNEL", False)
    cuda = torch.device("cuda")
    with fastgen.use_backend("triton"):
        assert attention_ops._resolve_backend(cuda) == "triton"
    with fastgen.use_backend("cuda"):
        assert attention_ops._resolve_backend(cuda) == "compiled"
    with fastgen.use_backend("triton"), pytest.raises(RuntimeError, match="runs on CUDA tensors"):
        attention_ops._resolve_backend(torch.device("cpu"))
