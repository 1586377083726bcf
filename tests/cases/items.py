"""Cases of sample_items / topk_items (user_emb [U,d], item_emb [I,d], item_bias [I]): awkward sizes
around the kernels' tiles and groups, spread logits, temperatures, exclusion lists, bad calls; shared
by the CPU tests (tests/ops/test_items.py, which also run the Triton kernels under the interpreter) and
the GPU tests (tests/gpu/test_items_gpu.py).

Inputs are "exact": small random integers times a power of two, so every score u . v + b is exact in
float32 and float64 alike (|score| < 2^13 units, d <= 64) and kernels and twin see the same scores
bit for bit. Differences can then only come from the exp, the sums and the CDF walk, which is what
the comparisons measure; integer scores also make many exact ties for the top-k tie rule.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from fastgen.ops import sample_items, topk_items
from tests.cases import BadInput
from tests.helpers import fresh_generator


@dataclass(frozen=True)
class Case:
    """U users, I items, embedding size d, k draws (or top-k places), temperature T; the scores are
    scaled (by a power of two) so that the logits scores / T of a user span about `spread` nats."""

    U: int
    I: int
    d: int
    k: int
    T: float
    spread: float
    covers: str
    interpreter: str = "slow"  # cost under the Triton interpreter: "quick" (run by default) or "slow"

    @property
    def id(self) -> str:
        return f"U{self.U}-I{self.I}-d{self.d}-k{self.k}-T{self.T:g}-spread{self.spread:g}"

    def draw(self, gen: torch.Generator, device="cpu") -> dict:
        """float64 exact inputs (see the module doc) and uniforms [U, k] in [0, 1), on device; the
        first user's first uniform is 0 and its last the largest float32 below 1."""
        ints = lambda *shape: torch.randint(-8, 9, shape, generator=gen, dtype=torch.float64)
        user, item, bias = ints(self.U, self.d), ints(self.I, self.d), ints(self.I) * 8
        span = float((user @ item.T + bias).std()) * 4 or 1.0
        scale = 2.0 ** round(math.log2(self.spread * self.T / span))
        u = torch.rand(self.U, self.k, generator=gen, dtype=torch.float64).to(torch.float32).double()
        u[0, 0], u[0, -1] = 0.0, 1 - 2.0**-24
        t = {"user_emb": user, "item_emb": item * scale, "item_bias": bias * scale, "uniforms": u}
        return {name: v.to(device) for name, v in t.items()}


CASES = [
    Case(3, 1000, 16, 5, 1.0, 10, "I not a multiple of the 256-item tile"),
    Case(1, 300, 8, 1, 1.0, 5, "one user, one draw", interpreter="quick"),
    Case(17, 513, 5, 7, 0.2, 30, "a 16-user group plus one, odd d, two tiles plus one item"),
    Case(70, 600, 12, 3, 0.05, 1000, "1000 nats at T=0.05: more than one panel of users"),
    Case(5, 2000, 64, 50, 5.0, 2, "nearly flat at T=5, d=64, many draws"),
    Case(9, 257, 3, 20, 0.2, 1000, "1000 nats: most items underflow to probability 0"),
    Case(4, 7, 4, 9, 1.0, 3, "fewer items than one vector", interpreter="quick"),
    Case(2, 1, 4, 3, 1.0, 1, "one item", interpreter="quick"),
    Case(33, 100, 2, 4, 1.0, 200, "d=2, 200 nats, three groups"),
]


