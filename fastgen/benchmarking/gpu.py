"""Every GPU path beside plain PyTorch on the same GPU, in one run (`fastgen bench gpu`,
benchmarks/gpu.py): one section per family that has one (its ``gpu_bench``, in the family table's
order; see fastgen.recipes.registry). Today:
  attention   read -> write forward and forward+backward: eager and torch.compile on CUDA tensors
              against fastgen's CUDA and Triton kernels (fastgen.benchmarking.attention)
  draw        the paper's DRAW model on the GPU: training step and batch-1 sampling per backend
  wavenet     generation samples/s: the reference queues on the GPU against the persistent CUDA
              kernel (float32 and bfloat16 weights) and the Triton kernel, batch 1, 16, 256
A section that fails is reported in its place (with the traceback); the others still run.
"""
from __future__ import annotations

import sys
import traceback
from typing import Callable, Iterable, Optional

import torch

from fastgen.benchmarking.timing import machine_line


def gpu_sections() -> dict[str, Callable[[bool], str]]:
    """Section name -> its markdown for ``quick``: the families with a GPU benchmark, in table order."""
    from fastgen.recipes import registry
    return {family.name: family.gpu_bench for family in registry.families("gpu")}


def _demote(markdown: str) -> str:
    """A section's own document one heading level down, under the report's title."""
    return "\n".join("#" + line if line.startswith("#") else line for line in markdown.splitlines()) + "\n"


def gpu_report(quick: bool = False, sections: Optional[Iterable[str]] = None,
               on_section: Callable[[str], None] = lambda report_so_far: None) -> tuple[str, bool]:
    """(markdown report, whether every section ran) over ``sections`` (names; default: all);
    on_section gets the report after each section."""
    if not torch.cuda.is_available():
        raise RuntimeError("the GPU benchmark needs a CUDA device; none is visible to torch")
    run = gpu_sections()
    names = list(run) if sections is None else list(sections)
    unknown = [name for name in names if name not in run]
    if unknown:
        raise ValueError(f"unknown GPU benchmark section(s) {unknown}; choose from {', '.join(run)}")
    parts = [f"# fastgen on the GPU\n\n- Machine: {machine_line()}\n"]
    ok = True
    for name in names:
        print(f"[gpu] {name} ...", file=sys.stderr, flush=True)
        try:
            parts.append(_demote(run[name](quick)))
        except Exception:  # noqa: BLE001 - one broken section must not lose the others' numbers
            ok = False
            parts.append(f"## {name}: FAILED\n\n```\n{traceback.format_exc()}```\n")
        on_section("\n".join(parts))
    return "\n".join(parts), ok


def run_gpu_benchmark(threads: tuple[int, ...] = (), quick: bool = False) -> str:
    """The report of `fastgen bench gpu` (threads do not apply: each GPU call is timed synchronised)."""
    return gpu_report(quick)[0]
