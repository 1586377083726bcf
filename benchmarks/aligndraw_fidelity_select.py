"""AlignDRAW caption fidelity chosen on validation (fastgen.eval.selection), over a run's kept checkpoints.

    python3 benchmarks/aligndraw_fidelity_select.py KEEP_DIR --out FILE.json            # validation only
    python3 benchmarks/aligndraw_fidelity_select.py KEEP_DIR --out FILE.json --test     # then test, once

KEEP_DIR holds checkpoint folders of one `fastgen train aligndraw` run (any names; ordered by step).
Without --test, the scorer is chosen on the real validation canvases and every checkpoint not yet in
FILE is scored on the validation captions (FILE is rewritten after each, so this can run while the
training still adds checkpoints). --test then chooses the checkpoint on those validation scores and
scores it on the test and held-out captions; a FILE that holds a test reading is refused.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from fastgen.eval import FidelityError, load_or_train_classifier
from fastgen.eval.selection import test_chosen, validate_all


def checkpoints_in(folder: Path) -> list[Path]:
    # Hidden folders are copies in progress (a watcher copies to .tmp, then renames).
    found = [p for p in folder.iterdir() if not p.name.startswith(".") and (p / "config.json").is_file()]
    return sorted(found, key=lambda p: json.loads((p / "config.json").read_text())["step"])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("keep", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--test", action="store_true", help="choose on validation, then score the test captions once")
    p.add_argument("--max-captions", type=int, help="first N captions of each split (default: all 1,000)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    state = json.loads(args.out.read_text()) if args.out.is_file() else {}
    classifier, _ = load_or_train_classifier()
    save = lambda state: args.out.write_text(json.dumps(state, indent=1))  # noqa: E731
    try:
        validate_all(checkpoints_in(args.keep), classifier, state, saved=save, max_captions=args.max_captions)
        print(f"scorer chosen on the validation canvases: {state['scorer']}")
        for row in state["validation"]:
            print(f"step {row['step']}: {100 * row['rate']:.1f}% of the named digits right on validation")
        if args.test:
            save(test_chosen(state, classifier, max_captions=args.max_captions))
            for split in ("test", "heldout"):
                print(f"chosen step {state['chosen']['step']}, {split}: {100 * state[split]['rate']:.1f}%")
    except FidelityError as e:
        sys.exit(str(e))
    return 0


if __name__ == "__main__":
    sys.exit(main())
