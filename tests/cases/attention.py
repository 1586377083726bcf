"""Cases of attention_read / attention_write: shapes, extreme and out-of-domain parameters, strided
layouts, bad calls; and the runners that turn a case into outputs and gradients for any implementation
(the C++ ops, the Triton autograd functions, the reference) on any device."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from fastgen.reference import attention as ref
from tests.cases import BadInput
from tests.helpers import assert_rel_close, fresh_generator, rel_err


@dataclass(frozen=True)
class Shape:
    """(B, C, H, W, N) and why it is here. `interpreter` is the cost of the case under the Triton
    interpreter, which runs one program per example in Python: "quick" (run by default), "low" (quick,
    and also run in float16/bfloat16 there) or "slow" (marked slow under the interpreter)."""

    B: int
    C: int
    H: int
    W: int
    N: int
    covers: str
    interpreter: str = "slow"

    @property
    def id(self) -> str:
        return f"B{self.B}C{self.C}H{self.H}W{self.W}N{self.N}"

    @property
    def dims(self) -> tuple[int, int, int, int, int]:
        return self.B, self.C, self.H, self.W, self.N


SHAPES = [
    Shape(1, 1, 8, 8, 1, "batch 1, one channel, N = 1"),
    Shape(3, 2, 13, 17, 5, "odd sizes, H != W"),
    Shape(2, 3, 5, 7, 9, "three channels, N > H and N > W"),
    Shape(2, 1, 28, 28, 2, "MNIST read glimpse"),
    Shape(4, 2, 28, 28, 12, "MNIST write patch"),
    Shape(2, 3, 32, 32, 12, "three colour channels, 32 x 32"),
    Shape(1, 2, 60, 60, 12, "AlignDRAW's 60 x 60 canvas"),
    Shape(2, 1, 9, 40, 33, "very wide image, N > H"),
    Shape(1, 1, 13, 17, 5, "batch 1, odd sizes", "low"),
    Shape(2, 3, 13, 17, 1, "N = 1 with three channels", "quick"),
    Shape(3, 3, 13, 17, 24, "N > H and N > W, padded past both", "low"),
    Shape(2, 3, 8, 6, 12, "H > W", "quick"),
    Shape(1, 3, 17, 13, 4, "H > W, odd", "quick"),
    Shape(2, 1, 20, 20, 16, "padded sizes all >= 16: Triton's tl.dot path in float32", "low"),
    Shape(64, 2, 28, 28, 12, "benchmark batch, MNIST"),
    Shape(16, 3, 32, 32, 12, "benchmark batch, colour"),
    Shape(8, 2, 60, 60, 12, "benchmark batch, AlignDRAW canvas"),
]


# gradcheck perturbs every input element: the shapes with at most ~1,400 image pixels in all.
GRADCHECK_SHAPES = [s for s in SHAPES if s.B * s.C * s.H * s.W <= 1400]
# opcheck runs each op through several torch.library test utilities: three small, differing shapes.
OPCHECK_SHAPES = [SHAPES[0], SHAPES[2], GRADCHECK_SHAPES[-1]]


def draw(B: int, C: int, H: int, W: int, N: int, gen: torch.Generator, params: torch.Tensor | None = None) -> dict:
    """float64 CPU master copies of every input of a read and a write, drawn fresh: x, params (0.5 *
    randn unless given), w, canvas, and the output gradients grad_read [B,C,N,N], grad_write [B,C,H,W]."""
    f64 = dict(generator=gen, dtype=torch.float64)
    return {
        "x": torch.rand(B, C, H, W, **f64),
        "params": torch.randn(B, 5, **f64) * 0.5 if params is None else params,
        "w": torch.randn(B, C, N, N, **f64),
        "canvas": torch.randn(B, C, H, W, **f64),
        "grad_read": torch.randn(B, C, N, N, **f64),
        "grad_write": torch.randn(B, C, H, W, **f64),
    }


def cast(inputs: dict, dtype: torch.dtype, device="cpu") -> dict:
    return {k: v.to(device, dtype) for k, v in inputs.items()}


def read_results(read, x, params, N, grad_out) -> dict:
    """Output and gradients of read(x, params, N) backpropagated from grad_out, on the CPU.
    The tensors are used as given (layout, dtype, device), so strided inputs stay strided."""
    x, params = x.detach().requires_grad_(), params.detach().requires_grad_()
    out = read(x, params, N)
    gx, gp = torch.autograd.grad(out, (x, params), grad_out)
    return {"read": out.detach().cpu(), "grad x": gx.cpu(), "grad params (read)": gp.cpu()}


def write_results(write, w, params, H, W, grad_out, canvas=None) -> dict:
    """Output and gradients of write(w, params, H, W, canvas) backpropagated from grad_out, on the CPU."""
    w, params = w.detach().requires_grad_(), params.detach().requires_grad_()
    wrt = (w, params)
    if canvas is not None:
        canvas = canvas.detach().requires_grad_()
        wrt += (canvas,)
    out = write(w, params, H, W, canvas)
    grads = torch.autograd.grad(out, wrt, grad_out)
    result = {"write": out.detach().cpu(), "grad w": grads[0].cpu(), "grad params (write)": grads[1].cpu()}
    if canvas is not None:
        result["grad canvas"] = grads[2].cpu()
    return result


def results(read, write, t: dict, N: int, H: int, W: int, with_canvas: bool = True) -> dict:
    """read_results and write_results of one input dict (as drawn by `draw`, cast where wanted)."""
    return {**read_results(read, t["x"], t["params"], N, t["grad_read"]),
            **write_results(write, t["w"], t["params"], H, W, t["grad_write"], t["canvas"] if with_canvas else None)}


def grad_params_tol(key: str, tol: float, own: torch.Tensor, exact: torch.Tensor) -> float:
    """tol, except for a parameter gradient: it sums many terms of both signs per example, so even the
    reference computed in the same dtype can miss tol; then up to twice that reference's own error."""
    return max(tol, 2 * rel_err(own, exact)) if key.startswith("grad params") else tol


