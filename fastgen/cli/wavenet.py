"""``fastgen train|eval|sample|bench wavenet`` over fastgen.recipes.wavenet (speech data, crops, bits per
sample, mel/speaker conditioning); its demo part is in :mod:`fastgen.cli.wavenet_demo`."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fastgen.cli.args import (IMAGE_SUFFIXES, JSON_SUFFIXES, add_threads_flag, check_out_file, flag, given,
                              non_negative_float, non_negative_int, optional_path, positive_float, positive_int,
                              set_threads, user_errors, write_text)
from fastgen.cli.training import MICRO_BATCHES_HELP, train_command, warn_on_thread_change
from fastgen.recipes.family import DemoBudget, Family

# Flags that set WaveNetConfig fields (dest == the field); the rest of the config follows from the
# data (classes, sample rate, hop) and --conditioning (speakers, mel channels).
MODEL_FLAGS = {
    "residual_channels": (positive_int, "R", "residual channels R"),
    "skip_channels": (positive_int, "S", "skip channels S"),
    "layers_per_stack": (positive_int, "N", "layers per stack (dilations 1, 2, ..., 2^(N-1))"),
    "stacks": (positive_int, "N", "stacks of dilated layers"),
    "kernel_size": (positive_int, "K", "taps of each dilated convolution"),
    "head_channels": (positive_int, "N", "width of the output head's hidden layer"),
    "speaker_dim": (positive_int, "N", "speaker embedding size (speaker conditioning)"),
    "upsample": (str, "KIND", "mel upsampling to the sample rate: transposed (learned) or repeat"),
}
DATA_FLAGS = ("corpus_size", "sample_rate", "speaker_folders", "split_seed")
TRAIN_FLAGS = ("batch_size", "crop", "lr", "grad_clip", "seed", "eval_every", "checkpoint_every", "val_crops",
               "micro_batches")
DEFAULT_CONDITIONING = "both"


def recipes():
    from fastgen.recipes import wavenet
    return wavenet


# --- train ----------------------------------------------------------------------------------------

def _resume_conflicts(args: argparse.Namespace, run: dict) -> list[str]:
    """Flags given with --resume whose value differs from the run being resumed."""
    from fastgen.recipes.runs import differing_flags
    problems = differing_flags({name: getattr(args, name) for name in MODEL_FLAGS}, run["model"])
    problems += differing_flags({"conditioning": args.conditioning}, run)
    data = run["data"]
    if args.data is not None:
        spec = recipes().DataSpec.from_arg(args.data)
        if (spec.source, spec.path) != (data["source"], data["path"]):
            problems.append(f"--data {args.data} (the run has {data['path'] or data['source']})")
    problems += differing_flags({name: getattr(args, name) for name in DATA_FLAGS}, data)
    return problems + differing_flags({name: getattr(args, name) for name in TRAIN_FLAGS}, run["train"])


def _train_settings(args: argparse.Namespace):
    """(model overrides or config, conditioning, DataSpec, TrainSettings) for a new run or, with
    --resume, the run in --out as it was started (only --steps may change)."""
    from fastgen.models import WaveNetConfig
    from fastgen.recipes.runs import check_resume_flags, check_run_folder
    wn = recipes()
    out = Path(args.out)
    if args.resume:
        check_run_folder(out, resume=True)
        _, run = wn.read_run(out)
        check_resume_flags(out, _resume_conflicts(args, run), "--steps")
        warn_on_thread_change(run)
        stored = {k: v for k, v in run["train"].items() if k in wn.TrainSettings.__dataclass_fields__}
        if args.steps is not None:
            stored["steps"] = args.steps
        return (WaveNetConfig(**run["model"]), run["conditioning"], wn.spec_from_run(run),
                wn.TrainSettings(**stored))
    overrides = {name: getattr(args, name) for name in MODEL_FLAGS}
    data = {name: getattr(args, name) for name in DATA_FLAGS if getattr(args, name) is not None}
    spec = wn.DataSpec.from_arg(given(args, "data", wn.CORPUS), **data)
    chosen = {name: getattr(args, name) for name in ("steps",) + TRAIN_FLAGS if getattr(args, name) is not None}
    return overrides, given(args, "conditioning", DEFAULT_CONDITIONING), spec, wn.TrainSettings(**chosen)


def report_training(result) -> None:
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


def _add_train_arguments(m: argparse.ArgumentParser) -> None:
    from fastgen.models import WaveNetConfig
    wn = recipes()
    defaults, d = WaveNetConfig(), wn.TrainSettings()
    m.add_argument("--out", required=True, metavar="DIR", help="run folder (created)")
    g = m.add_argument_group("data")
    g.add_argument("--data", metavar="corpus|DIR",
                   help="corpus: the espeak-ng speech corpus (4 synthetic speakers), synthesised once into "
                        "$FASTGEN_DATA_DIR or ~/.cache/fastgen and reused; or a folder of WAV files "
                        "(default corpus)")
    g.add_argument("--corpus-size", type=positive_int, metavar="N",
                   help=f"utterances of the corpus (default {wn.DEFAULT_CORPUS_SIZE})")
    g.add_argument("--sample-rate", type=positive_int, metavar="HZ", help="audio rate (default 16000)")
    g.add_argument("--speaker-folders", action="store_true", default=None,
                   help="a WAV folder holds one subfolder per speaker (VCTK layout); default: one speaker")
    g.add_argument("--split-seed", type=non_negative_int, metavar="S",
                   help="seed of the train/validation/test split by utterance (default 0; 80/10/10)")
    g.add_argument("--conditioning", choices=wn.CONDITIONINGS,
                   help="speaker: a learned speaker embedding (global); mel: the utterance's log-mel frames "
                        f"(local); both; none (default {DEFAULT_CONDITIONING})")
    t = m.add_argument_group("training")
    t.add_argument("--steps", type=positive_int, metavar="N",
                   help=f"optimizer steps in total (default {d.steps}; with --resume: the run's, or more)")
    t.add_argument("--batch-size", type=positive_int, metavar="B", help=f"crops per step (default {d.batch_size})")
    t.add_argument("--crop", type=positive_int, metavar="N",
                   help=f"samples per crop, a multiple of the hop (256) with mels (default {d.crop})")
    t.add_argument("--lr", type=positive_float, help=f"Adam learning rate (default {d.lr})")
    t.add_argument("--grad-clip", type=positive_float, metavar="NORM",
                   help=f"clip the gradient's global norm (default {d.grad_clip})")
    t.add_argument("--seed", type=non_negative_int, help=f"training seed (default {d.seed})")
    t.add_argument("--val-crops", type=positive_int, metavar="N",
                   help=f"fixed validation crops (default {d.val_crops})")
    t.add_argument("--eval-every", type=positive_int, metavar="STEPS",
                   help=f"steps between validations (default {wn.EPOCH_STEPS}; also at the end)")
    t.add_argument("--checkpoint-every", type=positive_int, metavar="STEPS",
                   help=f"steps between checkpoints (default {wn.EPOCH_STEPS}; also at the end)")
    t.add_argument("--micro-batches", type=positive_int, metavar="M", help=MICRO_BATCHES_HELP)
    t.add_argument("--resume", action="store_true",
                   help="continue the run in --out exactly where its checkpoint stopped")
    add_threads_flag(t)
    s = m.add_argument_group("model size (defaults: fastgen's WaveNet benchmark model)")
    for name, (kind, metavar, what) in MODEL_FLAGS.items():
        extra = {"choices": ("transposed", "repeat")} if name == "upsample" else {}
        s.add_argument(flag(name), dest=name, type=kind, metavar=metavar,
                       help=f"{what} (default {getattr(defaults, name) if name != 'head_channels' else 'S'})",
                       **extra)


# --- eval and sample ------------------------------------------------------------------------------

def print_eval(result: dict) -> None:
    print(f"test: {result['bits_per_sample']:.3f} bits/sample over {result['n_samples']:,} samples of "
          f"{result['n_utterances']} test utterance{'s' if result['n_utterances'] != 1 else ''} "
          f"(teacher forced, whole utterances)")
    gap = result["unigram_bits_per_sample"] - result["bits_per_sample"]
    print(f"mu-law unigram baseline on the same samples: {result['unigram_bits_per_sample']:.3f} bits/sample "
          f"(WaveNet {abs(gap):.3f} bits/sample {'below' if gap >= 0 else 'above'} it)")


def print_sample_speed(sample) -> None:
    n = sample.waveform.numel()
    realtime = sample.samples_per_s / sample.sample_rate
    print(f"generated {n:,} samples ({n / sample.sample_rate:.2f} s at {sample.sample_rate:,} Hz) in "
          f"{sample.seconds:.2f} s with the {sample.backend} path: {sample.samples_per_s:,.0f} samples/s = "
          f"{realtime:.2f}x real time (real-time factor {1 / realtime if realtime > 0 else float('inf'):.2f} s "
          "of compute per second of audio)")


def _add_eval_arguments(m: argparse.ArgumentParser) -> None:
    m.add_argument("--checkpoint", required=True, metavar="DIR",
                   help="a `fastgen train wavenet` --out folder, or its checkpoint/ subfolder")
    m.add_argument("--max-test", type=positive_int, metavar="N", help="first N test utterances (default: all)")
    m.add_argument("--out", metavar="FILE", help="where to write the JSON (default: RUN/eval.json)")
    add_threads_flag(m)


def _add_sample_arguments(m: argparse.ArgumentParser) -> None:
    m.add_argument("--checkpoint", required=True, metavar="DIR",
                   help="a `fastgen train wavenet` --out folder, or its checkpoint/ subfolder")
    m.add_argument("--out", required=True, metavar="WAV", help="audio file to write")
    m.add_argument("--seconds", type=float, default=2.0, help="length of the audio (default %(default)s)")
    m.add_argument("--speaker", type=int, metavar="K",
                   help="speaker id of a speaker-conditioned model (default: the mel source's, or 0)")
    m.add_argument("--mel-from", metavar="WAV",
                   help="local conditioning from this utterance's log-mels (default: a test utterance)")
    m.add_argument("--temperature", type=non_negative_float, default=1.0,
                   help="softmax temperature (0 = argmax; default %(default)s)")
    m.add_argument("--seed", type=non_negative_int, default=0, help="sampling seed (default %(default)s)")
    m.add_argument("--backend", choices=("auto", "cpu", "reference", "naive"), default="auto",
                   help="generation path: cpu (the cached C++ kernel; auto picks it), reference (queues "
                        "in PyTorch), naive (full recomputation, very slow) (default %(default)s)")
    m.add_argument("--png", metavar="FILE", help="also draw the waveform and log-mel spectrogram, beside the "
                                                 "real utterance the mels came from")
    add_threads_flag(m)


# --- the family -----------------------------------------------------------------------------------

class WaveNetFamily(Family):
    name = "wavenet"
    title = "WaveNet"
    verbs = ("train", "eval", "sample", "bench", "gpu", "demo")
    sample_files = "WAV, PNG"
    demo_run = True
    # ~2 minutes of training on 2 cores, evaluation and sampling; the generation benchmark (an extra,
    # skipped once the part is over budget) up to ~2 more. --quick: ~15 s of training.
    demo_budget = DemoBudget(full=150, quick=25)
    help = {
        "train": "WaveNet on speech (random crops; validation bits/sample)",
        "eval": "test bits/sample of a trained WaveNet, beside the unigram baseline",
        "sample": "generate audio with a trained WaveNet (WAV, optional PNG)",
        "bench": "WaveNet generation: samples/s of every path, batch 1 (1 thread) and 16 (most threads)",
        "demo": "Train a small mel + speaker conditioned WaveNet on the espeak-ng speech corpus (synthesised "
                "once into $FASTGEN_DATA_DIR or ~/.cache/fastgen), report its test bits per sample beside the "
                "mu-law unigram baseline, generate audio from a test utterance's mels into wavenet_sample.wav, "
                "draw generated vs real waveform and spectrogram into wavenet.png, and time WaveNet generation "
                "into wavenet_bench.md.",
    }
    description = {
        "train": "Train WaveNet on speech with fastgen.train's Trainer: every step takes --batch-size "
                 "random crops of --crop samples (hop-aligned) from the training utterances, drawn "
                 "from the Trainer's seeded generator (so --resume is exact). Validation bits per "
                 "sample on fixed crops every --eval-every steps, beside the mu-law unigram baseline. "
                 "The checkpoint stores the model config, the data and the training settings; "
                 "`fastgen eval wavenet` gives the test bits per sample, `fastgen sample wavenet` audio.",
        "eval": "Teacher-forced test NLL in bits per sample over the run's whole test "
                "utterances (deterministic), beside the mu-law unigram baseline on the "
                "same samples; writes eval.json beside the checkpoint.",
        "sample": "Generate --seconds of audio with the cached generation kernel "
                  "(progress bar in samples/s; the speed and real-time factor are "
                  "printed at the end) into a 16-bit WAV. A mel-conditioned model takes "
                  "the log-mels of --mel-from WAV, or of a test utterance of the run.",
    }

    def add_arguments(self, verb: str, parser: argparse.ArgumentParser) -> None:
        add = {"train": _add_train_arguments, "eval": _add_eval_arguments, "sample": _add_sample_arguments}
        if verb in add:
            add[verb](parser)

    def train(self, args: argparse.Namespace) -> int:
        def run(out: Path):
            model, conditioning, spec, settings = _train_settings(args)
            return recipes().train_run(model, conditioning, spec, settings, out, resume=args.resume, log=print)
        return train_command(args, self.name, run, checkpoint_default=str(recipes().EPOCH_STEPS),
                             length_flag="--steps", position=lambda s: str(s["step"]), report=report_training,
                             done=f"; test bits/sample: `fastgen eval wavenet --checkpoint {args.out}`")

    def evaluate(self, args: argparse.Namespace) -> int:
        set_threads(args)
        wn = recipes()
        check_out_file(optional_path(args.out), "--out", JSON_SUFFIXES, "the evaluation")
        with user_errors():
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
        write_text(out, json.dumps(report, indent=1))
        print(f"WaveNet at step {ckpt.step} ({run['conditioning']} conditioning):")
        print_eval(result)
        print(f"data: {result['split']}")
        print(f"written to {out}")
        return 0

    def sample(self, args: argparse.Namespace) -> int:
        from fastgen.data import AUDIO_EXTENSIONS, write_wav
        set_threads(args)
        wn = recipes()
        wav = Path(args.out)
        check_out_file(wav, "--out", AUDIO_EXTENSIONS, "the sample")
        check_out_file(optional_path(args.png), "--png", IMAGE_SUFFIXES, "the figure")
        with user_errors():
            model, run, ckpt = wn.load_run(args.checkpoint)
            sample = wn.sample_run(model, run, args.seconds, speaker=args.speaker, mel_from=args.mel_from,
                                   temperature=args.temperature, seed=args.seed, backend=args.backend,
                                   progress=True, reference=args.png is not None)
        wav.parent.mkdir(parents=True, exist_ok=True)
        write_wav(wav, sample.waveform, sample.sample_rate)
        print(f"WaveNet (checkpoint step {ckpt.step}), conditioned on {sample.conditioning}; temperature "
              f"{args.temperature:g}, seed {args.seed}")
        print_sample_speed(sample)
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

    def bench(self, args: argparse.Namespace) -> str:
        from fastgen.benchmarking.wavenet import run_wavenet_benchmark
        return run_wavenet_benchmark(threads=args.threads, quick=args.quick)

    def gpu_bench(self, quick: bool) -> str:
        from fastgen.benchmarking import wavenet
        log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
        return wavenet.format_gpu_wavenet_markdown(wavenet.gpu_wavenet_results(quick, log=log))

    def demo(self, out: Path, quick: bool, budget: float) -> list[tuple[str, Path]]:
        from fastgen.cli.wavenet_demo import wavenet_part
        return wavenet_part(out, quick, budget)


FAMILY = WaveNetFamily()
