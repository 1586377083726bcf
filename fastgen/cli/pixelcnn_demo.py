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
# batch 16, the full one ~13 steps/s at batch 32) for ~4 s of training ("quick") or ~23 s ("full"), within the
# budgets PixelCNN's part shares with PixelRNN's (fastgen.cli.pixelcnn); tests shrink them further.
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
    "quick": PixelDemoRun(_TINY, steps=150, batch_size=16, lr=3e-3, max_val=100, evals=1, samples=16),
    "full": PixelDemoRun(dict(layers=3, hidden=16, output_hidden=32), steps=300, batch_size=32, lr=3e-3,
                         max_val=400, evals=5, samples=25),
}
FORWARDS = 5  # full forward passes timed for the naive sampler's estimate
# (method, how the speed table names it): the samplers it measures against the naive one
SAMPLERS = (("cached", "cached, plain PyTorch (sampling.sample_cached)"),
            ("fastgen", "fastgen: the C++ cached sampler (sampling.sample)"))
PLAN_NOTE = "the fastgen time includes packing the weights once (a plan)."


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
def sampling_speed(model, title: str, samplers=SAMPLERS, note: str = PLAN_NOTE) -> str:
    """A markdown table of batch-1 sampling time on one thread: ``samplers`` (method, name; method None:
    model.sample's default) measured, the naive one (C*H*W full forward passes) estimated from FORWARDS
    timed forward passes; the speedup of each over it."""
    cfg = model.config
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        measured = {}
        for method, _ in samplers:
            start = time.perf_counter()
            options = {} if method is None else {"method": method}
            model.sample(1, generator=torch.Generator().manual_seed(0), **options)
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
        *(f"| {what} (measured) | {measured[method]:.3f} | {_ratio(naive / measured[method])} |"
          for method, what in samplers),
        "", f"CPU threads: 1 of {threads}; {note}"])


def _ratio(x: float) -> str:
    return f"{x:.0f}x" if x >= 10 else f"{x:.1f}x"


def _curve(result, title: str):
    from fastgen.viz import history_curve
    return history_curve(result.history, result.initial_eval,
                         {"train (per step)": "nll", "validation": "eval_val_nats_per_image"},
                         title=f"{title} on binary MNIST: NLL", ylabel="nats/image")


def demo_part(kind, title: str, out: Path, quick: bool, budget: float, runs: dict = DEMO_RUNS,
              samplers=SAMPLERS, note: str = PLAN_NOTE) -> list[tuple[str, Path]]:
    """The demo part of ``kind`` (a recipe kind: a name, or another family's ModelKind): train with
    ``runs``' settings, write the figures and (within the budget) the speed of ``samplers``."""
    from fastgen.train import TrainConfig
    start = time.perf_counter()
    rec = recipes()
    name = rec.model_kind(kind).name
    settings = runs["quick" if quick else "full"]
    spec, problems = _data_spec()
    if spec is None:
        print(f"{PROG} demo: skipped {title} training, no data: " + "; ".join(problems), file=sys.stderr)
        return []
    run_dir = demo_run_dir(out, name)
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
    prefix = name.replace("-", "_")
    png, gif, curve = out / f"{prefix}_samples.png", out / f"{prefix}_raster.gif", out / f"{prefix}_curve.png"
    write_samples(model, settings.samples, 0, png, gif, None, scale=3, method=samplers[-1][0])
    _curve(result, title).save(curve)
    files = [(f"{title} run (log.csv, checkpoint/)", result.out_dir), (f"{title} samples", png),
             (f"{title} raster-order sampling, one frame per image row", gif), (f"{title} training curve", curve)]
    if time.perf_counter() - start > budget:
        print(f"{PROG} demo: skipped the {title} sampling speed table (the part is over its {budget:g} s budget)",
              file=sys.stderr)
        return files
    table = out / f"{prefix}_sampling_speed.md"
    write_text(table, sampling_speed(model, title, samplers, note))
    print(table.read_text(encoding="utf-8"))
    return files + [(f"{title} sampling speed against naive", table)]


__all__ = ["DEMO_RUNS", "PLAN_NOTE", "PixelDemoRun", "SAMPLERS", "demo_part", "sampling_speed"]
