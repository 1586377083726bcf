"""Triton attention kernels (fastgen.triton.attention) vs the float64 reference, under the interpreter.

tests.triton.device sets TRITON_INTERPRET=1 before triton is imported and picks the device. Every test draws fresh random inputs; the seed is printed (and
can be pinned with FASTGEN_TEST_SEED=<int>) so a failure can be replayed.
"""
from tests.triton.device import DEVICE  # first: sets TRITON_INTERPRET=1 before triton is imported

import math  # noqa: E402
import os  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from fastgen.reference import attention as ref  # noqa: E402
from fastgen.triton import attention as kernels  # noqa: E402
from tests.helpers import assert_rel_close  # noqa: E402


class _Launchers:
    """The four launchers, fed on DEVICE; results come back to the CPU, where the references are."""

    @staticmethod
    def _to(args):
        return [a.to(DEVICE) if isinstance(a, torch.Tensor) else a for a in args]

    @staticmethod
    def _back(res):
        if isinstance(res, tuple):
            return tuple(r.cpu() for r in res)
        return res.cpu()

    def __getattr__(self, name):
        fn = getattr(kernels, name)
        return lambda *args: self._back(fn(*self._to(args)))


tri = _Launchers()

# (B, C, H, W, N): batch 1, one and three channels, H != W both ways, N = 1, N > H and N > W,
# and a shape whose padded sizes are all >= 16 (the tl.dot path for float32).
SHAPES = [
    (1, 1, 13, 17, 5),
    (2, 3, 13, 17, 1),
    (3, 3, 13, 17, 24),
    (2, 3, 8, 6, 12),
    (1, 3, 17, 13, 4),
    (2, 1, 20, 20, 16),
]
SHAPE_IDS = ["x".join(map(str, s)) for s in SHAPES]

# float32 vs float64 reference: ||out - ref|| / ||ref||; float64 kernels must agree to rounding.
REL_TOL = {torch.float32: 1e-5, torch.float64: 1e-12}


@pytest.fixture(autouse=True)
def _fresh_seed():
    seed = int(os.environ.get("FASTGEN_TEST_SEED", int.from_bytes(os.urandom(4), "little")))
    torch.manual_seed(seed)
    print(f"seed={seed}")
    yield


def _errors(out: torch.Tensor, expected: torch.Tensor) -> tuple[float, float, float]:
    """(max abs, mean abs, ||out - expected|| / ||expected||), computed in float64."""
    diff = (out.double() - expected.double()).abs()
    denom = expected.double().norm().item()
    rel = diff.norm().item() / denom if denom > 0 else diff.norm().item()
    return diff.max().item(), diff.mean().item(), rel


def _check(name: str, out: torch.Tensor, expected: torch.Tensor, tol: float) -> None:
    assert_rel_close(out, expected, tol, name)


