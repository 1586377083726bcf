"""fastgen.models.draw.bptt: DRAW's hand-written backpropagation through time against the same model
on the reference backend (plain autograd), on fresh random models and images in float64."""
import pytest
import torch

import fastgen
from fastgen.models import DRAW, DRAWConfig
from fastgen.models.draw import model as draw_model
from tests.helpers import assert_rel_close, fresh_generator

pytestmark = pytest.mark.skipif(not fastgen._extension.available(), reason="fastgen._C not built")


def model_and_images(gen, channels=1, n=3, **kw):
    torch.manual_seed(gen.initial_seed())
    cfg = dict(height=9, width=11, channels=channels, T=5, enc_size=12, dec_size=10, z_size=4, read_N=3, write_N=2)
    model = DRAW(DRAWConfig(**{**cfg, **kw})).double()
    x = torch.bernoulli(torch.full((n, channels, 9, 11), 0.4, dtype=torch.float64), generator=gen)
    return model, x


def grads_after(model, loss):
    model.zero_grad()
    loss.backward()
    return {name: p.grad.clone() for name, p in model.named_parameters()}


@pytest.fixture
def core_calls(monkeypatch):
    calls = []
    original = draw_model.draw_core
    monkeypatch.setattr(draw_model, "draw_core", lambda *a: (calls.append(1), original(*a))[1])
    return calls


VARIANTS = {"attention": dict(read_N=3, write_N=2), "no_attention": dict(read_N=None, write_N=None),
            "read_only": dict(read_N=2, write_N=None), "write_only": dict(read_N=None, write_N=3)}
CASES = [(variant, "bernoulli", "bound") for variant in VARIANTS] + [
    ("attention", "gaussian_fixed_var", "bound"), ("attention", "bernoulli", "kl only"),
    ("attention", "bernoulli", "recon only"), ("no_attention", "bernoulli", "kl only")]


@pytest.mark.parametrize("variant,likelihood,terms", CASES)
def test_core_gradients_equal_the_reference_model(variant, likelihood, terms, core_calls):
    gen = fresh_generator()
    model, x = model_and_images(gen, channels=2, likelihood=likelihood, **VARIANTS[variant])
    pick = {"bound": lambda o: (o["recon"] + o["kl"]).mean(), "kl only": lambda o: o["kl_steps"][1:].sum(),
            "recon only": lambda o: o["recon"].sum()}[terms]
    results = {}
    for backend in ("reference", "cpu"):
        with fastgen.use_backend(backend):
            out = model(x, torch.Generator().manual_seed(gen.initial_seed()))
        loss = pick(out)
        results[backend] = (out, grads_after(model, loss))
    assert len(core_calls) == 1, "the cpu backend must run the hand-written core"
    (ref_out, ref_grads), (out, grads) = results["reference"], results["cpu"]
    for key in ("recon", "kl_steps", "logits"):
        assert_rel_close(out[key], ref_out[key], 1e-12, key, gen.initial_seed())
    for name, want in ref_grads.items():
        assert_rel_close(grads[name], want, 1e-10, f"grad {name} ({variant}, {terms})", gen.initial_seed())


def test_interleaved_passes_keep_their_own_tapes():
    """Tapes are pooled between passes: two live passes must not share any, whatever the order."""
    gen = fresh_generator()
    model, x = model_and_images(gen)
    y = torch.bernoulli(torch.full_like(x, 0.6), generator=gen)
    seed = gen.initial_seed()
    alone = [grads_after(model, model.loss(images, torch.Generator().manual_seed(seed))[0]) for images in (x, y)]
    loss_x, _ = model.loss(x, torch.Generator().manual_seed(seed))
    loss_y, _ = model.loss(y, torch.Generator().manual_seed(seed))
    interleaved_y = grads_after(model, loss_y)
    interleaved_x = grads_after(model, loss_x)
    for name in alone[0]:
        assert torch.equal(interleaved_x[name], alone[0][name]), name
        assert torch.equal(interleaved_y[name], alone[1][name]), name


def test_second_backward_is_a_clear_error():
    gen = fresh_generator()
    model, x = model_and_images(gen)
    loss, _ = model.loss(x, torch.Generator().manual_seed(0))
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="backward ran twice.*reference backend"):
        loss.backward()


def test_without_grad_and_with_image_gradients(core_calls):
    gen = fresh_generator()
    model, x = model_and_images(gen)
    seed = gen.initial_seed()
    with torch.no_grad():
        quiet = model(x, torch.Generator().manual_seed(seed))
    assert core_calls, "evaluation without grad runs the core too"
    loud = model(x, torch.Generator().manual_seed(seed))
    assert torch.equal(quiet["recon"], loud["recon"]) and torch.equal(quiet["kl"], loud["kl"])
    # images that need a gradient take the autograd path, which provides it
    calls_before = len(core_calls)
    x_grad = x.clone().requires_grad_()
    model.loss(x_grad, torch.Generator().manual_seed(seed))[0].backward()
    assert len(core_calls) == calls_before and x_grad.grad is not None and x_grad.grad.abs().sum() > 0
