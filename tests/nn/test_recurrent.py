"""fastgen.nn.recurrent: the per-sequence weight gradient equals plain autograd's per-step one, for
StepLinear alone, for the fused LSTM and linear heads, and for a whole DRAW model."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import fastgen
from fastgen.models import DRAW, DRAWConfig
from fastgen.nn.recurrent import StepLinear, step_linears, step_lstm
from tests.helpers import assert_rel_close, fresh_generator

pytestmark = pytest.mark.skipif(not fastgen._extension.available(), reason="fastgen._C not built")


def leaf(gen, *shape):
    return torch.randn(*shape, generator=gen, dtype=torch.float64).requires_grad_()


def grads_of(loss, tensors):
    return torch.autograd.grad(loss, tensors, allow_unused=True)


def test_step_linear_matches_a_plain_loop():
    """y_t = [a_t, y_{t-1}] W^T + b over T steps, input parts of two widths, the last output unused."""
    gen = fresh_generator()
    T, B, A, O = 5, 3, 4, 6
    weight, bias = leaf(gen, O, A + O), leaf(gen, O)
    a = leaf(gen, T, B, A)
    weights_out = torch.randn(T, B, O, generator=gen, dtype=torch.float64)

    def run(linear):
        y, loss = torch.zeros(B, O, dtype=torch.float64), 0
        for t in range(T):
            y = torch.tanh(linear(a[t], y))
            if t < T - 1:  # the last step's output feeds nothing: its tape slot gets no gradient
                loss = loss + (y * weights_out[t]).sum()
        return loss

    step = StepLinear(weight, bias, T)
    fast = grads_of(run(step), (weight, bias, a))
    plain = grads_of(run(lambda *parts: F.linear(torch.cat(parts, 1), weight, bias)), (weight, bias, a))
    for got, want, name in zip(fast, plain, ("weight", "bias", "inputs")):
        assert_rel_close(got, want, 1e-12, f"StepLinear grad {name}", gen.initial_seed())


def test_step_linear_without_grad_mode_is_plain_and_checks_its_use():
    gen = fresh_generator()
    weight, bias = leaf(gen, 3, 5), leaf(gen, 3)
    x = torch.randn(2, 5, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        step = StepLinear(weight, bias, 1)
        assert not step.taped
        assert torch.equal(step(x[:, :2], x[:, 2:]), F.linear(x, weight, bias))
    step = StepLinear(weight, bias, 2)
    with pytest.raises(ValueError, match="5"):
        step(x[:, :4])
    step(x)
    with pytest.raises(ValueError, match="first step's batch of 2"):
        step(x[:1])
    step(x)
    with pytest.raises(RuntimeError, match="more than the 2 steps"):
        step(x)
    with pytest.raises(ValueError, match="weight must be"):
        StepLinear(weight, bias[:2], 1)


def test_live_passes_never_share_buffers():
    """Two passes alive at once (both graphs kept until their backward) each keep their own tape."""
    gen = fresh_generator()
    weight, bias = leaf(gen, 4, 4), leaf(gen, 4)
    xs = [torch.randn(3, 2, 4, generator=gen, dtype=torch.float64) for _ in range(2)]

    def loss_of(x, fast):
        linear = StepLinear(weight, bias, 3) if fast else (lambda v: F.linear(v, weight, bias))
        y = torch.zeros(2, 4, dtype=torch.float64)
        for t in range(3):
            y = torch.sin(linear(x[t] + y))
        return y.sum()

    losses = [loss_of(x, True) for x in xs]  # both graphs alive
    for x, loss in zip(xs, losses):
        got = grads_of(loss, (weight, bias))
        want = grads_of(loss_of(x, False), (weight, bias))
        for g, w, name in zip(got, want, ("weight", "bias")):
            assert_rel_close(g, w, 1e-12, f"grad {name}", gen.initial_seed())


def test_step_lstm_and_heads_match_the_modules():
    gen = fresh_generator()
    torch.manual_seed(gen.initial_seed())
    T, B = 4, 3
    cell = nn.LSTMCell(5 + 2, 6).double()
    heads = [nn.Linear(6, 2).double(), nn.Linear(6, 3).double()]
    xs = torch.randn(T, B, 5, generator=gen, dtype=torch.float64)
    params = list(cell.parameters()) + [p for m in heads for p in m.parameters()]

    def run(fast):
        lstm, out = step_lstm(cell, T, fast), step_linears(heads, T, fast)
        h = c = torch.zeros(B, 6, dtype=torch.float64)
        feedback, loss = torch.zeros(B, 2, dtype=torch.float64), 0
        for t in range(T):
            h, c = lstm((h, c), xs[t], feedback)
            feedback, extra = out(h)
            loss = loss + feedback.square().sum() + extra.sin().sum()
        return loss

    fast_loss, plain_loss = run(True), run(False)
    assert_rel_close(fast_loss, plain_loss, 1e-12, "loss")
    for g, w, p in zip(grads_of(fast_loss, params), grads_of(plain_loss, params), params):
        assert_rel_close(g, w, 1e-12, f"grad {tuple(p.shape)}", gen.initial_seed())


@pytest.mark.parametrize("attention", [True, False], ids=["attention", "no_attention"])
def test_draw_fast_path_matches_the_reference_model(attention):
    """Off the reference backend DRAW's step loop trains through StepLinear and the fused LSTM; same
    gradients. Images that need a gradient keep DRAW on that loop on the CPU (otherwise it runs
    fastgen.models.draw.bptt's core, which tests/models/test_draw_bptt.py covers)."""
    gen = fresh_generator()
    torch.manual_seed(gen.initial_seed())
    sizes = dict(read_N=2, write_N=3) if attention else dict(read_N=None, write_N=None)
    model = DRAW(DRAWConfig(height=9, width=8, T=5, enc_size=12, dec_size=10, z_size=4, **sizes)).double()
    x = torch.bernoulli(torch.full((4, 1, 9, 8), 0.4, dtype=torch.float64), generator=gen).requires_grad_()
    results = {}
    for backend in ("reference", "cpu"):
        model.zero_grad()
        with fastgen.use_backend(backend):
            loss, _ = model.loss(x, torch.Generator().manual_seed(1))
        loss.backward()
        results[backend] = (loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()})
    assert_rel_close(results["cpu"][0], results["reference"][0], 1e-12, "loss", gen.initial_seed())
    for name, want in results["reference"][1].items():
        assert_rel_close(results["cpu"][1][name], want, 1e-10, f"grad {name}", gen.initial_seed())
