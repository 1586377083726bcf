"""WaveNet streaming through a cache: resuming at any sample (local conditioning included, rows at
different positions) gives the uninterrupted samples bit for bit; a cache serves only the model that
allocated it, with the weights it had then, and one stream at a time; the reference queues are a
ring buffer (no per-sample shift)."""
import threading

import pytest
import torch

import fastgen
from fastgen.models import WaveNet
from fastgen.reference import wavenet as ref
from tests.helpers import assert_rel_close, fresh_generator

pytestmark = pytest.mark.skipif(not fastgen._extension.available(), reason="fastgen._C not built")

SMALL = dict(classes=32, residual_channels=12, skip_channels=20, head_channels=24, layers_per_stack=4, stacks=2)
LOCAL = {
    "transposed": dict(cond_channels=6, hop_length=4),
    "repeat_and_speaker": dict(cond_channels=5, hop_length=3, upsample="repeat", speakers=2, speaker_dim=4),
}


def make(gen, **extra):
    torch.manual_seed(gen.initial_seed())
    model = WaveNet(**{**SMALL, **extra}).eval()
    with torch.no_grad():  # peaked distributions that depend strongly on the conditioning frame
        for p in model.parameters():
            p.mul_(2.0)
        if model.config.cond_channels:
            model.cond_proj.weight.mul_(3.0)
    return model