# ---------------------------------------------------------------------------------------------
# extreme parameters: windows far outside the image, needle-thin and flat filters, huge and tiny gamma

CORNERS = torch.tensor([
    [10.0, -10.0, -10.0, 0.0, 10.0],   # far outside, needle-thin filters, huge gamma
    [10.0, -10.0, -10.0, 3.0, 10.0],   # ... and a huge stride
    [-10.0, 10.0, 10.0, 0.0, -10.0],   # far outside, flat filters, tiny gamma
    [-10.0, 10.0, 10.0, -3.0, -10.0],  # ... and a tiny stride
    [0.0, 0.0, -10.0, -3.0, 0.0],      # centred, needle-thin, all filters on one pixel
    [10.0, 10.0, 10.0, 2.0, 10.0],
    [10.0, 10.0, 10.0, 3.0, -10.0],
], dtype=torch.float64)


@dataclass(frozen=True)
class Extreme:
    """CORNERS plus `random` rows with |g~| up to 10, log sigma^2 and log gamma in [-10, 10],
    log delta~ in [-3, 3], on images C x H x W read and written with N x N patches."""

    C: int
    H: int
    W: int
    N: int
    random: int
    interpreter: str = "quick"

    @property
    def id(self) -> str:
        return f"C{self.C}H{self.H}W{self.W}N{self.N}+{self.random}random"

    def params(self, gen: torch.Generator) -> torch.Tensor:
        u = torch.rand(self.random, 5, generator=gen, dtype=torch.float64) * 2 - 1
        u *= torch.tensor([10.0, 10.0, 10.0, 3.0, 10.0], dtype=torch.float64)
        return torch.cat([CORNERS, u])


EXTREMES = [
    Extreme(2, 20, 24, 7, random=25, interpreter="slow"),
    Extreme(2, 13, 17, 5, random=2),
    Extreme(1, 13, 17, 1, random=0),
    Extreme(1, 20, 20, 16, random=0),
]

# Every filter row of a window far off the image still has unit mass: reading a constant image with
# gamma = 1 returns that constant everywhere (no silent zero rows).
FAR_OUTSIDE = torch.tensor([
    [10.0, -10.0, -10.0, 0.0, 0.0],
    [-10.0, 10.0, 10.0, 0.0, 0.0],
    [-10.0, 10.0, 10.0, 2.0, 0.0],
    [0.3, -0.2, 0.0, 0.0, 0.0],
    [3.0, -7.0, 5.0, -2.0, 0.0],
])


