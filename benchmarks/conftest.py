"""pytest configuration for the benchmarks: `pytest benchmarks/ --benchmark-only`.

Benchmark modules are named bench_<family>.py (so that `pytest` over tests/ never runs them); this
hook collects them when pytest is pointed at this folder. The repository root goes on sys.path so
an uninstalled checkout works too.
"""
from __future__ import annotations

import fnmatch
import os
import sys

import pytest

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)


def pytest_collect_file(parent, file_path):
    if file_path.suffix != ".py" or not file_path.name.startswith("bench_"):
        return None
    # already collected by pytest itself (named on the command line, or matched by python_files)
    if parent.session.isinitpath(file_path):
        return None
    if any(fnmatch.fnmatch(file_path.name, pat) for pat in parent.config.getini("python_files")):
        return None
    return pytest.Module.from_parent(parent, path=file_path)
