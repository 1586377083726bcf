"""Issue 11 item 3: a run's text files (log.csv, summary.json) are replaced through unique,
exclusively created temporaries, so a symlink planted in the run folder never makes fastgen
write (or read) a file outside it."""
from __future__ import annotations

import stat

import pytest
import torch
from torch import nn

from fastgen._atomic import atomic_write, write_json_atomic
from fastgen.train import TrainConfig, Trainer

OUTSIDE = "the user's file, which no run may touch\n"


def _trainer(out_dir) -> Trainer:
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    loss = lambda m, batch, generator: m(batch).square().mean()  # noqa: E731
    return Trainer(model, loss, TrainConfig(batch_size=4, epochs=1, progress=False), out_dir=out_dir)


def _plant(link, tmp_path, name: str):
    target = tmp_path / name
    target.write_text(OUTSIDE)
    link.symlink_to(target)
    return target


@pytest.mark.parametrize("planted", ["log.csv.tmp", "summary.json.tmp"])
def test_resume_never_writes_through_planted_tmp_symlink(tmp_path, planted):
    """The names the old code opened by fixed name (and followed), planted before a resume."""
    out = tmp_path / "run"
    data = torch.randn(8, 3)
    first = _trainer(out)
    first.fit(data)
    outside = _plant(out / planted, tmp_path, "outside.txt")
    again = _trainer(out)
    again.load(out / "checkpoint")
    again.fit(data)
    assert outside.read_text() == OUTSIDE
    assert (out / planted).is_symlink()  # left alone, not written through or replaced
    assert (out / "summary.json").is_file() and not (out / "summary.json").is_symlink()
    assert "step" in (out / "log.csv").read_text()


def test_symlinked_log_is_replaced_not_read_or_written(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    outside = _plant(out / "log.csv", tmp_path, "outside.csv")
    outside.write_text("step,secret\n1,leaked\n")
    with pytest.warns(RuntimeWarning, match="symbolic link"):
        _trainer(out).fit(torch.randn(8, 3))
    assert outside.read_text() == "step,secret\n1,leaked\n"
    log = out / "log.csv"
    assert not log.is_symlink() and "leaked" not in log.read_text() and "secret" not in log.read_text()


def test_atomic_write_replaces_a_symlink_itself(tmp_path):
    outside = _plant(tmp_path / "link.json", tmp_path, "outside.json")
    write_json_atomic(tmp_path / "link.json", {"a": float("nan")})
    assert outside.read_text() == OUTSIDE
    assert not (tmp_path / "link.json").is_symlink()
    assert (tmp_path / "link.json").read_text() == '{\n "a": NaN\n}\n'


def test_atomic_write_failure_keeps_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "summary.json"
    path.write_text("old\n")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_write(path) as f:
            f.write("half")
            raise RuntimeError("boom")
    assert path.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]


def test_atomic_write_gives_the_mode_open_would(tmp_path, monkeypatch):
    """mkstemp makes 0600 files; a log or summary gets the usual 0666-less-umask mode."""
    import fastgen._atomic as atomic
    monkeypatch.setattr(atomic, "_UMASK", 0o027)
    atomic.write_text_atomic(tmp_path / "x.txt", "x")
    assert stat.S_IMODE((tmp_path / "x.txt").stat().st_mode) == 0o640
