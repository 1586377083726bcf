"""Seeds and random-number-generator state: what makes a resumed run bit-identical to an
uninterrupted one.

Every seed the Trainer uses is ``derive_seed(config.seed, *tags)``: the data order of epoch ``e``
(tags ``("data", e)``), the noise of shard ``s`` (``("noise", s)``), the global RNGs of process ``r``
(``("global", r)``). The states of all of them go into checkpoints as JSON (base64 for torch's
byte states), never pickle.
"""
from __future__ import annotations

import base64
import contextlib
import hashlib
import random
from typing import Any, Iterator

import numpy as np
import torch
from torch import Tensor


def derive_seed(seed: int, *tags: Any) -> int:
    """A 63-bit seed determined by ``seed`` and ``tags`` (e.g. ("data", epoch)); stable across runs."""
    digest = hashlib.sha256(repr((int(seed),) + tags).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global RNG and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % (1 << 32))
    torch.manual_seed(seed)


def data_generator(seed: int, epoch: int) -> torch.Generator:
    """The CPU generator that orders (or, for a BatchStream, draws) the data of ``epoch``."""
    return torch.Generator().manual_seed(derive_seed(seed, "data", epoch))


def epoch_permutation(seed: int, epoch: int, n: int) -> Tensor:
    """The order in which the Trainer visits ``n`` examples in ``epoch`` (int64, on the CPU)."""
    return torch.randperm(n, generator=data_generator(seed, epoch))


def state_to_text(state: Tensor) -> str:
    """A torch generator state (uint8 tensor) as base64 text, for JSON."""
    return base64.b64encode(state.cpu().numpy().tobytes()).decode("ascii")


def state_from_text(text: str) -> Tensor:
    """The inverse of :func:`state_to_text`."""
    return torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.uint8)


def get_rng_state() -> dict:
    """Every global RNG state (torch CPU, CUDA devices, NumPy, Python) as JSON-able data."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": state_to_text(torch.get_rng_state()),
        "cuda": [state_to_text(s) for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else [],
        "numpy": {"kind": kind, "keys": keys.tolist(), "pos": int(pos), "has_gauss": int(has_gauss),
                  "cached_gaussian": float(cached)},
        "python": {"version": version, "state": list(internal), "gauss_next": gauss_next},
    }


def set_rng_state(state: dict) -> None:
    """Restore what :func:`get_rng_state` returned."""
    torch.set_rng_state(state_from_text(state["torch"]))
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([state_from_text(s) for s in state["cuda"]])
    n = state["numpy"]
    np.random.set_state((n["kind"], np.array(n["keys"], dtype=np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss_next"]))


@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    """Run a block without it consuming any global random numbers (evaluation uses this, so the
    training trajectory does not depend on when or whether evaluation ran)."""
    state = get_rng_state()
    try:
        yield
    finally:
        set_rng_state(state)


__all__ = ["data_generator", "derive_seed", "epoch_permutation", "get_rng_state", "preserved_rng",
           "seed_everything", "set_rng_state", "state_from_text", "state_to_text"]
