"""fastgen train -> eval -> sample -> resume for WaveNet, on tiny models and tiny speech data (a folder
of synthetic WAVs in two speaker folders, and a 24-utterance espeak-ng corpus when espeak-ng is
installed), and the CLI's error messages."""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import fastgen.cli as cli
from fastgen.data import read_wav, write_wav
from fastgen.recipes import wavenet as wn

RATE = 16000
TINY = ["--residual-channels", "8", "--skip-channels", "8", "--layers-per-stack", "3", "--stacks", "1",
        "--upsample", "repeat"]
TRAIN = ["--batch-size", "2", "--crop", "512", "--val-crops", "2", "--eval-every", "2", "--lr", "3e-3",
         "--threads", "1"]
HAVE_ESPEAK = shutil.which("espeak-ng") is not None


def _utterance(rng: np.random.Generator, n: int, f0: float) -> np.ndarray:
    """A voiced-sounding signal: a few harmonics of a wobbling pitch under a syllable envelope, plus noise."""
    t = np.arange(n) / RATE
    pitch = f0 * (1 + 0.05 * np.sin(2 * np.pi * 3 * t))
    phase = 2 * np.pi * np.cumsum(pitch) / RATE
    voiced = sum(np.sin(k * phase) / k for k in range(1, 5))
    envelope = np.clip(np.sin(2 * np.pi * 2.5 * t), 0, None) ** 0.5
    return (0.3 * envelope * voiced + 0.01 * rng.standard_normal(n)).astype(np.float32)


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> Path:
    """Two speaker folders of 6 WAVs each (0.3-0.5 s): a 4/1/1 split per speaker."""
    root = tmp_path_factory.mktemp("speech")
    rng = np.random.default_rng(0)
    for s, (name, f0) in enumerate((("alice", 210.0), ("bob", 110.0))):
        (root / name).mkdir()
        for i in range(6):
            n = int(rng.integers(5000, 8000))
            write_wav(root / name / f"u{i}.wav", torch.from_numpy(_utterance(rng, n, f0)), RATE)
    return root


def train(out: Path, data: Path, *extra: str) -> int:
    return cli.main(["train", "wavenet", "--out", str(out), "--data", str(data), "--speaker-folders", *TINY,
                     *TRAIN, *extra])


@pytest.fixture(scope="module")
def run(speech, tmp_path_factory) -> Path:
    """A 4-step mel + speaker conditioned run on the speech folder, shared by the tests below."""
    out = tmp_path_factory.mktemp("runs") / "both"
    assert train(out, speech, "--steps", "4", "--conditioning", "both") == 0
    return out


# --- train ----------------------------------------------------------------------------------------

