"""LETOR 4.0 text: the reader on a small file written here (MQ2008-semi's layout: graded labels,
-1 for unlabelled, 46 features, a docid comment), its errors, and the synthetic set's round trip."""
from __future__ import annotations

import pytest
import torch

from fastgen.data import DataError
from fastgen.data.letor import N_FEATURES, read_letor, synthetic_letor, write_letor

LINES = [
    "2 qid:10002 1:0.007477 2:0.000000 3:1.000000 46:0.071429 #docid = GX008-86-4444840 inc = 1 prob = 0.086622",
    "0 qid:10002 1:0.603738 5:0.5 #docid = GX037-06-11625428 inc = 0.0031 prob = 0.0379",
    "-1 qid:10002 2:0.25",
    "",
    "1 qid:10032 1:0.1 3:0.3 46:1.0 #docid = GX029-35-5894638",
]


def test_reads_queries_labels_features_and_docids(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text("\n".join(LINES) + "\n")
    data = read_letor(path)
    assert data.qids == ["10002", "10032"] and data.ptr.tolist() == [0, 3, 4]
    assert data.labels.tolist() == [2, 0, -1, 1]
    assert data.features.shape == (4, N_FEATURES)
    # absent features are 0; indices are 1-based
    assert data.features[0, [0, 1, 2, 45]].tolist() == pytest.approx([0.007477, 0.0, 1.0, 0.071429])
    assert data.features[1, 4] == pytest.approx(0.5) and data.features[1, 1:4].abs().sum() == 0
    assert data.docids == ["GX008-86-4444840", "GX037-06-11625428", "", "GX029-35-5894638"]
    assert data.query_of_row.tolist() == [0, 0, 0, 1]
    sub = data.subset(torch.tensor([1, 0]))
    assert sub.qids == ["10032", "10002"] and sub.labels.tolist() == [1, 2, 0, -1]


@pytest.mark.parametrize("line, message", [
    ("x qid:1 1:0.5", "label 'x' is not an integer"),
    ("1 q:1 1:0.5", "expected 'label qid:<id>"),
    ("1 qid:1 1:0.5 1:0.2", "out of order"),
    ("1 qid:1 47:0.5", r"outside 1..46"),
    ("1 qid:1 3:abc", "is not index:value"),
    ("1 qid:1 3:nan", "'3:nan' is not a finite number"),
    ("1 qid:1 3:-inf", "'3:-inf' is not a finite number"),
])
def test_malformed_lines_name_the_line(tmp_path, line, message):
    path = tmp_path / "bad.txt"
    path.write_text(LINES[0] + "\n" + line + "\n")
    with pytest.raises(DataError, match=f"bad.txt:2: .*{message}"):
        read_letor(path)


def test_split_query_and_missing_file(tmp_path):
    path = tmp_path / "split.txt"
    path.write_text("\n".join([LINES[0], LINES[4], LINES[1]]) + "\n")
    with pytest.raises(DataError, match="query 10002 appears again"):
        read_letor(path)
    with pytest.raises(DataError, match="MQ2008 is not offline"):
        read_letor(tmp_path / "absent.txt")


def test_synthetic_set_round_trips_and_has_relevant_documents(tmp_path):
    data = synthetic_letor(n_queries=5, docs_per_query=12, seed=3)
    back = read_letor(write_letor(tmp_path / "syn.txt", data))
    assert back.qids == data.qids and torch.equal(back.labels, data.labels) and back.docids == data.docids
    assert torch.allclose(back.features, data.features, atol=5e-7)  # 6 decimals, as the released files
    per_query = data.labels.view(5, 12)
    assert bool((per_query > 0).any(1).all()) and bool((per_query == -1).any(1).all())
