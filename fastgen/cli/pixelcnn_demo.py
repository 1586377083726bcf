"""The PixelCNN and Gated PixelCNN parts of ``fastgen demo``: a short training run of a tiny model on the
binary MNIST subset into OUT/<kind>-run, then a sample grid, the raster-order sampling GIF, the
training curve and the sampling speed (cached against naive, batch 1, one thread)."""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from fastgen.cli.args import PROG, write_text
from fastgen.cli.demo import clear_demo_run, demo_run_dir
from fastgen.cli.pixelcnn import TRAIN_DEFAULTS, recipes, report_training, write_samples


# Sized on an idle 2-core machine (measured with the C++ masked-conv kernel: the quick model ~40 steps/s at
# batch 16, the full one ~13 steps/s at batch 32) for ~5 s of training ("quick") or ~30 s ("full"); tests
# shrink them further.
@dataclass(frozen=True)
class PixelDemoRun:
    model: dict           # size overrides (fastgen.recipes.pixelcnn.make_config)
    steps: int
    batch_size: int
    lr: float
    max_val: int
    evals: int            # validation evaluations during training (the last at the end)
    samples: int


_TINY = dict(layers=2, hidden=12, output_hidden=32)
DEMO_RUNS = {
    "quick": PixelDemoRun(_TINY, steps=200, batch_size=16, lr=3e-3, max_val=100, evals=1, samples=16),
    "full": PixelDemoRun(dict(layers=3, hidden=16, output_hidden=32), steps=400, batch_size=32, lr=3e-3,
                         max_val=400, evals=5, samples=25),
}
FORWARDS = 5  # full forward passes timed for the naive sampler's estimate


def _data_spec():
    """The first binary source with data here: the MNIST subset, else Fashion-MNIST (None: neither)."""
    from fastgen.data import DataError
    rec, problems = recipes(), []
    for source in rec.BINARY_SOURCES:
        spec = rec.DataSpec(source)
        try:
            rec.load_split(spec, "test", 1)
        except DataError as e:
            problems.append(str(e))
            continue
        return spec, problems
    return None, problems


@torch.no_grad()
def sampling_speed(model, title: str) -> str:
    """A markdown table of batch-1 sampling time on one thread: the cached samplers measured, the naive one
    (C*H*W full forward passes) estimated from FORWARDS timed forward passes; the speedup of the two."""
    cfg = model.config
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        measured = {}
        for method in ("cached", "fastgen"):
            start = time.perf_counter()
            model.sample(1, generator=torch.Generator().manual_seed(0), method=method)
            measured[method] = time.perf_counter() - start
        x = torch.zeros(1, cfg.channels, cfg.height, cfg.width, dtype=torch.long)
        model(x)  # warm-up
        times = []
        for _ in range(FORWARDS):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    passes = cfg.channels * cfg.height * cfg.width
    naive = sorted(times)[len(times) // 2] * passes
    return "\n".join([
        f"# {title} sampling speed (batch 1, 1 thread, demo model)", "",
        "| sampler | seconds per image | speedup |", "|---|---:|---:|",
        f"| naive: {passes} full forward passes (estimated: median of {FORWARDS} timed passes x {passes}) "
        f"| {naive:.2f} | 1.0x |",
        *(f"| {what} (measured) | {measured[method]:.3f} | {naive / measured[method]:.0f}x |"
          for method, what in (("cached", "cached, plain PyTorch (sampling.sample_cached)"),
                               ("fastgen", "fastgen: the C++ cached sampler (sampling.sample)"))),
        "", f"CPU threads: 1 of {threads}; the fastgen time includes packing the weights once (a plan)."])


def _curve(result, title: str):
    from fastgen.viz import history_curve
    return history_curve(result.history, result.initial_eval,
                         {"train (per step)": "nll", "validation": "eval_val_nats_per_image"},
                         title=f"{title} on binary MNIST: NLL", ylabel="nats/image")


def demo_part(kind: str, title: str, out: Path, quick: bool, budget: float) -> list[tuple[str, Path]]:
    from fastgen.train import TrainConfig
    start = time.perf_counter()
    rec = recipes()
    settings = DEMO_RUNS["quick" if quick else "full"]
    spec, problems = _data_spec()
    if spec is None:
        print(f"{PROG} demo: skipped {title} training, no data: " + "; ".join(problems), file=sys.stderr)
        return []
    run_dir = demo_run_dir(out, kind)
    clear_demo_run(run_dir)
    # as many epochs as the steps need (max_steps ends the run)
    config = TrainConfig(batch_size=settings.batch_size, epochs=settings.steps, max_steps=settings.steps,
                         lr=settings.lr, grad_clip=TRAIN_DEFAULTS["grad_clip"], seed=0,
                         eval_every=max(1, settings.steps // settings.evals),
                         progress=False)
    print(f"training {title} ({'quick' if quick else 'full'} demo config, {settings.steps} steps on {spec.name}) ...",
          flush=True)
    result = rec.train_run(kind, settings.model, spec, config, run_dir, max_val=settings.max_val,
                           log=lambda line: print("  " + line, flush=True))
    report_training(result)
    model = result.model.eval()
    prefix = kind.replace("-", "_")
    png, gif, curve = out / f"{prefix}_samples.png", out / f"{prefix}_raster.gif", out / f"{prefix}_curve.png"
    write_samples(model, settings.samples, 0, png, gif, None, scale=3)
    _curve(result, title).save(curve)
    files = [(f"{title} run (log.csv, checkpoint/)", result.out_dir), (f"{title} samples", png),
             (f"{title} raster-order sampling, one frame per image row", gif), (f"{title} training curve", curve)]
    if time.perf_counter() - start > budget:
        print(f"{PROG} demo: skipped the {title} sampling speed table (the part is over its {budget:g} s budget)",
              file=sys.stderr)
        return files
    table = out / f"{prefix}_sampling_speed.md"
    write_text(table, sampling_speed(model, title))
    print(table.read_text(encoding="utf-8"))
    return files + [(f"{title} sampling speed, cached vs naive", table)]


__all__ = ["DEMO_RUNS", "demo_part", "sampling_speed"]