def _params(B: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return (0.5 * torch.randn(B, 5, dtype=torch.float64)).to(dtype)


# ---------------------------------------------------------------- references (autograd)
def _ref_read(x, params, N, grad_out, dtype=torch.float64):
    x_ = x.detach().to(dtype).requires_grad_()
    p_ = params.detach().to(dtype).requires_grad_()
    out = ref.attention_read(x_, p_, N)
    out.backward(grad_out.to(dtype))
    return out.detach(), x_.grad, p_.grad


def _ref_write(w, params, H, W, grad_out, canvas=None, dtype=torch.float64):
    w_ = w.detach().to(dtype).requires_grad_()
    p_ = params.detach().to(dtype).requires_grad_()
    out = ref.attention_write(w_, p_, H, W, None if canvas is None else canvas.to(dtype))
    out.backward(grad_out.to(dtype))
    return out.detach(), w_.grad, p_.grad


def _grad_params_tol(dtype, ref64, ref_own_dtype, tol):
    """grad_params sums many terms of both signs per example, so on unlucky draws even PyTorch's own
    float32 autograd misses 1e-5 (seen: 1.0e-5 at N = 1). Accept the dtype's tolerance, or up to 2x
    PyTorch's own error in that dtype when that is larger."""
    if dtype == torch.float64:
        return tol
    return max(tol, 2 * _errors(ref_own_dtype, ref64)[2])


# ---------------------------------------------------------------- float32 / float64 vs reference
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_read(shape, dtype):
    B, C, H, W, N = shape
    x = torch.randn(B, C, H, W, dtype=dtype)
    params = _params(B, dtype)
    grad_out = torch.randn(B, C, N, N, dtype=dtype)
    out_ref, gx_ref, gp_ref = _ref_read(x, params, N, grad_out)

    out = tri.read_forward(x, params, N)
    assert out.dtype == dtype
    _check("read out", out, out_ref, REL_TOL[dtype])
    grad_x, grad_params = tri.read_backward(grad_out, x, params, N)
    assert grad_x.dtype == dtype and grad_params.dtype == dtype
    _check("read grad_x", grad_x, gx_ref, REL_TOL[dtype])
    gp_own = _ref_read(x, params, N, grad_out, dtype)[2]
    _check("read grad_params", grad_params, gp_ref, _grad_params_tol(dtype, gp_ref, gp_own, REL_TOL[dtype]))


@pytest.mark.parametrize("with_canvas", [False, True], ids=["plain", "canvas"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_write(shape, dtype, with_canvas):
    B, C, H, W, N = shape
    w = torch.randn(B, C, N, N, dtype=dtype)
    params = _params(B, dtype)
    canvas = torch.randn(B, C, H, W, dtype=dtype) if with_canvas else None
    grad_out = torch.randn(B, C, H, W, dtype=dtype)
    out_ref, gw_ref, gp_ref = _ref_write(w, params, H, W, grad_out, canvas)

    out = tri.write_forward(w, params, H, W, canvas)
    assert out.dtype == dtype
    _check("write out", out, out_ref, REL_TOL[dtype])
    if with_canvas:  # the backward does not see the canvas (its gradient is grad_out itself)
        return
    grad_w, grad_params = tri.write_backward(grad_out, w, params, H, W)
    assert grad_w.dtype == dtype and grad_params.dtype == dtype
    _check("write grad_w", grad_w, gw_ref, REL_TOL[dtype])
    gp_own = _ref_write(w, params, H, W, grad_out, None, dtype)[2]
    _check("write grad_params", grad_params, gp_ref, _grad_params_tol(dtype, gp_ref, gp_own, REL_TOL[dtype]))


# ---------------------------------------------------------------- float16 / bfloat16
def _check_low(name, out, expected64, ref_low):
    """No more than 2x PyTorch's own error in that dtype (both measured against float64)."""
    assert out.dtype == ref_low.dtype
    _, _, ref_rel = _errors(ref_low, expected64)
    tol = 2 * ref_rel
    if out.dtype == torch.bfloat16:
        # The interpreter converts float32 -> bfloat16 by truncation (round toward zero), not
        # round-to-nearest as on a GPU, so a single rounding of the output can cost one ulp (2^-8
        # relative) where PyTorch's own rounding costs at most half of one.
        tol = max(tol, 2.0**-8)
    _check(f"{name} ({out.dtype}; torch's own error {ref_rel:.3e})", out, expected64, tol)


LOW_SHAPES = [0, 2, 5]  # indices into SHAPES


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["f16", "bf16"])
@pytest.mark.parametrize("shape", [SHAPES[i] for i in LOW_SHAPES], ids=[SHAPE_IDS[i] for i in LOW_SHAPES])
def test_low_precision(shape, dtype):
    B, C, H, W, N = shape
    x = torch.randn(B, C, H, W).to(dtype)
    w = torch.randn(B, C, N, N).to(dtype)
    canvas = torch.randn(B, C, H, W).to(dtype)
    params = _params(B, dtype)
    g_read = torch.randn(B, C, N, N).to(dtype)
    g_write = torch.randn(B, C, H, W).to(dtype)

    # References on the same (already rounded) inputs: float64, and PyTorch in the low dtype.
    r_out, r_gx, r_gp = _ref_read(x, params, N, g_read)
    xl, pl = x.clone().requires_grad_(), params.clone().requires_grad_()
    l_out = ref.attention_read(xl, pl, N)
    l_out.backward(g_read)
    _check_low("read out", tri.read_forward(x, params, N), r_out, l_out.detach())
    grad_x, grad_params = tri.read_backward(g_read, x, params, N)
    _check_low("read grad_x", grad_x, r_gx, xl.grad)
    _check_low("read grad_params", grad_params, r_gp, pl.grad)

    r_img = ref.attention_write(w.double(), params.double(), H, W, canvas.double())
    l_img = ref.attention_write(w, params, H, W, canvas)
    _check_low("write out (canvas)", tri.write_forward(w, params, H, W, canvas), r_img, l_img)
    r_out, r_gw, r_gp = _ref_write(w, params, H, W, g_write)
    wl, pl = w.clone().requires_grad_(), params.clone().requires_grad_()
    l_out = ref.attention_write(wl, pl, H, W)
    l_out.backward(g_write)
    _check_low("write out", tri.write_forward(w, params, H, W), r_out, l_out.detach())
    grad_w, grad_params = tri.write_backward(g_write, w, params, H, W)
    _check_low("write grad_w", grad_w, r_gw, wl.grad)
    _check_low("write grad_params", grad_params, r_gp, pl.grad)


# ---------------------------------------------------------------- extreme parameters
def _extreme_params(B: int, dtype: torch.dtype) -> torch.Tensor:
    """|g~| up to 10 (windows far outside the image), log sigma^2 and log gamma in [-10, 10]."""
    p = torch.empty(B, 5, dtype=torch.float64)
    p[:, 0:2].uniform_(-10, 10)
    p[:, 2].uniform_(-10, 10)
    p[:, 3].uniform_(-3, 3)
    p[:, 4].uniform_(-10, 10)
    corners = torch.tensor(
        [
            [10.0, -10.0, -10.0, 3.0, 10.0],  # far outside, needle-thin filters, huge stride/gamma
            [-10.0, 10.0, 10.0, -3.0, -10.0],  # far outside, flat filters, tiny stride/gamma
            [0.0, 0.0, -10.0, -3.0, 0.0],  # centred, needle-thin, all filters on one pixel
            [10.0, 10.0, 10.0, 3.0, -10.0],
        ],
        dtype=torch.float64,
    )
    k = min(B, corners.shape[0])
    p[:k] = corners[:k]
    return p.to(dtype)


EXTREME_TOL = {torch.float32: 1e-4, torch.float64: 1e-10}


EXTREME_SHAPES = [(6, 2, 13, 17, 5), (4, 1, 13, 17, 1), (4, 1, 20, 20, 16)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("shape", EXTREME_SHAPES, ids=["N5", "N1", "N16"])
def test_extreme_params(shape, dtype):
    """Finite everywhere, and close to the float64 reference: within EXTREME_TOL, or within 2x
    PyTorch's own error in that dtype where that is larger. With needle-thin filters (sigma^2 down
    to e^-10) a row's weights hinge on mu to ~1/(2 sigma^-2) pixels, and mu (up to ~100) itself
    carries float32 rounding, so float32 cannot do better than PyTorch's own float32 here."""
    B, C, H, W, N = shape
    params = _extreme_params(B, dtype)
    x = torch.randn(B, C, H, W, dtype=dtype)
    w = torch.randn(B, C, N, N, dtype=dtype)
    canvas = torch.randn(B, C, H, W, dtype=dtype)
    g_read = torch.randn(B, C, N, N, dtype=dtype)
    g_write = torch.randn(B, C, H, W, dtype=dtype)

    def tol(want, own):
        return max(EXTREME_TOL[dtype], 2 * _errors(own, want)[2])

    want = _ref_read(x, params, N, g_read)
    own = _ref_read(x, params, N, g_read, dtype)
    assert all(torch.isfinite(t).all() for t in want)
    got = (tri.read_forward(x, params, N), *tri.read_backward(g_read, x, params, N))
    for name, g, r, o in zip(("out", "grad_x", "grad_params"), got, want, own):
        _check(f"extreme read {name}", g, r, tol(r, o))

    want = _ref_write(w, params, H, W, g_write)
    own = _ref_write(w, params, H, W, g_write, None, dtype)
    assert all(torch.isfinite(t).all() for t in want)
    got = (tri.write_forward(w, params, H, W), *tri.write_backward(g_write, w, params, H, W))
    for name, g, r, o in zip(("out", "grad_w", "grad_params"), got, want, own):
        _check(f"extreme write {name}", g, r, tol(r, o))
    r_canvas = ref.attention_write(w.double(), params.double(), H, W, canvas.double())
    o_canvas = ref.attention_write(w, params, H, W, canvas)
    got = tri.write_forward(w, params, H, W, canvas)
    _check("extreme write out (canvas)", got, r_canvas, tol(r_canvas, o_canvas))


# ---------------------------------------------------------------- layout, paths, determinism
def test_autograd_functions_match_reference_through_one_graph():
    """kernels.read / kernels.write (what use_backend("triton") runs in a CUDA build): read, then write
    onto a canvas, float64; the image and the gradients of x, both windows and the canvas."""
    B, C, H, W, N = 3, 2, 13, 11, 4
    inputs = [torch.randn(B, C, H, W, dtype=torch.float64), _params(B), _params(B),
              torch.randn(B, C, H, W, dtype=torch.float64)]

    def image_and_grads(read, write):
        x, p_read, p_write, canvas = (t.clone().to(DEVICE).requires_grad_() for t in inputs)
        image = write(read(x, p_read, N), p_write, H, W, canvas)
        weights = torch.linspace(-1, 1, image.numel(), dtype=image.dtype, device=image.device).view_as(image)
        grads = torch.autograd.grad((image * weights).sum(), (x, p_read, p_write, canvas))
        return [t.detach().cpu() for t in (image, *grads)]

    got = image_and_grads(kernels.read, kernels.write)
    want = image_and_grads(ref.attention_read, ref.attention_write)
    for name, g, w in zip(("image", "grad x", "grad read window", "grad write window", "grad canvas"), got, want):
        _check(f"autograd {name}", g, w, REL_TOL[torch.float64])


def test_noncontiguous_inputs():
    B, C, H, W, N = 2, 3, 13, 17, 5
    big = torch.randn(B, C + 2, H + 3, 2 * W)
    x = big[:, 1 : C + 1, 2 : H + 2, ::2]  # sliced from a larger tensor
    params = torch.randn(5, B).t() * 0.5  # transposed
    grad_out = torch.randn(B, C, N, 2 * N)[..., ::2]
    assert not x.is_contiguous() and not params.is_contiguous() and not grad_out.is_contiguous()
    out_ref, gx_ref, gp_ref = _ref_read(x, params, N, grad_out)
    _check("read out (non-contiguous)", tri.read_forward(x, params, N), out_ref, 1e-5)
    grad_x, grad_params = tri.read_backward(grad_out, x, params, N)
    _check("read grad_x (non-contiguous)", grad_x, gx_ref, 1e-5)
    gp_own = _ref_read(x, params, N, grad_out, torch.float32)[2]
    gp_tol = _grad_params_tol(torch.float32, gp_ref, gp_own, 1e-5)
    _check("read grad_params (non-contiguous)", grad_params, gp_ref, gp_tol)

    w = torch.randn(B, C, 2 * N, N)[:, :, ::2]
    canvas = torch.randn(B, C, W, H).transpose(-1, -2)
    grad_img = torch.randn(B, C, H, W + 4)[..., 2 : W + 2]
    assert not w.is_contiguous() and not canvas.is_contiguous() and not grad_img.is_contiguous()
    img_ref = ref.attention_write(w.double(), params.double(), H, W, canvas.double())
    _check("write out (non-contiguous)", tri.write_forward(w, params, H, W, canvas), img_ref, 1e-5)
    _, gw_ref, gp_ref = _ref_write(w, params, H, W, grad_img)
    grad_w, grad_params = tri.write_backward(grad_img, w, params, H, W)
    _check("write grad_w (non-contiguous)", grad_w, gw_ref, 1e-5)
    gp_own = _ref_write(w, params, H, W, grad_img, None, torch.float32)[2]
    gp_tol = _grad_params_tol(torch.float32, gp_ref, gp_own, 1e-5)
    _check("write grad_params (non-contiguous)", grad_params, gp_ref, gp_tol)


def test_dot_and_broadcast_paths_agree(monkeypatch):
    """A shape that takes the tl.dot path (float32, all padded sizes >= 16) also works with it off."""
    B, C, H, W, N = 2, 2, 20, 17, 16
    assert kernels._config(torch.float32, N, H, W)["USE_DOT"]
    assert not kernels._config(torch.float64, N, H, W)["USE_DOT"]
    assert not kernels._config(torch.float32, 5, H, W)["USE_DOT"]
    x = torch.randn(B, C, H, W)
    params = _params(B, torch.float32)
    grad_out = torch.randn(B, C, N, N)
    out_ref, gx_ref, gp_ref = _ref_read(x, params, N, grad_out)
    gp_own = _ref_read(x, params, N, grad_out, torch.float32)[2]
    gp_tol = _grad_params_tol(torch.float32, gp_ref, gp_own, 1e-5)
    results = {}
    for label, dot_min in (("dot", 16), ("broadcast", 1 << 30)):
        monkeypatch.setattr(kernels, "_DOT_MIN", dot_min)
        assert kernels._config(torch.float32, N, H, W)["USE_DOT"] == (label == "dot")
        results[label] = (tri.read_forward(x, params, N), *tri.read_backward(grad_out, x, params, N))
        wants = (out_ref, gx_ref, gp_ref)
        for name, got, want in zip(("out", "grad_x", "grad_params"), results[label], wants):
            _check(f"read {name} ({label})", got, want, gp_tol if name == "grad_params" else 1e-5)


def test_backward_is_deterministic():
    B, C, H, W, N = 3, 3, 13, 17, 5
    x = torch.randn(B, C, H, W)
    w = torch.randn(B, C, N, N)
    params = _params(B, torch.float32)
    g_read = torch.randn(B, C, N, N)
    g_write = torch.randn(B, C, H, W)
    first = tri.read_backward(g_read, x, params, N) + tri.write_backward(g_write, w, params, H, W)
    second = tri.read_backward(g_read, x, params, N) + tri.write_backward(g_write, w, params, H, W)
    for a, b in zip(first, second):
        assert torch.equal(a, b)


def test_rows_of_filterbank_sum_to_one_far_outside():
    """gamma = 1, x = ones: every read output is exactly the product of two row sums, i.e. 1,
    even when the window lies far outside the image with needle-thin or flat filters."""
    B, C, H, W, N = 4, 1, 13, 17, 6
    params = torch.tensor(
        [[10.0, -10.0, -10.0, 0.0, 0.0], [-10.0, 10.0, 10.0, 2.0, 0.0],
         [0.3, -0.2, 0.0, 0.0, 0.0], [3.0, -7.0, 5.0, -2.0, 0.0]]
    )
    out = tri.read_forward(torch.ones(B, C, H, W), params, N)
    _check("read of ones", out, torch.ones(B, C, N, N, dtype=torch.float64), 1e-6)
    assert math.isclose(out.double().max().item(), 1.0, rel_tol=1e-6)


def test_past_the_parameter_bounds_matches_reference():
    """Parameters past fastgen.reference.attention.PARAM_BOUNDS are clamped as in the twin: finite,
    equal to the float64 reference, and a clamped parameter's gradient is exactly 0."""
    from tests.ops.test_attention_domain import assert_close_per_example, beyond_the_domain, outside
    params = beyond_the_domain(torch.Generator().manual_seed(int(torch.randint(0, 2**31, ()))))
    B, C, H, W, N = params.shape[0], 2, 9, 11, 4
    x, w = torch.rand(B, C, H, W, dtype=torch.float64), torch.randn(B, C, N, N, dtype=torch.float64)
    g_read, g_write = torch.randn(B, C, N, N, dtype=torch.float64), torch.randn(B, C, H, W, dtype=torch.float64)
    xr, pr, wr = (t.clone().requires_grad_() for t in (x, params, w))
    out_r = ref.attention_read(xr, pr, N)
    ref_gx, ref_gp_read = torch.autograd.grad(out_r, (xr, pr), g_read)
    out_w = ref.attention_write(wr, pr, H, W)
    ref_gw, ref_gp_write = torch.autograd.grad(out_w, (wr, pr), g_write)
    for dtype in (torch.float32, torch.float64):
        got = (tri.read_forward(x.to(dtype), params.to(dtype), N),
               *tri.read_backward(g_read.to(dtype), x.to(dtype), params.to(dtype), N),
               tri.write_forward(w.to(dtype), params.to(dtype), H, W),
               *tri.write_backward(g_write.to(dtype), w.to(dtype), params.to(dtype), H, W))
        want = (out_r, ref_gx, ref_gp_read, out_w, ref_gw, ref_gp_write)
        for name, a, e in zip(["read", "grad x", "grad params (read)", "write", "grad w", "grad params (write)"],
                              got, want):
            assert torch.isfinite(a).all(), f"{dtype} {name} not finite"
            # the float32 reference itself is off by ~1e-3 on the bounds' ill-conditioned filters (test_attention_domain.py)
            tol = 1e-3 if dtype == torch.float32 else REL_TOL[dtype]
            assert_close_per_example(a, e.detach(), tol, f"{dtype} {name}", None)
        mask = outside(params)
        assert (got[2][mask] == 0).all() and (got[5][mask] == 0).all()
