"""sample_items / topk_items: the C++ CPU kernels and the Triton kernels (under the interpreter) against
the float64 twin (fastgen.reference.items) on the shared cases (tests/cases/items.py); the draws'
distribution against the softmax by a chi-square test (and that test's power against a wrong
temperature and an off-by-one walk); exclusions, ties, padding; torch.library plumbing; bad calls.

Inputs are exact in both precisions (see tests/cases/items.py), so any difference is the exp, the sums
or the walk. float64 draws must equal the twin's except at near-ties |cdf - u| < 1e-12; float32 draws
except at near-ties |cdf - u| < 1e-6, counted and printed. Every test draws fresh numbers; failures
print the seed.
"""
from __future__ import annotations

import pytest
import torch

import fastgen
from fastgen import _extension
from fastgen.ops import sample_items, topk_items
from fastgen.reference import items as ref
from tests.cases import SLOW, assert_bad_input, bad_inputs_for
from tests.cases import items as cases
from tests.helpers import fresh_generator, poisoned_empty

pytestmark = pytest.mark.skipif(not _extension.available(), reason="fastgen._C not built")

DTYPES = pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
NEAR_TIE = {torch.float32: 1e-6, torch.float64: 1e-12}
SCORES = ("user_emb", "item_emb", "item_bias")


def _triton_items():
    try:
        from fastgen.triton import items
    except ImportError:
        pytest.skip("triton not installed")
    return items


# triton: CPU tensors under TRITON_INTERPRET=1 (tests/conftest.py sets it when there is no GPU; with
# one, tests/gpu runs it for real)
TRITON = pytest.mark.skipif(torch.cuda.is_available(), reason="the interpreter is off on a GPU machine")


def implementations() -> list:
    return ["cpu", pytest.param("triton", marks=TRITON)]


def impl_cases() -> list:
    """(impl, case) pairs; the cases costly under the interpreter are slow for triton only."""
    return [pytest.param(impl, c, id=f"{impl}-{c.id}",
                         marks=[TRITON] * (impl == "triton") + [SLOW] * (impl == "triton" and c.interpreter == "slow"))
            for impl in ("cpu", "triton") for c in cases.CASES]


def sample(impl: str, t: dict, temperature: float, dtype) -> torch.Tensor:
    args = [t[n].to(dtype) for n in (*SCORES, "uniforms")]
    with poisoned_empty():  # an unwritten draw would be int64 max
        if impl == "triton":
            return _triton_items().sample_items(*args, temperature)
        with fastgen.use_backend("cpu"):
            return sample_items(*args, temperature)


def topk(impl: str, t: dict, k: int, exclude, dtype):
    args = [t[n].to(dtype) for n in SCORES]
    with poisoned_empty():
        if impl == "triton":
            return _triton_items().topk_items(*args, k, exclude)
        with fastgen.use_backend("cpu"):
            return topk_items(*args, k, exclude)


def cdf64(t: dict, temperature: float) -> torch.Tensor:
    return torch.cumsum(torch.softmax(ref.scores(*(t[n] for n in SCORES)) / temperature, dim=1), dim=1)


def near_ties(got: torch.Tensor, want: torch.Tensor, t: dict, temperature: float, tol: float, what: str) -> int:
    """Asserts that every draw that differs from the twin's is a near-tie: the float64 CDF between the
    two items lies within tol of the uniform. Returns how many differ."""
    cdf, u = cdf64(t, temperature), t["uniforms"]
    bad = []
    for user, j in (got != want).nonzero().tolist():
        lo, hi = sorted((int(got[user, j]), int(want[user, j])))
        gap = (cdf[user, lo:hi] - u[user, j]).abs().max().item()
        if not gap < tol:
            bad.append((user, j, int(got[user, j]), int(want[user, j]), gap))
    differ = int((got != want).sum())
    print(f"{what}: {differ} of {got.numel()} draws differ from the twin, all near-ties (< {tol:g})" if not bad
          else f"{what}: draws that are no near-tie: {bad[:5]}")
    assert not bad, f"{what}: (user, j, got, twin, |cdf - u|) {bad[:5]}"
    return differ


# ---------------------------------------------------------------------------------------------
# sampling


@DTYPES
@pytest.mark.parametrize("impl, case", impl_cases())
def test_sample_matches_twin(impl, dtype, case):
    gen = fresh_generator()
    t = case.draw(gen)
    got = sample(impl, t, case.T, dtype)
    want = ref.sample_items(*(t[n] for n in (*SCORES, "uniforms")), case.T)
    assert got.dtype == torch.int64 and got.shape == want.shape
    assert ((got >= 0) & (got < case.I)).all(), f"items out of range (seed {gen.initial_seed()})"
    near_ties(got, want, t, case.T, NEAR_TIE[dtype], f"{impl} {dtype} seed {gen.initial_seed()}")


