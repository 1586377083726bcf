"""The AVB part of ``fastgen demo``: AVB and the Gaussian VAE (same decoder) trained on the paper's
four-point toy into OUT/avb-run/{avb,vae}, then the posterior figure (q(z|x) draws of each x, coloured,
AVB beside the VAE) and their bounds."""
from __future__ import annotations

import time
from pathlib import Path

import torch

from fastgen.cli.args import write_text
from fastgen.cli.demo import clear_demo_run, demo_run_dir

# Steps per model and the bounds' (draws per x, prior draws), sized for the budgets on a loaded 2-core machine at
# 1 thread: 300 steps took 86 s there at load ~15 and 9.9 s idle; these take ~5 s / ~2 s idle.
DEMO_STEPS = {"quick": 20, "full": 150}
BOUND_DRAWS = {"quick": (200, 5_000), "full": (1000, 50_000)}


def demo_part(out: Path, quick: bool, budget: float) -> list[tuple[str, Path]]:
    from fastgen.models.avb import toy_bounds
    from fastgen.recipes.avb import posterior_figure, train_run
    from fastgen.train import TrainConfig
    start = time.perf_counter()
    run_dir = demo_run_dir(out, "avb")
    clear_demo_run(run_dir)
    size = "quick" if quick else "full"
    steps = DEMO_STEPS[size]
    models, lines = [], ["| model | ELBO via T (paper's estimate) | ELBO, nearest-neighbour entropy | log p(x) |",
                         "|---|---:|---:|---:|"]
    for variant in ("avb", "vae"):
        config = TrainConfig(batch_size=256, epochs=10 ** 6, max_steps=steps, lr=1e-3, seed=0, eval_every=steps,
                             checkpoint_every=steps, progress=False)
        print(f"training {variant} on the toy ({steps} steps) ...", flush=True)
        # three adversary updates at 3e-3 per primal update: the stronger adversary measured best on the toy
        # (benchmarks/results/avb_toy_xeon_2026-12-03.md)
        result = train_run(variant, {"source": "toy"}, config, run_dir / variant, adversary_steps=3,
                           adversary_lr=3e-3, log=lambda s: print("  " + s))
        model = result.model.eval()
        bounds = toy_bounds(model, *BOUND_DRAWS[size], torch.Generator().manual_seed(0))
        models.append(("AVB" if variant == "avb" else "Gaussian VAE", model))
        lines.append(f"| {models[-1][0]} | {bounds['elbo_adversary']:.3f} | {bounds['elbo_entropy']:.3f} | "
                     f"{bounds['log_px']:.3f} |")
    png, table = out / "avb_toy_posterior.png", out / "avb_toy_bounds.md"
    posterior_figure(models, generator=torch.Generator().manual_seed(0)).save(png)
    write_text(table, "\n".join([f"# AVB toy after {steps} steps (optimum -log 4 = -1.386 nats)", "", *lines]))
    print(table.read_text(encoding="utf-8"))
    print(f"AVB demo part: {time.perf_counter() - start:.1f} s")
    return [("AVB and VAE toy runs", run_dir), ("AVB vs VAE posterior on the toy", png),
            ("AVB vs VAE toy bounds", table)]


__all__ = ["BOUND_DRAWS", "DEMO_STEPS", "demo_part"]
