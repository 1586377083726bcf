"""What the pixel samplers' benchmarks share (fastgen.benchmarking.pixelcnn_sampling, pixelrnn_sampling):
the one-off cost of packing a plan, and the markdown table: a header (machine, floors, date, the
benchmark's notes), one row per (setting, path), and the packing costs beneath."""
from __future__ import annotations

import datetime as _dt
import time
from typing import Callable, Sequence

from fastgen.benchmarking.timing import machine_line


def packing_seconds(build_plan: Callable, model) -> float:
    """Seconds to pack ``model``'s weights into its fast sampler's plan (reported beside the table)."""
    t0 = time.perf_counter()
    build_plan(model)
    return time.perf_counter() - t0


TEXT_COLUMNS = ("setting", "path")  # left-aligned; every other column holds numbers


def sampling_markdown(title: str, floors, notes: Sequence[str], columns: Sequence[str], rows: list[dict],
                      cells: Callable[[dict], Sequence[str]]) -> str:
    """The table: ``columns``, one line of ``cells(row)`` per row; each row carries "setting" and
    "plan_seconds"."""
    lines = [f"# {title}", "", f"- Machine: {machine_line()}", f"- Floors: {floors.describe()}",
             f"- Date: {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC", *notes, "",
             "| " + " | ".join(columns) + " |",
             "|" + "|".join("---" if name in TEXT_COLUMNS else "---:" for name in columns) + "|"]
    lines += ["| " + " | ".join(cells(r)) + " |" for r in rows]
    plans = {r["setting"]: r["plan_seconds"] for r in rows}
    lines += ["", "Packing the weights into the fastgen plan (once per set of weights, not in the times above): "
              + "; ".join(f"{name}: {1e3 * s:.0f} ms" for name, s in plans.items()) + "."]
    return "\n".join(lines) + "\n"
