"""User mistakes end in one line naming the problem and exit status 2, before any work (issue 11,
items 7, 10 and 11): output paths, non-finite numbers, damaged run files, changed training data on
--resume, sizes that cannot fit. The memory cases run in a subprocess under an address-space limit
(tests/memory_limit.py), so a regressed check fails fast instead of exhausting the machine."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import fastgen.cli as cli
from fastgen.cli import attention as attention_cli
from fastgen.data import write_idx, write_wav
from fastgen.models import AlignDRAW, DRAW
from fastgen.viz import model_samples
from tests.memory_limit import run_limited

DRAW_TINY = ["--T", "2", "--enc-size", "8", "--dec-size", "8", "--z-size", "2", "--read-N", "2", "--write-N", "2",
             "--batch-size", "32", "--max-val", "16", "--threads", "1"]
WAVENET_TINY = ["--residual-channels", "4", "--skip-channels", "4", "--layers-per-stack", "2", "--stacks", "1",
                "--conditioning", "mel", "--batch-size", "2", "--crop", "256", "--val-crops", "2", "--threads", "1"]


def _idx_folder(folder: Path, seed: int = 0) -> Path:
    """The four MNIST-layout IDX files: 64 random training images, 16 test images."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", 64), ("t10k", 16)):
        write_idx(folder / f"{split}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(folder / f"{split}-labels-idx1-ubyte", rng.integers(0, 10, n, dtype=np.uint8))
    return folder


def _wav_folder(folder: Path, seed: int = 0) -> Path:
    """10 WAVs of 0.1 s of noise at 16 kHz (one speaker: an 8/1/1 split)."""
    gen = torch.Generator().manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(10):
        write_wav(folder / f"u{i}.wav", 0.3 * torch.randn(1600, generator=gen), 16000)
    return folder


def train_draw(out: Path, data: Path, *extra: str) -> int:
    return cli.main(["train", "draw", "--out", str(out), "--data", str(data), *DRAW_TINY, *extra])


def train_wavenet(out: Path, data: Path, *extra: str) -> int:
    return cli.main(["train", "wavenet", "--out", str(out), "--data", str(data), *WAVENET_TINY, *extra])


@pytest.fixture(scope="module")
def draw_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("draw")
    assert train_draw(root / "run", _idx_folder(root / "data"), "--epochs", "1") == 0
    return root / "run"


@pytest.fixture(scope="module")
def wavenet_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("wavenet")
    assert train_wavenet(root / "run", _wav_folder(root / "data"), "--steps", "1") == 0
    return root / "run"


def fails(capsys, argv: list[str], *words: str) -> str:
    """cli.main(argv) ends with exit status 2 and one line on stderr holding every one of ``words``."""
    capsys.readouterr()
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, err
    return err


@pytest.fixture
def no_work(monkeypatch):
    """Every piece of work a command could start before its checks: any call is a test failure."""
    def forbidden(*args, **kwargs):
        raise AssertionError("the command started its work before checking its arguments")
    for name in ("fastgen.recipes.draw.load_split", "fastgen.recipes.draw.load_run",
                 "fastgen.recipes.wavenet.load_splits", "fastgen.recipes.wavenet.load_run",
                 "fastgen.recipes.wavenet.data.load_splits", "fastgen.recipes.wavenet.training.load_splits",
                 "fastgen.recipes.wavenet.training.load_run",
                 "fastgen.benchmarking.draw.run_draw_benchmark"):
        monkeypatch.setattr(name, forbidden)


# --- output paths, checked before the work ----------------------------------------------------------

def test_train_out_that_is_a_file(tmp_path, capsys, no_work):
    out = tmp_path / "taken"
    out.write_text("x")
    fails(capsys, ["train", "draw", "--out", str(out)], f"--out {out} is a file")
    fails(capsys, ["train", "wavenet", "--out", str(out)], f"--out {out} is a file")
    inner = out / "run"
    fails(capsys, ["train", "draw", "--out", str(inner)], f"--out {inner}: {out} is a file, not a folder")


def test_demo_out_that_is_a_file(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(attention_cli, "demo_images", lambda: pytest.fail("the demo started before checking --out"))
    out = tmp_path / "taken"
    out.write_text("x")
    fails(capsys, ["demo", "--out", str(out), "--quick"], f"--out {out} is a file")


@pytest.mark.parametrize("command, flag, name, words", [
    (["eval", "draw"], "--out", "folder", ["is a folder", ".json"]),
    (["eval", "draw"], "--out", "report", [".json; give a file name"]),
    (["eval", "wavenet"], "--out", "folder", ["is a folder"]),
    (["eval", "wavenet"], "--out", "report.txt", ["the evaluation is written as .json"]),
    (["sample", "draw"], "--out", "folder", ["is a folder", ".png"]),
    (["sample", "draw"], "--out", "grid", ["the image grid is written as .png"]),
    (["sample", "draw"], "--gif", "anim.png", ["the animation is written as .gif"]),
    (["sample", "wavenet"], "--out", "folder", ["is a folder", ".wav"]),
    (["sample", "wavenet"], "--out", "audio.mp3", ["the sample is written as .wav"]),
    (["sample", "wavenet"], "--png", "figure", ["the figure is written as .png"]),
])
def test_eval_and_sample_outputs(tmp_path, capsys, no_work, command, flag, name, words):
    (tmp_path / "folder").mkdir()
    path = tmp_path / name
    argv = [*command, "--checkpoint", str(tmp_path / "no-run")]
    if command[0] == "sample" and flag != "--out":
        argv += ["--out", str(tmp_path / ("x.wav" if command[1] == "wavenet" else "x.png"))]
    fails(capsys, argv + [flag, str(path)], f"{flag} {path}", *words)


def test_output_under_a_file(tmp_path, capsys, no_work):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = blocker / "eval.json"
    fails(capsys, ["eval", "draw", "--checkpoint", str(tmp_path), "--out", str(out)], f"{blocker} is a file")


@pytest.mark.parametrize("name, words", [("folder", ["is a folder"]), ("table", ["written as .md"])])
def test_bench_out_before_the_benchmark(tmp_path, capsys, no_work, name, words):
    (tmp_path / "folder").mkdir()
    fails(capsys, ["bench", "draw", "--quick", "--out", str(tmp_path / name)], *words)


# --- numbers --------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [
    ["train", "draw", "--out", "x", "--lr", "inf"],
    ["train", "draw", "--out", "x", "--grad-clip", "inf"],
    ["train", "wavenet", "--out", "x", "--lr", "nan"],
    ["train", "wavenet", "--out", "x", "--lr=-inf"],
])
def test_non_finite_numbers_are_usage_errors(capsys, argv):
    # --lr inf passed the "> 0" check and failed at step 2 with a FloatingPointError.
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    assert "must be a finite number > 0" in capsys.readouterr().err


