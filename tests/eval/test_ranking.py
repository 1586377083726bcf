"""Ranking metrics on hand-made cases, the paired interval, and the IRGAN recipe's selection: the test
split is read once, by the test report, and never while training or selecting."""
from __future__ import annotations

import math

import pytest
import torch

from fastgen.eval.ranking import (average_precision, graded_ndcg_at_k, ndcg_at_k, paired_difference,
                                  precision_at_k, query_metrics, ranking_metrics)


def test_ndcg_ideal_runs_over_min_relevant_k():
    hits = torch.tensor([[1, 0, 0]])
    # one relevant item, ranked first: perfect, whatever k (an ideal over k hits would give 1 / 2.13)
    assert ndcg_at_k(hits, torch.tensor([1]), 3).item() == pytest.approx(1.0)
    # five relevant items, one in the top 3: the ideal DCG has 3 hits, not 5
    ideal = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at_k(hits, torch.tensor([5]), 3).item() == pytest.approx(1 / ideal)
    hits = torch.tensor([[0, 1, 1]])
    assert ndcg_at_k(hits, torch.tensor([2]), 3).item() == pytest.approx(
        (1 / math.log2(3) + 1 / math.log2(4)) / (1 + 1 / math.log2(3)))
    assert precision_at_k(hits, 3).item() == pytest.approx(2 / 3)
    assert ndcg_at_k(torch.zeros(1, 3), torch.tensor([0]), 3).item() == 0.0


def test_ranking_metrics_score_only_the_given_ranking():
    # a ranking that forgot to leave out train item 0 puts it first: the same P@3 here, a lower NDCG@3
    relevant = torch.zeros(1, 6, dtype=torch.bool)
    relevant[0, [1, 2]] = True
    excluded = ranking_metrics(torch.tensor([[1, 2, 3, 4, 5, 0]]), relevant, torch.tensor([0]), ks=(3,))
    forgotten = ranking_metrics(torch.tensor([[0, 1, 2, 3, 4, 5]]), relevant, torch.tensor([0]), ks=(3,))
    assert excluded["P@3"].item() == pytest.approx(2 / 3) and forgotten["P@3"].item() == pytest.approx(2 / 3)
    assert excluded["NDCG@3"].item() == pytest.approx(1.0) and forgotten["NDCG@3"].item() < 0.75


def test_graded_ndcg_and_average_precision():
    labels = torch.tensor([0, 2, 1])
    dcg = 3 / math.log2(3) + 1 / math.log2(4)
    assert graded_ndcg_at_k(labels, 3) == pytest.approx(dcg / (3 + 1 / math.log2(3)))
    assert average_precision(labels) == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert average_precision(torch.zeros(3)) == 0.0


def test_paired_difference_interval():
    g = torch.Generator().manual_seed(0)
    b = torch.rand(400, generator=g)
    a = b + 0.05 + 0.1 * torch.randn(400, generator=g)
    d = paired_difference(a, b)
    se = float((a - b).std() / math.sqrt(400))
    assert d.bootstrap[0] < d.mean < d.bootstrap[1] and d.t_interval[0] < d.mean < d.t_interval[1]
    assert d.t_interval[1] - d.mean == pytest.approx(1.966 * se, rel=1e-3)  # t(399) quantile
    assert abs((d.bootstrap[1] - d.bootstrap[0]) - 2 * 1.96 * se) < 0.3 * 2 * 1.96 * se
    assert d.bootstrap[0] > 0  # a real gain of 0.05 with se 0.005 is detected
    with pytest.raises(ValueError, match="paired"):
        paired_difference(a, b[:3])


def test_irgan_reads_the_test_split_once_after_selection(tmp_path, monkeypatch):
    from tests.models.test_irgan import TINY, synthetic_data
    from fastgen.models.irgan import UserItems
    from fastgen.recipes.irgan import data as irgan_data, report, training

    calls = []
    data = synthetic_data()
    test = synthetic_data(seed=1).val

    def load_test(spec):
        calls.append(spec)
        return test, data.train.union(data.val)

    monkeypatch.setattr(irgan_data, "load_test", load_test)
    monkeypatch.setattr(irgan_data, "load_train_val", lambda spec: data)
    monkeypatch.setattr(training, "load_train_val", lambda spec: data)
    training.train_run(TINY, irgan_data.DataSpec(), tmp_path / "run", log=lambda line: None)
    assert calls == []  # training and validation selection never touched the test split
    result = report.test_report(tmp_path / "run")
    assert len(calls) == 1
    assert set(result["models"]) == {"IRGAN", "DNS-MF (IRGAN's initialisation)", "BPR-MF", "popularity"}
    for name in ("IRGAN", "BPR-MF"):
        assert result["selected"][name]["by"] == "validation NDCG@5"
    assert isinstance(test, UserItems) and result["users"] == len(test.users_with_items())


def test_query_metrics_by_hand():
    # query 0: scores rank labels [2, -1 (left out), 0, 1]; query 1 has nothing relevant (skipped)
    scores = torch.tensor([0.9, 0.8, 0.5, 0.1, 0.3, 0.2])
    labels = torch.tensor([2, -1, 0, 1, 0, 0])
    out = query_metrics(scores, labels, torch.tensor([0, 4, 6]), ks=(1, 3))
    assert {k: len(v) for k, v in out.items()} == {"P@1": 1, "P@3": 1, "NDCG@1": 1, "NDCG@3": 1, "MAP": 1}
    assert out["P@1"].item() == 1.0 and out["P@3"].item() == pytest.approx(2 / 3)
    dcg = 3 + 1 / math.log2(4)            # gains 2^2 - 1 at rank 1, 2^1 - 1 at rank 3
    ideal = 3 + 1 / math.log2(3)
    assert out["NDCG@3"].item() == pytest.approx(dcg / ideal)
    assert out["MAP"].item() == pytest.approx((1 + 2 / 3) / 2)
