"""One backend rule for every fastgen op: which implementation a call runs.

Each op declares what it has besides its reference twin (which every op has) in an OpKernels: the
dtypes of its C++ CPU kernel, its CUDA C++ kernel and its Triton kernel (empty: the op has none).
resolve() turns the requested backend (an op's own backend argument, else fastgen.get_backend())
into one of "reference", "cpu", "cuda", "triton" for the tensors at hand:

  "reference"  always the plain-PyTorch twin.
  "auto"       CPU tensors: the C++ kernel if built and it takes the dtype; CUDA tensors: the CUDA C++
               kernel if built, else the Triton kernel if triton is installed; otherwise the reference.
               Falling back is silent where the op has no kernel for this device and dtype (by design:
               LSTM on CUDA, float16 on the CPU); where it has one that this installation lacks
               (fastgen._C failed to import, triton missing) the fallback warns once per op and device.
  explicit     "cpu" runs on CPU tensors; "cuda" on CUDA tensors; "triton" on CUDA tensors, and on CPU
               tensors under TRITON_INTERPRET=1 for ops whose Triton kernel runs there. Tensors on
               another device raise. An op with no kernel of that name at all runs its reference: a
               backend names a family of kernels for a whole model (DRAW's LSTM has no CUDA kernel and
               still runs under "cuda"). An op that has the kernel but cannot run it here (the dtype is
               not one it takes, or it is not built or installed) raises BackendUnavailableError.
Unknown names raise ValueError listing the choices.

Every refusal has one form: "<op>: the '<backend>' backend cannot run <dtype> tensors on <device>:
<why>; <what to do>, or use 'auto' or 'reference'".
"""
from __future__ import annotations

import importlib.util
import os
import warnings
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from fastgen import _extension
from fastgen.backend import BACKENDS, get_backend

# What "auto" tries, in order, per device type; anything else (and nothing found) is the reference.
AUTO_ORDER = {"cpu": ("cpu",), "cuda": ("cuda", "triton")}
# Looked up once: importing triton itself takes seconds, and resolve() runs on every op call.
_TRITON_INSTALLED = importlib.util.find_spec("triton") is not None
_WHERE = {"cpu": "CPU tensors", "cuda": "CUDA tensors", "triton": "CUDA tensors"}
_ALTERNATIVES = "or use 'auto' or 'reference'"
_warned: set[tuple[str, str]] = set()
_DECLARED: dict[str, "OpKernels"] = {}


class BackendUnavailableError(RuntimeError):
    """An explicitly requested backend cannot run these tensors (device, dtype, or not built)."""


@dataclass(frozen=True)
class OpKernels:
    """What one op has besides its reference twin: the dtypes each kernel takes (empty: no such
    kernel). cuda_built overrides the CUDA C++ probe (torch.ops.fastgen.<op> has a CUDA kernel) for an
    op whose CUDA dispatch slot may hold its Triton kernels instead."""

    op: str
    cpu: tuple[torch.dtype, ...] = ()
    cuda: tuple[torch.dtype, ...] = ()
    triton: tuple[torch.dtype, ...] = ()
    triton_runs_on_cpu: bool = False  # under TRITON_INTERPRET=1 (the way Triton code is tested here)
    cuda_built: Optional[Callable[[], bool]] = None

    def __post_init__(self):
        _DECLARED[self.op] = self


def declared() -> dict[str, OpKernels]:
    """Every op's declaration, by op name: what the route tests and the GPU check enumerate, so that a
    new op family is covered by declaring its OpKernels in its own module."""
    import fastgen.ops  # noqa: F401  (importing the ops declares them)

    return dict(_DECLARED)


def check_name(op: str, name: str, extra: tuple[str, ...] = ()) -> str:
    """name if it is a backend (or one of an op's extra paths), else ValueError listing the choices."""
    if name not in BACKENDS and name not in extra:
        raise ValueError(f"{op}: unknown backend {name!r}; choose one of {', '.join(BACKENDS + extra)}")
    return name


