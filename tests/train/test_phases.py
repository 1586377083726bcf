"""Trainer with phases: several networks, each with its own optimizer, loss and schedule.

A tiny GAN (generator + discriminator on 2-D Gaussian data, non-saturating loss) must learn the data
mean; a tiny alternating model (3 updates of A per update of B) must count its schedule right and
resume bit-exactly mid-cycle (weights and every optimizer's state); a simultaneous group must route
each loss to its own network only; and two processes must compute what one process computes on the
same global batches.
"""
from __future__ import annotations

import json
import os
from typing import NamedTuple, Optional

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from fastgen.train import (BatchStream, CheckpointError, Phase, TrainConfig, Trainer, derive_seed,
                           epoch_permutation, load_checkpoint, seed_everything)

# --- a tiny GAN -----------------------------------------------------------------------------------

MEAN, STD = torch.tensor([2.0, -1.0]), 0.5


class GAN(nn.Module):
    def __init__(self):
        super().__init__()
        self.generator = nn.Linear(2, 2)
        self.discriminator = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 1))

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return self.generator(torch.randn(n, 2, generator=generator))


def d_loss(model, x, generator):
    """Not detached on purpose: the phase's backward must still leave the generator's gradients alone."""
    real, fake = model.discriminator(x), model.discriminator(model.sample(len(x), generator))
    return F.softplus(-real).mean() + F.softplus(fake).mean(), {"real": torch.sigmoid(real).mean()}


def g_loss(model, x, generator):
    return F.softplus(-model.discriminator(model.sample(len(x), generator))).mean()  # non-saturating


def gan_phases(gan: GAN, d=d_loss, g=g_loss, lr: float = 0.02) -> list[Phase]:
    return [Phase("D", gan.discriminator, d, lr=lr, betas=(0.5, 0.999)),
            Phase("G", gan.generator, g, lr=lr, betas=(0.5, 0.999))]


def gaussian_data(n: int = 512) -> torch.Tensor:
    return MEAN + STD * torch.randn(n, 2, generator=torch.Generator().manual_seed(1))


def make_gan(seed: int) -> GAN:
    seed_everything(seed)
    return GAN()


def generated_mean(gan: GAN) -> torch.Tensor:
    with torch.no_grad():
        return gan.sample(4096, torch.Generator().manual_seed(5)).mean(0)


def test_gan_learns_the_data_mean():
    gan = make_gan(0)
    before = (generated_mean(gan) - MEAN).norm().item()
    trainer = Trainer(gan, phases=gan_phases(gan),
                      config=TrainConfig(batch_size=64, epochs=40, seed=3, progress=False, log_every=8))
    summary = trainer.fit(gaussian_data())
    after = (generated_mean(gan) - MEAN).norm().item()
    print(f"|generated mean - data mean|: {before:.3f} before, {after:.3f} after {trainer.step} steps")
    assert trainer.step == 320 and before > 2.0 and after < 0.3
    final = summary["final"]
    assert {"loss/D", "loss/G", "D/real", "lr/D", "lr/G"} <= set(final)
    assert abs(final["D/real"] - 0.5) < 0.15  # near equilibrium the discriminator cannot tell
    assert summary["phases"] == [{"name": "D", "every": 1, "repeat": 1}, {"name": "G", "every": 1, "repeat": 1}]


