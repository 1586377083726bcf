"""The VAE-GAN part of ``fastgen demo``: a tiny VAE and a tiny VAE-GAN (the same encoder and decoder)
trained with the routed step for the same steps, on 1,000 Fashion-MNIST training images and on
scikit-image's 90 training faces resized to 28 x 28 (the four trainings share what loading the data
leaves of 85% of the part's budget), then one figure per data set: held-out images,
each model's reconstructions, and each model's samples (the same latents). Pictures of the first
seconds of training, not results (benchmarks/results/vaegan_fashion_*.md has the measured runs)."""
from __future__ import annotations

import time
from pathlib import Path

import torch

from fastgen.cli.args import PROG

_TINY = dict(width=8, hidden=64, latent=8)
STEPS = {"quick": 40, "full": 150}  # at most; fewer when the part's time budget runs out first
TRAINED_SHARE = 0.85  # of the part's budget, ends the last training (the rest: figures, slack)


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


def _figure(data: str, train: torch.Tensor, shown: torch.Tensor, deadline: float, models_left: int, max_steps: int,
            path: Path) -> str:
    """Train the VAE and the VAE-GAN on ``train`` and draw ``shown``, their reconstructions and samples; each
    training takes an equal share of the time to ``deadline`` among the ``models_left`` still to train."""
    from fastgen.viz.samples import image_grid
    z = torch.randn(len(shown), _TINY["latent"], generator=torch.Generator().manual_seed(1))
    rows, samples, notes = [shown], [], []
    for i, variant in enumerate(("vae", "vaegan")):
        seconds = max(0.0, deadline - time.perf_counter()) / (models_left - i)
        model, steps = _train(variant, train, seconds, max_steps)
        model.train()  # batch statistics: a few dozen steps leave BatchNorm's running averages unsettled
        with torch.no_grad():
            rows.append(model.reconstruct(shown))
            samples.append(model.decode(z))
        notes.append(f"{variant} {steps} steps")
    path.parent.mkdir(parents=True, exist_ok=True)
    image_grid(torch.cat(rows + samples), columns=len(shown), scale=3).save(path)
    return f"{data}: {', '.join(notes)}"


def demo_part(out: Path, quick: bool, budget: float) -> list[tuple[str, Path]]:
    from fastgen.data import DataError
    from fastgen.recipes.vaegan import FACES, load_images
    deadline = time.perf_counter() + TRAINED_SHARE * budget
    max_steps, done, notes = STEPS["quick" if quick else "full"], [], []
    train, _ = load_images("train", 1000)
    test, _ = load_images("test", 8)
    path = Path(out) / "vaegan_vs_vae.png"
    notes.append(_figure("fashion-mnist", train, test, deadline, 4, max_steps, path))
    done.append(("VAE vs VAE-GAN reconstructions and samples (Fashion-MNIST)", path))
    try:
        faces, _ = load_images("train", None, FACES)
        shown, _ = load_images("val", 8, FACES)
    except DataError as e:  # scikit-image missing: the Fashion-MNIST figure stands alone
        print(f"{PROG} demo vaegan: no faces figure ({e})")
    else:
        path = Path(out) / "vaegan_vs_vae_faces.png"
        notes.append(_figure(FACES, faces, shown, deadline, 2, max_steps, path))
        done.append(("VAE vs VAE-GAN reconstructions and samples (scikit-image faces)", path))
    print(f"{PROG} demo vaegan: rows: held-out images, VAE reconstructions, VAE-GAN reconstructions, VAE samples, "
          f"VAE-GAN samples ({'; '.join(notes)}, {'quick' if quick else 'full'})")
    return done