# --- damaged run files ------------------------------------------------------------------------------

@pytest.mark.parametrize("damage, words", [
    (b"step,loss\n1,\xff\xfe\n", ["log.csv is damaged", "utf-8"]),
    (b"step,loss\n1,0.5,7\n", ["log.csv is damaged", "line 2 has 3 fields, the header 2"]),
    (b"loss\n0.5\n", ["no step column"]),
])
def test_resume_with_a_damaged_log(draw_run, tmp_path, capsys, damage, words):
    # A damaged log.csv blocked --resume with a UnicodeDecodeError traceback.
    run = tmp_path / "run"
    shutil.copytree(draw_run, run)
    (run / "log.csv").write_bytes(damage)
    fails(capsys, ["train", "draw", "--out", str(run), "--resume", "--epochs", "2"], *words)
    assert (run / "log.csv").read_bytes() == damage  # refused before the Trainer rewrote it


def _edit_run(src: Path, dst: Path, edit) -> Path:
    shutil.copytree(src, dst)
    path = dst / "checkpoint" / "config.json"
    stored = json.loads(path.read_text())
    edit(stored["config"])
    path.write_text(json.dumps(stored))
    return dst


@pytest.mark.parametrize("edit, words", [
    (lambda run: run.pop("model"), ["no 'model' object"]),
    (lambda run: run["data"].pop("binarize"), ["'data' lacks 'binarize'"]),
    (lambda run: run["model"].update(T=10**9), ["invalid model config", "TB of memory"]),
    (lambda run: run["model"].update(T="ten"), ["invalid model config", "T must be a positive int"]),
    (lambda run: run["data"].update(binarize_seed=-1), ["invalid data settings"]),
    (lambda run: run["eval"].update(seed="x"), ["invalid evaluation settings"]),
])
@pytest.mark.parametrize("command", [["eval", "draw"], ["sample", "draw"]])
def test_bad_values_in_a_draw_run(draw_run, tmp_path, capsys, edit, words, command):
    run = _edit_run(draw_run, tmp_path / "run", edit)
    out = tmp_path / ("x.json" if command[0] == "eval" else "x.png")
    fails(capsys, [*command, "--checkpoint", str(run), "--out", str(out)], "config.json", *words)
    assert not out.exists()


