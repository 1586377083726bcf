"""Training curves of a run: series read from the Trainer's log rows (history), with the evaluation
made before the first step placed at step 0."""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

from .samples import curve_figure


def history_curve(history: Sequence[Mapping], initial_eval: Optional[Mapping], series: Mapping[str, str], *,
                  title: str, ylabel: str, extra: Optional[Mapping[str, tuple]] = None):
    """A curve_figure of ``series`` (legend label -> log column) over the rows of ``history`` that hold
    the column; an ``eval_*`` column starts with ``initial_eval``'s value at step 0. ``extra``: more
    series as (steps, values), e.g. a baseline."""
    lines = {}
    for label, column in series.items():
        points = [(row["step"], row[column]) for row in history if column in row]
        if initial_eval and column in initial_eval:
            points.insert(0, (0, initial_eval[column]))
        lines[label] = tuple(zip(*points)) if points else ((), ())
    lines.update(extra or {})
    return curve_figure(lines, title=title, ylabel=ylabel)
