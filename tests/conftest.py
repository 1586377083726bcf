"""Test-session setup shared by every test directory."""
import os

import pytest
import torch

# Without a GPU, Triton kernels run under the interpreter. Triton reads TRITON_INTERPRET when a kernel
# is defined, so it must be set before anything (opcheck, fastgen.ops on a CUDA build) imports them.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true",
                     help="also run the cases marked slow (large shapes under the Triton interpreter)")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a case too costly for the default run (see tests/cases); --runslow runs it")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow case: run with --runslow")
    for item in items:
        if item.get_closest_marker("slow") is not None:
            item.add_marker(skip)
