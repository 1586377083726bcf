"""Write benchmarks/results/gpu.md: every GPU path beside plain PyTorch on the same GPU, in one run.

    python benchmarks/gpu.py                           # on a CUDA machine, after building fastgen there
    python benchmarks/gpu.py --quick                   # fewer repeats and samples per call
    python benchmarks/gpu.py --sections wavenet draw   # some of the sections (attention, draw, wavenet)

The sections are fastgen.benchmarking.gpu's, one per family with a GPU benchmark in the family table
(also `fastgen bench gpu`). The file is rewritten after
every section, so a run cut short keeps what it finished; exit status 1 if a section failed.
"""
from __future__ import annotations

import argparse
import os
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from fastgen.benchmarking.gpu import gpu_report, gpu_sections  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats and samples per call")
    names = list(gpu_sections())
    ap.add_argument("--sections", nargs="+", choices=names, default=names)
    ap.add_argument("--out", default=os.path.join(_ROOT, "benchmarks", "results", "gpu.md"))
    args = ap.parse_args(argv)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)

    def save(report: str) -> None:
        with open(args.out, "w") as f:
            f.write(report)

    try:
        report, ok = gpu_report(args.quick, args.sections, on_section=save)
    except RuntimeError as e:
        print(f"benchmarks/gpu.py: {e}", file=sys.stderr)
        return 2
    print(report)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
