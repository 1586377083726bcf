"""Write benchmarks/results/gpu.md: every GPU path beside plain PyTorch on the same GPU, in one run.

    python benchmarks/gpu.py            # on a CUDA machine, after building fastgen there
    python benchmarks/gpu.py --quick    # fewer repeats and samples per call

Sections (each one's failure is written into the file and the others still run; the file is
rewritten after every section, so a run cut short keeps what it finished):
  attention   read -> write forward and forward+backward: eager and torch.compile on CUDA tensors
              against fastgen's CUDA and Triton kernels (fastgen.benchmarking.attention)
  wavenet     generation samples/s: the reference queues on the GPU against the persistent CUDA
              kernel (float32 and bfloat16 weights) and the Triton kernel, batch 1, 16, 256
  draw        the paper's DRAW model on the GPU: training step and batch-1 sampling per backend
"""
from __future__ import annotations

import argparse
import os
import sys
import traceback

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import torch  # noqa: E402

from fastgen.benchmarking import attention, draw, wavenet  # noqa: E402
from fastgen.benchmarking.timing import DEFAULT_TIMING, QUICK_TIMING, machine_line  # noqa: E402

# The target case and the AlignDRAW-sized canvas; every shape costs a torch.compile per workload.
ATTENTION_SHAPES = (attention.Shape(64, 2, 28, 28, 12), attention.Shape(64, 2, 60, 60, 12))
SECTIONS = ("attention", "wavenet", "draw")


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _demote(markdown: str) -> str:
    """A section's own document one heading level down, under this file's title."""
    return "\n".join("#" + line if line.startswith("#") else line for line in markdown.splitlines()) + "\n"


def attention_section(quick: bool) -> str:
    # quick=True only shortens the CPU floor measurement, which a GPU-only table does not show.
    rows = attention.attention_results(threads=(1,), quick=True, providers=attention.GPU_PROVIDERS,
                                       shapes=ATTENTION_SHAPES, timing=QUICK_TIMING if quick else DEFAULT_TIMING,
                                       busy_retries=0, log=_log)
    return attention.format_attention_markdown(rows, title="Attention on the GPU (read → write)")


def wavenet_section(quick: bool) -> str:
    return wavenet.format_gpu_wavenet_markdown(wavenet.gpu_wavenet_results(quick, log=_log))


def draw_section(quick: bool) -> str:
    return draw.format_draw_markdown(draw.gpu_draw_results(quick, log=_log)).replace(
        "# DRAW benchmark (fastgen ops vs reference ops)", "# DRAW on the GPU (backend per row)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats and samples per call")
    ap.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    ap.add_argument("--out", default=os.path.join(_ROOT, "benchmarks", "results", "gpu.md"))
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("benchmarks/gpu.py: no CUDA device; the GPU benchmark needs one", file=sys.stderr)
        return 2
    run = {"attention": attention_section, "wavenet": wavenet_section, "draw": draw_section}
    parts = [f"# fastgen on the GPU\n\n- Machine: {machine_line()}\n"]
    failed = False
    for name in args.sections:
        print(f"[gpu] {name} ...", file=sys.stderr, flush=True)
        try:
            parts.append(_demote(run[name](args.quick)))
        except Exception:  # noqa: BLE001 - one broken section must not lose the others' numbers
            failed = True
            parts.append(f"## {name}: FAILED\n\n```\n{traceback.format_exc()}```\n")
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            f.write("\n".join(parts))
        print(parts[-1], flush=True)
    print(f"wrote {args.out}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