def chi_square_p(draws: torch.Tensor, probs: torch.Tensor) -> float:
    """p-value of Pearson's chi-square test of the draws against probs, the bins with an expected
    count under 5 pooled into one."""
    counts = torch.bincount(draws, minlength=probs.numel()).double()
    expected = probs * draws.numel()
    small = expected < 5
    obs = torch.cat([counts[~small], counts[small].sum().view(1)])
    exp = torch.cat([expected[~small], expected[small].sum().view(1)])
    keep = exp > 0
    stat = ((obs[keep] - exp[keep]) ** 2 / exp[keep]).sum()
    df = int(keep.sum()) - 1
    return float(torch.special.gammaincc(torch.tensor(df / 2, dtype=torch.float64), stat / 2))


@pytest.mark.parametrize("impl", ["cpu", pytest.param("triton", marks=[TRITON, SLOW])])
def test_draws_follow_the_softmax(impl):
    """20,000 draws per user from fixed-seed uniforms match softmax(scores / T) (p > 0.001); the same
    test rejects draws made at a 30% wrong temperature and an off-by-one walk, so it has the power
    to see those bugs."""
    case = cases.Case(2, 60, 8, 20_000, 0.5, 8, "chi-square")
    t = case.draw(torch.Generator().manual_seed(1234))
    t["uniforms"] = torch.rand(case.U, case.k, generator=torch.Generator().manual_seed(99), dtype=torch.float64)
    probs = torch.softmax(ref.scores(*(t[n] for n in SCORES)) / case.T, dim=1)
    draws = sample(impl, t, case.T, torch.float32)
    wrong_t = sample(impl, t, case.T * 1.3, torch.float32)
    for user in range(case.U):
        p = chi_square_p(draws[user], probs[user])
        print(f"user {user}: p = {p:.3g}")
        assert p > 1e-3
        assert chi_square_p(wrong_t[user], probs[user]) < 1e-6, "the test cannot tell a wrong temperature"
        assert chi_square_p((draws[user] + 1) % case.I, probs[user]) < 1e-6, "the test cannot tell off-by-one"


@pytest.mark.parametrize("impl", implementations())
def test_zero_probability_items_are_never_drawn(impl):
    """Items 1000 nats below the best have probability 0 in float32 and float64: with the best item
    alone at the top, every uniform must draw it (a walk that ignores the weights would not)."""
    I, d = 300, 4
    user = torch.ones(2, d, dtype=torch.float64)
    item = torch.zeros(I, d, dtype=torch.float64)
    bias = torch.full((I,), -1000.0, dtype=torch.float64)
    bias[[17, 290]] = 0.0
    t = {"user_emb": user, "item_emb": item, "item_bias": bias, "uniforms": torch.rand(2, 50, dtype=torch.float64)}
    for dtype in (torch.float32, torch.float64):
        got = sample(impl, t, 1.0, dtype)
        assert set(got.unique().tolist()) <= {17, 290}
        assert torch.equal(got, torch.where(t["uniforms"] < 0.5, 17, 290))


# ---------------------------------------------------------------------------------------------
# top-k


@DTYPES
@pytest.mark.parametrize("excluded", [False, True], ids=["all", "exclude"])
@pytest.mark.parametrize("impl, case", impl_cases())
def test_topk_matches_twin_and_torch_topk(impl, dtype, excluded, case):
    """Exactly the twin's (score, item) lists, ties to the lower index (integer scores tie often);
    the same scores as torch.topk on the masked matrix, every item of a user distinct, none
    excluded, each with the score it is listed with; (-inf, -1) where too few items are left."""
    gen = fresh_generator()
    t = case.draw(gen)
    k = min(case.k, case.I)
    exclude = cases.random_exclusions(gen, case.U, case.I) if excluded else None
    scores, items = topk(impl, t, k, exclude, dtype)
    want_scores, want_items = ref.topk_items(*(t[n] for n in SCORES), k, exclude)
    seed = gen.initial_seed()
    assert scores.dtype == dtype and items.dtype == torch.int64
    assert torch.equal(items, want_items), f"items differ (seed {seed})"
    assert torch.equal(scores.double(), want_scores), f"scores differ (seed {seed})"

    masked = ref.scores(*(t[n] for n in SCORES))
    if exclude is not None:
        masked = masked.masked_fill(ref.exclusion_mask(exclude, case.U, case.I), float("-inf"))
    assert torch.equal(scores.double(), torch.topk(masked, k, dim=1).values)
    listed = items >= 0
    assert torch.equal(listed, scores > float("-inf"))
    rows = torch.arange(case.U).view(-1, 1).expand_as(items)
    assert torch.equal(masked[rows[listed], items[listed]], scores[listed].double())
    for user in range(case.U):
        kept = items[user][items[user] >= 0]
        assert kept.unique().numel() == kept.numel(), f"user {user} lists an item twice (seed {seed})"


