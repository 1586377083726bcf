"""Triton masked-convolution kernels (fastgen.triton.masked_conv) vs the float64 reference, under the
interpreter, on the case list the CPU and GPU tests share (tests/cases/masked_conv.py).

tests.triton.device sets TRITON_INTERPRET=1 before triton is imported and picks the device. The kernels
run through their autograd function (kernels.masked_conv2d: the forward launcher, then the backward
launcher with the gradients autograd asks for). Every test draws fresh random inputs; the seed is
printed (pin it with FASTGEN_TEST_SEED=<int>). Cases costly under the interpreter are marked slow
there (run them with --runslow).
"""
from tests.triton.device import DEVICE  # first: sets TRITON_INTERPRET=1 before triton is imported

import os  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from fastgen.reference import masked_conv as ref  # noqa: E402
from fastgen.triton import masked_conv as kernels  # noqa: E402
from tests.cases import masked_conv as cases  # noqa: E402
from tests.cases import params  # noqa: E402
from tests.helpers import assert_rel_close, poisoned_empty, rel_err  # noqa: E402

INTERPRETED = DEVICE == "cpu"
REL_TOL = {torch.float32: 1e-5, torch.float64: 1e-12}
DTYPES = pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])


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


def _triton(mask, groups):
    return lambda x, w, b: kernels.masked_conv2d(x, w, b, mask, groups)


def _reference(mask, groups):
    return lambda x, w, b: ref.masked_conv2d(x, w, b, mask, groups)


def _compare(t: dict, mask: str, groups: int, dtype, tol: float, x_grad: bool = True) -> dict:
    """Triton in dtype vs the float64 reference on the same (rounded) inputs: every output and gradient
    within tol, and grad weight exactly 0 at every masked entry. Returns Triton's results."""
    low = _cast(t, dtype, "cpu")
    with poisoned_empty():  # an output element the kernels never write would be NaN
        got = cases.results(_triton(mask, groups), _cast(low, dtype, DEVICE), x_grad)
    want = cases.results(_reference(mask, groups), _cast(low, torch.float64, "cpu"), x_grad)
    assert got.keys() == want.keys()
    for key in want:
        assert got[key].dtype == dtype, f"{key}: {got[key].dtype}"
        assert_rel_close(got[key], want[key], tol, f"{key} ({dtype})")
    live = ref.conv_mask(*t["weight"].shape, mask, groups)
    assert (got["grad weight"][~live] == 0).all(), "a masked weight got a gradient"
    return got


# ---------------------------------------------------------------- float32 / float64 vs reference
@pytest.mark.parametrize("case", params(cases.CASES, slow_here))
@DTYPES
def test_matches_reference(case, dtype):
    _compare(case.draw(_gen()), case.mask, case.groups, dtype, REL_TOL[dtype])


LOW_PRECISION_CASES = [c for c in cases.CASES if (c.x_scale, c.w_scale) == (1.0, 1.0)]
# Under the interpreter: one case per mask kind (A with colour groups, A alone, B, V); the rest are slow.
LOW_PRECISION_QUICK = {"A3-k7x7-B2C3to12-8x8", "A1-k1x3-B1C5to7-6x9", "B3-k3x3-B2C6to9-5x7", "V1-k3x3-B2C4to5-6x5"}


@pytest.mark.parametrize("case", params(LOW_PRECISION_CASES, lambda c: INTERPRETED and c.id not in LOW_PRECISION_QUICK))
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["f16", "bf16"])
def test_low_precision(case, dtype):
    """Output and gradients within 2x PyTorch's own error in that dtype (both against float64 on the
    same rounded inputs), or one rounding of the dtype where PyTorch happens to be exact."""
    t = _cast(case.draw(_gen()), dtype, "cpu")
    got = cases.results(_triton(case.mask, case.groups), _cast(t, dtype, DEVICE))
    want = cases.results(_reference(case.mask, case.groups), _cast(t, torch.float64, "cpu"))
    own = cases.results(_reference(case.mask, case.groups), t)
    # One ulp: bfloat16 keeps 8 significant bits, float16 11. The interpreter converts float32 -> bfloat16
    # by truncation (round toward zero), which costs up to a whole ulp instead of half of one.
    unit = 2.0**-10 if dtype == torch.float16 else 2.0**-7 if INTERPRETED else 2.0**-8
    for key in want:
        assert got[key].dtype == dtype
        ref_rel = rel_err(own[key], want[key])
        assert_rel_close(got[key], want[key], max(2 * ref_rel, unit), f"{key} ({dtype}; torch's own {ref_rel:.2e})")


# ---------------------------------------------------------------- the mask is the kernels' own
QUICK = [c for c in cases.CASES if c.interpreter == "quick" and c.bias]


