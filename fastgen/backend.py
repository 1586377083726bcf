"""Which implementation an op runs: a process-wide choice, a context manager, or an env var.

Backends:
  "auto"       the fastest available for the tensors' device (cpu kernel on CPU; cuda kernel if it
               was built, else triton, on a GPU)
  "reference"  the plain-PyTorch twin in fastgen.reference (ground truth, slow)
  "cpu"        the C++ kernels in fastgen._C (CPU tensors only)
  "triton"     the Triton kernels (CUDA tensors, or any tensor under TRITON_INTERPRET=1)
  "cuda"       the hand-written CUDA kernels (CUDA tensors, only when built with CUDA)
The environment variable FASTGEN_BACKEND sets the initial choice.
"""
from __future__ import annotations

import contextlib
import os
from typing import Iterator

BACKENDS = ("auto", "reference", "cpu", "triton", "cuda")

def _validate(name: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"fastgen: unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    return name


# Process-wide rather than thread-local: autograd may run backward on another thread (one per GPU),
# and backward must use the backend that ran forward.
_current = _validate(os.environ.get("FASTGEN_BACKEND", "auto"))


def get_backend() -> str:
    """The backend in force."""
    return _current


def set_backend(name: str) -> None:
    """Force a backend for the whole process (see the module docstring for the names)."""
    global _current
    _current = _validate(name)


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Run the enclosed block with the given backend, restoring the previous one afterwards."""
    previous = get_backend()
    set_backend(name)
    try:
        yield
    finally:
        set_backend(previous)
