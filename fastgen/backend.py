"""Which implementation an op runs: a process default, a context manager, or an env var.

Backends:
  "auto"       the fastest available for the tensors' device (cpu kernel on CPU; cuda kernel if it
               was built, else triton, on a GPU; else the reference)
  "reference"  the plain-PyTorch twin in fastgen.reference (ground truth, slow)
  "cpu"        the C++ kernels in fastgen._C (CPU tensors only)
  "triton"     the Triton kernels (CUDA tensors, or CPU tensors under TRITON_INTERPRET=1 for ops
               whose Triton kernel runs there)
  "cuda"       the hand-written CUDA kernels (CUDA tensors, only when built with CUDA)
fastgen.ops._route applies the choice, by one rule for every op (what "auto" falls back to, what an
explicit choice that cannot run raises). The environment variable FASTGEN_BACKEND sets the initial
process default.

set_backend changes the process default; use_backend overrides it for the enclosed block in the
current context only (a contextvars variable), so threads and asyncio tasks that choose different
backends do not see each other's choice. A thread started without a copy of the context
(threading.Thread) sees the process default.

Autograd may run backward on another thread (one per GPU device), whose context is not the
forward's. That is safe because the backend is resolved only in forward: what ran there fixes the
graph's nodes (plain-PyTorch ops for "reference", the C++ autograd node whose *_backward op the
dispatcher picks by device, or a Triton autograd Function), and no backward reads get_backend.
"""
from __future__ import annotations

import contextlib
import contextvars
import os
from typing import Iterator

import torch

BACKENDS = ("auto", "reference", "cpu", "triton", "cuda")

def _validate(name: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"fastgen: unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    return name


_process_default = _validate(os.environ.get("FASTGEN_BACKEND", "auto"))
# Unset unless a use_backend block in this context set it: then get_backend falls back to the default.
_override: contextvars.ContextVar[str] = contextvars.ContextVar("fastgen_backend")


# torch.compile cannot trace a ContextVar read; the backend is fixed when a graph is captured (as the
# global it replaced was), so the compiler takes the value read at trace time as a constant.
@torch.compiler.assume_constant_result
def get_backend() -> str:
    """The backend in force in this context: the innermost use_backend, else the process default."""
    return _override.get(_process_default)


def set_backend(name: str) -> None:
    """Set the process default (see the module docstring for the names); a use_backend block in
    force in this context still wins until it exits."""
    global _process_default
    _process_default = _validate(name)


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Run the enclosed block with the given backend in this context (thread, task) only, restoring
    the previous choice afterwards."""
    token = _override.set(_validate(name))
    try:
        yield
    finally:
        _override.reset(token)
