"""IRGAN's item ops (plain-PyTorch bodies), its losses and its schedule on the Trainer, on synthetic
interactions small enough to train in seconds."""
from __future__ import annotations

import math

import pytest
import torch

from fastgen.models.irgan import (MF, MFConfig, UserItems, draw_negatives, generator_loss, proposal_draws, reward,
                                  sample_items, topk_items)
from fastgen.recipes.irgan import Settings
from fastgen.recipes.irgan.data import DataSpec, TrainVal
from fastgen.recipes.irgan import training

N_USERS, N_ITEMS = 24, 30


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: a second OpenMP thread only adds waiting (on a loaded 2-core machine a [3, 30]
    softmax took 50 ms with 2 threads)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def synthetic_data(seed: int = 0) -> TrainVal:
    """Users like the items of their own cluster (3 clusters); a few of each user's go to validation."""
    g = torch.Generator().manual_seed(seed)
    users, items = [], []
    for u in range(N_USERS):
        liked = torch.randperm(10, generator=g)[:6] + 10 * (u % 3)
        users += [u] * 6
        items += liked.tolist()
    users, items = torch.tensor(users), torch.tensor(items)
    val = torch.arange(len(users)) % 6 == 0
    train = UserItems.from_pairs(users[~val], items[~val], N_USERS, N_ITEMS)
    return TrainVal(train, UserItems.from_pairs(users[val], items[val], N_USERS, N_ITEMS), train, "synthetic")


def random_factors(n_users: int, n_items: int, d: int, scale: float, seed: int):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n_users, d, generator=g) * scale, torch.randn(n_items, d, generator=g) * scale,
            torch.randn(n_items, generator=g) * scale)


