"""``fastgen train|eval|sample|bench irgan`` on the synthetic interactions of tests/models/test_irgan.py, and
``--task web`` on a synthetic LETOR file (train, resume, eval; a run never taken for the other task's)."""
from __future__ import annotations

import dataclasses
import importlib.util
import json

import pytest
import torch

from fastgen.cli.args import CLIError
from fastgen.cli.irgan import FAMILY
from fastgen.recipes import registry
from fastgen.train.checkpoint import save_checkpoint


def test_registered():
    assert registry.family("irgan", "demo") is FAMILY and FAMILY.demo_budget.quick <= 15


def test_bench_without_the_ops_is_a_clear_error():
    if importlib.util.find_spec("fastgen.benchmarking.irgan_ops") is not None:
        pytest.skip("the item ops' benchmark is present")
    with pytest.raises(CLIError, match="score-and-sample ops"):
        FAMILY.bench(None)


@pytest.mark.skipif(importlib.util.find_spec("recbole") is None, reason="titles ship in PyPI recbole")
def test_train_eval_sample(tmp_path, monkeypatch, capsys):
    from fastgen.cli.main import main
    from fastgen.recipes.irgan import data as irgan_data, training
    from tests.models.test_irgan import synthetic_data
    data = synthetic_data()
    for module in (irgan_data, training):
        monkeypatch.setattr(module, "load_train_val", lambda spec: data)
    monkeypatch.setattr(irgan_data, "load_test", lambda spec: (synthetic_data(1).val, data.train.union(data.val)))
    out = tmp_path / "run"
    tiny = ["--dim", "4", "--pre-epochs", "2", "--rounds", "1", "--d-epochs", "1", "--g-epochs", "1",
            "--batch-size", "32", "--pre-batch", "16", "--g-users", "8", "--no-baselines"]
    assert main(["train", "irgan", "--out", str(out), *tiny]) == 0
    assert main(["eval", "irgan", "--checkpoint", str(out)]) == 0
    report = json.loads((out / "eval.json").read_text())
    assert "IRGAN" in report["models"] and "paired" in report
    assert main(["sample", "irgan", "--checkpoint", str(out), "--user", "2", "--k", "3"]) == 0
    printed = capsys.readouterr().out
    assert "top 3 for user 2" in printed and "(19" in printed  # titles carry their year
    assert main(["sample", "irgan", "--checkpoint", str(out), "--user", "99"]) == 2  # users are 1..24 here


def test_cli_train_resume_eval_and_refusals(tmp_path, monkeypatch, capsys, restore_threads):
    from fastgen.cli.main import main
    from fastgen.data.letor import write_synthetic_letor
    from fastgen.recipes.irgan import web
    from tests.recipes.test_irgan_web import TINY
    tiny = {k: v for k, v in dataclasses.asdict(TINY).items() if k != "seed"}
    settings = web.WebSettings
    monkeypatch.setattr(web, "WebSettings", lambda seed: settings(seed=seed, **tiny))
    data = str(write_synthetic_letor(tmp_path / "letor.txt", n_queries=20, docs_per_query=15))
    out = str(tmp_path / "web")
    train = ["train", "irgan", "--task", "web", "--out", out, "--threads", "1"]
    assert main([*train, "--resume"]) == 2 and "cannot resume" in capsys.readouterr().err
    assert main(train) == 2 and "needs --data" in capsys.readouterr().err
    assert main([*train, "--data", data]) == 0
    assert "--task web --checkpoint" in capsys.readouterr().out
    assert main([*train, "--data", data]) == 2 and "already holds a checkpoint" in capsys.readouterr().err
    assert main([*train, "--resume", "--data", str(tmp_path)]) == 2  # another --data: named, with the run's
    assert f"--data {tmp_path} (the run has {data})" in capsys.readouterr().err
    assert main([*train, "--resume", "--seed", "1"]) == 2 and "--seed 1 (the run has 0)" in capsys.readouterr().err
    assert main([*train, "--resume"]) == 0  # finished: nothing to do, and the run's own data
    # the web run asked for as an item-recommendation one, by each verb
    for argv in (["eval", "irgan", "--checkpoint", out], ["sample", "irgan", "--checkpoint", out, "--user", "1"],
                 ["train", "irgan", "--out", out, "--resume"]):
        assert main(argv) == 2, argv
        assert "holds a web-search IRGAN run (--task web)" in capsys.readouterr().err
    assert main(["eval", "irgan", "--task", "web", "--checkpoint", out]) == 0
    printed = capsys.readouterr().out
    assert "| IRGAN generator |" in printed and "per query" in printed and "| MAP |" in printed
    assert json.loads((tmp_path / "web" / "eval.json").read_text())["test_queries"] == 4


def test_an_item_run_is_not_evaluated_or_resumed_as_web(tmp_path, capsys, restore_threads):
    from fastgen.cli.main import main
    out = tmp_path / "items"
    save_checkpoint(out / "best", torch.nn.Linear(1, 1), {"run_format": 1, "kind": "irgan", "selected": {}})
    for argv in (["eval", "irgan", "--task", "web", "--checkpoint", str(out)],
                 ["train", "irgan", "--task", "web", "--out", str(out), "--resume"]):
        assert main(argv) == 2, argv
        assert "holds an item-recommendation IRGAN run (--task items)" in capsys.readouterr().err


@pytest.mark.parametrize("line, problem", [(b"1 qid:7 1:0.5 2:zz", b"bad.txt:3: the feature '2:zz'"),
                                           (b"1 qid:7 1:\xff0.5", b"bad.txt:3: not UTF-8 text")])
def test_corrupt_letor_line_names_file_and_line(tmp_path, capsys, line, problem, restore_threads):
    from fastgen.cli.main import main
    path = tmp_path / "bad.txt"
    path.write_bytes(b"0 qid:7 1:0.1\n2 qid:7 1:0.9\n" + line + b"\n")
    assert main(["train", "irgan", "--task", "web", "--data", str(path), "--out", str(tmp_path / "r")]) == 2
    assert problem.decode("utf-8", "replace") in capsys.readouterr().err
