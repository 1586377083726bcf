"""fastgen.ops.lstm_cell_pointwise against its plain-PyTorch twin: values, gradients, saturation,
absent output gradients, opcheck, and bad input."""
import pytest
import torch

import fastgen
from fastgen.ops import lstm_cell_pointwise
from fastgen.reference.lstm import lstm_cell_pointwise as reference
from tests.helpers import assert_rel_close, fresh_generator

pytestmark = pytest.mark.skipif(not fastgen._extension.available(), reason="fastgen._C not built")

TOL = {torch.float32: 1e-5, torch.float64: 1e-12}


def random_inputs(gen, B, D, dtype, scale=3.0, strided=False):
    gates = torch.randn(B, 4 * D, generator=gen, dtype=torch.float64) * scale
    c = torch.randn(B, D, generator=gen, dtype=torch.float64) * scale
    if strided:  # a column slice of wider gates and a transposed c
        gates = torch.cat([gates, torch.randn(B, 3, generator=gen, dtype=torch.float64)], 1)[:, :4 * D]
        c = c.t().contiguous().t()
    return gates, c


@pytest.mark.parametrize("shape", [(64, 256), (3, 13), (1, 1), (2, 9)], ids=lambda s: f"B{s[0]}D{s[1]}")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("strided", [False, True], ids=["contiguous", "strided"])
def test_values_and_gradients_match_reference(shape, dtype, strided):
    gen = fresh_generator()
    seed = gen.initial_seed()
    gates64, c64 = random_inputs(gen, *shape, dtype, strided=strided)
    gates = gates64.to(dtype).requires_grad_()
    c = c64.to(dtype).requires_grad_()
    h, c_new = lstm_cell_pointwise(gates, c)
    g64, cc64 = gates64.clone().requires_grad_(), c64.clone().requires_grad_()
    h_ref, c_ref = reference(g64, cc64)
    assert_rel_close(h, h_ref, TOL[dtype], "h", seed)
    assert_rel_close(c_new, c_ref, TOL[dtype], "c'", seed)
    wh, wc = torch.randn_like(h_ref), torch.randn_like(c_ref)
    grads = torch.autograd.grad((h * wh.to(dtype)).sum() + (c_new * wc.to(dtype)).sum(), (gates, c))
    grads_ref = torch.autograd.grad((h_ref * wh).sum() + (c_ref * wc).sum(), (g64, cc64))
    assert_rel_close(grads[0], grads_ref[0], TOL[dtype], "grad gates", seed)
    assert_rel_close(grads[1], grads_ref[1], TOL[dtype], "grad c", seed)


@pytest.mark.parametrize("output", ["h", "c"])
def test_one_output_without_gradient(output):
    """A cell's last c' (or an unused h') gets no gradient: the backward treats it as zeros."""
    gen = fresh_generator()
    gates64, c64 = random_inputs(gen, 5, 7, torch.float64)
    results = []
    for fn in (lstm_cell_pointwise, reference):
        gates, c = gates64.clone().requires_grad_(), c64.clone().requires_grad_()
        h, c_new = fn(gates, c)
        (h if output == "h" else c_new).square().sum().backward()
        results.append((gates.grad, c.grad))
    for got, want, name in zip(results[0], results[1], ("gates", "c")):
        assert_rel_close(got, want, 1e-12, f"grad {name} with only {output} used", gen.initial_seed())


def test_saturated_gates_stay_finite_and_exact():
    gen = fresh_generator()
    gates64, c64 = random_inputs(gen, 8, 16, torch.float64, scale=60.0)
    gates, c = gates64.float().requires_grad_(), c64.float().requires_grad_()
    h, c_new = lstm_cell_pointwise(gates, c)
    (h.sum() + c_new.sum()).backward()
    assert torch.isfinite(gates.grad).all() and torch.isfinite(c.grad).all()
    h_ref, c_ref = reference(gates64, c64)
    assert_rel_close(h, h_ref, 1e-5, "saturated h", gen.initial_seed())
    assert_rel_close(c_new, c_ref, 1e-5, "saturated c'", gen.initial_seed())


def test_gradcheck_and_opcheck():
    gen = fresh_generator()
    gates, c = (t.requires_grad_() for t in random_inputs(gen, 3, 5, torch.float64, scale=1.0))
    assert torch.autograd.gradcheck(lambda g, cc: lstm_cell_pointwise(g, cc), (gates, c))
    torch.library.opcheck(torch.ops.fastgen.lstm_cell_pointwise, (gates, c))
    act = torch.ops.fastgen.lstm_cell_pointwise(gates.detach(), c.detach())[2]
    grad_h, grad_c = torch.randn(3, 5, dtype=torch.float64), torch.randn(3, 5, dtype=torch.float64)
    torch.library.opcheck(torch.ops.fastgen.lstm_cell_pointwise_backward, (grad_h, grad_c, act, c.detach()))
    torch.library.opcheck(torch.ops.fastgen.lstm_cell_pointwise_backward, (None, grad_c, act, c.detach()))


def test_reference_backend_runs_the_twin(monkeypatch):
    calls = []
    from fastgen.reference import lstm as ref_module
    monkeypatch.setattr(ref_module, "lstm_cell_pointwise", lambda g, c: (calls.append(1), reference(g, c))[1])
    gates, c = torch.randn(2, 8), torch.randn(2, 2)
    lstm_cell_pointwise(gates, c)
    assert not calls
    with fastgen.use_backend("reference"):
        lstm_cell_pointwise(gates, c)
    assert calls == [1]


def test_bad_input_is_named():
    gates, c = torch.randn(2, 8), torch.randn(2, 2)
    with pytest.raises(ValueError, match="lstm_cell_pointwise: c must be"):
        lstm_cell_pointwise(gates, c[0])
    with pytest.raises(ValueError, match="gates must be"):
        lstm_cell_pointwise(gates[:, :7], c)
    with pytest.raises(TypeError, match="dtype"):
        lstm_cell_pointwise(gates.double(), c)
    with pytest.raises(TypeError, match="dtype"):
        lstm_cell_pointwise(gates.int(), c.int())
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        lstm_cell_pointwise(gates, None)
    with pytest.raises(RuntimeError, match="lstm_cell_pointwise: gates must have shape"):
        torch.ops.fastgen.lstm_cell_pointwise(gates[:, :6], c)
    with pytest.raises(RuntimeError, match="float32 or float64"):
        torch.ops.fastgen.lstm_cell_pointwise(gates.half(), c.half())
    act = torch.ops.fastgen.lstm_cell_pointwise(gates, c)[2]
    with pytest.raises(RuntimeError, match="lstm_cell_pointwise_backward: grad_h must have shape"):
        torch.ops.fastgen.lstm_cell_pointwise_backward(torch.randn(3, 2), None, act, c)
    with pytest.raises(RuntimeError, match="lstm_cell_pointwise_backward: act must have shape"):
        torch.ops.fastgen.lstm_cell_pointwise_backward(None, None, gates, c)