def test_topk_pads_a_user_with_too_few_items():
    """User 1 keeps 2 of 7 items: k=4 lists them, then (-inf, -1) twice; user 2 loses item 6 (listed
    twice): its best 4 among items 0..5, by score then index."""
    t = cases.CASES[6].draw(fresh_generator())  # 4 users, 7 items
    exclude = (torch.tensor([0, 0, 5, 7, 7]), torch.tensor([0, 1, 2, 3, 4, 6, 6]))
    scores, items = topk("cpu", t, 4, exclude, torch.float32)
    assert (items[1, 2:] == -1).all() and (scores[1, 2:] == float("-inf")).all()
    s = ref.scores(*(t[n] for n in SCORES))
    assert items[1, :2].tolist() == sorted([5, 6], key=lambda i: (-float(s[1, i]), i))
    assert items[2].tolist() == sorted(range(6), key=lambda i: (-float(s[2, i]), i))[:4]


# ---------------------------------------------------------------------------------------------
# torch.library, routing, bad input


def test_opcheck():
    t = {n: v.float() for n, v in cases.CASES[2].draw(fresh_generator()).items()}
    user, item, bias = (t[n] for n in SCORES)
    torch.library.opcheck(torch.ops.fastgen.sample_items.default, (user, item, bias, t["uniforms"], 0.2))
    indptr, indices = cases.random_exclusions(fresh_generator(), user.shape[0], item.shape[0])
    torch.library.opcheck(torch.ops.fastgen.topk_items.default, (user, item, bias, 5, indptr, indices))
    torch.library.opcheck(torch.ops.fastgen.topk_items.default, (user, item, bias, 5, None, None))


def test_torch_compile_has_no_graph_break():
    t = {n: v.float() for n, v in cases.CASES[0].draw(fresh_generator()).items()}
    user, item, bias = (t[n] for n in SCORES)

    def both(user, item, bias, uniforms):
        return sample_items(user, item, bias, uniforms, 1.0), topk_items(user, item, bias, 3)[1]

    compiled = torch.compile(both, fullgraph=True, backend="aot_eager")
    got, want = compiled(user, item, bias, t["uniforms"]), both(user, item, bias, t["uniforms"])
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


def test_auto_runs_the_kernel_and_reference_the_twin(monkeypatch):
    t = {n: v.float() for n, v in cases.CASES[0].draw(fresh_generator()).items()}
    calls = []
    for name in ("sample_items", "topk_items"):
        real = getattr(ref, name)
        monkeypatch.setattr(ref, name, lambda *a, _real=real, _name=name: calls.append(_name) or _real(*a))
    args = [t[n] for n in SCORES]
    sample_items(*args, t["uniforms"], 1.0), topk_items(*args, 2)
    assert calls == []
    with fastgen.use_backend("reference"):
        sample_items(*args, t["uniforms"], 1.0), topk_items(*args, 2)
    assert calls == ["sample_items", "topk_items"]


@pytest.mark.parametrize("case", bad_inputs_for(cases.BAD_INPUTS, "cpu"))
def test_bad_input_is_named(case):
    assert_bad_input(case, "cpu")


@pytest.mark.parametrize("op", ["sample_items", "topk_items"])
def test_the_cpp_op_names_a_bad_argument_too(op):
    """torch.ops.fastgen.* called directly (past the Python checks) still says what is wrong."""
    user, item, bias = torch.randn(3, 8), torch.randn(40, 8), torch.randn(40)
    with pytest.raises(RuntimeError, match=f"{op}: item_emb must be contiguous"):
        if op == "sample_items":
            torch.ops.fastgen.sample_items(user, torch.randn(8, 40).T, bias, torch.rand(3, 2), 1.0)
        else:
            torch.ops.fastgen.topk_items(user, torch.randn(8, 40).T, bias, 2)
    with pytest.raises(RuntimeError, match=f"{op}: item_bias must be \\[I\\] = \\[40\\]"):
        if op == "sample_items":
            torch.ops.fastgen.sample_items(user, item, bias[:5], torch.rand(3, 2), 1.0)
        else:
            torch.ops.fastgen.topk_items(user, item, bias[:5], 2, torch.tensor([0, 0, 0, 1]), torch.tensor([40]))
