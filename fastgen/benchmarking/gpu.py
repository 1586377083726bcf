"""Every GPU path beside plain PyTorch on the same GPU, in one run (`fastgen bench gpu`,
benchmarks/gpu.py). Sections:
  attention   read -> write forward and forward+backward: eager and torch.compile on CUDA tensors
              against fastgen's CUDA and Triton kernels (fastgen.benchmarking.attention)
  wavenet     generation samples/s: the reference queues on the GPU against the persistent CUDA
              kernel (float32 and bfloat16 weights) and the Triton kernel, batch 1, 16, 256
  draw        the paper's DRAW model on the GPU: training step and batch-1 sampling per backend
A section that fails is reported in its place (with the traceback); the others still run.
"""
from __future__ import annotations

import sys
import traceback
from typing import Callable, Iterable

import torch

from fastgen.benchmarking import attention, draw, wavenet
from fastgen.benchmarking.timing import DEFAULT_TIMING, QUICK_TIMING, machine_line

# The attention issue's target case and the AlignDRAW-sized canvas; each shape costs a torch.compile
# per workload.
ATTENTION_SHAPES = (attention.Shape(64, 2, 28, 28, 12), attention.Shape(64, 2, 60, 60, 12))
SECTIONS = ("attention", "wavenet", "draw")


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _demote(markdown: str) -> str:
    """A section's own document one heading level down, under the report's title."""
    return "\n".join("#" + line if line.startswith("#") else line for line in markdown.splitlines()) + "\n"


def _attention(quick: bool) -> str:
    # quick=True only shortens the CPU floor measurement, which a GPU-only table does not show.
    rows = attention.attention_results(threads=(1,), quick=True, providers=attention.GPU_PROVIDERS,
                                       shapes=ATTENTION_SHAPES, timing=QUICK_TIMING if quick else DEFAULT_TIMING,
                                       busy_retries=0, log=_log)
    return attention.format_attention_markdown(rows, title="Attention on the GPU (read → write)")


def _wavenet(quick: bool) -> str:
    return wavenet.format_gpu_wavenet_markdown(wavenet.gpu_wavenet_results(quick, log=_log))


def _draw(quick: bool) -> str:
    return draw.format_draw_markdown(draw.gpu_draw_results(quick, log=_log)).replace(
        "# DRAW benchmark (fastgen ops vs reference ops)", "# DRAW on the GPU (backend per row)")


_RUN = {"attention": _attention, "wavenet": _wavenet, "draw": _draw}


def gpu_report(quick: bool = False, sections: Iterable[str] = SECTIONS,
               on_section: Callable[[str], None] = lambda report_so_far: None) -> tuple[str, bool]:
    """(markdown report, whether every section ran); on_section gets the report after each section."""
    if not torch.cuda.is_available():
        raise RuntimeError("the GPU benchmark needs a CUDA device; none is visible to torch")
    unknown = [name for name in sections if name not in _RUN]
    if unknown:
        raise ValueError(f"unknown GPU benchmark section(s) {unknown}; choose from {', '.join(SECTIONS)}")
    parts = [f"# fastgen on the GPU\n\n- Machine: {machine_line()}\n"]
    ok = True
    for name in sections:
        _log(f"[gpu] {name} ...")
        try:
            parts.append(_demote(_RUN[name](quick)))
        except Exception:  # noqa: BLE001 - one broken section must not lose the others' numbers
            ok = False
            parts.append(f"## {name}: FAILED\n\n```\n{traceback.format_exc()}```\n")
        on_section("\n".join(parts))
    return "\n".join(parts), ok


def run_gpu_benchmark(threads: tuple[int, ...] = (), quick: bool = False) -> str:
    """The report of `fastgen bench gpu` (threads do not apply: each GPU call is timed synchronised)."""
    return gpu_report(quick)[0]
