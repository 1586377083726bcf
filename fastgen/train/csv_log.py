"""The Trainer's log.csv: one row per logged step, a column per value, floats that read back exactly."""
from __future__ import annotations

import csv
import warnings
from pathlib import Path
from typing import Any

from fastgen._atomic import atomic_write

_TAIL = ("lr", "time")  # always the last columns


class CsvLog:
    """log.csv that grows a column when a new metric first appears (the file is then rewritten)."""

    def __init__(self, path: Path, keep_through_step: int):
        self.path = path
        self.fields: list[str] = []
        rows: list[dict] = []
        if path.is_symlink():  # not a log this run wrote: replace the link, never read through it
            warnings.warn(f"{path} is a symbolic link; replacing it with a fresh log", RuntimeWarning,
                          stacklevel=3)
        elif path.exists():  # a resumed run drops rows written after its checkpoint
            with open(path, newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                self.fields = list(reader.fieldnames or [])
                rows = [r for r in reader if r.get("step", "").isdigit() and int(r["step"]) <= keep_through_step]
        self._rewrite(rows)

    def _rewrite(self, rows: list[dict]) -> None:
        with atomic_write(self.path, newline="") as f:
            writer = csv.DictWriter(f, self.fields)
            if self.fields:
                writer.writeheader()
            writer.writerows(rows)

    def append(self, row: dict) -> None:
        new = [k for k in row if k not in self.fields]
        if new:
            with open(self.path, newline="", encoding="utf-8") as f:
                rows = list(csv.DictReader(f)) if self.fields else []
            tail = [k for k in _TAIL if k in self.fields or k in row]
            self.fields = [k for k in self.fields if k not in tail] + [k for k in new if k not in tail] + tail
            self._rewrite(rows)
        with open(self.path, "a", newline="", encoding="utf-8") as f:
            csv.DictWriter(f, self.fields).writerow({k: _csv_value(v) for k, v in row.items()})


def _csv_value(value: Any) -> Any:
    return repr(value) if isinstance(value, float) else value  # repr: floats read back exactly


__all__ = ["CsvLog"]
