"""Fixtures shared by the CLI tests."""
import pytest
import torch


@pytest.fixture
def restore_threads():
    """cli.main(--threads N) sets the thread count of this pytest process; put it back afterwards."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
