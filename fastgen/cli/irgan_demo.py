"""The IRGAN part of ``fastgen demo``: a short run on MovieLens-100k (u1) into OUT/irgan-run, then its
test metrics beside the baselines' as a markdown table (the split read once, at the end)."""
from __future__ import annotations

import sys
from pathlib import Path

from fastgen.cli.args import PROG, write_text
from fastgen.cli.demo import clear_demo_run, demo_run_dir

# A few seconds of training each on 2 idle cores; the schedule keeps the authors' shape, scaled down.
DEMO_SETTINGS = {"quick": dict(pre_epochs=3, rounds=1, d_epochs=3, g_epochs=3),
                 "full": dict(pre_epochs=10, rounds=2, d_epochs=10, g_epochs=10)}


def demo_part(out: Path, quick: bool, budget: float) -> list[tuple[str, Path]]:
    from fastgen.data import DataError
    from fastgen.recipes.irgan import DataSpec, Settings, markdown, test_report, train_run
    run = demo_run_dir(out, "irgan")
    clear_demo_run(run)
    settings = Settings().quick(**DEMO_SETTINGS["quick" if quick else "full"])
    print(f"training IRGAN ({'quick' if quick else 'full'} demo schedule) on MovieLens-100k u1 ...", flush=True)
    try:
        train_run(settings, DataSpec(), run, log=lambda line: print("  " + line, flush=True))
    except DataError as e:
        print(f"{PROG} demo: skipped IRGAN, no data: {e}", file=sys.stderr)
        return []
    table = out / "irgan_metrics.md"
    write_text(table, "# IRGAN demo run (short schedule), MovieLens-100k u1 test split\n\n" + markdown(test_report(run)))
    print(table.read_text(encoding="utf-8"))
    return [("IRGAN run (DNS, IRGAN, BPR; log.csv, best/)", run), ("IRGAN test metrics beside the baselines", table)]


__all__ = ["DEMO_SETTINGS", "demo_part"]