def resolve(kernels: OpKernels, device: torch.device, dtype: Optional[torch.dtype],
            requested: Optional[str] = None) -> str:
    """The backend this call runs: "reference", "cpu", "cuda" or "triton" (see the module docstring).

    requested: the op's backend argument; None or "auto" defers to fastgen.get_backend(). dtype: the
    tensors' dtype, or None for an op whose argument checks already restrict dtypes per device to
    those of its kernels (attention).
    """
    name = get_backend() if requested is None or check_name(kernels.op, requested) == "auto" else requested
    if name == "reference":
        return name
    if name == "auto":
        return _auto(kernels, device, dtype)
    if device.type not in _devices(kernels, name):
        interpreted = name == "triton" and kernels.triton_runs_on_cpu
        _refuse(kernels, name, device, dtype, f"it runs on {_WHERE[name]}"
                + (" (or CPU tensors under TRITON_INTERPRET=1)" if interpreted else ""), "move the tensors")
    dtypes = getattr(kernels, name)
    if not dtypes:
        return "reference"  # the op has no kernel of this family: the choice does not concern it
    if dtype is not None and dtype not in dtypes:
        _refuse(kernels, name, device, dtype, f"its kernel takes {', '.join(map(str, dtypes))}", "convert the tensors")
    if not _built(kernels, name):
        _refuse(kernels, name, device, dtype, *_MISSING[name]())
    return name


def _auto(kernels: OpKernels, device: torch.device, dtype: Optional[torch.dtype]) -> str:
    missing = []
    for name in AUTO_ORDER.get(device.type, ()):
        dtypes = getattr(kernels, name)
        if dtypes and (dtype is None or dtype in dtypes):
            if _built(kernels, name):
                return name
            missing.append(name)
    if missing and (kernels.op, device.type) not in _warned:
        _warned.add((kernels.op, device.type))
        why = "; ".join(f"'{name}': {_MISSING[name]()[0]}" for name in missing)
        warnings.warn(f"{kernels.op}: running the slow reference on {device.type} because this installation "
                      f"lacks the op's kernels ({why})", RuntimeWarning, stacklevel=3)
    return "reference"


def _devices(kernels: OpKernels, name: str) -> tuple[str, ...]:
    if name == "cpu":
        return ("cpu",)
    if name == "triton" and kernels.triton_runs_on_cpu and os.environ.get("TRITON_INTERPRET") == "1":
        return ("cuda", "cpu")
    return ("cuda",)


def _built(kernels: OpKernels, name: str) -> bool:
    if name == "cpu":
        return _extension.available()
    if name == "triton":
        return _TRITON_INSTALLED
    if kernels.cuda_built is not None:
        return kernels.cuda_built()
    return _extension.has_kernel(kernels.op, "CUDA")


# Per kernel family: (why it is missing, what to do).
_MISSING: dict[str, Callable[[], tuple[str, str]]] = {
    "cpu": lambda: (f"fastgen._C failed to import ({_extension.IMPORT_ERROR})",
                    "build it with `pip install --no-build-isolation -e .`"),
    "cuda": lambda: ("fastgen was built without its CUDA kernels",
                     "rebuild with a CUDA build of torch and nvcc (FASTGEN_FORCE_CUDA=1 pip install "
                     "--no-build-isolation -e .)"),
    "triton": lambda: ("triton is not installed", "`pip install triton`"),
}


def _refuse(kernels: OpKernels, name: str, device: torch.device, dtype: Optional[torch.dtype], why: str,
            remedy: str):
    what = "tensors" if dtype is None else f"{dtype} tensors"
    raise BackendUnavailableError(f"{kernels.op}: the {name!r} backend cannot run {what} on {device}: "
                                  f"{why}; {remedy}, {_ALTERNATIVES}")
