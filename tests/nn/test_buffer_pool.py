"""fastgen.nn.buffer_pool under threads: no buffer is handed to two holders at once, nothing raises,
and the pool never keeps more than its bound."""
import sys
import threading
import time

import pytest
import torch

from fastgen.nn import buffer_pool
from tests.threads import run_threads

SHAPES = [(3, 4), (5,), (2, 2, 2)]
THREADS, ROUNDS, BOUND = 4, 200, 4


class YieldingList(list):
    """A free list whose length goes stale: it lets other threads run between measuring and
    answering, which widens every check-then-act window (a length test, then a pop) in the pool."""

    def __len__(self):
        n = super().__len__()
        time.sleep(0)
        return n


class YieldingPool(dict):
    def setdefault(self, key, default=None):
        return super().setdefault(key, YieldingList(default or ()))


@pytest.fixture
def small_fresh_pool(monkeypatch):
    monkeypatch.setattr(buffer_pool, "_POOL", YieldingPool())
    monkeypatch.setattr(buffer_pool, "_POOL_SIZE", BOUND)
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can
    yield buffer_pool._POOL
    sys.setswitchinterval(previous)


def test_reuses_a_given_back_buffer_of_the_same_kind_only(small_fresh_pool):
    like = torch.empty(0)
    first = buffer_pool.take_buffer(like, (3, 4))
    buffer_pool.give_back_buffer(first)
    assert buffer_pool.take_buffer(like.double(), (3, 4)) is not first
    assert buffer_pool.take_buffer(like, (4, 3)) is not first
    assert buffer_pool.take_buffer(like, (3, 4)) is first


def test_hammered_from_threads(small_fresh_pool):
    like = torch.empty(0, dtype=torch.float64)
    holders, holders_lock = {}, threading.Lock()  # data_ptr -> the thread holding that buffer

    def hold(buffer, me):
        with holders_lock:
            other = holders.setdefault(buffer.data_ptr(), me)
        assert other == me, f"buffer {buffer.data_ptr():#x} handed to thread {me} while thread {other} holds it"

    def worker(me):
        def run():
            for i in range(ROUNDS):
                held = [buffer_pool.take_buffer(like, SHAPES[(i + k) % len(SHAPES)]) for k in range(2)]
                for buffer in held:
                    hold(buffer, me)
                    buffer.fill_(me)
                for buffer in held:
                    assert (buffer == me).all(), "another holder wrote into this thread's buffer"
                    with holders_lock:
                        del holders[buffer.data_ptr()]
                    buffer_pool.give_back_buffer(buffer)
        return run

    run_threads(*(worker(me) for me in range(THREADS)))
    kept = [b for free in small_fresh_pool.values() for b in free]
    assert 0 < len(kept) <= BOUND
    assert len({b.data_ptr() for b in kept}) == len(kept), "one buffer kept twice"
