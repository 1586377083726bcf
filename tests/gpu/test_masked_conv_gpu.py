"""CUDA and Triton masked-convolution kernels on a real GPU against the float64 reference (skipped
without one), on the case list the CPU and interpreter tests share (tests/cases/masked_conv.py).

Run on a GPU machine with `python -m pytest tests/gpu -v`. Implementations under test:
  "cuda-op"  torch.ops.fastgen.masked_conv2d on CUDA tensors with the C++ autograd: the CUDA C++
             kernels (csrc/cuda/masked_conv.cu) when fastgen was built with them, else the Triton
             launchers fastgen.ops.masked_conv registers in the op's CUDA slot;
  "triton"   fastgen.triton.masked_conv.masked_conv2d (its autograd function);
  "op"       fastgen.ops.masked_conv2d under the default backend rule.
float32 / float64 must match the float64 reference to 1e-5 / 1e-12 (relative); float16 / bfloat16
no worse than twice PyTorch's own error in that dtype (plus one ulp where PyTorch is exact).
"""
from __future__ import annotations

import pytest
import torch

from fastgen import ops
from fastgen.reference import masked_conv as ref
from tests.cases import assert_bad_input, bad_inputs_for, params
from tests.cases import masked_conv as cases
from tests.helpers import assert_rel_close, fresh_generator, gpu_implementations, poisoned_empty, twice_torch_error

REL_TOL = {torch.float32: 1e-5, torch.float64: 1e-12}
ULP = {torch.float16: 2.0**-10, torch.bfloat16: 2.0**-8}
IMPLEMENTATIONS = gpu_implementations("masked_conv2d")


def conv(name: str, case):
    if name == "cuda-op":
        return lambda x, w, b: torch.ops.fastgen.masked_conv2d(x, w, b, case.mask, case.groups)
    if name == "triton":
        from fastgen.triton import masked_conv as tri

        return lambda x, w, b: tri.masked_conv2d(x, w, b, case.mask, case.groups)
    return lambda x, w, b: ops.masked_conv2d(x, w, b, case.mask, case.groups)


def reference(case):
    return lambda x, w, b: ref.masked_conv2d(x, w, b, case.mask, case.groups)


def cast(t: dict, dtype, device) -> dict:
    return {k: None if v is None else v.to(device, dtype) for k, v in t.items()}


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", params(cases.CASES))
def test_matches_reference(impl, dtype, case):
    gen = fresh_generator()
    low = cast(case.draw(gen), dtype, "cpu")
    with poisoned_empty():
        got = cases.results(conv(impl, case), cast(low, dtype, "cuda"))
    want = cases.results(reference(case), cast(low, torch.float64, "cpu"))
    for key in want:
        assert got[key].dtype == dtype, key
        assert_rel_close(got[key], want[key], REL_TOL[dtype], f"{impl} {key} {dtype}", gen.initial_seed())
    live = ref.conv_mask(*low["weight"].shape, case.mask, case.groups)
    assert (got["grad weight"][~live] == 0).all(), f"{impl}: a masked weight got a gradient"


LOW_PRECISION_CASES = [c for c in cases.CASES if (c.x_scale, c.w_scale) == (1.0, 1.0)]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["f16", "bf16"])
@pytest.mark.parametrize("case", params(LOW_PRECISION_CASES))
def test_low_precision(impl, dtype, case):
    gen = fresh_generator()
    low = cast(case.draw(gen), dtype, "cpu")
    got = cases.results(conv(impl, case), cast(low, dtype, "cuda"))
    want = cases.results(reference(case), cast(low, torch.float64, "cpu"))
    own = cases.results(reference(case), cast(low, dtype, "cuda"))  # cuDNN in that dtype
    for key in want:
        assert got[key].dtype == dtype, key
        tol = twice_torch_error(own[key], want[key], ULP[dtype])
        assert_rel_close(got[key], want[key], tol, f"{impl} {key} {dtype}", gen.initial_seed())


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("case", params([c for c in cases.CASES if c.bias][:8]))
def test_masked_weights_are_never_read(impl, case):
    """NaN and inf in every masked weight change nothing (the reference selects with where)."""
    gen = fresh_generator()
    t = case.draw(gen)
    live = ref.conv_mask(*t["weight"].shape, case.mask, case.groups)
    poison = torch.tensor([float("nan"), float("inf"), -float("inf")], dtype=torch.float64)
    t["weight"][~live] = poison[torch.arange(int((~live).sum())) % 3]
    got = cases.results(conv(impl, case), cast(t, torch.float32, "cuda"))
    want = cases.results(reference(case), t)
    for key in want:
        assert_rel_close(got[key], want[key], REL_TOL[torch.float32], f"{impl} {key}", gen.initial_seed())
    assert (got["grad weight"][~live] == 0).all()


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_large_layer(impl):
    """A PixelCNN-sized layer: 129 -> 255 channels (colour groups), batch 4, 32 x 40, 5 x 5 mask B,
    float32: several channel tiles, two column tiles per row, many grid blocks. (The float64 reference
    runs on the GPU here: it is large.)"""
    case = cases.Case(4, 129, 255, 32, 40, 5, 5, "B", 3, "large layer")
    gen = fresh_generator()
    t = case.draw(gen)
    got = cases.results(conv(impl, case), cast(t, torch.float32, "cuda"))
    want = cases.results(reference(case), cast(t, torch.float64, "cuda"))
    for key in want:
        assert_rel_close(got[key], want[key], REL_TOL[torch.float32], f"{impl} {key}", gen.initial_seed())


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_image_input_needs_no_grad_x(impl):
    case = cases.CASES[0]
    gen = fresh_generator()
    t = case.draw(gen)
    got = cases.results(conv(impl, case), cast(t, torch.float32, "cuda"), x_grad=False)
    want = cases.results(reference(case), t, x_grad=False)
    assert got.keys() == want.keys() and "grad x" not in got
    for key in want:
        assert_rel_close(got[key], want[key], REL_TOL[torch.float32], f"{impl} {key}", gen.initial_seed())


@pytest.mark.parametrize("case", bad_inputs_for(cases.BAD_INPUTS, "cuda"))
def test_bad_input_is_named_on_gpu(case):
    assert_bad_input(case, "cuda")
