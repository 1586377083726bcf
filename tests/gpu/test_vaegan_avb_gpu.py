"""VAE-GAN (and its VAE / GAN baselines), AVB (plain and adaptive contrast, both schedules, and its
Gaussian VAE) and the AIS evaluator on a CUDA device: the routed VAE-GAN step against its straightforward
twin (float64, every parameter) and against the same step on the CPU, a few Trainer steps of every model
(finite losses; every network's parameters, optimizer states and noise stay on the device and move), the
AVB toy's figures, and AIS against a closed-form log-likelihood.

Every test takes a ``device``: "cuda" by default. The same file checks its own logic and that nothing
here needs a GPU to be written correctly by running the CPU variant (tests/gpu/conftest.py skips the
folder without a GPU, so bypass it)::

    FASTGEN_GPU_TEST_DEVICE=cpu python -m pytest --noconftest -q tests/gpu/test_vaegan_avb_gpu.py

A stray CPU tensor in a code path (a noise draw without ``device=``, a constant built on the CPU) fails
only on the GPU run: ``python -m pytest tests/gpu -v`` on a GPU machine (scripts/gpu_check.sh).
"""
from __future__ import annotations

import copy
import math
import os

import pytest
import torch

from fastgen.eval.ais import ais_log_likelihood
from fastgen.models.avb import AVB, AVBConfig, elbo_via_adversary, posterior_separation, toy_bounds
from fastgen.models.vaegan import VAEGAN, VAEGANConfig, reference_gradients, routed_gradients
from fastgen.recipes.avb.training import training_phases
from fastgen.recipes.vaegan.training import make_phases
from fastgen.train import TrainConfig, Trainer, seed_everything
from tests.eval.test_ais import ppca
from tests.helpers import fresh_generator, rel_err

DEVICES = os.environ.get("FASTGEN_GPU_TEST_DEVICE", "cuda").split(",")
SMALL_VAEGAN = dict(width=8, hidden=16, latent=4, image_size=12)
SMALL_AVB = dict(data_dim=20, latent_dim=3, hidden=16, layers=2, noise_dim=4, adversary_hidden=16)
STEPS = 3


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    return torch.device(request.param)


def on(device: torch.device, tensor: torch.Tensor) -> bool:
    return tensor.device.type == device.type


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in module.named_parameters()}


def assert_trained(model: torch.nn.Module, before: dict, networks: dict, trainer: Trainer, device) -> None:
    """Every network moved, and its parameters and its optimizer's state lie on ``device``; every logged
    loss and metric is finite."""
    for name, net in networks.items():
        params = dict(net.named_parameters())
        assert all(on(device, p) for p in params.values()), f"{name}: a parameter left {device}"
        moved = sum((p - before[name][n]).abs().max().item() for n, p in params.items())
        assert moved > 0, f"{name}: no parameter changed in {STEPS} steps"
    for opt in trainer.optimizers.values():
        for state in opt.state.values():
            assert all(on(device, v) for v in state.values() if isinstance(v, torch.Tensor) and v.dim() > 0)
    assert len(trainer.history) == STEPS
    for row in trainer.history:
        bad = {k: v for k, v in row.items() if isinstance(v, float) and not math.isfinite(v)}
        assert not bad, f"non-finite log values {bad}"


# -- VAE-GAN ---------------------------------------------------------------------------------------

ROUTING = [dict(variant="vaegan"), dict(variant="vaegan", gan_loss="nonsaturating", feature_layer=2),
           dict(variant="vae"), dict(variant="gan")]


@pytest.mark.parametrize("kwargs", ROUTING, ids=lambda k: "-".join(map(str, k.values())))
def test_vaegan_routed_step_equals_the_twin_on_the_device(device, kwargs):
    gen = fresh_generator()
    seed = gen.initial_seed()
    torch.manual_seed(seed)
    cpu = VAEGAN(VAEGANConfig(**SMALL_VAEGAN, **kwargs)).double()
    model = copy.deepcopy(cpu).to(device)
    x = torch.rand(6, 1, 12, 12, generator=gen, dtype=torch.float64)
    eps, z_prior = cpu.draw_noise(6, gen, x)
    moved = [None if t is None else t.to(device) for t in (x, eps, z_prior)]
    routed, twin = routed_gradients(model, *moved), reference_gradients(model, *moved)
    on_cpu = routed_gradients(cpu, x, eps, z_prior)
    assert on(device, routed.losses.kl) and on(device, routed.losses.gan)
    for name, grads in routed.grads.items():
        names = [n for n, _ in getattr(model, name).named_parameters()]
        for pname, g, t, c in zip(names, grads, twin.grads[name], on_cpu.grads[name]):
            assert on(device, g) and torch.isfinite(g).all(), f"{name}.{pname}"
            # the twin runs the same kernels in another order: float64 rounding only
            torch.testing.assert_close(g, t, rtol=1e-9, atol=1e-12, msg=f"{name}.{pname} vs twin (seed {seed})")
            # a device path that dropped a term or used other noise differs by O(1), kernels by rounding
            assert rel_err(g, c) < 1e-8, f"{name}.{pname}: device vs CPU rel {rel_err(g, c):.1e} (seed {seed})"


