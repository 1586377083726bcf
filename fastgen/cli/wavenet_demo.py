"""The WaveNet part of ``fastgen demo``: a small mel + speaker conditioned model trained on the espeak-ng
corpus into OUT/wavenet-run, its test bits per sample, a generated sample with its figure, the training
curve, and (while the part is within its budget) the generation benchmark."""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from fastgen.cli.args import PROG, write_text
from fastgen.cli.demo import clear_demo_run, demo_run_dir
from fastgen.cli.wavenet import print_eval, print_sample_speed, recipes, report_training


# "full" trains ~1.5 minutes on 2 cores (the whole WaveNet part, benchmark included, stays under
# ~2.5 minutes); "quick" ~15 s. Tests shrink it further.
@dataclass(frozen=True)
class WaveNetDemoRun:
    model: dict                   # WaveNetConfig overrides (fastgen.recipes.wavenet.make_config)
    conditioning: str
    corpus_size: int
    steps: int
    batch_size: int
    crop: int
    lr: float
    val_crops: int
    max_test: Optional[int]       # test utterances for the test bits per sample (None: all)
    seconds: float                # audio to generate
    bench: bool = True            # run the generation benchmark into wavenet_bench.md


_MODEL = dict(residual_channels=32, skip_channels=64, layers_per_stack=8, stacks=2, upsample="repeat")
DEMO_WAVENET = {
    "quick": WaveNetDemoRun(_MODEL, "both", corpus_size=160, steps=40, batch_size=2, crop=2048,
                            lr=3e-3, val_crops=8, max_test=4, seconds=1.0),
    "full": WaveNetDemoRun(_MODEL, "both", corpus_size=160, steps=160, batch_size=4, crop=4096,
                           lr=3e-3, val_crops=16, max_test=None, seconds=2.0),
}


def wavenet_benchmark(quick: bool) -> str:
    """The WaveNet generation table for the demo: `fastgen bench wavenet --quick`'s for the R64 model
    only (the large model is `fastgen bench wavenet`'s), and with ``quick`` at batch 1 on one thread only."""
    from fastgen.benchmarking import wavenet as bench
    models = dict(list(bench.MODELS.items())[:1])
    settings = ((1, 1),) if quick else bench.SETTINGS
    return bench.format_wavenet_markdown(*bench.wavenet_results(True, models=models, settings=settings))


def _curve(result):
    from fastgen.viz import history_curve
    unigram = result.run["eval"]["unigram"]["val_bits_per_sample"]
    return history_curve(result.history, result.initial_eval,
                         {"train (per step)": "bits_per_sample", "validation": "eval_val_bits_per_sample"},
                         extra={"unigram baseline (validation)": ([0, result.summary["step"]], [unigram, unigram])},
                         title="WaveNet on the espeak-ng corpus: bits per sample", ylabel="bits/sample")


def _benchmark(out: Path, quick: bool) -> list[tuple[str, Path]]:
    bench = out / "wavenet_bench.md"
    print(f"running the WaveNet generation benchmark (R64 model{', batch 1, 1 thread' if quick else ''}) ...",
          flush=True)
    try:
        table = wavenet_benchmark(quick)
    except Exception as e:  # the benchmark is a bonus: never lose the demo's results to it
        print(f"{PROG} demo: the WaveNet benchmark failed: {type(e).__name__}: {e}", file=sys.stderr)
        return []
    write_text(bench, table)
    print(f"WaveNet benchmark: {bench}")
    return [("WaveNet generation benchmark", bench)]


def wavenet_part(out: Path, quick: bool, budget: float) -> list[tuple[str, Path]]:
    from fastgen.data import DataError, write_wav
    from fastgen.viz.audio import save_audio_figure
    wn = recipes()
    settings = DEMO_WAVENET["quick" if quick else "full"]
    start = time.perf_counter()
    run_dir = demo_run_dir(out, "wavenet")
    clear_demo_run(run_dir)
    spec = wn.DataSpec(wn.CORPUS, corpus_size=settings.corpus_size)
    train = wn.TrainSettings(steps=settings.steps, batch_size=settings.batch_size, crop=settings.crop,
                             lr=settings.lr, val_crops=settings.val_crops)
    print(f"training WaveNet ({settings.conditioning} conditioning, {'quick' if quick else 'full'} demo config, "
          f"on the espeak-ng speech corpus in {wn.corpus_dir(spec.corpus_size, spec.sample_rate)}) ...", flush=True)
    try:
        result = wn.train_run(settings.model, settings.conditioning, spec, train, run_dir,
                              log=lambda line: print("  " + line, flush=True))
    except DataError as e:
        print(f"{PROG} demo: skipped WaveNet training, no speech data: {e}", file=sys.stderr)
        return []
    report_training(result)
    model = result.model.eval()
    curve = out / "wavenet_curve.png"
    _curve(result).save(curve)
    files = [("WaveNet run (log.csv, checkpoint/)", result.out_dir), ("WaveNet training curve", curve)]

    print_eval(wn.evaluate_run(model, result.run, max_test=settings.max_test, splits=result.data))
    sample = wn.sample_run(model, result.run, settings.seconds, seed=0, splits=result.data,
                           progress=sys.stderr.isatty())
    wav, png = out / "wavenet_sample.wav", out / "wavenet.png"
    write_wav(wav, sample.waveform, sample.sample_rate)
    print_sample_speed(sample)
    save_audio_figure(png, [sample.waveform, sample.reference], sample.sample_rate,
                      [f"WaveNet sample ({sample.conditioning})", sample.reference_title],
                      title=f"WaveNet after {result.summary['step']} steps: generated vs real")
    files += [(f"WaveNet sample, {settings.seconds:g} s conditioned on {sample.conditioning}", wav),
              ("WaveNet waveform + log-mel spectrogram: generated vs real", png)]
    elapsed = time.perf_counter() - start
    print(f"WaveNet training, evaluation and sampling took {elapsed:.1f} s")
    if not settings.bench:
        return files
    if elapsed > budget:
        print(f"{PROG} demo: skipped the WaveNet generation benchmark: the part already took {elapsed:.0f} s of "
              f"its {budget:g} s budget (`fastgen bench wavenet --quick` runs it alone)", file=sys.stderr)
        return files
    return files + _benchmark(out, quick)
