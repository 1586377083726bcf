"""Web-search IRGAN runs (fastgen.recipes.irgan.web): exact resume from either stage, the test queries
read by eval only, and the refusals (a run of the other task, other data, a corrupt LETOR file)."""
from __future__ import annotations

import csv
import dataclasses
import json

import pytest
import torch

from fastgen.data.letor import synthetic_letor, write_letor, write_synthetic_letor
from fastgen.models.irgan.steps import reward_of_scores
from fastgen.recipes.irgan import folders, web, web_report
from fastgen.recipes.runs import RecipeError
from fastgen.train import load_checkpoint
from fastgen.train.checkpoint import save_checkpoint

TINY = web.WebSettings(pre_epochs=12, rounds=3, d_epochs=2, g_epochs=2, hidden=8, batch_size=16, g_queries=4)


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: a second thread only waits on a loaded machine
    yield
    torch.set_num_threads(threads)


def letor_file(tmp_path):
    return write_synthetic_letor(tmp_path / "letor.txt", n_queries=20, docs_per_query=15)


def quiet(line):
    pass


class Interrupted(Exception):
    pass


def interrupt_after(monkeypatch, name: str, calls: int) -> None:
    """web.<name> raises on its (calls + 1)-th call: a run killed mid-stage."""
    original, seen = getattr(web, name), []

    def dies(*args, **kwargs):
        seen.append(1)
        if len(seen) > calls:
            raise Interrupted(name)
        return original(*args, **kwargs)
    monkeypatch.setattr(web, name, dies)


def log_rows(path):
    with open(path, newline="") as f:
        return [{k: v for k, v in row.items() if k != "time"} for row in csv.DictReader(f)]


def test_resume_from_either_stage_equals_an_uninterrupted_run(tmp_path, monkeypatch):
    data = str(letor_file(tmp_path))
    whole = tmp_path / "whole"
    web.train_web(TINY, data, whole, log=quiet)
    split = tmp_path / "split"
    with monkeypatch.context() as m:  # killed in pretraining, after its checkpoint at step 6 (every 12 // 6)
        interrupt_after(m, "pointwise_loss", 7)
        with pytest.raises(Interrupted):
            web.train_web(TINY, data, split, log=quiet)
    assert load_checkpoint(split / "pretrain" / "checkpoint").step == 6 and not (split / "checkpoint").exists()
    with monkeypatch.context() as m:  # resumed, then killed in round 2 (rounds checkpoint after round 1)
        interrupt_after(m, "generator_loss", 8)
        with pytest.raises(Interrupted):
            web.train_web(TINY, None, split, resume=True, log=quiet)  # data: the run's own
    pretrain = json.loads((split / "pretrain" / "summary.json").read_text())
    assert pretrain["steps_this_session"] == 6  # it continued from step 6 (a restart from 0 would do 12)
    rounds_done = load_checkpoint(split / "checkpoint").step
    web.train_web(TINY, data, split, resume=True, log=quiet)
    resumed = json.loads((split / "summary.json").read_text())
    assert 0 < rounds_done and resumed["steps_this_session"] == resumed["step"] - rounds_done
    # the same weights (both networks), both optimizers' states, the same selection and the same logs
    for stage in ("checkpoint", "pretrain/checkpoint", "best"):
        a, b = load_checkpoint(whole / stage), load_checkpoint(split / stage)
        assert a.step == b.step, stage
        for key in a.model_state:
            assert torch.equal(a.model_state[key], b.model_state[key]), (stage, key)
        states_a = a.optimizer_states or {"": a.optimizer_state or {"state": {}}}
        states_b = b.optimizer_states or {"": b.optimizer_state}
        for name, state in states_a.items():
            for p, values in state["state"].items():
                for key, value in values.items():
                    assert torch.equal(torch.as_tensor(value), torch.as_tensor(states_b[name]["state"][p][key]))
    assert load_checkpoint(whole / "best").config["selected"] == load_checkpoint(split / "best").config["selected"]
    assert log_rows(whole / "log.csv") == log_rows(split / "log.csv")
    assert log_rows(whole / "pretrain" / "log.csv") == log_rows(split / "pretrain" / "log.csv")


