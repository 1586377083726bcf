"""Cases of the PixelRNN recurrences row_lstm (pre [B,4h,H,W], w_ss [4h,h,k], bias [4h]) and
diagonal_lstm (pre, w_ss [4h,h,2], reverse) -> h [B,h,H,W]: awkward sizes, both directions,
saturated and tiny pre-activations, bad calls; and the runner that turns a case into an output and
every gradient for any implementation."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from fastgen.ops import diagonal_lstm, row_lstm
from tests.cases import BadInput
from tests.helpers import fresh_generator


@dataclass(frozen=True)
class Case:
    """One call and why it is here. pre ~ pre_scale * randn, w_ss ~ w_scale * randn / sqrt(h k).
    kind "row" (k taps, bias optional) or "diagonal" (k = 2, reverse). `interpreter`: cost under the
    Triton interpreter (a step costs milliseconds there), "quick" (run by default) or "slow"."""

    kind: str
    B: int
    hidden: int
    H: int
    W: int
    covers: str
    k: int = 3
    reverse: bool = False
    bias: bool = True
    pre_scale: float = 1.0
    w_scale: float = 1.0
    interpreter: str = "slow"

    @property
    def taps(self) -> int:
        return self.k if self.kind == "row" else 2

    @property
    def id(self) -> str:
        extra = f"-k{self.k}" + ("" if self.bias else "-nobias") if self.kind == "row" else ("-rev" if self.reverse else "")
        scale = "" if (self.pre_scale, self.w_scale) == (1.0, 1.0) else f"-p{self.pre_scale:g}w{self.w_scale:g}"
        return f"{self.kind}-B{self.B}h{self.hidden}-{self.H}x{self.W}{extra}{scale}"

    def draw(self, gen: torch.Generator, device="cpu") -> dict:
        """float64 inputs on device, drawn fresh: pre, w_ss, bias (None without), grad_out."""
        f64 = dict(generator=gen, dtype=torch.float64)
        n = self.hidden
        t = {
            "pre": torch.randn(self.B, 4 * n, self.H, self.W, **f64) * self.pre_scale,
            "w_ss": torch.randn(4 * n, n, self.taps, **f64) * (self.w_scale / (n * self.taps) ** 0.5),
            "bias": torch.randn(4 * n, **f64) if self.kind == "row" and self.bias else None,
            "grad_out": torch.randn(self.B, n, self.H, self.W, **f64),
        }
        return {k: None if v is None else v.to(device) for k, v in t.items()}

    def call(self, module):
        """pre, w_ss, bias -> h through module.row_lstm / module.diagonal_lstm (ops or reference)."""
        if self.kind == "row":
            return lambda pre, w, b: module.row_lstm(pre, w, b)
        return lambda pre, w, b: module.diagonal_lstm(pre, w, self.reverse)


def _both_directions(B, hidden, H, W, covers, **kw):
    return [Case("diagonal", B, hidden, H, W, covers, reverse=r, **kw) for r in (False, True)]


QUICK = dict(interpreter="quick")

CASES = [
    Case("row", 2, 5, 6, 7, "H != W, h not a multiple of 8"),
    Case("row", 1, 16, 4, 9, "batch 1, k = 5, no bias", k=5, bias=False),
    Case("row", 2, 3, 3, 2, "kernel wider than the row", k=5, **QUICK),
    Case("row", 2, 9, 1, 6, "one row: no state-to-state term at all"),
    Case("row", 2, 4, 6, 1, "one column"),
    Case("row", 3, 1, 5, 5, "h = 1"),
    Case("row", 1, 16, 14, 13, "h = 16 (two float vectors), rows of several GEMM tiles"),
    Case("row", 2, 6, 5, 6, "saturated gates", pre_scale=40.0, w_scale=8.0),
    Case("row", 2, 6, 5, 6, "tiny pre-activations", pre_scale=1e-9, w_scale=1e-6),
    *_both_directions(2, 5, 6, 7, "H < W, h not a multiple of 8"),
    *_both_directions(2, 6, 7, 4, "H > W"),
    *_both_directions(1, 16, 5, 5, "batch 1, square"),
    *_both_directions(2, 3, 1, 6, "one row: no cell above"),
    *_both_directions(2, 3, 6, 1, "one column: no cell to the left"),
    *_both_directions(1, 2, 1, 1, "one pixel", **QUICK),
    *_both_directions(1, 16, 14, 13, "h = 16 (two float vectors), diagonals of several GEMM tiles"),
    *_both_directions(2, 6, 5, 6, "saturated gates", pre_scale=40.0, w_scale=8.0),
    *_both_directions(2, 6, 5, 6, "tiny pre-activations", pre_scale=1e-9, w_scale=1e-6),
    # interpreter-sized: few steps (rows, or diagonals H + W - 1), every regime
    Case("row", 2, 5, 3, 5, "H != W, h not a multiple of 8, two images", **QUICK),
    Case("row", 1, 3, 3, 5, "batch 1, k = 5, no bias", k=5, bias=False, **QUICK),
    *_both_directions(1, 5, 3, 4, "H < W, batch 1, h = 5", **QUICK),
    Case("diagonal", 2, 3, 4, 2, "H > W, reversed, two images", reverse=True, **QUICK),
    Case("row", 1, 5, 3, 4, "saturated gates (pre x50)", pre_scale=50.0, w_scale=8.0, **QUICK),
    Case("diagonal", 1, 3, 3, 4, "saturated gates (pre x50)", reverse=True, pre_scale=50.0, w_scale=8.0, **QUICK),
    Case("row", 1, 3, 3, 4, "tiny pre-activations", pre_scale=1e-9, w_scale=1e-6, **QUICK),
]

# gradcheck perturbs every input element: tiny cases.
GRADCHECK = [Case("row", 2, 2, 3, 4, "gradcheck"), Case("row", 1, 2, 3, 2, "gradcheck k=5", k=5),
             *_both_directions(2, 2, 3, 4, "gradcheck"), *_both_directions(1, 2, 4, 3, "gradcheck")]
# opcheck runs several torch.library utilities per op.
OPCHECK = [Case("row", 2, 3, 4, 5, "opcheck"), Case("row", 1, 3, 3, 3, "opcheck", bias=False),
           Case("diagonal", 2, 3, 4, 5, "opcheck", reverse=True)]


def results(call, t: dict) -> dict:
    """Output and gradients of call(pre, w_ss, bias) backpropagated from t["grad_out"]."""
    pre = t["pre"].detach().requires_grad_()
    w = t["w_ss"].detach().requires_grad_()
    b = None if t["bias"] is None else t["bias"].detach().requires_grad_()
    wrt = [v for v in (pre, w, b) if v is not None]
    out = call(pre, w, b)
    grads = torch.autograd.grad(out, wrt, t["grad_out"])
    names = ["grad pre", "grad w_ss", "grad bias"][:len(grads)]
    return {"out": out.detach().cpu(), **{n: g.cpu() for n, g in zip(names, grads)}}


def _pre(d, hidden=3, dtype=torch.float32, H=4, W=5):
    return torch.randn(2, 4 * hidden, H, W, device=d, dtype=dtype)


def _w(d, hidden=3, k=3, dtype=torch.float32):
    return torch.randn(4 * hidden, hidden, k, device=d, dtype=dtype)


BAD_INPUTS = [
    BadInput("row: even k", lambda d: row_lstm(_pre(d), _w(d, k=4)), ValueError, "row_lstm: .*odd and >= 3.*k = 4"),
    BadInput("row: k = 1", lambda d: row_lstm(_pre(d), _w(d, k=1)), ValueError, "row_lstm: .*odd and >= 3.*k = 1"),
    BadInput("row: pre 3-D", lambda d: row_lstm(_pre(d)[0], _w(d)), ValueError, "row_lstm: pre must be 4-D"),
    BadInput("row: w_ss not [4h, h, k]", lambda d: row_lstm(_pre(d), _w(d)[:11]), ValueError,
             r"row_lstm: w_ss must be \[4h, h, k\]"),
    BadInput("row: channel mismatch", lambda d: row_lstm(_pre(d, hidden=2), _w(d)), ValueError,
             "row_lstm: pre has 8 channels but w_ss expects 4h = 12"),
    BadInput("row: bias shape", lambda d: row_lstm(_pre(d), _w(d), torch.zeros(3, device=d)), ValueError,
             r"row_lstm: bias must be \[4h\] = \[12\]"),
    BadInput("row: bias dtype", lambda d: row_lstm(_pre(d), _w(d), torch.zeros(12, device=d, dtype=torch.float64)),
             TypeError, "row_lstm: bias dtype"),
    BadInput("row: w_ss dtype", lambda d: row_lstm(_pre(d), _w(d, dtype=torch.float64)), TypeError,
             "row_lstm: w_ss dtype"),
    BadInput("row: integer pre", lambda d: row_lstm(_pre(d).int(), _w(d).int()), TypeError,
             "row_lstm: pre must be a floating"),
    BadInput("row: empty image", lambda d: row_lstm(_pre(d)[:, :, :0], _w(d)), ValueError, "row_lstm: pre must be non-empty"),
    BadInput("row: pre not a tensor", lambda d: row_lstm(_pre(d).tolist(), _w(d)), TypeError,
             "row_lstm: pre must be a torch.Tensor"),
    BadInput("diagonal: k = 3", lambda d: diagonal_lstm(_pre(d), _w(d, k=3)), ValueError,
             r"diagonal_lstm: w_ss must be \[4h, h, 2\]"),
    BadInput("diagonal: channel mismatch", lambda d: diagonal_lstm(_pre(d, hidden=4), _w(d, k=2)), ValueError,
             "diagonal_lstm: pre has 16 channels but w_ss expects 4h = 12"),
    BadInput("diagonal: reverse not a bool", lambda d: diagonal_lstm(_pre(d), _w(d, k=2), 1), TypeError,
             "diagonal_lstm: reverse must be a bool"),
    BadInput("diagonal: w_ss not a tensor", lambda d: diagonal_lstm(_pre(d), None), TypeError,
             "diagonal_lstm: w_ss must be a torch.Tensor"),
    BadInput("diagonal: device mismatch", lambda d: diagonal_lstm(_pre(d), _w("cpu", k=2)), ValueError,
             "diagonal_lstm: w_ss is on cpu", devices=("cuda",)),
]


# -- the ops' public calls for tests/ops/test_route.py -----------------------------------------------


def _route_call(op):
    def build(dtype=torch.float32):
        gen = fresh_generator()
        pre = torch.randn(2, 12, 4, 5, generator=gen).to(dtype)
        w = torch.randn(12, 3, 3 if op is row_lstm else 2, generator=gen).to(dtype)
        return lambda: op(pre, w)
    return build


ROUTE_CALLS = {"row_lstm": _route_call(row_lstm), "diagonal_lstm": _route_call(diagonal_lstm)}
ROUTE_TWINS = {"row_lstm": ("fastgen.reference.pixel_lstm", "row_lstm"),
               "diagonal_lstm": ("fastgen.reference.pixel_lstm", "diagonal_lstm")}