def strided_inputs(gen: torch.Generator, device="cpu") -> tuple[dict, int, int, int]:
    """float32 inputs, every one sliced or transposed out of a larger tensor (strided in every dim),
    with N, H, W."""
    B, C, H, W, N = 2, 3, 15, 20, 6
    r = dict(generator=gen)
    t = {
        "x": torch.rand(4, 6, 18, 40, **r)[::2, 1::2, 3:, ::2],
        "params": (torch.randn(B, 10, **r) * 0.5)[:, ::2],
        "w": torch.randn(B, C, 2 * N, N, **r)[:, :, ::2],
        "canvas": torch.randn(B, C, W, H, **r).transpose(-1, -2),
        "grad_read": torch.randn(B, C, N, 2 * N, **r)[..., ::2],
        "grad_write": torch.randn(B, C, H, W + 4, **r)[..., 2:W + 2],
    }
    t = {k: v.to(device) if device == "cpu" else _strided_copy(v, device) for k, v in t.items()}
    assert not any(v.is_contiguous() for v in t.values())
    return t, N, H, W


def _strided_copy(t: torch.Tensor, device) -> torch.Tensor:
    """t on device with the same strides (Tensor.to makes a strided slice contiguous)."""
    out = torch.empty_strided(t.size(), t.stride(), dtype=t.dtype, device=device)
    return out.copy_(t)


# ---------------------------------------------------------------------------------------------
# the parameter domain (fastgen.reference.attention.PARAM_BOUNDS): past it every backend clamps

ON_BOUND = (2, 4)  # row, column of beyond_the_domain's parameter that sits exactly on its bound


def beyond_the_domain(gen: torch.Generator, random_rows: int = 6) -> torch.Tensor:
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
    fresh = torch.randn(random_rows, 5, generator=gen, dtype=torch.float64) * 300  # many past a bound
    return torch.cat([cases, fresh])


@dataclass(frozen=True)
class Domain:
    C: int
    H: int
    W: int
    N: int
    interpreter: str = "quick"

    @property
    def id(self) -> str:
        return f"C{self.C}H{self.H}W{self.W}N{self.N}"


DOMAINS = [Domain(2, 13, 17, 5, interpreter="slow"), Domain(2, 9, 11, 4)]


def outside(params: torch.Tensor) -> torch.Tensor:
    lo, hi = (torch.tensor(b, dtype=torch.float64) for b in zip(*ref.PARAM_BOUNDS))
    return (params.double() < lo) | (params.double() > hi)


def assert_close_per_example(fast: torch.Tensor, exact: torch.Tensor, tol: float, what: str, seed) -> None:
    """Each example to tol relative error (gamma = e^80 in one would hide the others' errors); an
    example whose exact value is below what fast's dtype holds (e^-30-scaled gradients) must be as tiny."""
    tiny = 1e6 * torch.finfo(fast.dtype).tiny
    for b in range(exact.shape[0]):
        if exact[b].norm() < tiny:
            assert fast[b].double().norm() < tiny, f"{what}[{b}] (seed {seed})"
        else:
            assert_rel_close(fast[b], exact[b], tol, f"{what}[{b}]", seed)


def assert_clamped_parameters_get_no_gradient(got: dict, params: torch.Tensor) -> None:
    """A parameter past its bound gets exactly 0 gradient; one on its bound keeps its gradient."""
    mask = outside(params)
    assert mask.any() and (~mask).any()
    for key in ("grad params (read)", "grad params (write)"):
        assert (got[key][mask] == 0).all(), f"{key}: a clamped parameter has a gradient"
        assert got[key][ON_BOUND] != 0, f"{key}: a parameter on its bound lost its gradient"


# ---------------------------------------------------------------------------------------------
# bad input: each names the op and what was wrong


def _x(device, dtype=torch.float32):
    return torch.rand(2, 1, 8, 8, device=device, dtype=dtype)


def _p(device, dtype=torch.float32):
    return torch.zeros(2, 5, device=device, dtype=dtype)


def _patch(device):
    return torch.rand(2, 1, 3, 3, device=device)


