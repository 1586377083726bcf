"""``fastgen demo [FAMILY]``: every family's demo part in the registry's order (or one family's), each
timed against its budget, then the files written and the time each part took.

A part that trains writes its run into OUT/<family>-run and marks the folder as the demo's: the next
demo replaces only folders holding that marker, never a run of the user's that happens to sit at
the same place (all of them are checked before any work, since the runs come minutes apart)."""
from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from fastgen.cli.args import CLIError, check_out_folder, positive_int, set_threads, user_errors
from fastgen.recipes import registry

DEMO_MARKER = ".fastgen-demo-run"


def demo_run_dir(out: Path, name: str) -> Path:
    return out / f"{name}-run"


def check_demo_run(folder: Path) -> None:
    """Refuse unless ``folder`` is absent or a run folder an earlier demo created."""
    if not (folder.exists() or folder.is_symlink()):
        return
    marker = folder / DEMO_MARKER
    if folder.is_symlink() or not folder.is_dir() or marker.is_symlink() or not marker.is_file():
        raise CLIError(f"{folder} exists and was not created by an earlier demo (it may be a training run "
                       "of yours); move it away or choose another --out")


def clear_demo_run(folder: Path) -> None:
    """Replace an earlier demo's run folder with a fresh, marked one (refuse any other folder)."""
    from fastgen.recipes.runs import run_folder_lock
    check_demo_run(folder)
    if folder.exists():
        with run_folder_lock(folder):  # refuses while a training run (another demo's) still writes it
            shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / DEMO_MARKER).write_text("made by `fastgen demo`, which replaces this folder on its next run\n",
                                      encoding="utf-8")


def _timing_lines(timings: list[tuple[str, float, float]]) -> list[str]:
    lines = [f"  {title}: {elapsed:.1f} s of its {budget:g} s budget" + ("  (OVER BUDGET)" if elapsed > budget else "")
             for title, elapsed, budget in timings]
    if len(timings) > 1:
        lines.append(f"  all parts: {sum(t[1] for t in timings):.1f} s of {sum(t[2] for t in timings):g} s")
    return lines


def run_demo(args: argparse.Namespace) -> int:
    set_threads(args)
    out = Path(args.out)
    check_out_folder(out)
    parts = registry.families("demo")
    if args.family is not None:
        parts = [f for f in parts if f.name == args.family]
    for family in parts:  # before any work: the runs come minutes apart
        if family.demo_run:
            check_demo_run(demo_run_dir(out, family.name))
    out.mkdir(parents=True, exist_ok=True)

    files, timings = [], []
    for family in parts:
        budget = family.demo_budget.seconds(args.quick)
        start = time.perf_counter()
        with user_errors():
            files += family.demo(out, args.quick, budget)
        elapsed = time.perf_counter() - start
        timings.append((family.title, elapsed, budget))
        print(f"{family.title} part took {elapsed:.1f} s (budget {budget:g} s)", flush=True)

    print("\ndemo files:")
    for what, path in files:
        print(f"  {what}: {path}")
    print(f"\ntime per part, against its budget{' (--quick)' if args.quick else ''}:")
    print("\n".join(_timing_lines(timings)))
    return 0


def add_demo(commands: argparse._SubParsersAction) -> None:
    parts = registry.families("demo")
    trained = " + ".join(f.title for f in parts if f.demo_run)
    quick = sum(f.demo_budget.quick for f in parts)
    full = sum(f.demo_budget.full for f in parts)
    p = commands.add_parser(
        "demo", help=f"glimpses, short {trained} training runs with samples, benchmarks",
        description="Run each family's demo part in turn (or only FAMILY's) and list the files it wrote, "
                    "with each part's time against its budget. "
                    + " ".join(f"{f.help['demo'].rstrip('.')} (budget {f.demo_budget.full:g} s, --quick {f.demo_budget.quick:g} s)."
                               for f in parts)
                    + f" In all about {full / 60:.0f} minutes on 2 cores (--quick: about {quick / 60:.0f}).")
    p.add_argument("family", nargs="?", choices=[f.name for f in parts], metavar="FAMILY",
                   help=f"run only this family's part: {', '.join(f.name for f in parts)} (default: all, in that order)")
    p.add_argument("--out", default="./fastgen-demo", metavar="DIR",
                   help="output folder (default: %(default)s)")
    p.add_argument("--quick", action="store_true",
                   help="smoke-test speed: ~15 s training runs, benchmarks one thread only (WaveNet: R64 model, batch 1)")
    p.add_argument("--threads", type=positive_int, metavar="N", help="torch CPU threads for the training runs")
    p.set_defaults(handler=run_demo)
