"""fastgen.models.aligndraw.bptt: AlignDRAW's hand-written backpropagation through time against the same
model on the reference backend (plain autograd), on fresh random models, images and captions in float64."""
import pytest
import torch

import fastgen
from fastgen.models import AlignDRAW, AlignDRAWConfig
from fastgen.models.aligndraw import model as aligndraw_model
from tests.helpers import assert_rel_close, fresh_generator

pytestmark = pytest.mark.skipif(not fastgen._extension.available(), reason="fastgen._C not built")

VOCAB, PAD, L = 23, 22, 6
VARIANTS = {"attention": dict(read_N=3, write_N=2), "no_attention": dict(read_N=None, write_N=None),
            "read_only": dict(read_N=2, write_N=None), "write_only": dict(read_N=None, write_N=3)}


def model_and_batch(gen, n=4, **kw):
    """A tiny float64 model (2 channels, odd sizes) and a batch with captions of varied lengths."""
    torch.manual_seed(gen.initial_seed())
    cfg = dict(height=9, width=11, channels=2, T=5, infer_size=12, gen_size=10, z_size=4, read_N=3, write_N=2,
               vocab_size=VOCAB, pad_id=PAD, embed_size=5, lang_size=6, align_size=7)
    model = AlignDRAW(AlignDRAWConfig(**{**cfg, **kw})).double()
    x = torch.bernoulli(torch.full((n, 2, 9, 11), 0.4, dtype=torch.float64), generator=gen)
    lengths = torch.tensor([6, 1, 4, 3][:n])
    tokens = torch.randint(0, PAD, (n, L), generator=gen)
    tokens[torch.arange(L) >= lengths[:, None]] = PAD
    return model, x, tokens, lengths


def grads_after(model, loss):
    model.zero_grad()
    loss.backward()
    # a parameter the picked terms do not reach: None under plain autograd, zeros through the core
    return {name: torch.zeros_like(p) if p.grad is None else p.grad.clone() for name, p in model.named_parameters()}


@pytest.fixture
def core_calls(monkeypatch):
    calls = []
    original = aligndraw_model.aligndraw_core
    monkeypatch.setattr(aligndraw_model, "aligndraw_core", lambda *a: (calls.append(1), original(*a))[1])
    return calls


CASES = [(variant, "bernoulli", "bound") for variant in VARIANTS] + [
    ("attention", "gaussian_fixed_var", "bound"), ("attention", "bernoulli", "kl only"),
    ("attention", "bernoulli", "recon only"), ("attention", "bernoulli", "alignments")]


@pytest.mark.parametrize("variant,likelihood,terms", CASES)
def test_core_gradients_equal_the_reference_model(variant, likelihood, terms, core_calls):
    gen = fresh_generator()
    model, x, tokens, lengths = model_and_batch(gen, likelihood=likelihood, **VARIANTS[variant])
    weights = torch.rand(model.config.T, x.shape[0], L, generator=gen, dtype=torch.float64)
    pick = {"bound": lambda o: (o["recon"] + o["kl"]).mean(), "kl only": lambda o: o["kl_steps"][1:].sum(),
            "recon only": lambda o: o["recon"].sum(), "alignments": lambda o: (o["alignments"] * weights).sum()}[terms]
    results = {}
    for backend in ("reference", "cpu"):
        with fastgen.use_backend(backend):
            out = model(x, tokens, lengths, torch.Generator().manual_seed(gen.initial_seed()))
        results[backend] = (out, grads_after(model, pick(out)))
    assert len(core_calls) == 1, "the cpu backend must run the hand-written core"
    (ref_out, ref_grads), (out, grads) = results["reference"], results["cpu"]
    for key in ("recon", "kl_steps", "logits", "alignments"):
        assert_rel_close(out[key], ref_out[key], 1e-12, key, gen.initial_seed())
    for name, want in ref_grads.items():
        assert_rel_close(grads[name], want, 1e-10, f"grad {name} ({variant}, {terms})", gen.initial_seed())


def test_second_backward_is_a_clear_error():
    gen = fresh_generator()
    model, x, tokens, lengths = model_and_batch(gen)
    loss, _ = model.loss(x, tokens, lengths, torch.Generator().manual_seed(0))
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="backward ran twice.*reference backend"):
        loss.backward()


def test_without_grad_and_with_image_gradients(core_calls):
    gen = fresh_generator()
    model, x, tokens, lengths = model_and_batch(gen)
    seed = gen.initial_seed()
    with torch.no_grad():
        quiet = model(x, tokens, lengths, torch.Generator().manual_seed(seed))
    assert core_calls, "evaluation without grad runs the core too"
    loud = model(x, tokens, lengths, torch.Generator().manual_seed(seed))
    for key in ("recon", "kl", "alignments"):
        assert torch.equal(quiet[key], loud[key]), key
    calls_before = len(core_calls)
    x_grad = x.clone().requires_grad_()
    model.loss(x_grad, tokens, lengths, torch.Generator().manual_seed(seed))[0].backward()
    assert len(core_calls) == calls_before and x_grad.grad is not None and x_grad.grad.abs().sum() > 0