@pytest.mark.parametrize("scale,temperature", [(0.5, 1.0), (3.0, 0.2), (4.0, 0.01)])
def test_sample_items_is_the_inverse_cdf_of_the_softmax(scale, temperature):
    # spread logits at tiny temperatures: an exp taken without the max shift overflows to NaN here
    u, v, b = random_factors(5, 40, 8, scale, seed=1)
    uniforms = torch.rand(5, 64, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    got = sample_items(u, v, b, uniforms, temperature)
    logits = ((u.double() @ v.double().T + b.double()) / temperature).tolist()
    for row in range(5):
        top = max(logits[row])
        weights = [math.exp(x - top) for x in logits[row]]
        cdf, total = [], 0.0
        for w in weights:
            total += w
            cdf.append(total / sum(weights))
        for col in range(64):
            expected = next((i for i, c in enumerate(cdf) if c > uniforms[row, col]), 39)
            assert got[row, col] == expected


def test_sample_items_draws_follow_the_softmax():
    u, v, b = random_factors(1, 12, 4, 1.0, seed=3)
    n = 60_000
    draws = sample_items(u, v, b, torch.rand(1, n, generator=torch.Generator().manual_seed(4)), 0.7)[0]
    observed = torch.bincount(draws, minlength=12).double()
    expected = torch.softmax((u @ v.T + b).double()[0] / 0.7, 0) * n
    chi2 = float(((observed - expected) ** 2 / expected).sum())
    print(f"chi-square {chi2:.1f} on 11 degrees of freedom")
    assert chi2 < 31.3  # the 0.999 quantile of chi-square(11)


def test_float64_uniforms_next_to_one_draw_the_last_item():
    """IRGAN draws float64 uniforms; one within 2^-25 of 1 rounds to 1.0 in float32, outside the op's
    [0, 1) (the whole ML-100k run failed on one in its first round). Such a uniform must draw the
    pool's last item (the inverse CDF at the top), and the caller's tensor must stay as it was."""
    u, v, b = random_factors(1, 6, 3, 1.0, seed=6)
    near_one = torch.tensor([[1 - 2 ** -26, 1 - 2 ** -30, 1 - 2 ** -53]], dtype=torch.float64)
    assert sample_items(u, v, b, near_one, 1.0).tolist() == [[5, 5, 5]]
    rounded = near_one.float()
    assert sample_items(u, v, b, rounded, 1.0).tolist() == [[5, 5, 5]] and bool((rounded == 1).all())


def test_topk_items_excludes_and_ranks():
    u, v, b = random_factors(3, 20, 4, 1.0, seed=5)
    full = (u @ v.T + b).double()
    exclude = (torch.tensor([0, 2, 2, 5]), torch.tensor([0, 7, 1, 2, 3]))
    scores, items = topk_items(u, v, b, 5, exclude)
    for row, banned in enumerate([{0, 7}, set(), {1, 2, 3}]):
        allowed = [i for i in full[row].argsort(descending=True).tolist() if i not in banned]
        assert items[row].tolist() == allowed[:5]
    with pytest.raises(ValueError, match="k must be"):
        topk_items(u, v, b, 21)
    with pytest.raises(ValueError, match="item_bias"):
        topk_items(u, v, b[:3], 2)
    with pytest.raises(ValueError, match="uniforms"):
        sample_items(u, v, b, torch.rand(2, 3), 1.0)
    with pytest.raises(ValueError, match="temperature"):
        sample_items(u, v, b, torch.rand(3, 3), 0.0)


def test_negatives_align_with_positives_and_follow_the_generator():
    data = synthetic_data()
    mf = MF(MFConfig(N_USERS, N_ITEMS, 4))
    with torch.no_grad():  # the generator puts nearly all mass on item 29 for every user
        mf.item_bias[29] = 50.0
    negatives = draw_negatives(mf, data.train, torch.Generator().manual_seed(0), temperature=0.2)
    assert negatives.shape == data.train.indices.shape and bool((negatives == 29).all())


def test_generator_step_moves_mass_to_what_the_discriminator_rewards():
    # D rewards item 3 for everyone; REINFORCE with importance weights must raise p(item 3)
    data = synthetic_data()
    cfg = MFConfig(N_USERS, N_ITEMS, 4)
    torch.manual_seed(0)
    g, d = MF(cfg), MF(cfg)
    with torch.no_grad():
        d.item_bias.fill_(-5.0)
        d.item_bias[3] = 5.0
    users = data.train.users_with_items()
    before = torch.softmax(g.all_scores(users), 1)[:, 3].mean().item()
    opt = torch.optim.Adam(g.parameters(), lr=0.05)
    rng = torch.Generator().manual_seed(1)
    for _ in range(30):
        opt.zero_grad()
        loss, _ = generator_loss(g, d, users, data.train, data.train.mask(), rng, form="paper")
        loss.backward()
        opt.step()
    after = torch.softmax(g.all_scores(users), 1)[:, 3].mean().item()
    print(f"mean p(item 3): {before:.3f} -> {after:.3f}")
    assert after > 5 * before


def _tiny_game():
    """1 user, 5 items, positives {1, 2}; a fixed discriminator that disagrees with the generator."""
    cfg = MFConfig(1, 5, 3)
    g, d = MF(cfg, torch.Generator().manual_seed(0)), MF(cfg, torch.Generator().manual_seed(1))
    with torch.no_grad():
        g.item_bias.copy_(torch.tensor([1.0, 0.0, -1.0, 0.5, 2.0]))
        d.item_bias.copy_(torch.tensor([2.0, -1.0, 3.0, -2.0, 0.0]))
    return g, d, UserItems.from_pairs(torch.tensor([0, 0]), torch.tensor([1, 2]), 1, 5)


def _bias_gradient(g, loss):
    g.zero_grad()
    loss.backward()
    return g.item_bias.grad.clone()  # d/d item_bias = d/d logit: the gradient over the 5 items


@pytest.mark.parametrize("form", ["code", "paper"])
@pytest.mark.parametrize("baseline", [True, False])
def test_sampled_generator_gradient_is_unbiased(form, baseline):
    """The importance-sampled REINFORCE estimate, over 200k proposal draws, must equal the exact gradient of
    -sum_i p(i) r(i) (the "exact" estimator), which is itself checked against the closed form
    -p_i (r_i - sum_j p_j r_j). The first pass's advantage w r - mean(w r) misses by 0.005 here (10x the
    tolerance): with a proposal q != p, E_q[grad log p] != 0, so a baseline must be subtracted from r."""
    g, d, pos = _tiny_game()
    users, rng = torch.tensor([0]), torch.Generator().manual_seed(3)
    exact = _bias_gradient(g, generator_loss(g, d, users, pos, pos.mask(), rng, form, estimator="exact")[0])
    with torch.no_grad():
        p, r = torch.softmax(g.all_scores(users)[0], 0), reward(d, users, torch.arange(5).unsqueeze(0), form)[0]
    assert torch.allclose(exact, -p * (r - (p * r).sum()), atol=1e-6)
    sampled = _bias_gradient(g, generator_loss(g, d, users, pos, pos.mask(), rng, form, baseline,
                                               per_positive=100_000)[0])
    print(f"exact {exact.tolist()}\nsampled {sampled.tolist()}")
    assert (sampled - exact).abs().max() < 1.5e-3 * (1 if form == "code" else 4)
    # the importance weights: items drawn from the positives carry w = p / q < 1 / (1 - mix)
    items, _ = proposal_draws(g, users, pos, rng, per_positive=1000)
    assert set(items.unique().tolist()) == set(range(5))


def test_generator_loss_bad_input():
    g, d, pos = _tiny_game()
    empty = UserItems.from_pairs(torch.tensor([0]), torch.tensor([1]), 2, 5)
    with pytest.raises(ValueError, match="estimator must be"):
        generator_loss(g, d, torch.tensor([0]), pos, pos.mask(), torch.Generator(), estimator="mc")
    with pytest.raises(ValueError, match="at least one train positive"):
        generator_loss(MF(MFConfig(2, 5, 3)), MF(MFConfig(2, 5, 3)), torch.tensor([1]), empty, empty.mask(),
                       torch.Generator())


TINY = Settings(dim=4, pre_epochs=3, pre_batch=16, rounds=3, d_epochs=2, d_refresh=1, g_epochs=2, batch_size=32,
                g_users=8, candidates=3)


def _irgan_run(tmp_path, monkeypatch, name: str, settings: Settings = TINY):
    data = synthetic_data()
    monkeypatch.setattr(training, "load_train_val", lambda spec: data)
    training.train_run(settings, DataSpec(), tmp_path / name, baselines=False, log=lambda line: None)
    return tmp_path / name


def _spy_on_losses(monkeypatch) -> list:
    """Record, at every D and G loss, which it was and the generator's and discriminator's weights."""
    seen = []
    for name in ("discriminator_loss", "generator_loss"):
        original = getattr(training, name)

        def spy(*args, _original=original, _name=name, **kwargs):
            g, d = (args[0], args[1]) if _name == "generator_loss" else (None, args[0])
            seen.append((_name[0].upper(), None if g is None else g.user_emb.detach().clone(),
                         d.user_emb.detach().clone()))
            return _original(*args, **kwargs)
        monkeypatch.setattr(training, name, spy)
    return seen


def test_alternating_phases_and_exact_resume(tmp_path, monkeypatch):
    seen = _spy_on_losses(monkeypatch)
    whole = _irgan_run(tmp_path, monkeypatch, "whole")
    # per round: 2 D passes of 120 // 32 = 3 steps (120 train positives), then 2 G passes of ceil(24 / 8) = 3
    assert len(synthetic_data().train.indices) == 120
    assert "".join(kind for kind, _, _ in seen) == ("D" * 6 + "G" * 6) * 3
    # G's updates leave D as it was: the D weights seen by consecutive G steps are equal
    g_steps = [d for kind, _, d in seen if kind == "G"]
    assert all(torch.equal(g_steps[i], g_steps[i + 1]) for i in range(5))
    # ... and D moves during its block (a Trainer that ran both phases every step would move both)
    d_steps = [d for kind, _, d in seen if kind == "D"]
    assert not torch.equal(d_steps[0], d_steps[5])
    _irgan_run(tmp_path, monkeypatch, "split", TINY.quick(rounds=1))
    data = synthetic_data()
    monkeypatch.setattr(training, "load_train_val", lambda spec: data)
    training.train_run(TINY, DataSpec(), tmp_path / "split", resume=True, baselines=False, log=lambda line: None)
    from fastgen.train import load_checkpoint
    a, b = load_checkpoint(whole / "checkpoint"), load_checkpoint(tmp_path / "split" / "checkpoint")
    assert a.step == b.step
    for key in a.model_state:
        assert torch.equal(a.model_state[key], b.model_state[key]), key
    assert {p.name for p in (whole / "checkpoint").iterdir()} >= {"optimizer.D.safetensors", "optimizer.G.safetensors"}


# --- web search: MLP scorers over padded LETOR pools ----------------------------------------------

def test_web_pools_never_draw_padding_and_generator_learns_the_reward():
    from fastgen.data.letor import synthetic_letor
    from fastgen.models.irgan.letor import MLPScorer, Pools, draw_from_logits, generator_loss as web_g_loss
    data = synthetic_letor(n_queries=6, docs_per_query=8, seed=1)
    data = data.subset(torch.tensor([0, 1, 2]))  # then trim query 1 to 3 documents: pools of 8, 3, 8
    keep = torch.cat([torch.arange(0, 8), torch.arange(8, 11), torch.arange(16, 24)])
    from fastgen.data.letor import LetorQueries
    data = LetorQueries(data.features[keep], data.labels[keep], torch.tensor([0, 8, 11, 19]), data.qids,
                        [data.docids[i] for i in keep.tolist()])
    pools = Pools.of(data)
    assert pools.valid.sum(1).tolist() == [8, 3, 8]
    # uniforms at the very top of the CDF (rounding) must still land on a real document
    logits = torch.tensor([[0.0, 50.0, -torch.inf, -torch.inf]])
    assert draw_from_logits(logits, torch.tensor([[0.5, 0.999999, 1.0]], dtype=torch.float64)).tolist() == [[1, 1, 1]]
    # a discriminator that rewards one feature: the generator's mean of that feature must rise
    torch.manual_seed(0)
    g, d = MLPScorer(46, 8), MLPScorer(46, 8)
    with torch.no_grad():
        for layer in d.net:
            if isinstance(layer, torch.nn.Linear):
                layer.weight.zero_()
                layer.bias.zero_()
        d.net[0].weight[0, 7] = 8.0
        d.net[2].weight[0, 0] = 4.0
    queries = torch.nonzero(pools.relevant.any(1)).squeeze(1)

    def expected_feature():
        with torch.no_grad():
            p = torch.softmax(pools.logits(g, data.features, queries), 1)
            return float((p * data.features[pools.rows[queries], 7]).sum(1).mean())

    before, opt, rng = expected_feature(), torch.optim.Adam(g.parameters(), lr=0.02), torch.Generator().manual_seed(2)
    for _ in range(40):
        opt.zero_grad()
        web_g_loss(g, d, data.features, pools, queries, rng)[0].backward()
        opt.step()
    print(f"E_p[feature 8]: {before:.3f} -> {expected_feature():.3f}")
    assert expected_feature() > before + 0.1  # a wrong-signed gradient lowers it


# --- data parallel: 2 processes == 1 process ------------------------------------------------------

# exact G gradient: no per-shard noise, so 1 process can match; plain SGD: a mis-scaled gradient shows
# (Adam would normalise a 2x error away)
DDP = TINY.quick(rounds=1, estimator="exact", g_optimizer="sgd", g_lr=1000.0)  # D barely trained: tiny gradients


def _ddp_irgan_worker(rank: int, init_file: str, out: str, dns: str) -> None:
    import os
    import torch.distributed as dist
    from pathlib import Path
    os.environ["FASTGEN_SHARD_TRACE"] = out
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        training.fit_irgan(DDP, DataSpec(), synthetic_data(), Path(out) / "ddp", Path(dns), lambda line: None)
    finally:
        dist.destroy_process_group()


def test_two_processes_equal_one_process(tmp_path):
    """Each process takes half of every global batch (D: pairs; G: users, the padded half weighted by the
    batch's real user count); the averaged gradients must give one process's weights. A G loss that
    averaged over its own shard's users only would double G's step here (all 8 users of a G batch of 32
    rows fall in process 0's half)."""
    import json
    import torch.multiprocessing as mp
    from fastgen.train import load_checkpoint
    data = synthetic_data()
    dns = training.fit_mf("dns", DDP, DataSpec(), data, tmp_path / "dns", 3, log=lambda line: None)
    mp.spawn(_ddp_irgan_worker, args=(str(tmp_path / "init"), str(tmp_path), str(dns)), nprocs=2, join=True)
    training.fit_irgan(DDP, DataSpec(), data, tmp_path / "one", dns, lambda line: None)
    two, one = load_checkpoint(tmp_path / "ddp" / "checkpoint"), load_checkpoint(tmp_path / "one" / "checkpoint")
    assert two.extra["world_size"] == 2 and two.step == one.step == 2 * 3 + 2 * 3
    worst = max((two.model_state[k] - v).abs().max().item() for k, v in one.model_state.items())
    print(f"max |2 processes - 1 process| over weights: {worst:.2e}")
    for key, value in one.model_state.items():
        torch.testing.assert_close(two.model_state[key], value, rtol=0, atol=1e-6, msg=key)
    g_moved = (one.model_state["generator.user_emb"] - load_checkpoint(dns).model_state["user_emb"]).abs().max()
    assert g_moved > 1e-3  # G did train, so its weighting was exercised
    for rank in (0, 1):
        trace = [json.loads(line) for line in (tmp_path / f"rank{rank}.jsonl").read_text().splitlines()]
        assert all(t["rows"] == list(range(16 * rank, 16 * rank + 16)) for t in trace if t["step"] > 0)
