"""Benchmark of the VAE-GAN training step: the routed step (fastgen.models.vaegan.step: one forward
of each network, each gradient routed once) against its straightforward twin
(fastgen.models.vaegan.reference_step: a forward and a backward per network's loss, gradients taken
into that network's parameters only, as ``torch.autograd.grad`` does; ports that call ``.backward()``
into every parameter do more work than this twin).

A timed step = the gradients of every network + one Adam step per network (the same for both).
The two are timed in alternation (routed, twin, routed, ...) so that the load of a shared machine
falls on both alike; the table gives medians and the ratio twin / routed. Model: the Fashion-MNIST
defaults (28 x 28, width 32, latent 32, hidden 256), B = 64.
"""
from __future__ import annotations

import os
import statistics
import time
from typing import Iterable

import torch

from fastgen.benchmarking.timing import machine_line, threads as _threads
from fastgen.models.vaegan import VAEGAN, VAEGANConfig, reference_gradients, routed_gradients

CASES = (("vaegan", "minimax"), ("vaegan", "nonsaturating"), ("gan", "minimax"))


def _step(model: VAEGAN, optimizers: dict, gradients, x, eps, z_prior) -> None:
    routed = gradients(model, x, eps, z_prior)
    for name, net in model.networks().items():
        for p, g in zip(net.parameters(), routed.grads[name]):
            p.grad = g
        optimizers[name].step()


def _case(variant: str, gan_loss: str, batch: int, repeats: int) -> dict:
    torch.manual_seed(0)
    model = VAEGAN(VAEGANConfig(variant=variant, gan_loss=gan_loss))
    optimizers = {n: torch.optim.Adam(net.parameters(), lr=1e-5) for n, net in model.networks().items()}
    g = torch.Generator().manual_seed(1)
    x = torch.rand(batch, 1, 28, 28, generator=g)
    eps, z_prior = model.draw_noise(batch, g, x)
    times: dict[str, list[float]] = {"routed": [], "twin": []}
    for i in range(repeats + 1):  # the first round warms up
        for name, fn in (("routed", routed_gradients), ("twin", reference_gradients)):
            t0 = time.perf_counter()
            _step(model, optimizers, fn, x, eps, z_prior)
            if i:
                times[name].append(time.perf_counter() - t0)
    routed, twin = (statistics.median(times[k]) for k in ("routed", "twin"))
    return {"case": f"{variant} ({gan_loss})", "routed": routed, "twin": twin, "ratio": twin / routed,
            "ratios": sorted(t / r for r, t in zip(times["routed"], times["twin"]))}


def vaegan_results(threads: Iterable[int] = (1, 2), quick: bool = False, batch: int = 64) -> dict:
    repeats = 3 if quick else 9
    rows = []
    for n in threads:
        with _threads(n):
            for variant, gan_loss in CASES:
                rows.append({**_case(variant, gan_loss, batch, repeats), "threads": n})
    return {"machine": machine_line(), "load": os.getloadavg(), "batch": batch, "repeats": repeats, "rows": rows}


def format_vaegan_markdown(results: dict) -> str:
    load = ", ".join(f"{v:.1f}" for v in results["load"])
    lines = [f"Machine: {results['machine']}",
             f"Load average at the end (1, 5, 15 min): {load} (a shared, loaded machine)",
             f"B = {results['batch']}, median of {results['repeats']} alternating repeats after one warm-up round", "",
             "| step | threads | twin ms | routed ms | twin / routed | per-repeat ratios (min..max) |",
             "|---|---:|---:|---:|---:|---|"]
    for r in results["rows"]:
        lines.append(f"| {r['case']} | {r['threads']} | {r['twin'] * 1e3:.0f} | {r['routed'] * 1e3:.0f} | "
                     f"{r['ratio']:.2f}x | {r['ratios'][0]:.2f}..{r['ratios'][-1]:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    print(format_vaegan_markdown(vaegan_results(quick="--quick" in sys.argv)))