def _params(module: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def _equal(a: list[torch.Tensor], b: list[Optional[torch.Tensor]]) -> bool:
    return all(y is not None and torch.equal(x, y) for x, y in zip(a, b))


def test_each_phase_updates_only_its_own_parameters():
    seen = {}

    def d_spy(model, x, generator):
        seen.update(g_at_d=_params(model.generator), d_at_d=_params(model.discriminator))
        return d_loss(model, x, generator)

    def g_spy(model, x, generator):
        seen.update(g_at_g=_params(model.generator), d_at_g=_params(model.discriminator),
                    d_grad_at_g=[p.grad.clone() for p in model.discriminator.parameters()])
        return g_loss(model, x, generator)

    gan = make_gan(0)
    trainer = Trainer(gan, phases=gan_phases(gan, d_spy, g_spy),
                      config=TrainConfig(batch_size=64, max_steps=2, progress=False))
    trainer.fit(gaussian_data())
    # step 2: D's update left G exactly as it was, and wrote no gradient into it
    assert _equal(seen["g_at_d"], seen["g_at_g"])
    # G's update left D exactly as it was, its gradients too; and both networks did move
    assert _equal(seen["d_at_g"], _params(gan.discriminator))
    assert _equal(seen["d_grad_at_g"], [p.grad for p in gan.discriminator.parameters()])
    assert not _equal(seen["d_at_d"], seen["d_at_g"]) and not _equal(seen["g_at_g"], _params(gan.generator))

    # two optimizers over disjoint parameters, each holding state for its own network only
    d_opt, g_opt = trainer.optimizers["D"], trainer.optimizers["G"]
    assert trainer.optimizer is None and d_opt is not g_opt
    d_ids = {id(p) for group in d_opt.param_groups for p in group["params"]}
    g_ids = {id(p) for group in g_opt.param_groups for p in group["params"]}
    assert d_ids == {id(p) for p in gan.discriminator.parameters()}
    assert g_ids == {id(p) for p in gan.generator.parameters()}
    assert set(d_opt.state) == set(gan.discriminator.parameters())
    assert set(g_opt.state) == set(gan.generator.parameters())
    assert d_opt.param_groups[0]["betas"] == (0.5, 0.999)


# --- a tiny alternating model: 3 updates of A per update of B -------------------------------------

N, BATCH, K = 96, 16, 3
STEPS_PER_EPOCH = N // BATCH  # 6


class Pair(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(3, 8)
        self.b = nn.Linear(8, 1)
        self.drop = nn.Dropout(0.1)  # global RNG: checkpointed too

    def forward(self, x):
        return self.b(self.drop(torch.tanh(self.a(x)))).squeeze(-1)


def pair_data() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(N, 3, generator=gen)
    return x, x[:, 0] * x[:, 1] - x[:, 2]


def loss_a(model, batch, generator):
    x, y = batch
    pred = model(x + 0.05 * torch.randn(x.shape, generator=generator))
    return F.mse_loss(pred, y), {"mae": (pred - y).abs().mean()}


def loss_b(model, batch, generator):
    x, y = batch
    return F.l1_loss(model(x * (1 + 0.1 * torch.rand(x.shape, generator=generator))), y)


def pair_phases(model: Pair, calls: Optional[list] = None, b_name: str = "B", repeat: int = 1) -> list[Phase]:
    def recorded(name, fn):
        def loss(m, batch, generator):
            if calls is not None:
                calls.append(name)
            return fn(m, batch, generator)
        return loss

    return [Phase("A", model.a, recorded("A", loss_a), lr=1e-2),
            Phase(b_name, model.b, recorded(b_name, loss_b), every=K, repeat=repeat,
                  optimizer=lambda params: torch.optim.SGD(params, lr=0.05, momentum=0.9))]


def make_pair_trainer(out_dir, model_seed: int = 0, calls=None, b_name: str = "B", repeat: int = 1,
                      **overrides) -> Trainer:
    seed_everything(model_seed)
    model = Pair()
    config = dict(batch_size=BATCH, epochs=2, grad_clip=0.5, seed=11, progress=False)
    config.update(overrides)
    return Trainer(model, phases=pair_phases(model, calls, b_name, repeat), config=TrainConfig(**config),
                   out_dir=out_dir, lr_lambda=lambda step: 0.9 ** step, model_config={"kind": "pair"})


@pytest.mark.parametrize("repeat", [1, 2])
def test_k_schedule_counted(repeat):
    calls: list[str] = []
    trainer = make_pair_trainer(None, calls=calls, repeat=repeat, max_steps=7)
    trainer.fit(pair_data())
    b = ["B"] * repeat
    assert calls == ["A", "A", "A", *b, "A", "A", "A", *b, "A"]
    assert trainer.optimizers["A"].state[trainer.model.a.weight]["step"] == 7  # Adam counts its updates
    assert trainer.optimizers["B"].state[trainer.model.b.weight]["momentum_buffer"] is not None
    # log rows: B's columns only on the steps it ran (log_every=1), A's on every one
    ran_b = [row["step"] for row in trainer.history if "loss/B" in row]
    assert ran_b == [3, 6] and all("loss/A" in row and "A/mae" in row for row in trainer.history)
    assert trainer.history[0]["lr/A"] == pytest.approx(1e-2) and trainer.history[1]["lr/B"] == pytest.approx(0.05 * 0.9)


def _same_optimizers(a: Trainer, b: Trainer) -> None:
    assert set(a.optimizers) == set(b.optimizers)
    for name in a.optimizers:
        sa, sb = a.optimizers[name].state_dict(), b.optimizers[name].state_dict()
        assert sa["param_groups"] == sb["param_groups"], name
        assert sa["state"].keys() == sb["state"].keys() and sa["state"], name
        for index, entry in sa["state"].items():
            assert entry.keys() == sb["state"][index].keys()
            for key, value in entry.items():
                assert torch.equal(value, sb["state"][index][key]), (name, index, key)


@pytest.mark.parametrize("stop", [5, 7], ids=["mid_cycle_epoch_1", "mid_cycle_epoch_2"])
def test_resume_mid_cycle_is_bit_exact(tmp_path, stop):
    data = pair_data()
    straight = make_pair_trainer(tmp_path / "straight")
    straight.fit(data)
    assert straight.step == 2 * STEPS_PER_EPOCH

    first = make_pair_trainer(tmp_path / "resumed", max_steps=stop)
    first.fit(data)
    ckpt = load_checkpoint(tmp_path / "resumed" / "checkpoint")
    assert ckpt.step == stop and set(ckpt.optimizer_states) == {"A", "B"} and ckpt.optimizer_state is None
    assert json.loads((tmp_path / "resumed" / "checkpoint" / "config.json").read_text())["optimizers"] == ["A", "B"]

    # a fresh start: other initial weights, fresh optimizers, scrambled global RNGs, then load
    second = make_pair_trainer(tmp_path / "resumed", model_seed=123)
    seed_everything(999)
    torch.randn(100)
    second.load(tmp_path / "resumed" / "checkpoint")
    second.fit(data)

    assert [r["step"] for r in first.history + second.history] == list(range(1, 13))
    untimed = lambda rows: [{k: v for k, v in r.items() if k != "time"} for r in rows]  # noqa: E731
    assert untimed(first.history + second.history) == untimed(straight.history)  # every loss, metric, lr
    for (name, value), other in zip(straight.model.state_dict().items(), second.model.state_dict().values()):
        assert torch.equal(value, other), name
    _same_optimizers(straight, second)


def test_checkpoint_of_other_phases_is_refused(tmp_path):
    data = pair_data()
    make_pair_trainer(tmp_path / "ab", max_steps=4).fit(data)
    other = make_pair_trainer(None, model_seed=5, b_name="C")
    before = [p.detach().clone() for p in other.model.parameters()]
    with pytest.raises(CheckpointError, match=r"holds the optimizers of phases A, B, but the optimizers of "
                                              r"phases A, C were given"):
        other.load(tmp_path / "ab" / "checkpoint")
    assert _equal(before, list(other.model.parameters()))  # nothing was loaded
    assert other.step == 0

    # a single-loss checkpoint into a Trainer with phases, and the other way round
    seed_everything(0)
    single = Trainer(Pair(), loss_a, TrainConfig(batch_size=BATCH, max_steps=2, progress=False),
                     out_dir=tmp_path / "single")
    single.fit(data)
    with pytest.raises(CheckpointError, match=r"holds one optimizer \(a single-loss run\), but the optimizers "
                                              r"of phases A, B were given"):
        make_pair_trainer(None).load(tmp_path / "single" / "checkpoint")
    with pytest.raises(CheckpointError, match=r"holds the optimizers of phases A, B, but one optimizer"):
        single.load(tmp_path / "ab" / "checkpoint")


def test_changed_schedule_warns_on_resume(tmp_path):
    make_pair_trainer(tmp_path / "run", max_steps=2).fit(pair_data())
    seed_everything(0)
    model = Pair()
    phases = pair_phases(model)
    phases[1].every = 2
    trainer = Trainer(model, phases=phases, config=TrainConfig(batch_size=BATCH, progress=False))
    with pytest.warns(RuntimeWarning, match="phase schedule"):
        trainer.load(tmp_path / "run" / "checkpoint")


# --- simultaneous phases: one forward, each loss to its own network --------------------------------

class Trio(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc, self.dec, self.dis = nn.Linear(2, 2), nn.Linear(2, 2), nn.Linear(2, 1)


def trio_losses(model, x, generator):
    z = model.enc(x) + 0.1 * torch.randn(x.shape, generator=generator)
    recon = model.dec(z)
    real, fake = model.dis(x), model.dis(recon)
    rec = (recon - x).square().mean()
    return ({"enc": rec + 0.5 * z.square().mean(), "dec": rec + F.softplus(-fake).mean(),
             "dis": F.softplus(-real).mean() + F.softplus(fake).mean()}, {"rec": rec})


def test_simultaneous_phases_route_each_loss_to_its_network():
    forwards = []

    def counted(model, x, generator):
        forwards.append(1)
        return trio_losses(model, x, generator)

    seed_everything(0)
    trio = Trio()
    initial = {k: v.clone() for k, v in trio.state_dict().items()}
    sgd = lambda params: torch.optim.SGD(params, lr=1.0)  # noqa: E731 - update = -gradient
    phases = [Phase(name, getattr(trio, name), counted, optimizer=sgd) for name in ("enc", "dec", "dis")]
    data = gaussian_data(64)
    trainer = Trainer(trio, phases=phases, config=TrainConfig(batch_size=32, max_steps=1, seed=4, progress=False))
    trainer.fit(data)
    assert len(forwards) == 1 and {"loss/enc", "loss/dec", "loss/dis", "enc+dec+dis/rec"} <= set(trainer.history[0])

    # the expected update: each network moves along the gradient of its own loss only
    reference = Trio()
    reference.load_state_dict(initial)
    generator = torch.Generator().manual_seed(derive_seed(4, "noise", 0))
    losses, _ = trio_losses(reference, data[epoch_permutation(4, 0, 64)[:32]], generator)
    for name in ("enc", "dec", "dis"):
        net = getattr(reference, name)
        grads = torch.autograd.grad(losses[name], list(net.parameters()), retain_graph=True)
        for (pname, p), g in zip(net.named_parameters(), grads):
            got = getattr(trio, name).get_parameter(pname)
            torch.testing.assert_close(got, p - g, rtol=0, atol=1e-7, msg=f"{name}.{pname}")


def test_simultaneous_group_errors():
    seed_everything(0)
    trio = Trio()
    config = TrainConfig(batch_size=32, max_steps=1, progress=False)
    with pytest.raises(ValueError, match="dis differ from 'enc' in every / repeat"):
        Trainer(trio, phases=[Phase("enc", trio.enc, trio_losses), Phase("dis", trio.dis, trio_losses, every=2)])
    with pytest.raises(ValueError, match="must be listed together"):
        Trainer(trio, phases=[Phase("enc", trio.enc, trio_losses), Phase("dec", trio.dec, loss_b),
                              Phase("dis", trio.dis, trio_losses)])
    two = Trainer(trio, phases=[Phase("enc", trio.enc, trio_losses), Phase("dec", trio.dec, trio_losses)],
                  config=config)
    with pytest.raises(ValueError, match=r"returned losses for \['dec', 'dis', 'enc'\]"):
        two.fit(gaussian_data(64))
    lone = Trainer(trio, phases=[Phase("enc", trio.enc, trio_losses)], config=config)
    with pytest.raises(TypeError, match="phase 'enc': loss_fn's loss must be a scalar tensor, got dict"):
        lone.fit(gaussian_data(64))


def test_non_finite_phase_loss_stops_before_the_update():
    gan = make_gan(0)
    before = _params(gan.generator)
    bad_g = lambda model, x, generator: g_loss(model, x, generator) * float("inf")  # noqa: E731
    trainer = Trainer(gan, phases=gan_phases(gan, g=bad_g), config=TrainConfig(batch_size=64, progress=False))
    with pytest.raises(FloatingPointError, match="loss/G is inf at step 1"):
        trainer.fit(gaussian_data())
    assert _equal(before, _params(gan.generator))


@pytest.mark.parametrize("make, message", [
    (lambda m: dict(loss_fn=loss_a, phases=pair_phases(m)), "either a loss_fn"),
    (lambda m: dict(), "either a loss_fn"),
    (lambda m: dict(phases=[]), "non-empty list"),
    (lambda m: dict(phases=[Phase("A", m.a, loss_a), Phase("A", m.b, loss_b)]), "names must differ"),
    (lambda m: dict(phases=[Phase("A", m, loss_a), Phase("B", m.b, loss_b)]), "'b.weight' is in phases 'A' and 'B'"),
    (lambda m: dict(phases=[Phase("A", nn.Linear(2, 2), loss_a)]), "not a parameter of the Trainer's model"),
    (lambda m: dict(phases=[Phase("A", m.a, loss_a, optimizer=lambda p: torch.optim.SGD(m.b.parameters(), lr=1))]),
     "over other parameters than the phase's"),
])
def test_phase_setup_errors(make, message):
    seed_everything(0)
    model = Pair()
    with pytest.raises((TypeError, ValueError), match=message):
        Trainer(model, **make(model))


@pytest.mark.parametrize("kwargs, message", [
    (dict(name="a/b"), "letters, digits"), (dict(every=0), "every must be an int >= 1"),
    (dict(repeat=0), "repeat must be"), (dict(grad_clip=0.0), "grad_clip must be > 0"),
    (dict(lr=0.1, optimizer=lambda p: torch.optim.SGD(p, lr=0.1)), "either an optimizer factory or lr"),
])
def test_phase_validation(kwargs, message):
    args = dict(name="A", params=nn.Linear(2, 2), loss_fn=loss_a)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        Phase(**args)


# --- data as a BatchStream ------------------------------------------------------------------------

class Crops(NamedTuple):
    x: torch.Tensor
    mask: Optional[torch.Tensor]
    index: torch.Tensor


def crop_stream(calls: Optional[list] = None, steps: int = STEPS_PER_EPOCH, size: int = BATCH) -> BatchStream:
    """Batches drawn from the data generator, like random crops: the contract's typical use."""
    def batches(epoch, generator):
        if calls is not None:
            calls.append(epoch)
        for i in range(steps):
            yield Crops(torch.randn(size, 3, generator=generator), None, torch.arange(size) + 1000 * i)
    return BatchStream(batches, STEPS_PER_EPOCH)


def crop_loss(model, batch, generator):
    assert isinstance(batch, Crops) and batch.mask is None
    pred = model(batch.x + 0.05 * torch.randn(batch.x.shape, generator=generator))
    return F.mse_loss(pred, batch.x.sum(1))


def make_stream_trainer(out_dir, model_seed=0, **overrides) -> Trainer:
    seed_everything(model_seed)
    config = dict(batch_size=BATCH, epochs=2, seed=5, progress=False)
    config.update(overrides)
    return Trainer(Pair(), crop_loss, TrainConfig(**config), out_dir=out_dir)


def test_stream_resume_is_exact_and_skips_to_the_batch(tmp_path):
    straight = make_stream_trainer(tmp_path / "a")
    straight.fit(crop_stream())
    calls: list[int] = []
    first = make_stream_trainer(tmp_path / "b", max_steps=4)
    first.fit(crop_stream(calls))
    assert calls == [0]
    second = make_stream_trainer(tmp_path / "b", model_seed=9)
    second.load(tmp_path / "b" / "checkpoint")
    second.fit(crop_stream(calls))
    assert calls == [0, 0, 1]  # resumed at step 4: epoch 0 drawn again and 4 batches skipped, then epoch 1
    assert [r["loss"] for r in first.history + second.history] == [r["loss"] for r in straight.history]
    for value, other in zip(straight.model.state_dict().values(), second.model.state_dict().values()):
        assert torch.equal(value, other)
    assert load_checkpoint(tmp_path / "b" / "checkpoint").extra["data"] == {
        "stream": True, "batch_size": BATCH, "seed": 5, "steps_per_epoch": STEPS_PER_EPOCH}
    on_tensors = make_stream_trainer(None)
    on_tensors.load(tmp_path / "b" / "checkpoint")
    with pytest.raises(ValueError, match="trained on a BatchStream, this run on tensors"):
        on_tensors.fit(pair_data())


def test_stream_shards_are_slices_of_the_global_batch(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTGEN_SHARD_TRACE", str(tmp_path))
    seen = []

    def loss(model, batch, generator):
        seen.append(batch.index.tolist())
        return crop_loss(model, batch, generator)

    seed_everything(0)
    Trainer(Pair(), loss, TrainConfig(batch_size=BATCH, max_steps=2, micro_batches=2, progress=False)).fit(crop_stream())
    half = BATCH // 2
    assert seen == [list(range(half)), list(range(half, BATCH)),
                    list(range(1000, 1000 + half)), list(range(1000 + half, 1000 + BATCH))]
    trace = [json.loads(line) for line in (tmp_path / "rank0.jsonl").read_text().splitlines()]
    assert [(t["step"], t["shard"], t["rows"]) for t in trace[:2]] == [
        (1, 0, list(range(half))), (1, 1, list(range(half, BATCH)))]


@pytest.mark.parametrize("stream, error, message", [
    (crop_stream(steps=2), ValueError, "epoch 0 ended after 2 batches, but steps_per_epoch is 6"),
    (crop_stream(size=BATCH - 1), ValueError, r"element 0 has shape \(15, 3\); its first dimension must be "
                                              "the global batch size 16"),
    (BatchStream(lambda e, g: iter([[torch.zeros(BATCH)]] * 6), 6), TypeError, "a batch is a tensor or a tuple"),
    (BatchStream(lambda e, g: iter([(torch.zeros(BATCH), 3)] * 6), 6), TypeError, "element 1 is a int"),
])
def test_stream_contract_errors(stream, error, message):
    with pytest.raises(error, match=message):
        make_stream_trainer(None, max_steps=6).fit(stream)


def test_stream_validation():
    with pytest.raises(ValueError, match="steps_per_epoch must be an int >= 1"):
        BatchStream(lambda e, g: [], 0)
    with pytest.raises(TypeError, match="must be callable"):
        BatchStream([torch.zeros(2)], 1)


# --- phases chosen by the batch (IRGAN's blocks of D epochs, then G epochs) --------------------------

def blocks_stream(pattern: str) -> BatchStream:
    """Gaussian batches, each with a column naming its phase (0 = D, 1 = G) as ``pattern`` says."""
    def batches(epoch, generator):
        for phase in pattern:
            yield MEAN + STD * torch.randn(64, 2, generator=generator), torch.full((64,), "DG".index(phase))
    return BatchStream(batches, len(pattern))


def by_column(batch) -> str:
    return "DG"[int(batch[1][0])]


def test_phase_of_runs_only_the_phases_a_batch_names():
    pattern = "DDDGG"
    seen = []

    def spy(loss):
        def run(model, batch, generator):
            seen.append((loss.__name__, by_column(batch), _params(model.generator), _params(model.discriminator)))
            return loss(model, batch[0], generator)
        return run

    gan = make_gan(0)
    trainer = Trainer(gan, phases=gan_phases(gan, spy(d_loss), spy(g_loss)), phase_of=by_column,
                      config=TrainConfig(batch_size=64, epochs=2, seed=3, progress=False, log_every=1))
    summary = trainer.fit(blocks_stream(pattern))
    # each step ran exactly the phase its batch named, in the stream's order
    assert [(fn, col) for fn, col, _, _ in seen] == [("d_loss" if c == "D" else "g_loss", c) for c in pattern * 2]
    # a D block leaves G bit-identical (Adam would move G on a zero gradient if its optimizer stepped)
    assert _equal(seen[0][2], seen[3][2]) and not _equal(seen[0][3], seen[3][3])
    assert _equal(seen[3][3], seen[5][3]) and not _equal(seen[3][2], seen[5][2])
    # each optimizer stepped only on its own batches: 3 + 3 D updates, 2 + 2 G updates
    assert {int(s["step"]) for s in trainer.optimizers["D"].state.values()} == {6}
    assert {int(s["step"]) for s in trainer.optimizers["G"].state.values()} == {4}
    assert all(("loss/D" in row) == (pattern[(row["step"] - 1) % 5] == "D") for row in trainer.history)
    assert summary["phases"][0] == {"name": "D", "every": 1, "repeat": 1, "by_batch": True}


def test_phase_of_errors():
    gan = make_gan(0)
    config = TrainConfig(batch_size=64, max_steps=1, progress=False)
    with pytest.raises(TypeError, match="phase_of chooses among phases"):
        Trainer(gan, g_loss, config, phase_of=by_column)
    with pytest.raises(ValueError, match=r"phase_of named \['X'\]; it must name one or more of \['D', 'G'\]"):
        Trainer(gan, phases=gan_phases(gan), phase_of=lambda b: "X", config=config).fit(blocks_stream("D"))
    # shards of one batch must agree: here the two micro-batches' halves carry different phases
    halves = BatchStream(lambda e, g: iter([(torch.randn(64, 2, generator=g), torch.arange(64) // 32)]), 1)
    split = TrainConfig(batch_size=64, max_steps=1, micro_batches=2, progress=False)
    with pytest.raises(ValueError, match="different phases for the shards of one batch"):
        Trainer(gan, phases=gan_phases(gan), phase_of=by_column, config=split).fit(halves)


# --- two processes == one process with two micro-batches ------------------------------------------

DDP_STEPS, DDP_BATCH = 6, 32


def ddp_stream() -> BatchStream:
    def batches(epoch, generator):
        for _ in range(DDP_STEPS):
            yield MEAN + STD * torch.randn(DDP_BATCH, 2, generator=generator)
    return BatchStream(batches, DDP_STEPS)


def ddp_trainer(gan: GAN, out_dir, micro_batches: int) -> Trainer:
    phases = gan_phases(gan, lr=0.05)
    phases[1].every = 2  # G every other step: the schedule under DDP too
    return Trainer(gan, phases=phases, out_dir=out_dir,
                   config=TrainConfig(batch_size=DDP_BATCH, epochs=2, seed=2, grad_clip=1.0,
                                      micro_batches=micro_batches, progress=False))


def _ddp_worker(rank: int, world: int, init_file: str, out: str) -> None:
    os.environ["FASTGEN_SHARD_TRACE"] = out
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        gan = make_gan(100 + rank)  # each process starts elsewhere: process 0's weights must win
        trainer = ddp_trainer(gan, os.path.join(out, "run"), micro_batches=1)
        assert trainer.world_size == 2
        trainer.fit(ddp_stream())
        save_file({k: v.contiguous() for k, v in gan.state_dict().items()}, os.path.join(out, f"rank{rank}.safetensors"))
    finally:
        dist.destroy_process_group()


def test_two_processes_equal_one_process(tmp_path):
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)

    single = ddp_trainer(make_gan(100), None, micro_batches=2)
    single.fit(ddp_stream())
    final = {k: v for k, v in single.model.state_dict().items()}
    ranks = [load_file(str(tmp_path / f"rank{r}.safetensors")) for r in (0, 1)]
    worst = max((ranks[0][k] - v).abs().max().item() for k, v in final.items())
    print(f"max |2 processes - 1 process| over weights: {worst:.2e}")
    for name, value in final.items():
        assert torch.equal(ranks[0][name], ranks[1][name]), name  # the processes stayed in lockstep
        torch.testing.assert_close(ranks[0][name], value, rtol=0, atol=1e-6, msg=name)

    ckpt = load_checkpoint(tmp_path / "run" / "checkpoint")
    assert ckpt.extra["world_size"] == 2 and ckpt.step == 2 * DDP_STEPS
    for name, optimizer in single.optimizers.items():
        mine = optimizer.state_dict()["state"]
        for index, entry in ckpt.optimizer_states[name]["state"].items():
            for key, value in entry.items():
                torch.testing.assert_close(value, mine[index][key], rtol=0, atol=1e-6)
    # each process took its own half of every global batch
    half = DDP_BATCH // 2
    for rank in (0, 1):
        trace = [json.loads(line) for line in (tmp_path / f"rank{rank}.jsonl").read_text().splitlines()]
        assert [t["step"] for t in trace] == list(range(1, 2 * DDP_STEPS + 1))
        assert all(t["shard"] == rank and t["rows"] == list(range(rank * half, (rank + 1) * half)) for t in trace)
    rows = (tmp_path / "run" / "log.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * DDP_STEPS  # written once, by process 0
    assert single.history[-1]["loss/D"] == pytest.approx(
        float(dict(zip(rows[0].split(","), rows[-1].split(",")))["loss/D"]), rel=1e-5)
