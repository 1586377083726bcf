"""Shared test helpers: fresh random inputs, verbose closeness checks, poisoned allocations."""
from __future__ import annotations

import contextlib
import os

import torch


def fresh_generator() -> torch.Generator:
    """A generator with a new seed every run; failures report gen.initial_seed() to reproduce them."""
    seed = int.from_bytes(os.urandom(4), "little")
    gen = torch.Generator().manual_seed(seed)
    return gen


def assert_rel_close(actual: torch.Tensor, expected: torch.Tensor, tol: float, what: str, seed=None) -> None:
    """‖actual − expected‖ / ‖expected‖ < tol, reporting max and mean absolute error either way."""
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    a, e = actual.detach().double(), expected.detach().double()
    assert torch.isfinite(a).all(), f"{what}: non-finite values (seed {seed})"
    diff = (a - e).abs()
    denom = e.norm().item()
    rel = (a - e).norm().item() / denom if denom > 0 else diff.max().item()
    msg = f"{what}: rel {rel:.2e} (tol {tol:.0e}), max abs {diff.max().item():.2e}, mean abs {diff.mean().item():.2e}, seed {seed}"
    print(msg)
    assert rel < tol, msg


def rel_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """‖actual − expected‖ / ‖expected‖ in float64 (the norm of the difference where expected is 0)."""
    a, e = actual.detach().cpu().double(), expected.detach().cpu().double()
    denom = e.norm().item()
    diff = (a - e).norm().item()
    return diff / denom if denom > 0 else diff


@contextlib.contextmanager
def poisoned_empty():
    """Make torch.empty & co. return NaN-filled memory, so an output element a kernel never writes fails."""
    prev_det = torch.are_deterministic_algorithms_enabled()
    prev_fill = torch.utils.deterministic.fill_uninitialized_memory
    torch.use_deterministic_algorithms(True)
    torch.utils.deterministic.fill_uninitialized_memory = True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(prev_det)
        torch.utils.deterministic.fill_uninitialized_memory = prev_fill


# -- tests/gpu: which implementations a GPU machine can run, and the low-precision tolerance ------------

def triton_available() -> bool:
    """Whether Triton imports here (its kernels are then tested beside the CUDA C++ ones)."""
    try:
        import triton  # noqa: F401  (availability check)
    except ImportError:
        return False
    return True


def gpu_implementations(op: str) -> list[str]:
    """The implementations a tests/gpu case runs an op through: "op" (fastgen.ops under the default
    backend rule), "cuda-op" (torch.ops.fastgen on CUDA tensors, when this build has the op's CUDA
    kernel) and "triton" (the fastgen.triton launchers, when Triton imports)."""
    from fastgen import _extension

    return ["op"] + (["cuda-op"] if _extension.has_kernel(op, "CUDA") else []) + (["triton"] if triton_available() else [])


def twice_torch_error(own: torch.Tensor, exact: torch.Tensor, floor: float = 0.0) -> float:
    """The GUIDE's float16/bfloat16 tolerance: twice PyTorch's own relative error in that dtype (``own``:
    the reference run in the low dtype, ``exact``: the float64 reference), and at least ``floor``."""
    return max(2 * rel_err(own, exact), floor)
