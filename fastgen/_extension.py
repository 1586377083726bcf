"""Loads the compiled kernels (fastgen._C), which registers the torch.ops.fastgen.* operators.

The package still imports without them (the reference backend needs no compiled code); forcing a
compiled backend then raises an error that carries the original import failure.
"""
from __future__ import annotations

import torch

try:
    from fastgen import _C  # noqa: F401  (importing registers the ops)

    IMPORT_ERROR: Exception | None = None
except ImportError as exc:  # not built, or built against another torch
    IMPORT_ERROR = exc


def available() -> bool:
    return IMPORT_ERROR is None


def require(what: str) -> None:
    if IMPORT_ERROR is not None:
        raise RuntimeError(
            f"fastgen: {what} needs the compiled extension fastgen._C, which failed to import: {IMPORT_ERROR}. "
            "Build it with `pip install --no-build-isolation -e .`, or use the 'reference' backend."
        )


def has_kernel(op: str, dispatch_key: str) -> bool:
    """Whether torch.ops.fastgen.<op> has a compiled kernel for the dispatch key (e.g. 'CUDA')."""
    return available() and torch._C._dispatch_has_kernel_for_dispatch_key(f"fastgen::{op}", dispatch_key)
