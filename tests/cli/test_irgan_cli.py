"""``fastgen train|eval|sample|bench irgan`` on the synthetic interactions of tests/models/test_irgan.py, and
``--task web`` on a synthetic LETOR file (train, resume, eval; a run never taken for the other task's)."""
from __future__ import annotations

import dataclasses
import importlib.util
import json

import pytest
import torch

from fastgen.cli.args import CLIError, flag
from fastgen.cli.irgan import FAMILY
from fastgen.recipes import registry
from fastgen.train import load_checkpoint
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
    capsys.readouterr()
    # --resume takes the run's schedule: a flag that differs is named, a web-only one refused by name
    assert main(["train", "irgan", "--out", str(out), "--resume", "--g-users", "4", "--dim", "4"]) == 2
    err = capsys.readouterr().err
    assert "--g-users 4 (the run has 8)" in err and "--dim" not in err
    assert main(["train", "irgan", "--out", str(out), "--resume", "--hidden", "4"]) == 2
    assert "--hidden: --task web only" in capsys.readouterr().err
    assert main(["train", "irgan", "--out", str(out), "--resume", "--no-baselines"]) == 0  # the run's own settings


def web_flags(settings) -> list[str]:
    """The `fastgen train irgan --task web` flags of a WebSettings."""
    return [a for name, value in dataclasses.asdict(settings).items() for a in (flag(name), str(value))]


def test_cli_train_resume_eval_and_refusals(tmp_path, capsys, restore_threads):
    from fastgen.cli.main import main
    from fastgen.data.letor import write_synthetic_letor
    from fastgen.recipes.irgan.web import WebSettings
    from tests.recipes.test_irgan_web import TINY
    data = str(write_synthetic_letor(tmp_path / "letor.txt", n_queries=20, docs_per_query=15))
    out = str(tmp_path / "web")
    train = ["train", "irgan", "--task", "web", "--out", out, "--threads", "1"]
    assert main([*train, "--resume"]) == 2 and "cannot resume" in capsys.readouterr().err
    assert main(train) == 2 and "needs --data" in capsys.readouterr().err
    # every WebSettings field has its flag, and the run stores what the flags said (an unused flag would not)
    tiny = dataclasses.replace(TINY, rounds=2, reward="code", d_refresh=1, pre_lr=0.02, d_lr=0.002, g_lr=3e-4)
    assert main([*train, "--data", data, *web_flags(tiny)]) == 0
    assert "--task web --checkpoint" in capsys.readouterr().out
    run = load_checkpoint(tmp_path / "web" / "checkpoint")
    assert run.config["settings"] == dataclasses.asdict(tiny) != dataclasses.asdict(WebSettings())
    assert run.step == 2 * run.extra["config"]["checkpoint_every"]  # --rounds 2 rounds
    assert main([*train, "--data", data]) == 2 and "already holds a checkpoint" in capsys.readouterr().err
    assert main([*train, "--resume", "--data", str(tmp_path)]) == 2  # another --data: named, with the run's
    assert f"--data {tmp_path} (the run has {data})" in capsys.readouterr().err
    assert main([*train, "--resume", "--seed", "1"]) == 2 and "--seed 1 (the run has 0)" in capsys.readouterr().err
    # a changed schedule flag is refused by name (each of several); fewer rounds too
    assert main([*train, "--resume", "--g-queries", "5", "--hidden", "8", "--d-lr", "0.1", "--rounds", "1"]) == 2
    err = capsys.readouterr().err
    assert "--g-queries 5 (the run has 4)" in err and "--d-lr 0.1 (the run has 0.002)" in err
    assert "--rounds 1 (the run has 2" in err and "--hidden" not in err  # --hidden 8 is the run's own
    assert main([*train, "--resume"]) == 0  # finished: nothing to do, with the run's own data and schedule
    assert main([*train, "--resume", "--rounds", "3", "--hidden", "8"]) == 0  # more rounds continue it
    assert load_checkpoint(tmp_path / "web" / "checkpoint").step == 3 * run.extra["config"]["checkpoint_every"]
    # a batch that does not split into the shards: one line naming it, not a traceback
    odd = ["train", "irgan", "--task", "web", "--out", str(tmp_path / "odd"), "--data", data, *web_flags(TINY)]
    assert main([*odd, "--micro-batches", "3"]) == 2 and "divisible" in capsys.readouterr().err
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
    for argv in (["--task", "web", "--data", "synthetic", "--dim", "4", "--g-optimizer", "sgd", "--split", "u1"],
                 ["--g-queries", "4", "--micro-batches", "2"]):
        assert main(["train", "irgan", "--out", str(tmp_path / "new"), *argv]) == 2
        other = "items" if "web" in argv else "web"
        assert f"{' '.join(a for a in argv if a.startswith('--') and a != '--task' and a != '--data')}" \
            .replace(" ", ", ") + f": --task {other} only" in capsys.readouterr().err


@pytest.mark.parametrize("line, problem", [(b"1 qid:7 1:0.5 2:zz", b"bad.txt:3: the feature '2:zz'"),
                                           (b"1 qid:7 1:\xff0.5", b"bad.txt:3: not UTF-8 text")])
def test_corrupt_letor_line_names_file_and_line(tmp_path, capsys, line, problem, restore_threads):
    from fastgen.cli.main import main
    path = tmp_path / "bad.txt"
    path.write_bytes(b"0 qid:7 1:0.1\n2 qid:7 1:0.9\n" + line + b"\n")
    assert main(["train", "irgan", "--task", "web", "--data", str(path), "--out", str(tmp_path / "r")]) == 2
    assert problem.decode("utf-8", "replace") in capsys.readouterr().err