@pytest.mark.parametrize("variant", ["vaegan", "vae", "gan"])
def test_vaegan_family_trains_a_few_steps_on_the_device(device, variant):
    seed_everything(0)
    model = VAEGAN(VAEGANConfig(variant=variant, **SMALL_VAEGAN)).to(device)
    networks = model.networks()
    before = {name: snapshot(net) for name, net in networks.items()}
    data = torch.rand(32, 1, 12, 12)  # on the CPU: the Trainer moves each batch to the model's device
    trainer = Trainer(model, phases=make_phases(model, 1e-3),
                      config=TrainConfig(batch_size=8, max_steps=STEPS, progress=False))
    trainer.fit(data)
    assert_trained(model, before, networks, trainer, device)
    model.eval()
    with torch.no_grad():
        assert on(device, model.sample(4, torch.Generator(device=device).manual_seed(0)))
        if variant != "gan":
            out = model.reconstruct(data[:4].to(device))
            assert on(device, out) and torch.isfinite(out).all()


# -- AVB -------------------------------------------------------------------------------------------

AVB_CASES = [("avb", "alternate"), ("avb", "simultaneous"), ("avb-ac", "alternate"), ("vae", "alternate")]


@pytest.mark.parametrize("variant, schedule", AVB_CASES, ids=lambda v: v)
def test_avb_trains_a_few_steps_on_the_device(device, variant, schedule):
    seed_everything(0)
    cfg = AVBConfig(**SMALL_AVB, adaptive_contrast=variant == "avb-ac",
                    encoder="gaussian" if variant == "vae" else "implicit")
    model = AVB(cfg).to(device)
    networks = {"encoder": model.encoder, "decoder": model.decoder}
    if model.adversary is not None:
        networks["adversary"] = model.adversary
    before = {name: snapshot(net) for name, net in networks.items()}
    # uint8 grey levels, dynamically binarised on the device by the recipe's batch preparation
    data = torch.randint(0, 256, (64, cfg.data_dim), dtype=torch.uint8)
    phases = training_phases(model, {"source": "fashion-mnist", "binarize": "dynamic"}, schedule, 1, 1e-3, None)
    trainer = Trainer(model, phases=phases, config=TrainConfig(batch_size=16, max_steps=STEPS, progress=False))
    trainer.fit(data)
    assert_trained(model, before, networks, trainer, device)
    x = torch.bernoulli(data[:5].to(device, torch.float32) / 255, generator=torch.Generator(device=device))
    elbo = elbo_via_adversary(model, x, 6, torch.Generator(device=device).manual_seed(1))
    assert elbo.shape == (5,) and on(device, elbo) and torch.isfinite(elbo).all()


def test_avb_toy_figures_on_the_device(device):
    seed_everything(0)
    model = AVB(AVBConfig.toy()).to(device)
    g = torch.Generator(device=device).manual_seed(0)
    separation = posterior_separation(model, 50, g)
    assert 0 <= separation <= 1
    bounds = toy_bounds(model, 60, 1000, g)
    assert all(math.isfinite(v) for v in bounds.values()), bounds
    assert bounds["log_px"] <= 0  # a probability of a discrete point


# -- AIS -------------------------------------------------------------------------------------------

def test_ais_matches_the_closed_form_on_the_device(device):
    log_likelihood, x, exact = ppca(device=device)
    estimate, acceptance = ais_log_likelihood(log_likelihood, x, 5, n_chains=128, n_steps=1000, leapfrog_steps=5,
                                              step_size=0.3, generator=torch.Generator(device=device).manual_seed(2),
                                              return_acceptance=True)
    assert on(device, estimate) and estimate.dtype == torch.float64 and estimate.shape == exact.shape
    error = (estimate.cpu() - exact).abs().mean().item()
    print(f"AIS on {device}: mean |error| {error:.3f} nats, acceptance {acceptance:.2f}")
    assert error < 0.05  # the target, as tests/eval/test_ais.py on the CPU (a weight at the wrong β: nats off)
    assert abs(acceptance - 0.65) < 0.15  # the step size adapted on the device too


def test_ais_runs_on_an_avb_decoder_on_the_device(device):
    seed_everything(0)
    model = AVB(AVBConfig(**SMALL_AVB, encoder="gaussian")).double().to(device)
    x = torch.bernoulli(torch.full((3, SMALL_AVB["data_dim"]), 0.3, dtype=torch.float64)).to(device)
    g = torch.Generator(device=device).manual_seed(0)
    ais = ais_log_likelihood(model.log_likelihood, x, SMALL_AVB["latent_dim"], n_chains=8, n_steps=40,
                             leapfrog_steps=3, generator=g)
    elbo = elbo_via_adversary(model, x, 2000, g)
    assert on(device, ais) and torch.isfinite(ais).all() and bool((ais <= 0).all())
    # log p(x) >= ELBO; AIS is a stochastic lower bound of log p(x), so it lies above the ELBO but for noise
    assert bool((ais > elbo - 0.5).all()), (ais, elbo)