def random_exclusions(gen: torch.Generator, U: int, I: int, device="cpu") -> tuple:
    """CSR (indptr, indices) of up to I - 1 random items per user, unsorted, with duplicates; user 0
    excludes nothing and, where U > 1, the last user all items but one."""
    counts = torch.randint(0, max(1, I // 2), (U,), generator=gen)
    counts[0] = 0
    lists = [torch.randint(0, I, (int(c),), generator=gen) for c in counts]
    if U > 1:
        lists[-1] = torch.cat([torch.randperm(I, generator=gen)[: I - 1]] * 2)  # every one twice
    indptr = torch.zeros(U + 1, dtype=torch.int64)
    indptr[1:] = torch.cumsum(torch.tensor([len(x) for x in lists]), 0)
    return indptr.to(device), torch.cat(lists).to(torch.int64).to(device)


def _scores(d, dtype=torch.float32, U=3, I=40, dim=8):
    gen = fresh_generator()
    return (torch.randn(U, dim, generator=gen).to(d, dtype), torch.randn(I, dim, generator=gen).to(d, dtype),
            torch.randn(I, generator=gen).to(d, dtype))


def _sample(d, dtype=torch.float32, u=None, T=1.0, **over):
    user, item, bias = _scores(d, dtype)
    args = dict(user_emb=user, item_emb=item, item_bias=bias,
                uniforms=torch.rand(3, 4, device=d, dtype=dtype) if u is None else u, temperature=T)
    args.update(over)
    return sample_items(**args)


def _topk(d, k=5, exclude=None, dtype=torch.float32, **over):
    user, item, bias = _scores(d, dtype)
    args = dict(user_emb=user, item_emb=item, item_bias=bias, k=k, exclude=exclude)
    args.update(over)
    return topk_items(**args)


def _csr(d, indptr, indices):
    return torch.tensor(indptr, device=d), torch.tensor(indices, device=d)


S, K = "sample_items", "topk_items"
BAD_INPUTS = [
    BadInput("user_emb 1-D", lambda d: _sample(d, user_emb=torch.randn(8, device=d)), ValueError,
             f"{S}: user_emb must be 2-D"),
    BadInput("d mismatch", lambda d: _sample(d, item_emb=torch.randn(40, 7, device=d)), ValueError,
             f"{S}: user_emb has d = 8 but item_emb has d = 7"),
    BadInput("bias length", lambda d: _sample(d, item_bias=torch.randn(39, device=d)), ValueError,
             f"{S}: item_bias must be \\[I\\] = \\[40\\]"),
    BadInput("item dtype", lambda d: _sample(d, item_emb=torch.randn(40, 8, device=d, dtype=torch.float64)),
             TypeError, f"{S}: item_emb dtype torch.float64 differs"),
    BadInput("integer embeddings", lambda d: _sample(d, user_emb=torch.ones(3, 8, device=d, dtype=torch.int64)),
             TypeError, f"{S}: user_emb must be float32 or float64"),
    BadInput("non-contiguous item_emb", lambda d: _sample(d, item_emb=torch.randn(8, 40, device=d).T), ValueError,
             f"{S}: item_emb must be contiguous"),
    BadInput("uniforms of another U", lambda d: _sample(d, u=torch.rand(2, 4, device=d)), ValueError,
             f"{S}: uniforms must be \\[U, k\\] with U = 3"),
    BadInput("uniform 1", lambda d: _sample(d, u=torch.ones(3, 4, device=d)), ValueError,
             f"{S}: uniforms must lie in \\[0, 1\\)"),
    BadInput("negative uniform", lambda d: _sample(d, u=-torch.rand(3, 4, device=d)), ValueError,
             f"{S}: uniforms must lie in"),
    BadInput("temperature 0", lambda d: _sample(d, T=0.0), ValueError, f"{S}: temperature must be a finite number > 0"),
    BadInput("temperature nan", lambda d: _sample(d, T=float("nan")), ValueError, f"{S}: temperature must be"),
    BadInput("temperature tensor", lambda d: _sample(d, T=torch.tensor(1.0)), ValueError, f"{S}: temperature must be"),
    BadInput("uniforms a list", lambda d: _sample(d, u=[[0.5]] * 3), TypeError,
             f"{S}: uniforms must be a torch.Tensor"),
    BadInput("k 0", lambda d: _topk(d, k=0), ValueError, f"{K}: k must be an int in \\[1, I = 40\\], got 0"),
    BadInput("k > I", lambda d: _topk(d, k=41), ValueError, f"{K}: k must be an int in \\[1, I = 40\\], got 41"),
    BadInput("exclude not a pair", lambda d: _topk(d, exclude=torch.zeros(4, dtype=torch.int64)), TypeError,
             f"{K}: exclude must be a pair"),
    BadInput("indptr length", lambda d: _topk(d, exclude=_csr(d, [0, 1, 2], [1, 2])), ValueError,
             f"{K}: exclude indptr must be \\[U \\+ 1\\] = \\[4\\]"),
    BadInput("indptr end", lambda d: _topk(d, exclude=_csr(d, [0, 1, 2, 3], [1, 2])), ValueError,
             f"{K}: exclude indptr must start at 0, never decrease and end at nnz = 2"),
    BadInput("indptr decreasing", lambda d: _topk(d, exclude=_csr(d, [0, 2, 1, 2], [1, 2])), ValueError,
             f"{K}: exclude indptr must .*never decrease"),
    BadInput("excluded item out of range", lambda d: _topk(d, exclude=_csr(d, [0, 1, 1, 2], [1, 40])), ValueError,
             f"{K}: exclude indices must be item indices in \\[0, 40\\)"),
    BadInput("int32 indices", lambda d: _topk(d, exclude=(torch.tensor([0, 0, 0, 1], device=d),
                                                          torch.tensor([3], device=d, dtype=torch.int32))),
             TypeError, f"{K}: exclude indices must be torch.int64"),
    BadInput("topk non-contiguous user_emb", lambda d: _topk(d, user_emb=torch.randn(8, 3, device=d).T), ValueError,
             f"{K}: user_emb must be contiguous"),
    BadInput("device mismatch", lambda d: _sample(d, item_bias=torch.randn(40)), ValueError,
             f"{S}: item_bias is on cpu but user_emb is on cuda", devices=("cuda",)),
]


# -- the ops' public calls for tests/ops/test_route.py ------------------------------------------------


def _route_sample(dtype=torch.float32):
    t = CASES[2].draw(fresh_generator())
    args = [t[n].to(dtype) for n in ("user_emb", "item_emb", "item_bias", "uniforms")]
    return lambda: sample_items(*args, 0.2)


def _route_topk(dtype=torch.float32):
    t = CASES[2].draw(fresh_generator())
    args = [t[n].to(dtype) for n in ("user_emb", "item_emb", "item_bias")]
    return lambda: topk_items(*args, 5)


ROUTE_CALLS = {"sample_items": _route_sample, "topk_items": _route_topk}
ROUTE_TWINS = {"sample_items": ("fastgen.reference.items", "sample_items"),
               "topk_items": ("fastgen.reference.items", "topk_items")}
