"""DRAW and AlignDRAW training on a GPU: the loss and every gradient of the model on the default
backend (CUDA attention kernels, fastgen.nn.recurrent's fast path with the LSTM update's reference
twin) against the same model on the reference backend, both on the GPU with the same noise, in
float64 (skipped without a GPU).

Run on a GPU machine with `python -m pytest tests/gpu -v`.
"""
from __future__ import annotations

import copy

import pytest
import torch

import fastgen
from fastgen.models import AlignDRAW, AlignDRAWConfig, DRAW, DRAWConfig
from tests.helpers import assert_rel_close, fresh_generator


def losses_and_grads(model, loss_of):
    model.zero_grad()
    loss = loss_of(model)
    loss.backward()
    return loss.detach().cpu(), {n: p.grad.detach().cpu() for n, p in model.named_parameters()}


@pytest.mark.parametrize("kind", ["draw", "aligndraw"])
def test_cuda_model_matches_cpu_reference(kind):
    gen = fresh_generator()
    torch.manual_seed(gen.initial_seed())
    if kind == "draw":
        model = DRAW(DRAWConfig(T=6, enc_size=32, dec_size=32, z_size=8, read_N=2, write_N=5)).double()
        x = torch.bernoulli(torch.full((16, 1, 28, 28), 0.3, dtype=torch.float64), generator=gen)

        def loss_of(m):
            device = next(m.parameters()).device
            return m.loss(x.to(device), torch.Generator(device=device).manual_seed(1))[0]
    else:
        model = AlignDRAW(AlignDRAWConfig(T=4, infer_size=32, gen_size=32, z_size=8, read_N=3, write_N=3,
                                          embed_size=8, lang_size=8, align_size=16)).double()
        x = torch.rand(8, 1, 60, 60, generator=gen, dtype=torch.float64)
        tokens = torch.randint(0, 22, (8, 12), generator=gen)
        lengths = torch.randint(1, 13, (8,), generator=gen)

        def loss_of(m):
            device = next(m.parameters()).device
            return m.loss(x.to(device), tokens.to(device), lengths.to(device),
                          torch.Generator(device=device).manual_seed(1))[0]
    cuda = copy.deepcopy(model).cuda()
    with fastgen.use_backend("reference"):
        loss_ref, grads_ref = losses_and_grads(cuda, loss_of)
    loss_fast, grads_fast = losses_and_grads(cuda, loss_of)
    assert_rel_close(loss_fast, loss_ref, 1e-10, f"{kind} loss, fast path vs reference on CUDA", gen.initial_seed())
    for name, want in grads_ref.items():
        assert_rel_close(grads_fast[name], want, 1e-8, f"{kind} grad {name}", gen.initial_seed())
