"""Trainer: bit-exact resume, logs and summary, seeding, and 2-process DDP == 1 process.

This file is also the DDP worker script: ``torchrun --nproc_per_node 2 test_trainer.py
--ddp-worker OUT`` trains the tiny model under gloo and writes OUT/checkpoint (see the last test).
"""
from __future__ import annotations

import csv
import json
import math
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from fastgen.train import (TrainConfig, Trainer, epoch_permutation, init_from_env, load_checkpoint,
                           seed_everything)

N, BATCH = 96, 16
STEPS_PER_EPOCH = N // BATCH  # 6


def make_data() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(2024)
    x = torch.randn(N, 4, generator=gen)
    y = torch.stack([x[:, 0] * x[:, 1], torch.sin(x[:, 2]) - x[:, 3]], dim=1)
    return x, y


def make_model(seed: int, dropout: float = 0.1) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Dropout(dropout), nn.Linear(16, 2))


def noisy_loss(model, batch, generator):
    """Uses both kinds of randomness: the Trainer's generator (input noise) and the global RNG
    (nn.Dropout)."""
    x, y = batch
    x = x + 0.05 * torch.randn(x.shape, generator=generator)
    pred = model(x)
    return nn.functional.mse_loss(pred, y), {"mae": (pred - y).abs().mean()}


def plain_loss(model, batch, generator):
    x, y = batch
    return nn.functional.mse_loss(model(x), y), {}


def evaluate_consuming_rng(model):
    """An evaluation that draws from every global RNG: it must not perturb training."""
    torch.randn(7), np.random.rand(3), random.random()
    x, y = make_data()
    return {"mse": nn.functional.mse_loss(model(x), y)}


def make_trainer(out_dir, model_seed=0, **overrides) -> Trainer:
    config = dict(batch_size=BATCH, epochs=2, lr=1e-2, grad_clip=1.0, seed=7, progress=False)
    config.update(overrides)
    return Trainer(make_model(model_seed), noisy_loss, TrainConfig(**config), out_dir=out_dir,
                   eval_fn=evaluate_consuming_rng, model_config={"hidden": 16})