@pytest.mark.parametrize("case", params(QUICK[:4] + QUICK[5:7]))
def test_masked_weights_are_never_read(case):
    """NaN and inf in every masked weight: a kernel that reads a masked tap, or multiplies a dense
    weight by the mask (0 * inf = NaN), differs from the reference (which selects with where)."""
    t = case.draw(_gen())
    live = ref.conv_mask(*t["weight"].shape, case.mask, case.groups)
    poison = torch.tensor([float("nan"), float("inf"), -float("inf")], dtype=torch.float64)
    t["weight"][~live] = poison[torch.arange(int((~live).sum())) % 3]
    got = _compare(t, case.mask, case.groups, torch.float32, REL_TOL[torch.float32])
    for key, value in got.items():
        assert torch.isfinite(value).all(), key


@pytest.mark.parametrize("case", params(QUICK[:1]))
def test_image_input_needs_no_grad_x(case):
    """A first layer's image does not require grad: the backward skips grad_x (output_mask)."""
    got = _compare(case.draw(_gen()), case.mask, case.groups, torch.float32, REL_TOL[torch.float32], x_grad=False)
    assert "grad x" not in got


@pytest.mark.parametrize("kh,kw", [(1, 1), (1, 3), (1, 7), (3, 3), (3, 5), (5, 3), (7, 7)])
@pytest.mark.parametrize("mask,groups", [("A", 1), ("B", 1), ("A", 3), ("B", 3), ("V", 1)])
def test_plan_is_the_reference_mask(mask, groups, kh, kw):
    """The live taps the kernels loop over (_plan) are exactly the reference mask's: the first N_FULL
    taps in raster order for every channel pair, then (CENTRE) the centre tap for some pairs only."""
    plan = kernels._plan(mask, groups, kh, kw)
    m = ref.conv_mask(6, 9, kh, kw, mask, groups).reshape(6, 9, kh * kw)
    n = plan["N_FULL"]
    assert m[:, :, :n].all() and not m[:, :, n + plan["CENTRE"]:].any()
    if plan["CENTRE"]:
        assert n == kh // 2 * kw + kw // 2
        assert m[:, :, n].any() and not m[:, :, n].all()
    else:
        assert not m[:, :, n:].any()


# ---------------------------------------------------------------- tiles, paths, layout, determinism
@pytest.mark.parametrize("mask", ["A", "B"])
@pytest.mark.parametrize("dtype,cin,cout", [(torch.float32, 48, 66), (torch.float64, 24, 36)], ids=["f32", "f64"])
def test_channel_tiles_straddle_colour_groups(mask, dtype, cin, cout):
    """Several channel tiles in both directions (float32: input-channel tiles of 32, output tiles of 64;
    float64: 8 and 16), colour-group boundaries inside tiles: the centre tap's channel limit, the first
    output channel grad_x visits, and grad weight's skipped all-dead tiles."""
    assert kernels._config(dtype, cout, cin, 12)["BC"] < cin and kernels._config(dtype, cout, cin, 12)["BO"] < cout
    case = cases.Case(1, cin, cout, 3, 4, 3, 3, mask, 3, "channel tiles")
    _compare(case.draw(_gen()), mask, 3, dtype, REL_TOL[dtype])


def test_dot_and_broadcast_paths_agree(monkeypatch):
    """float32 takes tl.dot; with it off the broadcast-sum form must give the same answer."""
    case = cases.CASES[1]
    assert kernels._config(torch.float32, 9, 6, 35)["USE_DOT"]
    assert not kernels._config(torch.float64, 9, 6, 35)["USE_DOT"]
    t = case.draw(_gen())
    monkeypatch.setattr(kernels, "_DOT_DTYPES", ())
    assert not kernels._config(torch.float32, 9, 6, 35)["USE_DOT"]
    _compare(t, case.mask, case.groups, torch.float32, REL_TOL[torch.float32])


def test_strided_inputs():
    """float32 x, weight, bias and grad_out sliced or transposed out of larger tensors."""
    gen = _gen()
    t = {
        "x": torch.randn(2, 8, 7, 12, generator=gen)[:, 1::2, 1:, ::2],
        "weight": torch.randn(9, 4, 3, 6, generator=gen)[..., ::2],
        "bias": torch.randn(18, generator=gen)[::2],
        "grad_out": torch.randn(2, 9, 6, 6, generator=gen).transpose(2, 3),
    }
    t = {k: v if DEVICE == "cpu" else _strided_copy(v) for k, v in t.items()}
    assert not any(v.is_contiguous() for v in t.values())
    got = cases.results(_triton("B", 1), t)
    want = cases.results(_reference("B", 1), {k: v.cpu().double() for k, v in t.items()})
    for key in want:
        assert_rel_close(got[key], want[key], REL_TOL[torch.float32], f"{key} (strided)")


def _strided_copy(t: torch.Tensor) -> torch.Tensor:
    """t on DEVICE with the same strides (Tensor.to makes a strided slice contiguous)."""
    return torch.empty_strided(t.size(), t.stride(), dtype=t.dtype, device=DEVICE).copy_(t)


def test_backward_is_deterministic():
    case = cases.CASES[1]
    t = _cast(case.draw(_gen()), torch.float32, DEVICE)
    run = lambda: kernels.masked_conv2d_bwd(t["grad_out"], t["x"], t["weight"], case.mask, case.groups,  # noqa: E731
                                            (True, True, True))
    for a, b in zip(run(), run()):
        assert torch.equal(a, b)
