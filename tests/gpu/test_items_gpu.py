"""CUDA and Triton kernels of sample_items / topk_items on a real GPU against the float64 twin (skipped
without one), on the case list the CPU and interpreter tests share (tests/cases/items.py).

Run on a GPU machine with `python -m pytest tests/gpu -v` (scripts/gpu_check.sh). Implementations:
  "cuda-op"  torch.ops.fastgen.* on CUDA tensors: the CUDA C++ kernels (csrc/cuda/items.cu), when built;
  "triton"   fastgen.triton.items;
  "op"       fastgen.ops.* under the default backend rule.
Draws must equal the twin's except at near-ties (float64: |cdf - u| < 1e-12, float32: < 1e-6); top-k
lists exactly (the inputs' scores are exact in both precisions).
"""
from __future__ import annotations

import pytest
import torch

from fastgen import ops
from fastgen.reference import items as ref
from tests.cases import assert_bad_input, bad_inputs_for, params
from tests.cases import items as cases
from tests.helpers import fresh_generator, gpu_implementations, poisoned_empty
from tests.ops.test_items import NEAR_TIE, SCORES, chi_square_p, near_ties

DTYPES = pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
IMPLEMENTATIONS = gpu_implementations("sample_items")


def run(impl: str, name: str, *args):
    if impl == "cuda-op":
        fn = getattr(torch.ops.fastgen, name)
        if name == "topk_items":
            exclude = args[4] if args[4] is not None else (None, None)
            return fn(*args[:4], *exclude)
        return fn(*args)
    if impl == "triton":
        from fastgen.triton import items as tri

        return getattr(tri, name)(*args)
    return getattr(ops, name)(*args)


def on_gpu(t: dict, dtype) -> list:
    return [t[n].to("cuda", dtype) for n in (*SCORES, "uniforms")]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@DTYPES
@pytest.mark.parametrize("case", params(cases.CASES))
def test_sample_matches_twin(impl, dtype, case):
    gen = fresh_generator()
    t = case.draw(gen)
    with poisoned_empty():
        got = run(impl, "sample_items", *on_gpu(t, dtype), case.T).cpu()
    want = ref.sample_items(*(t[n] for n in (*SCORES, "uniforms")), case.T)
    near_ties(got, want, t, case.T, NEAR_TIE[dtype], f"{impl} {dtype} seed {gen.initial_seed()}")


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@DTYPES
@pytest.mark.parametrize("excluded", [False, True], ids=["all", "exclude"])
@pytest.mark.parametrize("case", params(cases.CASES))
def test_topk_matches_twin(impl, dtype, excluded, case):
    gen = fresh_generator()
    t = case.draw(gen)
    k = min(case.k, case.I)
    exclude = cases.random_exclusions(gen, case.U, case.I) if excluded else None
    gpu_exclude = None if exclude is None else tuple(x.cuda() for x in exclude)
    scores, items = run(impl, "topk_items", *on_gpu(t, dtype)[:3], k, gpu_exclude)
    want_scores, want_items = ref.topk_items(*(t[n] for n in SCORES), k, exclude)
    assert torch.equal(items.cpu(), want_items), f"{impl}: items differ (seed {gen.initial_seed()})"
    assert torch.equal(scores.cpu().double(), want_scores), f"{impl}: scores differ (seed {gen.initial_seed()})"


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_draws_follow_the_softmax(impl):
    case = cases.Case(2, 60, 8, 20_000, 0.5, 8, "chi-square")
    t = case.draw(torch.Generator().manual_seed(1234))
    t["uniforms"] = torch.rand(case.U, case.k, generator=torch.Generator().manual_seed(99), dtype=torch.float64)
    probs = torch.softmax(ref.scores(*(t[n] for n in SCORES)) / case.T, dim=1)
    draws = run(impl, "sample_items", *on_gpu(t, torch.float32), case.T).cpu()
    for user in range(case.U):
        assert chi_square_p(draws[user], probs[user]) > 1e-3


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_large_item_pool(impl):
    """64 users x 300,000 items x d=64, float32: many chunks, draws and top-k against the twin."""
    case = cases.Case(64, 300_000, 64, 8, 0.2, 50, "large pool")
    gen = fresh_generator()
    t = case.draw(gen)
    got = run(impl, "sample_items", *on_gpu(t, torch.float32), case.T).cpu()
    want = ref.sample_items(*(t[n] for n in (*SCORES, "uniforms")), case.T)
    near_ties(got, want, t, case.T, NEAR_TIE[torch.float32], f"{impl} large seed {gen.initial_seed()}")
    scores, items = run(impl, "topk_items", *on_gpu(t, torch.float32)[:3], 10, None)
    assert torch.equal(items.cpu(), ref.topk_items(*(t[n] for n in SCORES), 10)[1])


@pytest.mark.parametrize("case", bad_inputs_for(cases.BAD_INPUTS, "cuda"))
def test_bad_input_is_named_on_gpu(case):
    assert_bad_input(case, "cuda")
