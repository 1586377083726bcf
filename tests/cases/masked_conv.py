"""Cases of masked_conv2d (x [B,Cin,H,W], weight [Cout,Cin,kh,kw], bias [Cout] -> [B,Cout,H,W]): the
layer shapes of PixelCNN and Gated PixelCNN, awkward sizes, extreme scales, bad calls; and the runner
that turns a case into an output and every gradient for any implementation on any device."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from fastgen.ops import masked_conv2d
from tests.cases import BadInput
from tests.helpers import fresh_generator


@dataclass(frozen=True)
class Case:
    """One call and why it is here. x ~ x_scale * randn, weight ~ w_scale * randn / sqrt(fan-in).
    `interpreter`: cost under the Triton interpreter, "quick" (run by default) or "slow"."""

    B: int
    Cin: int
    Cout: int
    H: int
    W: int
    kh: int
    kw: int
    mask: str
    groups: int
    covers: str
    x_scale: float = 1.0
    w_scale: float = 1.0
    bias: bool = True
    interpreter: str = "slow"

    @property
    def id(self) -> str:
        scale = "" if (self.x_scale, self.w_scale) == (1.0, 1.0) else f"-x{self.x_scale:g}w{self.w_scale:g}"
        return (f"{self.mask}{self.groups}-k{self.kh}x{self.kw}-B{self.B}C{self.Cin}to{self.Cout}"
                f"-{self.H}x{self.W}{scale}" + ("" if self.bias else "-nobias"))

    def draw(self, gen: torch.Generator, device="cpu") -> dict:
        """float64 inputs on device, drawn fresh: x, weight, bias (None without), grad_out."""
        f64 = dict(generator=gen, dtype=torch.float64)
        fan_in = self.Cin * self.kh * self.kw
        t = {
            "x": torch.randn(self.B, self.Cin, self.H, self.W, **f64) * self.x_scale,
            "weight": torch.randn(self.Cout, self.Cin, self.kh, self.kw, **f64) * (self.w_scale / fan_in ** 0.5),
            "bias": torch.randn(self.Cout, **f64) if self.bias else None,
            "grad_out": torch.randn(self.B, self.Cout, self.H, self.W, **f64),
        }
        return {k: None if v is None else v.to(device) for k, v in t.items()}


CASES = [
    Case(2, 3, 12, 8, 8, 7, 7, "A", 3, "PixelCNN's first layer: 7x7 mask A, R,G,B groups, 3 -> 12", interpreter="quick"),
    Case(2, 6, 9, 5, 7, 3, 3, "B", 3, "3x3 mask B with colour groups, H != W, channels not multiples of 8",
         interpreter="quick"),
    Case(1, 5, 7, 6, 9, 1, 3, "A", 1, "horizontal stack 1x3 mask A, batch 1", interpreter="quick"),
    Case(2, 4, 6, 5, 4, 1, 5, "B", 1, "horizontal stack 1x5 mask B", interpreter="quick"),
    Case(2, 3, 6, 4, 5, 1, 3, "B", 3, "horizontal stack with colour groups", interpreter="quick"),
    Case(2, 4, 5, 6, 5, 3, 3, "V", 1, "vertical stack 3x3", interpreter="quick"),
    Case(1, 3, 8, 7, 6, 5, 5, "V", 1, "vertical stack 5x5, batch 1"),
    Case(2, 1, 5, 6, 6, 3, 3, "A", 1, "one group, mask A drops the centre (binary MNIST input)", interpreter="quick"),
    Case(2, 5, 7, 6, 5, 3, 3, "B", 1, "one group, mask B keeps the centre"),
    Case(2, 1, 16, 28, 28, 7, 7, "A", 1, "the MNIST model's first layer"),
    Case(1, 6, 6, 1, 1, 3, 3, "B", 3, "a 1x1 image: only the centre tap sees a pixel", interpreter="quick"),
    Case(2, 3, 9, 1, 1, 5, 5, "A", 3, "a 1x1 image, mask A colour", interpreter="quick"),
    Case(2, 6, 6, 5, 7, 1, 1, "B", 3, "1x1 mask B colour (PixelCNN's 1x1 layers)", interpreter="quick"),
    Case(2, 3, 6, 4, 4, 1, 1, "A", 3, "1x1 mask A colour", interpreter="quick"),
    Case(2, 4, 6, 3, 2, 7, 7, "B", 1, "kernel larger than the image"),
    Case(2, 5, 6, 7, 5, 3, 5, "B", 1, "rectangular 3x5 kernel, H > W"),
    Case(2, 6, 3, 7, 6, 5, 3, "V", 1, "rectangular 5x3 vertical stack, Cout < Cin"),
    Case(3, 30, 33, 12, 11, 3, 3, "B", 3, "several row blocks and tiles per image, colour groups"),
    Case(2, 12, 27, 9, 10, 5, 5, "A", 3, "5x5 mask A colour, row tiles straddling groups"),
    Case(2, 6, 9, 6, 7, 3, 3, "B", 3, "huge inputs, tiny weights", x_scale=1e15, w_scale=1e-12),
    Case(2, 6, 9, 6, 7, 3, 3, "A", 3, "tiny inputs, huge weights", x_scale=1e-20, w_scale=1e10),
    Case(2, 4, 5, 6, 5, 3, 3, "V", 1, "no bias, large inputs", x_scale=1e3, bias=False, interpreter="quick"),
    Case(2, 3, 6, 5, 5, 3, 3, "A", 3, "no bias, first-layer colour", bias=False, interpreter="quick"),
    Case(9, 6, 33, 20, 13, 3, 3, "B", 3, "weight_grad: tiles of 19 rows (W=13), the last partial, 18 tiles over 8 "
         "chunks; register-tile and transpose remainders (30 columns, Cout 33)"),
]

# gradcheck perturbs every input element: the small cases.
GRADCHECK = [c for c in CASES if c.B * c.Cin * c.H * c.W <= 400 and c.x_scale == 1.0]
# opcheck runs several torch.library utilities per op: three small, differing cases.
OPCHECK = [CASES[1], CASES[5], CASES[12]]


def results(conv, t: dict, x_grad: bool = True) -> dict:
    """Output and gradients of conv(x, weight, bias, mask, groups) backpropagated from t["grad_out"],
    on the CPU. Tensors are used as given (dtype, device, layout); x_grad=False leaves x without
    requires_grad, as a first layer's image is."""
    x = t["x"].detach().requires_grad_(x_grad)
    w = t["weight"].detach().requires_grad_()
    b = None if t["bias"] is None else t["bias"].detach().requires_grad_()
    wrt = [v for v in (x if x_grad else None, w, b) if v is not None]
    out = conv(x, w, b)
    grads = torch.autograd.grad(out, wrt, t["grad_out"])
    names = [n for n, v in (("grad x", x if x_grad else None), ("grad weight", w), ("grad bias", b)) if v is not None]
    return {"out": out.detach().cpu(), **{n: g.cpu() for n, g in zip(names, grads)}}