def inputs(model, gen, B, n):
    """Conditioning for n samples of B rows, and uniforms [B, n]."""
    cfg = model.config
    kwargs = dict(features=torch.randn(B, cfg.cond_channels, -(-n // cfg.hop_length), generator=gen))
    if cfg.speakers:
        kwargs["speaker"] = torch.randint(0, cfg.speakers, (B,), generator=gen)
    return kwargs, torch.rand(B, n, generator=gen)


def pieces(cuts, n):
    return list(zip([0] + cuts, cuts + [n]))


# Interruption points on and off the hop grid (hop 3 and 4), first and last samples included.
CUTS = [[8], [13], [1, 2, 3], [5, 6, 12, 21, 22, 39]]


@pytest.mark.parametrize("local", list(LOCAL), ids=str)
@pytest.mark.parametrize("cuts", CUTS, ids=str)
def test_resume_at_any_sample_gives_the_uninterrupted_samples(local, cuts):
    gen = fresh_generator()
    model = make(gen, **LOCAL[local])
    B, n = 2, 40
    cond, u = inputs(model, gen, B, n)
    whole = model.generate(n, B, uniforms=u, **cond)
    assert torch.equal(whole, model.generate(n, B, uniforms=u, backend="reference", **cond))
    cache = model.allocate_cache(B)
    # Every call passes the same features: the cache knows where each row stands.
    parts = [model.generate(stop - start, cache=cache, uniforms=u[:, start:stop], chunk=5, **cond)
             for start, stop in pieces(cuts, n)]
    assert torch.equal(torch.cat(parts, dim=1), whole), f"seed {gen.initial_seed()}"
    assert cache.positions.tolist() == [n] * B


def test_the_features_matter():
    """Guards the test above: conditioning on the wrong frames changes the samples."""
    gen = fresh_generator()
    model = make(gen, **LOCAL["transposed"])
    cond, u = inputs(model, gen, 2, 40)
    shifted = cond["features"].roll(1, dims=2)
    assert not torch.equal(model.generate(40, 2, uniforms=u, **cond),
                           model.generate(40, 2, uniforms=u, features=shifted))


@pytest.mark.parametrize("local", list(LOCAL), ids=str)
def test_rows_stopped_at_different_samples_resume_each_at_its_own(local):
    gen = fresh_generator()
    model = make(gen, **LOCAL[local])
    B, n, n1 = 4, 37, 14
    cond, u = inputs(model, gen, B, n)
    whole = model.generate(n, B, uniforms=u, **cond)
    cache = model.allocate_cache(B)
    stopped = torch.tensor([5, 0, 14, 9])  # 0 and 14 on the hop grid for hop 3 or 4 at most once
    first = model.generate(n1, cache=cache, uniforms=u[:, :n1], lengths=stopped, **cond)
    assert cache.positions.tolist() == stopped.tolist()
    rest = n - stopped
    u2 = torch.stack([torch.cat([u[b, s:], u.new_zeros(s - int(stopped.min()))]) for b, s in enumerate(stopped.tolist())])
    second = model.generate(int(rest.max()), cache=cache, uniforms=u2, lengths=rest, chunk=6, **cond)
    for b, s in enumerate(stopped.tolist()):
        resumed = torch.cat([first[b, :s], second[b, :n - s]])
        assert torch.equal(resumed, whole[b]), f"row {b} (stopped at {s}), seed {gen.initial_seed()}"
    assert cache.positions.tolist() == [n] * B


def test_readme_streaming_example():
    """README: 12,000 samples in chunks of 4,096, then one step, against 12,001 at once (hop 256,
    so the step's sample 12,000 lies inside frame 46); features as the whole tensor every call, or
    as a window with frame_offset."""
    gen = fresh_generator()
    model = make(gen, cond_channels=4, hop_length=256, speakers=4, speaker_dim=3)
    mels = torch.randn(1, 4, 63, generator=gen)
    spk = torch.tensor([2])
    seed = gen.initial_seed()
    whole = model.generate(12001, speaker=spk, features=mels, seed=seed)
    for first_feats, step_feats, step_offset in [(mels, mels, 0), (mels[:, :, :47], mels[:, :, 46:47], 46)]:
        cache = model.allocate_cache(batch=1, seed=seed)
        chunks = list(model.stream(12000, cache=cache, chunk=4096, speaker=spk, features=first_feats))
        assert [c.shape[1] for c in chunks] == [4096, 4096, 3808]
        one = model.step(cache, speaker=spk, features=step_feats, frame_offset=step_offset)
        assert torch.equal(torch.cat(chunks + [one[:, None]], dim=1), whole), f"seed {seed}"


def test_features_that_miss_a_rows_samples_are_named():
    gen = fresh_generator()
    model = make(gen, **LOCAL["transposed"])  # hop 4
    cond, u = inputs(model, gen, 2, 12)  # 3 frames: samples [0, 12)
    cache = model.allocate_cache(2)
    model.generate(6, cache=cache, uniforms=u[:, :6], lengths=torch.tensor([6, 2]), **cond)
    positions = cache.positions.clone()
    with pytest.raises(ValueError, match=r"row 0 generates samples \[6, 13\).*cover samples \[0, 12\)"):
        model.generate(7, cache=cache, uniforms=u[:, :7].contiguous(), **cond)
    with pytest.raises(ValueError, match=r"row 1 generates samples \[2, 4\).*cover samples \[4, 12\)"):
        model.generate(2, cache=cache, uniforms=u[:, :2].contiguous(), features=cond["features"][:, :, 1:],
                       frame_offset=1)
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="frame_offset must be an int >= 0"):
            model.generate(2, cache=cache, frame_offset=bad, **cond)
    assert torch.equal(cache.positions, positions), "a refused call must not advance the cache"
    with pytest.raises(ValueError, match="frame_offset applies to features"):
        make(gen).generate(2, frame_offset=3)


# --------------------------------------------------------------------- a cache bound to its model

def test_a_cache_from_another_model_of_the_same_config_is_refused():
    gen = fresh_generator()
    a = make(gen)
    b = WaveNet(**SMALL).eval()  # same config, other weights
    cache = a.allocate_cache(2)
    with pytest.raises(ValueError, match="allocated by another model"):
        b.generate(5, cache=cache)
    with pytest.raises(ValueError, match="allocated by another model"):
        b.step(cache)
    assert cache.positions.tolist() == [0, 0]
    assert cache.model is a
    u = torch.rand(2, 5, generator=gen)
    assert torch.equal(a.generate(5, cache=cache, uniforms=u), a.generate(5, 2, uniforms=u, backend="reference"))


def _sgd_step(model, gen):
    """What torch.optim.SGD.step does on the CPU (in-place p.add_(grad, alpha=-lr)), without the
    seconds torch.optim's first import and a first backward cost."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen), alpha=-0.01)


@pytest.mark.parametrize("change", ["optimizer_step", "load_state_dict", "in_place_no_grad", "data_rebound"])
def test_a_cache_is_refused_after_its_models_weights_change(change):
    """The cache's packed weights are a copy: once the model trains on, they are stale, and the
    queues hold layer inputs of the old weights, so the cache is refused rather than repacked."""
    gen = fresh_generator()
    model = make(gen)
    cache = model.allocate_cache(2)
    model.generate(4, cache=cache)
    if change == "optimizer_step":
        _sgd_step(model, gen)
    elif change == "load_state_dict":
        model.load_state_dict(make(fresh_generator()).state_dict())
    elif change == "in_place_no_grad":
        with torch.no_grad():
            model.head2.bias[3] += 1.0
    else:  # .data is a view with its own version counter: only the storage tells
        model.head2.weight.data = model.head2.weight.data * 1.5
    with pytest.raises(ValueError, match="weights changed since this cache was allocated"):
        model.generate(4, cache=cache)
    u = torch.rand(2, 6, generator=gen)
    fresh = model.allocate_cache(2)
    assert torch.equal(model.generate(6, cache=fresh, uniforms=u), model.generate(6, 2, uniforms=u, backend="reference"))


# --------------------------------------------------------------------- one stream at a time

def test_a_cache_in_use_by_another_thread_is_refused():
    gen = fresh_generator()
    model = make(gen)
    cache = model.allocate_cache(2)
    u = torch.rand(2, 30, generator=gen)
    holding, tried = threading.Event(), threading.Event()
    out, errors = [], []

    def slow_stream():
        try:
            for chunk in model.stream(30, cache=cache, uniforms=u, chunk=10):
                out.append(chunk)
                holding.set()
                tried.wait(10)
        except Exception as error:  # pragma: no cover - reported by the assertion below
            errors.append(error)

    worker = threading.Thread(target=slow_stream)
    worker.start()
    assert holding.wait(10)
    with pytest.raises(RuntimeError, match="in use by another stream"):
        model.step(cache)
    tried.set()
    worker.join(10)
    assert not errors and not worker.is_alive()
    assert torch.equal(torch.cat(out, dim=1), model.generate(30, 2, uniforms=u, backend="reference"))
    model.step(cache)  # free again once the stream is done
    assert cache.positions.tolist() == [31, 31]


def test_an_unfinished_stream_holds_its_cache_until_closed():
    model = make(fresh_generator())
    cache = model.allocate_cache(1)
    live = model.stream(10, cache=cache, chunk=3)
    next(live)
    with pytest.raises(RuntimeError, match="in use by another stream"):
        model.generate(2, cache=cache)
    live.close()
    model.generate(2, cache=cache)
    assert cache.positions.tolist() == [5]


def test_threads_hammering_one_cache_never_interleave():
    """Each step either runs whole or is refused: the cache advanced once per successful step."""
    model = make(fresh_generator())
    cache = model.allocate_cache(2)
    done = [0, 0]

    def hammer(i):
        for _ in range(200):
            try:
                model.step(cache)
                done[i] += 1
            except RuntimeError as error:
                assert "in use by another stream" in str(error)

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert cache.positions.tolist() == [sum(done)] * 2


def test_threads_with_their_own_caches_run_together():
    gen = fresh_generator()
    model = make(gen)
    u = torch.rand(2, 3, 50, generator=gen)
    results = [None, None]

    def run(i):
        results[i] = model.generate(50, cache=model.allocate_cache(3), uniforms=u[i], chunk=7)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for i in range(2):
        assert torch.equal(results[i], model.generate(50, 3, uniforms=u[i], backend="reference"))


# --------------------------------------------------------------------- reference ring buffer

@pytest.mark.parametrize("kernel_size", [2, 3])
def test_reference_queues_are_ring_buffers_updated_in_place(kernel_size):
    """After n steps layer l's ring holds its inputs at times n-q .. n-1 in slots t mod q (the C++
    kernel's layout), written in place: the queue tensors are never reallocated or shifted."""
    gen = fresh_generator()
    model = make(gen, kernel_size=kernel_size)
    B, n = 2, 29
    tokens = torch.randint(0, 32, (B, n), generator=gen)
    state = ref.QueueState(model, B)
    storage = [q.data_ptr() for q in state.queues]
    for t in range(n):
        ref.queue_step(model, state, tokens[:, t], None)
    assert [q.data_ptr() for q in state.queues] == storage
    layer_inputs = []
    hooks = [g.register_forward_hook(lambda mod, args, out: layer_inputs.append(args[0])) for g in model.gates]
    with torch.no_grad():
        model(tokens)
    for h in hooks:
        h.remove()
    for l, d in enumerate(model.config.dilations):
        q = (kernel_size - 1) * d
        padded = layer_inputs[l]  # [B, R, q + n]: q zeros, then the inputs at times 0 .. n-1
        times = range(n - q, n)
        expected = torch.stack([padded[:, :, q + t] for t in times], dim=1)
        assert_rel_close(state.queues[l][:, [t % q for t in times]], expected, 1e-5, f"layer {l}",
                         gen.initial_seed())
