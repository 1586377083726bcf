"""Web-search IRGAN data-parallel: `fastgen train irgan --task web` as two torch.distributed processes
(each runs the CLI with torchrun's environment, so the CLI joins the process group itself) equals ONE
process with --micro-batches 2 (the same two shards per batch, each drawing its noise from its own
generator). The two-process run trains 1 round, then is resumed (again on 2 processes) with
--rounds 2; the reference trains 2 rounds in one go.

Required: the same weights (pretraining, rounds, the validation-selected generator) and log rows;
each process took its own part of every batch (a spy on the losses records what each process saw:
pretraining documents, G's queries); process 0 alone wrote the run (each step logged once, a
checkpoint that says 2 processes). Breaks it: pretraining or G's queries not sharded (each process
would see all of them, or G's all on process 0), a process that logs or validates too, a CLI that does
not join the group (two lone rank-0 processes). That shards weigh their rows as one batch does is
tests/recipes/test_irgan_web.py's test_shards_weigh_their_rows_as_one_batch (with micro-batches, which
shard exactly as processes do).
"""
from __future__ import annotations

import csv
import dataclasses
import os
import socket
from pathlib import Path

import torch
import torch.multiprocessing as mp

from fastgen.data.letor import synthetic_letor, write_letor
from fastgen.recipes.irgan import web
from fastgen.train import load_checkpoint

# 15 train queries, every one with a relevant document: G batches of 7, 7 and 1 query
SCHEDULE = ["--pre-epochs", "6", "--d-epochs", "2", "--g-epochs", "1", "--hidden", "8", "--batch-size", "16",
            "--g-queries", "7", "--threads", "1"]


def letor_file(path: Path) -> Path:
    """25 queries x 15 documents, one more labelled per query than synthetic_letor's: 195 labelled
    train documents, an odd count, so that pretraining pads its full batch to two equal shards."""
    data = synthetic_letor(n_queries=25, docs_per_query=15, seed=0)
    labels = data.labels.clone()
    for q in range(data.n_queries):
        unlabelled = torch.nonzero(labels[data.ptr[q]:data.ptr[q + 1]] < 0).squeeze(1)
        labels[data.ptr[q] + unlabelled[0]] = 0
    write_letor(path, dataclasses.replace(data, labels=labels))
    return path


def _spy(record: Path, patch=setattr) -> None:
    """Append, per call, what this process's pretraining and G losses saw to ``record``."""
    for name, what in (("pointwise_loss", lambda args: f"P {len(args[1])}"),
                       ("generator_loss", lambda args: "G " + " ".join(map(str, args[4].tolist())))):
        original = getattr(web, name)

        def spy(*args, _original=original, _what=what, **kwargs):
            with open(record, "a") as f:
                f.write(_what(args) + "\n")
            return _original(*args, **kwargs)
        patch(web, name, spy)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _process(rank: int, runs: list, record: str) -> None:
    """One of torchrun's two processes, for each (port, argv) in ``runs``: the CLI joins the group, trains, leaves."""
    from fastgen.cli.main import main
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", LOCAL_WORLD_SIZE="2",
                      MASTER_ADDR="127.0.0.1", OMP_NUM_THREADS="1")
    _spy(Path(record) / f"rank{rank}.txt")
    for port, argv in runs:
        os.environ["MASTER_PORT"] = str(port)
        assert main(argv) == 0, argv


def _log(run: Path) -> list[dict]:
    with open(run / "log.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k != "time"} for row in csv.DictReader(f)]


def test_two_processes_equal_one_process_with_two_micro_batches(tmp_path, monkeypatch, restore_threads):
    from fastgen.cli.main import main
    data = str(letor_file(tmp_path / "letor.txt"))
    train = ["train", "irgan", "--task", "web", *SCHEDULE]
    one, two = tmp_path / "one", tmp_path / "two"
    with monkeypatch.context() as m:
        _spy(tmp_path / "one.txt", m.setattr)
        assert main([*train, "--out", str(one), "--data", data, "--micro-batches", "2", "--rounds", "2"]) == 0
    runs = [(_free_port(), [*train, "--out", str(two), "--data", data, "--rounds", "1"]),
            (_free_port(), [*train, "--out", str(two), "--resume", "--rounds", "2"])]
    mp.spawn(_process, args=(runs, str(tmp_path)), nprocs=2, join=True)

    for stage in ("pretrain/checkpoint", "checkpoint", "best"):
        a, b = load_checkpoint(one / stage), load_checkpoint(two / stage)
        assert a.step == b.step, stage
        for key, value in a.model_state.items():
            torch.testing.assert_close(b.model_state[key], value, rtol=0, atol=1e-6, msg=f"{stage} {key}")
    assert load_checkpoint(two / "checkpoint").extra["world_size"] == 2
    selected = [load_checkpoint(run / "best").config["selected"]["step"] for run in (one, two)]
    assert selected[0] == selected[1]
    # one log, each step once, as the reference's (losses averaged over the processes = over the micro-batches)
    rows_one, rows_two = _log(one), _log(two)
    assert [r["step"] for r in rows_two] == [r["step"] for r in rows_one] and len(rows_two) == 2
    for a, b in zip(rows_one, rows_two):
        for key, value in a.items():
            assert abs(float(b[key]) - float(value)) <= 1e-6 * (1 + abs(float(value))), key

    # each process saw its own part: pretraining documents split 98 + 97 (195 padded to 196), G's queries
    # split between them, and the two parts together are the reference's two micro-batches
    seen = {rank: (tmp_path / f"rank{rank}.txt").read_text().splitlines() for rank in (0, 1)}
    reference = (tmp_path / "one.txt").read_text().splitlines()
    pretrain = {rank: {line for line in lines if line.startswith("P")} for rank, lines in seen.items()}
    assert pretrain == {0: {"P 98"}, 1: {"P 97"}}
    g = {rank: [line for line in lines if line.startswith("G")] for rank, lines in seen.items()}
    assert sorted(g[0] + g[1]) == sorted(line for line in reference if line.startswith("G"))
    assert not set(g[0]) & set(g[1])
    assert len(g[0]) == 2 * 3 and len(g[1]) == 2 * 2  # per round 3 G steps; the last (1 query) is process 0's