def wrapper_bad_inputs(ops) -> list[BadInput]:
    """Calls of fastgen.ops' Python wrappers (the checks before any backend runs)."""
    read, write = ops.attention_read, ops.attention_write
    return [
        BadInput("read-x-3d", lambda d: read(_x(d)[0], _p(d), 3), ValueError, r"attention_read: x must be 4-D"),
        BadInput("read-batch", lambda d: read(_x(d), _p(d)[:1], 3), ValueError, r"params has batch 1 but x has batch 2"),
        BadInput("read-params-width", lambda d: read(_x(d), _p(d)[:, :4], 3), ValueError, r"params must be \[B, 5\]"),
        BadInput("read-N-0", lambda d: read(_x(d), _p(d), 0), ValueError, r"N must be >= 1, got 0"),
        BadInput("read-N-float", lambda d: read(_x(d), _p(d), 2.0), TypeError, r"N must be an int"),
        BadInput("read-x-int", lambda d: read(_x(d).long(), _p(d), 3), TypeError, r"x has dtype torch.int64"),
        BadInput("read-params-dtype", lambda d: read(_x(d), _p(d).double(), 3), TypeError,
                 r"params dtype torch.float64 differs"),
        BadInput("read-half-on-cpu", lambda d: read(_x(d).half(), _p(d).half(), 3), TypeError,
                 r"on cpu it must be one of", devices=("cpu",)),
        BadInput("read-params-device", lambda d: read(_x(d), _p("meta"), 3), ValueError,
                 r"x is on (cpu|cuda:0) but params is on meta"),
        BadInput("read-numpy", lambda d: read(_x("cpu").numpy(), _p(d), 3), TypeError, r"x must be a torch.Tensor"),
        BadInput("write-H-0", lambda d: write(_patch(d), _p(d), 0, 8), ValueError, r"attention_write: H must be >= 1"),
        BadInput("write-not-square", lambda d: write(_patch(d)[..., :2], _p(d), 8, 8), ValueError,
                 r"w must be a square patch"),
        BadInput("write-canvas-shape", lambda d: write(_patch(d), _p(d), 8, 8, _x(d)[:, :, :7]), ValueError,
                 r"canvas must have shape \(2, 1, 8, 8\)"),
        BadInput("write-canvas-dtype", lambda d: write(_patch(d), _p(d), 8, 8, _x(d).double()), TypeError,
                 r"canvas is torch.float64"),
    ]


def _ops():
    return torch.ops.fastgen


# The C++ checks guard direct torch.ops.fastgen calls, which skip the Python wrapper (CPU kernels).
TORCH_OPS_BAD_INPUTS = [
    BadInput("read-x-3d", lambda d: _ops().attention_read(_x(d)[0], _p(d), 3), RuntimeError,
             r"attention_read: x must be 4-D", devices=("cpu",)),
    BadInput("read-batch", lambda d: _ops().attention_read(_x(d), _p(d)[:1], 3), RuntimeError,
             r"attention_read: params has batch 1 but x has batch 2", devices=("cpu",)),
    BadInput("read-N-0", lambda d: _ops().attention_read(_x(d), _p(d), 0), RuntimeError,
             r"attention_read: N must be >= 1", devices=("cpu",)),
    BadInput("read-int", lambda d: _ops().attention_read(_x(d).long(), _p(d).long(), 3), RuntimeError,
             r"x must be a floating tensor", devices=("cpu",)),
    BadInput("write-canvas-shape", lambda d: _ops().attention_write(_patch(d), _p(d), 8, 8, _x(d)[:, :, :7]),
             RuntimeError, r"attention_write: canvas must have shape", devices=("cpu",)),
    BadInput("read-backward-grad-shape",
             lambda d: _ops().attention_read_backward(torch.zeros(2, 1, 2, 2, device=d), _x(d), _p(d), 3),
             RuntimeError, r"attention_read_backward: grad_out must have shape \[2, 1, 3, 3\]", devices=("cpu",)),
]


# -- the ops' public calls for tests/ops/test_route.py -----------------------------------------------


def route_read_call(dtype=torch.float32):
    from fastgen.ops import attention as ops
    gen = fresh_generator()
    x, params = torch.rand(2, 1, 6, 7, generator=gen).to(dtype), (torch.randn(2, 5, generator=gen) * 0.5).to(dtype)
    return lambda: ops.attention_read(x, params, 3)


def route_write_call(dtype=torch.float32):
    from fastgen.ops import attention as ops
    gen = fresh_generator()
    w, params = torch.rand(2, 1, 3, 3, generator=gen).to(dtype), (torch.randn(2, 5, generator=gen) * 0.5).to(dtype)
    return lambda: ops.attention_write(w, params, 6, 7)


ROUTE_CALLS = {"attention_read": route_read_call, "attention_write": route_write_call}
ROUTE_TWINS = {"attention_read": ("fastgen.reference.attention", "attention_read"),
               "attention_write": ("fastgen.reference.attention", "attention_write")}