def test_train_writes_log_checkpoint_and_run_description(run):
    rows = (run / "log.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert len(rows) == 1 + 4 and "bits_per_sample" in header and "eval_val_bits_per_sample" in header
    assert rows[-1].split(",")[header.index("eval_val_bits_per_sample")] != ""  # validated at the end
    config = json.loads((run / "checkpoint" / "config.json").read_text())
    assert config["step"] == 4
    described = config["config"]
    assert described["kind"] == "wavenet" and described["conditioning"] == "both"
    model = described["model"]
    assert model["residual_channels"] == 8 and model["speakers"] == 2 and model["cond_channels"] == 80
    assert model["sample_rate"] == RATE and model["hop_length"] == 256 and model["upsample"] == "repeat"
    data = described["data"]
    assert data["source"] == "folder" and data["speaker_folders"] is True
    assert (data["n_train"], data["n_val"], data["n_test"]) == (8, 2, 2)
    assert described["train"]["crop"] == 512 and described["train"]["steps"] == 4
    assert described["eval"]["val_crops"] == 2 and 0 < described["eval"]["unigram"]["val_bits_per_sample"] < 8.1
    summary = json.loads((run / "summary.json").read_text())
    assert math.isfinite(summary["eval"]["eval_val_bits_per_sample"])


def test_train_prints_validation_and_baseline(tmp_path, speech, capsys):
    assert train(tmp_path / "r", speech, "--steps", "2", "--conditioning", "speaker") == 0
    out = capsys.readouterr().out
    assert "validation before training:" in out and "2 speakers" in out
    line = next(l for l in out.splitlines() if l.startswith("validation:"))
    assert "->" in line and "bits/sample" in line and "unigram baseline" in line
    assert "fastgen eval wavenet --checkpoint" in out


def test_training_beats_the_unigram_baseline(tmp_path, speech):
    """30 steps on the easy synthetic voices: validation falls from ~8 bits below the unigram baseline."""
    assert train(tmp_path / "r", speech, "--steps", "30", "--conditioning", "none", "--eval-every", "30",
                 "--batch-size", "4", "--lr", "1e-2") == 0
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    unigram = summary["model_config"]["eval"]["unigram"]["val_bits_per_sample"]
    assert summary["eval"]["eval_val_bits_per_sample"] < min(7.5, unigram)


# --- eval -----------------------------------------------------------------------------------------

def test_eval_writes_json_with_the_unigram_baseline(run, capsys):
    assert cli.main(["eval", "wavenet", "--checkpoint", str(run), "--threads", "1"]) == 0
    report = json.loads((run / "eval.json").read_text())
    assert report["unit"] == "bits/sample" and report["checkpoint_step"] == 4 and report["model"] == "wavenet"
    assert 0 < report["value"] < 10 and 0 < report["baseline"]["value"] < 8.1
    assert report["baseline"]["name"] == "mu-law unigram"
    assert report["n_utterances"] == report["n_test_utterances"] == 2
    assert "teacher-forced" in report["definition"]
    printed = capsys.readouterr().out
    assert "bits/sample" in printed and "unigram baseline" in printed and str(run / "eval.json") in printed
    # deterministic: whole utterances, no sampling
    out = run / "again.json"
    assert cli.main(["eval", "wavenet", "--checkpoint", str(run / "checkpoint"), "--out", str(out),
                     "--max-test", "1"]) == 0
    again = json.loads(out.read_text())
    assert again["n_utterances"] == 1 and again["n_samples"] < report["n_samples"]
    model, described, _ = wn.load_run(run)
    direct = wn.evaluate_run(model, described)
    assert direct["bits_per_sample"] == pytest.approx(report["value"], rel=1e-9)


# --- sample ---------------------------------------------------------------------------------------

def test_sample_writes_wav_png_and_speed(run, tmp_path, capsys):
    wav, png = tmp_path / "a.wav", tmp_path / "a.png"
    assert cli.main(["sample", "wavenet", "--checkpoint", str(run), "--seconds", "0.1", "--out", str(wav),
                     "--png", str(png), "--threads", "1"]) == 0
    audio, rate = read_wav(wav)
    assert rate == RATE and audio.numel() == 1600
    assert audio.abs().max() > 0  # not silence
    with Image.open(png) as im:
        assert im.format == "PNG" and im.width >= 600 and im.height >= 500  # two panels
    captured = capsys.readouterr()
    assert "samples/s" in captured.out and "real time" in captured.out and "real-time factor" in captured.out
    assert "log-mels of test utterance" in captured.out and str(wav) in captured.out
    assert "sample/s" in captured.err  # the tqdm bar


def test_sample_is_seeded(run, tmp_path):
    paths = [tmp_path / f"{i}.wav" for i in range(3)]
    for path, seed in zip(paths, ("1", "1", "2")):
        assert cli.main(["sample", "wavenet", "--checkpoint", str(run), "--seconds", "0.05", "--out", str(path),
                         "--seed", seed]) == 0
    a, b, c = (read_wav(p)[0] for p in paths)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_sample_backends_agree(run, tmp_path):
    """The cached kernel and the plain-PyTorch queues draw the same tokens from the same seed."""
    waves = []
    for backend in ("cpu", "reference"):
        path = tmp_path / f"{backend}.wav"
        assert cli.main(["sample", "wavenet", "--checkpoint", str(run), "--seconds", "0.02", "--out", str(path),
                         "--backend", backend, "--speaker", "1"]) == 0
        waves.append(read_wav(path)[0])
    assert torch.equal(*waves)


def test_sample_from_a_wavs_mels_and_speaker(run, speech, tmp_path, capsys):
    wav = tmp_path / "b.wav"
    source = speech / "bob" / "u0.wav"
    assert cli.main(["sample", "wavenet", "--checkpoint", str(run), "--seconds", "0.8", "--out", str(wav),
                     "--mel-from", str(source), "--speaker", "1", "--temperature", "0.5"]) == 0
    assert read_wav(wav)[0].numel() == round(0.8 * RATE)
    out = capsys.readouterr().out
    assert "speaker 1" in out and f"log-mels of {source}" in out and "silence frames" in out  # 0.8 s > the WAV


# --- resume ---------------------------------------------------------------------------------------

def test_resume_is_exact(run, speech, tmp_path, capsys):
    resumed = tmp_path / "resumed"
    assert train(resumed, speech, "--steps", "2", "--conditioning", "both") == 0
    assert cli.main(["train", "wavenet", "--out", str(resumed), "--resume", "--steps", "4"]) == 0
    assert "resuming at step 2 of 4" in capsys.readouterr().out
    a = load_file(str(resumed / "checkpoint" / "weights.safetensors"))
    b = load_file(str(run / "checkpoint" / "weights.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert cli.main(["train", "wavenet", "--out", str(resumed), "--resume"]) == 0
    assert "nothing to train: the run is already at step 4" in capsys.readouterr().out


def test_resume_rejects_changed_settings(run, capsys):
    assert cli.main(["train", "wavenet", "--out", str(run), "--resume", "--residual-channels", "16", "--lr", "0.5",
                     "--conditioning", "mel"]) == 2
    err = capsys.readouterr().err
    assert "--residual-channels 16 (the run has 8)" in err and "--lr 0.5" in err
    assert "--conditioning mel (the run has both)" in err and "only --steps may change" in err


def test_train_refuses_to_overwrite_a_run(run, speech, capsys):
    assert train(run, speech, "--steps", "1") == 2
    assert "already holds a checkpoint" in capsys.readouterr().err


def test_resume_without_checkpoint(tmp_path, capsys):
    assert cli.main(["train", "wavenet", "--out", str(tmp_path), "--resume"]) == 2
    assert "cannot resume" in capsys.readouterr().err


# --- the espeak-ng corpus -------------------------------------------------------------------------

@pytest.mark.skipif(not HAVE_ESPEAK, reason="espeak-ng is not installed")
def test_corpus_is_synthesised_into_the_data_dir_and_reused(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FASTGEN_DATA_DIR", str(tmp_path / "data"))
    out = tmp_path / "run"
    assert cli.main(["train", "wavenet", "--out", str(out), "--data", "corpus", "--corpus-size", "24",
                     "--conditioning", "speaker", "--steps", "1", *TINY, *TRAIN]) == 0
    corpus = tmp_path / "data" / "speech-corpus-24utt-16000hz"
    assert (corpus / "corpus.json").is_file() and len(list(corpus.glob("utt_*.wav"))) == 24
    described = json.loads((out / "checkpoint" / "config.json").read_text())["config"]
    assert described["data"]["source"] == "corpus" and described["model"]["speakers"] == 4
    stamp = (corpus / "corpus.json").stat().st_mtime_ns
    wav = tmp_path / "c.wav"
    assert cli.main(["sample", "wavenet", "--checkpoint", str(out), "--seconds", "0.05", "--out", str(wav),
                     "--speaker", "3", "--png", str(tmp_path / "c.png")]) == 0
    assert (corpus / "corpus.json").stat().st_mtime_ns == stamp  # reused, not synthesised again
    assert "real: test utterance" in capsys.readouterr().out or (tmp_path / "c.png").is_file()


# --- errors ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["eval", "sample"])
def test_missing_checkpoint_is_a_clear_error(tmp_path, capsys, command):
    missing = tmp_path / "nope"
    extra = ["--out", str(tmp_path / "x.wav")] if command == "sample" else []
    assert cli.main([command, "wavenet", "--checkpoint", str(missing), *extra]) == 2
    err = capsys.readouterr().err
    assert f"checkpoint {missing} does not exist" in err and "fastgen train wavenet" in err
    assert cli.main([command, "wavenet", "--checkpoint", str(tmp_path), *extra]) == 2
    assert "holds no checkpoint" in capsys.readouterr().err


def test_checkpoint_of_another_model(tmp_path, capsys):
    from fastgen.train import save_checkpoint
    save_checkpoint(tmp_path / "checkpoint", torch.nn.Linear(2, 2), {"run_format": 1, "kind": "draw"})
    assert cli.main(["eval", "wavenet", "--checkpoint", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "not written by `fastgen train wavenet`" in err and "draw" in err


@pytest.mark.parametrize("args, problem", [
    (["--speaker", "5"], "unknown speaker 5: this model knows speakers 0..1"),
    (["--speaker", "-1"], "unknown speaker -1"),
    (["--seconds", "0"], "--seconds must be > 0"),
    (["--seconds", "-2"], "--seconds must be > 0"),
    (["--seconds", "nan"], "--seconds must be > 0"),
])
def test_bad_sample_settings(run, tmp_path, capsys, args, problem):
    wav = tmp_path / "x.wav"
    assert cli.main(["sample", "wavenet", "--checkpoint", str(run), "--out", str(wav), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fastgen sample:") and problem in err
    assert not wav.exists()


def test_corrupt_mel_source_wav(run, tmp_path, capsys):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk")
    assert cli.main(["sample", "wavenet", "--checkpoint", str(run), "--out", str(tmp_path / "x.wav"),
                     "--mel-from", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fastgen sample:") and str(bad) in err
    assert cli.main(["sample", "wavenet", "--checkpoint", str(run), "--out", str(tmp_path / "x.wav"),
                     "--mel-from", str(tmp_path / "missing.wav")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_conditioning_the_model_does_not_have(tmp_path, speech, capsys):
    out = tmp_path / "plain"
    assert train(out, speech, "--steps", "1", "--conditioning", "none") == 0
    capsys.readouterr()
    wav = tmp_path / "x.wav"
    assert cli.main(["sample", "wavenet", "--checkpoint", str(out), "--out", str(wav), "--speaker", "0"]) == 2
    assert "not conditioned on speakers" in capsys.readouterr().err
    assert cli.main(["sample", "wavenet", "--checkpoint", str(out), "--out", str(wav), "--mel-from",
                     str(speech / "bob" / "u0.wav")]) == 2
    assert "not conditioned on mels" in capsys.readouterr().err
    # an unconditional model samples fine, and --png compares it with a real test utterance
    png = tmp_path / "x.png"
    assert cli.main(["sample", "wavenet", "--checkpoint", str(out), "--out", str(wav), "--seconds", "0.05",
                     "--png", str(png)]) == 0
    assert "unconditional" in capsys.readouterr().out and png.is_file()


def test_corrupt_wav_in_the_data_folder(tmp_path, speech, capsys):
    data = tmp_path / "data"
    shutil.copytree(speech, data)
    (data / "bob" / "u3.wav").write_bytes(b"not a wav at all")
    assert train(tmp_path / "r", data, "--steps", "1") == 2
    err = capsys.readouterr().err
    assert err.startswith("fastgen train:") and "u3.wav" in err and "not a readable PCM WAV" in err


@pytest.mark.parametrize("args, problem", [
    (["--crop", "500"], "multiple of the hop length 256"),
    (["--crop", "65536"], "longer than every training utterance"),
    (["--kernel-size", "1"], "kernel_size must be an int >= 2"),
])
def test_bad_training_settings(tmp_path, speech, capsys, args, problem):
    assert train(tmp_path / "r", speech, "--steps", "1", *args) == 2
    assert problem in capsys.readouterr().err
    assert not (tmp_path / "r" / "checkpoint").exists()


def test_unknown_data_and_out_suffix(tmp_path, run, capsys):
    assert cli.main(["train", "wavenet", "--out", str(tmp_path / "r"), "--data", str(tmp_path / "nowhere")]) == 2
    assert "neither 'corpus'" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main(["train", "wavenet", "--out", str(tmp_path / "r"), "--data", str(empty)]) == 2
    assert "no WAV files" in capsys.readouterr().err
    assert cli.main(["sample", "wavenet", "--checkpoint", str(run), "--out", str(tmp_path / "x.mp3")]) == 2
    assert "written as .wav or .wave" in capsys.readouterr().err


def test_help_lists_wavenet(capsys):
    for command in ("train", "eval", "sample"):
        with pytest.raises(SystemExit) as info:
            cli.main([command, "--help"])
        assert info.value.code == 0
        assert "wavenet" in capsys.readouterr().out
