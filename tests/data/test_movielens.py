"""MovieLens-100k: recbole's copy has u.data's 100,000 rows in u.data's order, u1 is rebuilt as mku.sh
does (and equals the official files built from the same lines), validation is carved per user, and
corrupt files fail with the file and line named."""
from __future__ import annotations

import importlib.util

import pytest
import torch

from fastgen.data import DataError
from fastgen.data import movielens as ml

needs_recbole = pytest.mark.skipif(importlib.util.find_spec("recbole") is None,
                                   reason="MovieLens-100k ships in PyPI recbole (scripts/install.sh installs it)")


@pytest.fixture(scope="module")
def ratings():
    return ml.load_ratings()


def _u_data_lines(r: ml.Ratings) -> list[str]:
    return [f"{u + 1}\t{i + 1}\t{s}\t{t}" for u, i, s, t in zip(r.users.tolist(), r.items.tolist(),
                                                                  r.ratings.tolist(), r.timestamps.tolist())]


@needs_recbole
def test_recbole_copy_is_u_data_in_its_order(ratings):
    assert len(ratings) == 100_000 and ratings.n_users == 943 and ratings.n_items == 1682
    first = _u_data_lines(ratings)[0]
    assert first == "196\t242\t3\t881250949"  # the known first line of u.data
    assert _u_data_lines(ratings)[1] == "186\t302\t3\t891717742"


@needs_recbole
def test_u1_is_rebuilt_as_mku_sh_does(ratings, tmp_path):
    base, test = ml.u1_split(ratings)
    assert (len(base), len(test)) == (80_000, 20_000)
    lines = _u_data_lines(ratings)
    # mku.sh: head -20000 u.data | sort -t"\t" -k 1,1n -k 2,2n > u1.test; tail -80000 ... > u1.base
    key = lambda line: tuple(int(x) for x in line.split("\t")[:2])  # noqa: E731
    (tmp_path / "u1.test").write_text("\n".join(sorted(lines[:20_000], key=key)) + "\n")
    (tmp_path / "u1.base").write_text("\n".join(sorted(lines[20_000:], key=key)) + "\n")
    official_base, official_test = ml.read_u1(tmp_path)
    for ours, theirs in ((base, official_base), (test, official_test)):
        for name in ("users", "items", "ratings", "timestamps"):
            assert torch.equal(getattr(ours, name), getattr(theirs, name)), name
    assert len(torch.unique(test.relevant()[0])) == 456  # the users the authors' figures are over
    (tmp_path / "u.data").write_text("\n".join(lines) + "\n")
    from_file = ml.movielens_split("u1", tmp_path / "u.data")
    assert torch.equal(from_file.test.items, test.items)


@needs_recbole
def test_validation_is_carved_per_user_and_seeded(ratings):
    base, _ = ml.u1_split(ratings)
    train, val = ml.carve_validation(base, 0.1, seed=3)
    again = ml.carve_validation(base, 0.1, seed=3)[1]
    assert torch.equal(val.items, again.items) and len(train) + len(val) == len(base)
    keys = lambda r: set((r.users * 10_000 + r.items).tolist())  # noqa: E731
    assert not keys(train) & keys(val)
    per_user = torch.bincount(base.users, minlength=943)
    assert torch.equal(torch.bincount(val.users, minlength=943), torch.round(per_user.double() * 0.1).long())
    other = ml.carve_validation(base, 0.1, seed=4)[1]
    assert not torch.equal(val.items, other.items)
    random = ml.movielens_split("random", seed=0)
    assert len(random.train) + len(random.val) + len(random.test) == 100_000


@needs_recbole
def test_titles():
    titles = ml.load_titles()
    assert titles[0] == "Toy Story (1995)" and sum(bool(t) for t in titles) == 1682


def test_corrupt_files_name_file_and_line(tmp_path):
    bad = tmp_path / "u.data"
    bad.write_text("1\t2\t3\t100\n1\t2\n")
    with pytest.raises(DataError, match=r"u.data line 2: 2 tab-separated fields"):
        ml.read_ratings(bad)
    bad.write_text("1\t2\t7\t100\n")
    with pytest.raises(DataError, match=r"line 1: rating 7 is outside 1..5"):
        ml.read_ratings(bad)
    bad.write_text("1\tx\t3\t100\n")
    with pytest.raises(DataError, match="line 1"):
        ml.read_ratings(bad)
    with pytest.raises(DataError, match="does not exist"):
        ml.read_ratings(tmp_path / "missing")
    bad.write_text("1\t2\t3\t100\n")
    with pytest.raises(DataError, match="holds 1 ratings, expected 100,000"):
        ml.load_ratings(bad)
    (tmp_path / "u.item").write_bytes("1|Caf\xe9 (1995)|01-Jan-1995\n2 no title\n".encode("latin-1"))
    with pytest.raises(DataError, match="u.item line 2"):
        ml.load_titles(tmp_path)