def read_log(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def assert_same_state(a: Trainer, b: Trainer) -> None:
    for (name, pa), (_, pb) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert torch.equal(pa, pb), name
    sa, sb = a.optimizer.state_dict()["state"], b.optimizer.state_dict()["state"]
    for index in sa:
        for key in sa[index]:
            assert torch.equal(sa[index][key], sb[index][key]), (index, key)


# --- exact resume ---------------------------------------------------------------------------------

@pytest.mark.parametrize("stop", [STEPS_PER_EPOCH, 4], ids=["after_epoch_1", "mid_epoch"])
def test_exact_resume(tmp_path, stop):
    data = make_data()
    straight = make_trainer(tmp_path / "straight", eval_every=5)  # evaluates at other steps
    straight.fit(data)
    assert straight.step == 2 * STEPS_PER_EPOCH

    first = make_trainer(tmp_path / "resumed",
                         **({"epochs": 1} if stop == STEPS_PER_EPOCH else {"max_steps": stop}))
    first.fit(data)
    assert first.step == stop

    # a fresh start: other initial weights, fresh Adam, scrambled global RNGs, then load
    second = make_trainer(tmp_path / "resumed", model_seed=123)
    seed_everything(999)
    torch.randn(100)
    second.load(tmp_path / "resumed" / "checkpoint")
    assert second.step == stop
    second.fit(data)

    expected = [row["loss"] for row in straight.history]
    got = [row["loss"] for row in first.history + second.history]
    assert len(expected) == 2 * STEPS_PER_EPOCH
    assert got == expected  # bit-identical losses
    assert [r["step"] for r in first.history + second.history] == list(range(1, 13))
    assert_same_state(straight, second)

    # the resumed run's log.csv reads as one run, with floats that read back exactly
    rows = read_log(tmp_path / "resumed" / "log.csv")
    assert [int(r["step"]) for r in rows] == list(range(1, 13))
    assert [float(r["loss"]) for r in rows] == expected
    # and its final checkpoint holds the same weights as the uninterrupted run's
    ckpt = load_checkpoint(tmp_path / "resumed" / "checkpoint")
    for name, value in straight.model.state_dict().items():
        assert torch.equal(ckpt.model_state[name], value), name


def test_periodic_checkpoint_resume(tmp_path):
    """Resume from a checkpoint written mid-run by checkpoint_every (log rows after it are dropped)."""
    data = make_data()
    straight = make_trainer(tmp_path / "a")
    straight.fit(data)

    interrupted = make_trainer(tmp_path / "b", checkpoint_every=5, max_steps=8)
    interrupted.fit(data)  # writes checkpoints at 5, then 8 at the end
    ckpt_dir = tmp_path / "b" / "checkpoint"
    assert load_checkpoint(ckpt_dir).step == 8
    # pretend the run died after step 8's log row but with only step 5's checkpoint: rerun to 5
    rerun = make_trainer(tmp_path / "c", checkpoint_every=5, max_steps=5)
    rerun.fit(data)
    resumed = make_trainer(tmp_path / "b", model_seed=5)
    resumed.load(tmp_path / "c" / "checkpoint")
    resumed.fit(data)
    assert [r["loss"] for r in rerun.history + resumed.history] == [r["loss"] for r in straight.history]
    rows = read_log(tmp_path / "b" / "log.csv")
    assert [int(r["step"]) for r in rows] == list(range(1, 13))  # steps 6-8 were not duplicated
    assert_same_state(straight, resumed)


def test_resume_refuses_other_data_layout(tmp_path):
    data = make_data()
    make_trainer(tmp_path / "a", max_steps=3).fit(data)
    other = make_trainer(tmp_path / "b", batch_size=8)
    other.load(tmp_path / "a" / "checkpoint")
    with pytest.raises(ValueError, match="batch_size = 16, this run has 8"):
        other.fit(data)


# --- logs, summary, seeding, options --------------------------------------------------------------

def test_log_summary_and_checkpoint_files(tmp_path):
    out = tmp_path / "run"
    trainer = make_trainer(out, eval_every=4, log_every=3)
    summary = trainer.fit(make_data())
    rows = read_log(out / "log.csv")
    # rows every 3 steps, plus the eval steps (4, 8) and the last one (12, which is also eval)
    assert [int(r["step"]) for r in rows] == [3, 4, 6, 8, 9, 12]
    assert list(rows[0]) == ["step", "epoch", "loss", "mae", "grad_norm", "eval_mse", "lr", "time"]
    assert rows[0]["eval_mse"] == "" and rows[1]["eval_mse"] != ""
    assert float(rows[-1]["epoch"]) == 2.0 and float(rows[-1]["lr"]) == 1e-2
    times = [float(r["time"]) for r in rows]
    assert times == sorted(times)

    saved = json.loads((out / "summary.json").read_text())
    assert saved == json.loads(json.dumps(summary))
    assert summary["step"] == 12 and summary["epochs"] == 2.0 and summary["world_size"] == 1
    assert set(summary["eval"]) == {"eval_mse"} and summary["config"]["batch_size"] == BATCH
    ckpt = load_checkpoint(out / "checkpoint")
    assert ckpt.step == 12 and ckpt.config == {"hidden": 16}
    assert ckpt.extra["data"] == {"examples": N, "batch_size": BATCH, "seed": 7, "steps_per_epoch": 6}
    assert len(ckpt.extra["rng"]) == 1


def test_seeding_and_data_order(tmp_path):
    data = make_data()
    a = make_trainer(None)  # (the global RNG is process-wide: build each Trainer right before fit)
    a.fit(data)
    b = make_trainer(None)
    b.fit(data)
    assert [r["loss"] for r in a.history] == [r["loss"] for r in b.history]
    c = make_trainer(None, seed=8)
    c.fit(data)
    assert [r["loss"] for r in c.history] != [r["loss"] for r in a.history]
    # every epoch is a permutation; epochs differ; the order depends only on (seed, epoch, n)
    p0, p1 = epoch_permutation(7, 0, N), epoch_permutation(7, 1, N)
    assert sorted(p0.tolist()) == list(range(N)) and not torch.equal(p0, p1)
    assert torch.equal(p0, epoch_permutation(7, 0, N))


def test_single_tensor_data_lr_schedule_and_no_clip(tmp_path):
    x, _ = make_data()
    seen = []

    def autoencode(model, batch, generator):
        assert isinstance(batch, torch.Tensor) and batch.shape == (BATCH, 4)
        seen.append(batch)
        return (model(batch)[:, :1] - batch[:, :1]).square().mean()  # a bare loss, no metrics

    trainer = Trainer(make_model(0), autoencode,
                      TrainConfig(batch_size=BATCH, epochs=1, lr=0.1, progress=False),
                      lr_lambda=lambda step: 0.5 ** step)
    trainer.fit(x)
    assert [r["lr"] for r in trainer.history] == [0.1 * 0.5 ** s for s in range(STEPS_PER_EPOCH)]
    assert "grad_norm" not in trainer.history[0]
    assert torch.equal(torch.cat(seen), x[epoch_permutation(0, 0, N)])


def test_non_finite_loss_stops(tmp_path):
    def exploding(model, batch, generator):
        return model(batch[0]).sum() * float("nan"), {}

    trainer = Trainer(make_model(0), exploding, TrainConfig(batch_size=BATCH, progress=False))
    with pytest.raises(FloatingPointError, match="loss is nan at step 1"):
        trainer.fit(make_data())


@pytest.mark.parametrize("bad", [{"batch_size": 0}, {"grad_clip": 0.0}, {"eval_every": 0}])
def test_config_validation(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        TrainConfig(**bad)


def test_too_little_data():
    trainer = Trainer(make_model(0), plain_loss, TrainConfig(batch_size=200, progress=False))
    with pytest.raises(ValueError, match="fewer than one batch"):
        trainer.fit(make_data())


# --- multi-process data parallel ------------------------------------------------------------------

DDP_CONFIG = dict(batch_size=BATCH, max_steps=5, lr=1e-2, grad_clip=0.5, seed=3, progress=False)


def _ddp_worker(out: str) -> None:
    """Run by each torchrun process: every rank starts from different weights (DDP must broadcast
    rank 0's), takes half of each global batch, and rank 0 writes out/checkpoint and log.csv."""
    assert init_from_env()
    rank = torch.distributed.get_rank()
    trainer = Trainer(make_model(seed=rank, dropout=0.0), plain_loss, TrainConfig(**DDP_CONFIG),
                      out_dir=out)
    assert trainer.world_size == 2
    trainer.fit(make_data())
    # fit lets go of the DDP wrapper, whose Reducer would otherwise free the gloo group at exit with
    # the GIL held and hang (about one run in five before the fix)
    assert not isinstance(trainer.update.net, torch.nn.parallel.DistributedDataParallel)
    torch.distributed.destroy_process_group()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_cpu_processes_gloo_match_single_process(tmp_path):
    out = tmp_path / "ddp"
    repo = Path(__file__).resolve().parents[2]
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(repo), os.environ.get("PYTHONPATH")])))
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
               "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
               str(Path(__file__).resolve()), "--ddp-worker", str(out)]
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    print(f"torchrun took {time.perf_counter() - start:.1f} s")
    assert done.returncode == 0, f"torchrun failed:\n{done.stdout}\n{done.stderr}"

    single = Trainer(make_model(seed=0, dropout=0.0), plain_loss, TrainConfig(**DDP_CONFIG))
    single.fit(make_data())

    ckpt = load_checkpoint(out / "checkpoint")
    assert ckpt.step == 5 and ckpt.extra["world_size"] == 2 and len(ckpt.extra["rng"]) == 2
    worst = 0.0
    for name, value in single.model.state_dict().items():
        diff = (ckpt.model_state[name] - value).abs().max().item()
        worst = max(worst, diff)
        assert torch.allclose(ckpt.model_state[name], value, rtol=0, atol=1e-6), (name, diff)
    print(f"max |DDP - single| over weights: {worst:.2e}")
    rows = read_log(out / "log.csv")  # written once, by rank 0, with the global-batch loss
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5]
    for row, ref in zip(rows, single.history):
        assert math.isclose(float(row["loss"]), ref["loss"], rel_tol=1e-5)
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint", "log.csv", "summary.json"]


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--ddp-worker":
        _ddp_worker(sys.argv[2])
    else:
        raise SystemExit(f"usage: torchrun --nproc_per_node 2 {sys.argv[0]} --ddp-worker OUT")
