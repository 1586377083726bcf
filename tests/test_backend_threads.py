"""The backend choice is per context: threads that choose different backends never see each other's
choice, a thread started without a context copy sees the process default, and backward, wherever it
runs, uses what forward chose (no backward reads the backend)."""
import contextvars
import threading

import pytest
import torch

import fastgen
from fastgen import backend
from fastgen.models import DRAW, DRAWConfig
from fastgen.models.draw import family as draw_module  # core_applies asks for the backend first
from fastgen.ops import attention as attention_ops
from tests.helpers import fresh_generator
from tests.threads import TIMEOUT_S, run_threads


def test_use_backend_is_per_thread():
    """Both threads enter their block before either reads: with one process-wide variable the
    second entry overwrote the first, and one thread ran the other's backend."""
    barrier = threading.Barrier(2, timeout=TIMEOUT_S)
    x = torch.rand(2, 1, 8, 9, requires_grad=True)
    p = torch.randn(2, 5) * 0.5
    routes = {}

    def worker(name):
        def run():
            with fastgen.use_backend(name):
                barrier.wait()  # both blocks entered
                routes[name] = (fastgen.get_backend(), attention_ops._resolve_backend(x.device),
                                attention_ops.attention_read(x, p, 3).grad_fn.name())
                barrier.wait()  # both read before either block exits
        return run

    run_threads(worker("reference"), worker("cpu"))
    assert routes["reference"][:2] == ("reference", "reference")
    assert routes["cpu"][:2] == ("cpu", "cpu")
    assert "fastgen" not in routes["reference"][2] and "AttentionRead" in routes["cpu"][2]  # the graph built
    assert fastgen.get_backend() == "auto"


def test_new_thread_sees_the_process_default_and_a_copied_context_sees_the_block():
    seen = {}
    try:
        fastgen.set_backend("reference")
        with fastgen.use_backend("cpu"):
            assert fastgen.get_backend() == "cpu"  # the block wins over the default in its context
            context = contextvars.copy_context()
            run_threads(lambda: seen.setdefault("plain", fastgen.get_backend()),
                        lambda: seen.setdefault("copied", context.run(fastgen.get_backend)))
        assert fastgen.get_backend() == "reference"
    finally:
        fastgen.set_backend("auto")
    assert seen == {"plain": "reference", "copied": "cpu"}


def test_use_backend_rejects_a_bad_name_and_leaves_the_choice_alone():
    with pytest.raises(ValueError, match="unknown backend 'fast'"):
        with fastgen.use_backend("fast"):
            pass
    assert fastgen.get_backend() == "auto"


TINY = dict(height=12, width=10, T=3, enc_size=16, dec_size=16, z_size=5, read_N=2, write_N=3)


def tiny_draw(seed, attention_backend):
    torch.manual_seed(seed)
    return DRAW(DRAWConfig(**TINY, attention_backend=attention_backend))


def test_draw_models_on_two_threads_each_run_their_configured_backend(monkeypatch):
    """DRAW's forward enters use_backend(config.attention_backend); both threads hold their block
    when the model first asks for the backend. Each must see only its own, and compute the loss it
    computes alone, bit for bit."""
    gen = fresh_generator()
    seed = gen.initial_seed()
    x = torch.bernoulli(torch.full((4, 1, 12, 10), 0.4), generator=gen)
    models = {name: tiny_draw(seed, name) for name in ("reference", "cpu")}
    alone = {name: m.loss(x, torch.Generator().manual_seed(seed))[0] for name, m in models.items()}

    barrier = threading.Barrier(2, timeout=TIMEOUT_S)
    per_thread = threading.local()
    real_get_backend = draw_module.get_backend

    def get_backend_while_both_inside():
        """The first call of each thread reads after both entered their block, before either exits."""
        first = not hasattr(per_thread, "seen")
        if first:
            per_thread.seen = set()
            barrier.wait()
        value = real_get_backend()
        per_thread.seen.add(value)
        if first:
            barrier.wait()
        return value

    monkeypatch.setattr(draw_module, "get_backend", get_backend_while_both_inside)
    together, seen = {}, {}

    def worker(name):
        def run():
            together[name] = models[name].loss(x, torch.Generator().manual_seed(seed))[0]
            seen[name] = per_thread.seen
        return run

    run_threads(worker("reference"), worker("cpu"))
    assert seen == {"reference": {"reference"}, "cpu": {"cpu"}}
    for name in models:
        assert torch.equal(together[name], alone[name]), f"{name}: {together[name]} vs {alone[name]} (seed {seed})"


class CountingVar:
    """Stands in for the backend's context variable and counts the reads."""

    def __init__(self, var):
        self.var, self.reads = var, 0

    def get(self, *default):
        self.reads += 1
        return self.var.get(*default)

    def set(self, value):
        return self.var.set(value)

    def reset(self, token):
        self.var.reset(token)


@pytest.mark.parametrize("forward_backend, backward_backend", [("reference", "cpu"), ("cpu", "reference")])
def test_backward_on_another_thread_uses_the_forward_backend(monkeypatch, forward_backend, backward_backend):
    """Backward run from a thread whose context chose another backend: the gradients are those of the
    same-thread backward, bit for bit, and backward never reads the backend."""
    gen = fresh_generator()
    seed = gen.initial_seed()
    x = torch.bernoulli(torch.full((3, 1, 12, 10), 0.4), generator=gen)
    model = tiny_draw(seed, "auto")
    counter = CountingVar(backend._override)
    monkeypatch.setattr(backend, "_override", counter)

    def forward_loss():
        model.zero_grad()
        with fastgen.use_backend(forward_backend):
            return model.loss(x, torch.Generator().manual_seed(seed))[0]

    forward_loss().backward()
    expected = [p.grad.clone() for p in model.parameters()]
    loss = forward_loss()
    reads_after_forward = counter.reads

    def backward_elsewhere():
        with fastgen.use_backend(backward_backend):
            loss.backward()

    run_threads(backward_elsewhere)
    assert counter.reads == reads_after_forward, "backward read the backend"
    for (name, p), e in zip(model.named_parameters(), expected):
        assert torch.equal(p.grad, e), f"grad {name} differs (seed {seed})"