def _x(d, dtype=torch.float32, C=3):
    return torch.randn(2, C, 5, 5, device=d, dtype=dtype)


def _w(d, dtype=torch.float32, kh=3, kw=3, cout=6, cin=3):
    return torch.randn(cout, cin, kh, kw, device=d, dtype=dtype)


OP = "masked_conv2d"
BAD_INPUTS = [
    BadInput("even kernel", lambda d: masked_conv2d(_x(d), _w(d, kh=2, kw=3)), ValueError, f"{OP}: .*odd.*2 x 3"),
    BadInput("even kernel width", lambda d: masked_conv2d(_x(d), _w(d, kh=1, kw=4)), ValueError, f"{OP}: .*odd"),
    BadInput("Cin not divisible by 3 with colour groups", lambda d: masked_conv2d(_x(d, C=4), _w(d, cin=4), None, "B", 3),
             ValueError, f"{OP}: .*divisible by 3.*Cin = 4"),
    BadInput("Cout not divisible by 3 with colour groups", lambda d: masked_conv2d(_x(d), _w(d, cout=4), None, "A", 3),
             ValueError, f"{OP}: .*divisible by 3.*Cout = 4"),
    BadInput("x 3-D", lambda d: masked_conv2d(_x(d)[0], _w(d)), ValueError, f"{OP}: x must be 4-D"),
    BadInput("weight 3-D", lambda d: masked_conv2d(_x(d), _w(d)[0]), ValueError, f"{OP}: weight must be 4-D"),
    BadInput("channel mismatch", lambda d: masked_conv2d(_x(d, C=2), _w(d)), ValueError, f"{OP}: x has 2 channels.*Cin = 3"),
    BadInput("weight dtype", lambda d: masked_conv2d(_x(d), _w(d, torch.float64)), TypeError, f"{OP}: weight dtype"),
    BadInput("integer x", lambda d: masked_conv2d(_x(d).int(), _w(d).int()), TypeError, f"{OP}: x must be a floating"),
    BadInput("unknown mask", lambda d: masked_conv2d(_x(d), _w(d), None, "C"), ValueError, f"{OP}: unknown mask 'C'"),
    BadInput("lower-case mask", lambda d: masked_conv2d(_x(d), _w(d), None, "a"), ValueError, f"{OP}: unknown mask"),
    BadInput("V with colour groups", lambda d: masked_conv2d(_x(d), _w(d), None, "V", 3), ValueError,
             f"{OP}: mask 'V'.*color_groups must be 1"),
    BadInput("two colour groups", lambda d: masked_conv2d(_x(d), _w(d), None, "B", 2), ValueError,
             f"{OP}: color_groups must be 1 or 3, got 2"),
    BadInput("bias shape", lambda d: masked_conv2d(_x(d), _w(d), torch.zeros(5, device=d)), ValueError,
             f"{OP}: bias must be \\[Cout\\] = \\[6\\]"),
    BadInput("bias dtype", lambda d: masked_conv2d(_x(d), _w(d), torch.zeros(6, device=d, dtype=torch.float64)),
             TypeError, f"{OP}: bias dtype"),
    BadInput("x not a tensor", lambda d: masked_conv2d(_x(d).tolist(), _w(d)), TypeError, f"{OP}: x must be a torch.Tensor"),
    BadInput("empty image", lambda d: masked_conv2d(_x(d)[:, :, :0], _w(d)), ValueError, f"{OP}: .*non-empty"),
    BadInput("device mismatch", lambda d: masked_conv2d(_x(d), _w("cpu")), ValueError, f"{OP}: weight is on cpu",
             devices=("cuda",)),
]


# -- the op's public call for tests/ops/test_route.py ------------------------------------------------


def route_call(dtype=torch.float32):
    gen = fresh_generator()
    x, weight = torch.randn(2, 3, 5, 6, generator=gen).to(dtype), torch.randn(6, 3, 3, 3, generator=gen).to(dtype)
    return lambda: masked_conv2d(x, weight, None, "B", 3)


ROUTE_CALLS = {"masked_conv2d": route_call}
ROUTE_TWINS = {"masked_conv2d": ("fastgen.reference.masked_conv", "masked_conv2d")}
