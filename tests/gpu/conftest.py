"""tests/gpu runs the CUDA and Triton kernels for real: without a CUDA GPU every test here is skipped
(collected all the same, so `pytest --collect-only tests/gpu` counts the same on every machine)."""
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).parent
NEEDS_GPU = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")


def pytest_collection_modifyitems(items):
    # the hook sees the whole session's items: mark this folder's only, first, so that "no CUDA GPU" is
    # the reason given before any file's own skip (a kernel missing from the build)
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(NEEDS_GPU, append=False)
