"""``fastgen train|eval|sample|bench irgan`` on the synthetic interactions of tests/models/test_irgan.py."""
from __future__ import annotations

import importlib.util
import json

import pytest

from fastgen.cli.args import CLIError
from fastgen.cli.irgan import FAMILY
from fastgen.recipes import registry


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


def test_train_web_on_a_letor_file(tmp_path, monkeypatch, capsys):
    import functools
    from fastgen.cli.main import main
    from fastgen.data.letor import write_synthetic_letor
    from fastgen.recipes.irgan import web
    monkeypatch.setattr(web, "WebSettings", functools.partial(web.WebSettings, pre_epochs=20, rounds=2, d_epochs=2,
                                                              g_epochs=2, hidden=8, batch_size=16, g_queries=4))
    path = write_synthetic_letor(tmp_path / "letor.txt", n_queries=20, docs_per_query=15)
    out = tmp_path / "web"
    assert main(["train", "irgan", "--task", "web", "--data", str(path), "--out", str(out)]) == 0
    report = json.loads((out / "eval.json").read_text())
    assert report["test_queries"] == 4 and set(report["models"]) == {"IRGAN generator",
                                                                    "pointwise MLP (its initialisation)"}
    assert 0 <= report["selected_round"] <= 2 and "MAP" in report["paired"]
    assert "| IRGAN generator |" in capsys.readouterr().out
    assert main(["train", "irgan", "--task", "web", "--out", str(tmp_path / "none")]) == 2  # --data is required