@pytest.mark.parametrize("edit, words", [
    (lambda run: run.pop("model"), ["no 'model' object"]),
    (lambda run: run["model"].update(sample_rate=1), ["sample_rate must be an integer from 1,000 to 384,000 Hz"]),
    (lambda run: run["data"].update(sample_rate=1), ["sample_rate must be an integer from 1,000"]),
    (lambda run: run["model"].update(layers_per_stack=40), ["TB of memory"]),
    (lambda run: run.update(conditioning="loud"), ["invalid conditioning"]),
    (lambda run: run["eval"].pop("unigram"), ["'eval' lacks 'unigram'"]),
])
@pytest.mark.parametrize("command", [["eval", "wavenet"], ["sample", "wavenet"]])
def test_bad_values_in_a_wavenet_run(wavenet_run, tmp_path, capsys, edit, words, command):
    # A stored sample rate of 1 ended in a ZeroDivisionError, a missing model in KeyError: 'model'.
    run = _edit_run(wavenet_run, tmp_path / "run", edit)
    out = tmp_path / ("x.json" if command[0] == "eval" else "x.wav")
    fails(capsys, [*command, "--checkpoint", str(run), "--out", str(out)], "config.json", *words)


def test_bad_training_settings_in_a_wavenet_run(wavenet_run, tmp_path, capsys):
    run = _edit_run(wavenet_run, tmp_path / "run", lambda r: r["train"].update(lr="fast"))
    fails(capsys, ["train", "wavenet", "--out", str(run), "--resume", "--steps", "2"], "lr must be a finite number")


# --- the training data of a resumed run -------------------------------------------------------------

def test_draw_resume_refuses_changed_images(tmp_path, capsys):
    data, run = _idx_folder(tmp_path / "data"), tmp_path / "run"
    assert train_draw(run, data, "--epochs", "1") == 0
    assert cli.main(["train", "draw", "--out", str(run), "--resume", "--epochs", "2"]) == 0  # same data: fine
    _idx_folder(data, seed=1)  # as many images, other pixels
    err = fails(capsys, ["train", "draw", "--out", str(run), "--resume", "--epochs", "3"],
                "cannot resume: the training data", str(data), "differ from those the run", "fingerprint")
    assert "restore them, or start a new run" in err


def test_wavenet_resume_refuses_a_changed_wav(tmp_path, capsys):
    data, run = _wav_folder(tmp_path / "data"), tmp_path / "run"
    assert train_wavenet(run, data, "--steps", "1") == 0
    assert cli.main(["train", "wavenet", "--out", str(run), "--resume", "--steps", "2"]) == 0
    _wav_folder(data, seed=1)
    fails(capsys, ["train", "wavenet", "--out", str(run), "--resume", "--steps", "3"],
          "cannot resume: the training data", str(data), "fingerprint")


def test_the_fingerprint_is_stored_and_follows_the_data(draw_run, wavenet_run):
    for run in (draw_run, wavenet_run):
        stored = json.loads((run / "checkpoint" / "config.json").read_text())["config"]
        assert stored["data"]["fingerprint"].startswith("sha256:") and len(stored["data"]["fingerprint"]) == 71


# --- sizes that cannot fit, under an address-space limit ------------------------------------------

def _cli_limited(argv: list[str]):
    return run_limited(f"import fastgen.cli as cli; raise SystemExit(cli.main({argv!r}))", timeout=300)


def _one_line_exit_2(done, *words: str) -> None:
    assert done.returncode == 2, done.stderr[-3000:]
    err = done.stderr
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, err


def test_sample_draw_with_a_hundred_million_images(draw_run, tmp_path):
    # `sample aligndraw --n 100000000` was OOM-killed; the grid alone would need about 940 GB.
    done = _cli_limited(["sample", "draw", "--checkpoint", str(draw_run), "--out", str(tmp_path / "x.png"),
                         "--n", "100000000"])
    _one_line_exit_2(done, "fastgen sample: 100,000,000 samples at --scale 2", "of memory")