def test_fold_folder_test_queries_are_read_by_eval_only(tmp_path, monkeypatch):
    """The fold has no test.txt while training: a recipe that scored the test queries would fail."""
    fold = tmp_path / "Fold1"
    fold.mkdir()
    for name, seed in (("train.txt", 1), ("vali.txt", 2)):
        write_letor(fold / name, synthetic_letor(n_queries=12, docs_per_query=15, seed=seed))
    run = tmp_path / "run"
    result = web.train_web(TINY, str(fold), run, log=quiet)
    assert 0 <= result["selected"]["step"] <= TINY.rounds and not (run / "eval.json").exists()
    with pytest.raises(RecipeError, match="test.txt"):
        web_report.web_test_report(run)
    write_letor(fold / "test.txt", synthetic_letor(n_queries=5, docs_per_query=15, seed=3))
    reads = []
    monkeypatch.setattr(web_report, "load_test", lambda *a: reads.append(a) or web.load_test(*a))
    report = web_report.web_test_report(run)
    assert len(reads) == 1 and report["test_queries"] == 5 and set(report["models"]) == set(web_report.MODELS)
    assert report["selected_round"] == result["selected"]["step"] and "MAP" in report["paired"]
    # the same folder with other training data: eval refuses instead of scoring a model on data it did not see
    write_letor(fold / "train.txt", synthetic_letor(n_queries=12, docs_per_query=15, seed=9))
    with pytest.raises(RecipeError, match="differ from those the run"):
        web_report.web_test_report(run)


def test_a_run_stopped_in_its_first_stage_resumes_and_blocks_a_new_run(tmp_path):
    """Items: a run killed during DNS pretraining has dns/checkpoint only (no rounds checkpoint yet)."""
    out = tmp_path / "run"
    save_checkpoint(out / "dns" / "checkpoint", torch.nn.Linear(1, 1), {"run_format": 1, "kind": "dns"})
    folders.check_irgan_folder(out, True, "items")  # resumable
    with pytest.raises(RecipeError, match="already holds a checkpoint"):
        folders.check_irgan_folder(out, False, "items")  # a new run would silently continue that DNS
    with pytest.raises(RecipeError, match="already holds a checkpoint"):
        folders.check_irgan_folder(out, False, "web")


def exact_generator_loss(g, d, features, pools, queries, rng, form):
    """-E_p[reward] over each query's whole pool: G's loss without draws (no per-shard noise)."""
    p = torch.softmax(pools.logits(g, features, queries), 1)
    with torch.no_grad():
        r = reward_of_scores(d(features[pools.rows[queries]]), form)
    return -(p * r).sum(1).mean(), {"reward": (p * r).sum(1).mean().detach()}


def test_shards_weigh_their_rows_as_one_batch(tmp_path, monkeypatch):
    """Two micro-batches (what two processes compute) == one batch, with G's loss made noise-free: the
    shard weighting of both stages is exact. Here pretraining pads 195 documents to 2 x 98, and the
    last G batch (1 of 15 queries) leaves the second shard empty; a shard that averaged its own rows
    only would take twice the step there (and a slightly wrong one in pretraining): measured 3e-8 (both
    stages) and 9e-7 (G), against 9e-5 and 3e-2 with either weighting left out."""
    from tests.cli.test_irgan_web_ddp import letor_file
    monkeypatch.setattr(web, "generator_loss", exact_generator_loss)
    data = str(letor_file(tmp_path / "letor.txt"))
    settings = web.WebSettings(pre_epochs=6, rounds=2, d_epochs=2, g_epochs=1, hidden=8, batch_size=16,
                               g_queries=7, g_lr=1e-2)  # G's steps large enough to show a weighting error
    for micro in (1, 2):
        web.train_web(dataclasses.replace(settings, micro_batches=micro), data, tmp_path / str(micro), log=quiet)
    for stage in ("pretrain/checkpoint", "checkpoint"):
        a, b = load_checkpoint(tmp_path / "1" / stage), load_checkpoint(tmp_path / "2" / stage)
        for key, value in a.model_state.items():
            # softmax ignores G's output bias: its gradient is rounding noise, which Adam scales up
            if key != "generator.net.2.bias":
                torch.testing.assert_close(b.model_state[key], value, rtol=0, atol=2e-6, msg=f"{stage} {key}")
