"""Write benchmarks/results/attention.md (the markdown table quoted in the README).

    python benchmarks/run.py                      # full run: 5 shapes, threads 1 and 2
    python benchmarks/run.py --quick              # one shape, fewer repeats
    python benchmarks/run.py --providers eager compile --threads 1

Same table as `fastgen bench attention` (run_attention_benchmark); this script also writes the raw
rows as attention.json beside it. Run it on a quiet machine: the header reports how busy the
other processes kept the CPU while timing, and flags the cells that were disturbed.
"""
from __future__ import annotations

import argparse
import os
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import json  # noqa: E402

from fastgen.benchmarking.attention import (  # noqa: E402
    ALL_PROVIDERS,
    attention_results,
    format_attention_markdown,
)
from fastgen.benchmarking.timing import DEFAULT_TIMING, QUICK_TIMING, measure_floors  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one shape, fewer repeats")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--providers", nargs="+", choices=ALL_PROVIDERS, default=None,
                    help="default: eager compile fastgen-cpu (+ triton, cuda with a GPU)")
    ap.add_argument("--out", default=os.path.join(_ROOT, "benchmarks", "results", "attention.md"))
    ap.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = ap.parse_args(argv)
    log = None if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    # what run_attention_benchmark does, keeping the raw rows for the .json beside the .md
    timing = QUICK_TIMING if args.quick else DEFAULT_TIMING
    floors = measure_floors(args.threads, quick=args.quick)
    rows = attention_results(args.threads, quick=args.quick, providers=args.providers,
                             timing=timing, floors=floors, log=log)
    md = format_attention_markdown(rows, floors=floors, timing=timing)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(md)
    raw = os.path.splitext(args.out)[0] + ".json"
    with open(raw, "w") as f:
        json.dump({"floors": vars(floors), "results": rows}, f, indent=1)
    print(md)
    print(f"wrote {args.out} and {raw}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