def test_caption_samples_check_the_grid_before_sampling(tmp_path):
    model = AlignDRAW(T=2, infer_size=4, gen_size=4, z_size=2, embed_size=4, lang_size=4, align_size=4)
    with pytest.raises(model_samples.FigureSizeError, match="100,000,000 samples at --scale 2 with 2 GIF frames"):
        model_samples.write_caption_samples(model, {}, ["the digit 3 is on the left of the digit 7 ."], 10**8, 0,
                                  tmp_path / "x.png", tmp_path / "x.gif")
    assert not (tmp_path / "x.png").exists()


def test_large_n_is_sampled_in_batches(tmp_path, monkeypatch):
    import fastgen.viz as viz
    monkeypatch.setattr(model_samples, "SAMPLE_BATCH", 4)
    model = DRAW(T=3, enc_size=4, dec_size=4, z_size=2, read_N=2, write_N=2).eval()
    calls, shown, original = [], {}, model.sample

    def recorded(n, *args, **kwargs):
        calls.append(original(n, *args, **kwargs))
        return calls[-1]

    def spy(name):
        real = getattr(viz, name)

        def wrapper(*args, **kwargs):
            shown[name] = args
            return real(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(model, "sample", recorded)
    for name in ("image_grid", "canvas_frames"):
        monkeypatch.setattr(viz, name, spy(name))
    model_samples.write_draw_samples(model, 10, 0, tmp_path / "x.png", tmp_path / "x.gif", scale=1)
    assert [c[0].shape[0] for c in calls] == [4, 4, 2]
    assert torch.equal(shown["image_grid"][0], torch.cat([c[0] for c in calls]))  # every image, in order
    canvases, windows = shown["canvas_frames"][:2]
    assert canvases.shape == (3, 10, 1, 28, 28) and windows.shape == (3, 10, 5)
    assert torch.equal(canvases, torch.cat([c[1] for c in calls], dim=1))


def test_wavenet_layers_that_cannot_fit(tmp_path):
    data = _wav_folder(tmp_path / "data")
    done = _cli_limited(["train", "wavenet", "--out", str(tmp_path / "run"), "--data", str(data),
                         *WAVENET_TINY, "--steps", "1", "--layers-per-stack", "40"])
    _one_line_exit_2(done, "fastgen train: WaveNetConfig", "of memory")
    assert not (tmp_path / "run" / "checkpoint").exists()


def test_wavenet_training_step_that_cannot_fit(tmp_path):
    # 22 layers fit as a model (queues of 4 x 8M values) but not as a step padding 256-sample crops by 2M.
    data = _wav_folder(tmp_path / "data")
    done = _cli_limited(["train", "wavenet", "--out", str(tmp_path / "run"), "--data", str(data),
                         *WAVENET_TINY, "--steps", "1", "--layers-per-stack", "22"])
    _one_line_exit_2(done, "fastgen train: a training step (2 crops of 256 samples through 22 layers, "
                           "dilated up to 2,097,152 samples)", "of memory")


def test_wavenet_seconds_that_cannot_fit(wavenet_run, tmp_path):
    done = _cli_limited(["sample", "wavenet", "--checkpoint", str(wavenet_run), "--out", str(tmp_path / "x.wav"),
                         "--seconds", "1e9"])
    _one_line_exit_2(done, "--seconds 1e+09 (16,000,000,000,000 samples)", "of memory")
    assert not (tmp_path / "x.wav").exists()


def test_wavenet_mel_source_at_1hz(wavenet_run, tmp_path):
    # A 4 KB --mel-from WAV whose header said 1 Hz took 1.76 GB (resampled x16,000, then its log-mels).
    import wave
    one_hz = tmp_path / "one-hz.wav"
    with wave.open(str(one_hz), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(1)
        f.writeframes(bytes(4000))
    done = _cli_limited(["sample", "wavenet", "--checkpoint", str(wavenet_run), "--out", str(tmp_path / "x.wav"),
                         "--mel-from", str(one_hz)])
    _one_line_exit_2(done, str(one_hz), "sample rate 1 Hz")


def test_train_wavenet_sample_rate_outside_the_range(tmp_path, capsys):
    fails(capsys, ["train", "wavenet", "--out", str(tmp_path / "run"), "--data", str(_wav_folder(tmp_path / "d")),
                   "--sample-rate", "1"], "sample_rate must be an integer from 1,000 to 384,000 Hz")
