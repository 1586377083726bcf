"""The VAE-GAN part of ``fastgen demo``: a tiny VAE and a tiny VAE-GAN (the same encoder and decoder)
trained with the routed step for the same steps (each at most 30% of the part's budget; loading the
data takes the rest) on 1,000 Fashion-MNIST training images, then one figure: test images, each
model's reconstructions, and each model's samples (the same latents). A picture of the first seconds
of training, not a result (benchmarks/results/vaegan_fashion_*.md has the measured runs)."""
from __future__ import annotations

import time
from pathlib import Path

import torch

from fastgen.cli.args import PROG

_TINY = dict(width=8, hidden=64, latent=8)
STEPS = {"quick": 40, "full": 150}  # at most; fewer when the part's time budget runs out first


def _train(variant: str, images: torch.Tensor, seconds: float, max_steps: int, batch: int = 32):
    from fastgen.models.vaegan import VAEGAN, VAEGANConfig, routed_step
    torch.manual_seed(0)
    model = VAEGAN(VAEGANConfig(variant=variant, **_TINY))
    optimizers = {n: torch.optim.Adam(net.parameters(), lr=2e-3, betas=(0.5, 0.999))
                  for n, net in model.networks().items()}
    generator = torch.Generator().manual_seed(0)
    start, steps = time.perf_counter(), 0
    while steps < max_steps and time.perf_counter() - start < seconds:
        rows = torch.randint(len(images), (batch,), generator=generator)
        routed = routed_step(model, images[rows], generator)
        for name, net in model.networks().items():
            if routed.grads[name] is not None:
                for p, g in zip(net.parameters(), routed.grads[name]):
                    p.grad = g
                optimizers[name].step()
        steps += 1
    return model, steps


def demo_part(out: Path, quick: bool, budget: float) -> list[tuple[str, Path]]:
    from fastgen.recipes.vaegan import load_images
    from fastgen.viz.samples import image_grid
    train, _ = load_images("train", 1000)
    test, _ = load_images("test", 8)
    rows, notes = [test], []
    z = torch.randn(8, _TINY["latent"], generator=torch.Generator().manual_seed(1))
    samples = []
    for variant in ("vae", "vaegan"):
        model, steps = _train(variant, train, 0.3 * budget, STEPS['quick' if quick else 'full'])
        model.train()  # batch statistics: a few dozen steps leave BatchNorm's running averages unsettled
        with torch.no_grad():
            rows.append(model.reconstruct(test))
            samples.append(model.decode(z))
        notes.append(f"{variant} {steps} steps")
    path = Path(out) / "vaegan_vs_vae.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    image_grid(torch.cat(rows + samples), columns=8, scale=3).save(path)
    print(f"{PROG} demo vaegan: rows: test images, VAE reconstructions, VAE-GAN reconstructions, VAE samples, "
          f"VAE-GAN samples ({', '.join(notes)}, {'quick' if quick else 'full'})")
    return [("VAE vs VAE-GAN reconstructions and samples", path)]
