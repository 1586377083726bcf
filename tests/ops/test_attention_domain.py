"""Attention at and past the parameter domain (fastgen.reference.attention.PARAM_BOUNDS).

Every backend clamps the raw parameters into the bounds, so outputs and gradients stay finite for
any finite parameters, the CPU kernel and the float64 twin agree there, and a clamped parameter's
gradient is exactly 0 (as torch.clamp's). Before the bounds, log sigma^2 <= -89 made float32 NaN
(1 / (2 sigma^2) overflowed) and the twin gave NaN rows where the kernel gave one-hot ones for
windows centred ~1e30 pixels away. The Triton twin of these tests is in tests/triton."""
import pytest
import torch

import fastgen
from fastgen import ops
from fastgen.reference import attention as ref
from tests.helpers import assert_rel_close, fresh_generator

pytestmark = pytest.mark.skipif(not fastgen._extension.available(), reason="fastgen._C not built")

B_RANDOM = 6


def beyond_the_domain(gen: torch.Generator) -> torch.Tensor:
    """Raw parameters [B, 5]: each row puts one or more parameters past (or on) a bound."""
    cases = torch.tensor([
        [0.1, -0.2, -89.0, 0.0, 0.0],        # float32 1/(2 sigma^2) overflowed here
        [0.3, 0.4, -1e4, -0.5, 1.0],
        [0.1, 0.0, 0.3, 0.0, 30.0],          # on log gamma's bound: inside, its gradient passes
        [1e30, -1e30, 0.5, 0.0, 0.0],        # centre ~1e31 pixels away: reference rows were NaN
        [3e38, 2e7, -50.0, 1.0, 0.0],
        [0.2, 0.1, 200.0, 0.0, 0.0],         # sigma^2 = e^200: uniform filters
        [0.2, 0.1, 0.0, 88.0, 0.0],          # delta = e^88 * scale: overflowed in float32
        [-0.2, 0.3, 1.0, -500.0, 0.0],       # all filters at g
        [0.0, 0.0, 0.0, 0.0, 100.0],         # gamma = e^100 overflowed
        [0.0, 0.0, 0.0, 0.0, -100.0],        # 1/gamma overflowed in the write
    ], dtype=torch.float64)
    fresh = torch.randn(B_RANDOM, 5, generator=gen, dtype=torch.float64) * 300  # many past a bound
    return torch.cat([cases, fresh])


def outside(params: torch.Tensor) -> torch.Tensor:
    lo, hi = (torch.tensor(b, dtype=torch.float64) for b in zip(*ref.PARAM_BOUNDS))
    return (params.double() < lo) | (params.double() > hi)


def read_write(fn_read, fn_write, x, w, params, N, H, W, grads):
    """Outputs and gradients of a read and a write, each backpropagated from its own grad_out."""
    g_read, g_write = (g.to(x.dtype) for g in grads)
    p, x = params.clone().requires_grad_(), x.clone().requires_grad_()
    out_r = fn_read(x, p, N)
    gx, gp_r = torch.autograd.grad(out_r, (x, p), g_read)
    p, w = params.clone().requires_grad_(), w.clone().requires_grad_()
    out_w = fn_write(w, p, H, W)
    gw, gp_w = torch.autograd.grad(out_w, (w, p), g_write)
    return {"read": out_r, "write": out_w, "grad x": gx, "grad w": gw, "grad params (read)": gp_r,
            "grad params (write)": gp_w}


def assert_close_per_example(fast: torch.Tensor, exact: torch.Tensor, tol: float, what: str, seed) -> None:
    """Each example to tol relative error (gamma = e^80 in one would hide the others' errors); an
    example whose exact value is below what fast's dtype holds (e^-30-scaled gradients) must be as tiny."""
    tiny = 1e6 * torch.finfo(fast.dtype).tiny
    for b in range(exact.shape[0]):
        if exact[b].norm() < tiny:
            assert fast[b].double().norm() < tiny, f"{what}[{b}] (seed {seed})"
        else:
            assert_rel_close(fast[b], exact[b], tol, f"{what}[{b}]", seed)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_past_the_bounds_every_value_is_finite_and_matches_the_twin(dtype):
    gen = fresh_generator()
    params = beyond_the_domain(gen)
    B, C, H, W, N = params.shape[0], 2, 13, 17, 5
    x = torch.rand(B, C, H, W, generator=gen, dtype=torch.float64)
    w = torch.randn(B, C, N, N, generator=gen, dtype=torch.float64)
    grads = (torch.randn(B, C, N, N, generator=gen, dtype=torch.float64),
             torch.randn(B, C, H, W, generator=gen, dtype=torch.float64))
    fast = read_write(ops.attention_read, ops.attention_write, x.to(dtype), w.to(dtype), params.to(dtype), N, H, W,
                      grads)
    exact = read_write(ref.attention_read, ref.attention_write, x, w, params, N, H, W, grads)
    # Needle-thin and uniform filters on the bounds make parameter gradients ill-conditioned: as in
    # test_attention.py's extreme test (where the float32 twin is off by ~1e-3), 1e-3, or twice the error of the
    # reference itself computed in float32 where that is larger.
    same_dtype = read_write(ref.attention_read, ref.attention_write, x.to(dtype), w.to(dtype), params.to(dtype),
                            N, H, W, grads)
    for key in exact:
        assert torch.isfinite(exact[key]).all(), f"reference {key} not finite"
        assert torch.isfinite(fast[key]).all(), f"{key} not finite (seed {gen.initial_seed()})"
        tol = 1e-11 if dtype == torch.float64 else max(
            1e-3, 2 * max(float((same_dtype[key][b].double() - exact[key][b]).norm() / exact[key][b].norm().clamp_min(1e-300))
                          for b in range(B)))
        assert_close_per_example(fast[key], exact[key], tol, key, gen.initial_seed())
    # A clamped parameter gets no gradient, in both.
    mask = outside(params)
    assert mask.any() and (~mask).any()
    for key in ("grad params (read)", "grad params (write)"):
        assert (fast[key][mask] == 0).all() and (exact[key][mask] == 0).all(), key
        assert exact[key][2, 4] != 0 and fast[key][2, 4] != 0, "a parameter on its bound keeps its gradient"


def test_clamping_is_the_definition():
    """Past the bounds the op equals the op at the clamped parameters, bit for bit."""
    gen = fresh_generator()
    params = beyond_the_domain(gen).float()
    x = torch.rand(params.shape[0], 1, 11, 9, generator=gen)
    clamped = ref.clamp_params(params)
    assert torch.equal(ops.attention_read(x, params, 4), ops.attention_read(x, clamped, 4))
