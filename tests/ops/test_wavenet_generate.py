"""Cached WaveNet generation: every path gives the same tokens, the kernel's ring buffers hold the
teacher-forced forward's layer inputs, streaming resumes exactly, and bad input is named."""
import pytest
import torch

import fastgen
from fastgen.models.wavenet import generation as ops
from fastgen.reference import wavenet as ref
from tests.cases import wavenet_generate as cases
from tests.helpers import assert_rel_close, fresh_generator

pytestmark = pytest.mark.skipif(not fastgen._extension.available(), reason="fastgen._C not built")

SMALL = dict(classes=32, residual_channels=12, skip_channels=20, head_channels=24, layers_per_stack=4, stacks=2)


def make(gen, kernel_size=2, **extra):
    return cases.scaled_model(gen, **SMALL, **extra, kernel_size=kernel_size)


@pytest.mark.parametrize("kernel_size", [2, 3])
@pytest.mark.parametrize("cond", list(cases.CONDITIONINGS), ids=str)
@pytest.mark.parametrize("temperature", [1.0, 0.0], ids=["T1", "argmax"])
def test_all_paths_give_the_same_tokens(kernel_size, cond, temperature):
    gen = fresh_generator()
    model = make(gen, kernel_size, **cases.CONDITIONINGS[cond])
    B, n = 3, 60
    uniforms = torch.rand(B, n, generator=gen)
    kwargs = dict(uniforms=uniforms, temperature=temperature, **cases.conditioning(model, gen, B, n))
    naive = model.generate(n, B, backend="naive", **kwargs)
    queues = model.generate(n, B, backend="reference", **kwargs)
    cpu = model.generate(n, B, backend="cpu", chunk=17, **kwargs)
    assert naive.shape == (B, n) and naive.dtype == torch.int64
    assert torch.equal(naive, queues), f"seed {gen.initial_seed()}"
    assert torch.equal(cpu, queues), f"seed {gen.initial_seed()}: first difference at " \
        f"{(cpu != queues).nonzero()[:1].tolist()}"
    if temperature:  # the test model's distribution is not degenerate
        assert len(set(cpu.flatten().tolist())) > 3


@pytest.mark.parametrize("kernel_size", [2, 3])
@pytest.mark.parametrize("cond", ["none", "both"])
def test_ring_buffers_hold_the_forward_layer_inputs(kernel_size, cond):
    """After n cached steps each layer's ring holds that layer's inputs for the last (k-1)*d times;
    the teacher-forced forward over the same inputs computes them independently."""
    gen = fresh_generator()
    model = make(gen, kernel_size, **cases.CONDITIONINGS[cond])
    B, n = 2, 45
    kwargs = cases.conditioning(model, gen, B, n)
    cache = model.allocate_cache(B, seed=gen.initial_seed())
    tokens = model.generate(n, cache=cache, **kwargs)
    inputs = torch.cat([torch.full((B, 1), ops.silence_token(32)), tokens[:, :-1]], dim=1)
    layer_inputs = []
    hooks = [g.register_forward_hook(lambda mod, args, out: layer_inputs.append(args[0])) for g in model.gates]
    with torch.no_grad():
        model(inputs, kwargs.get("speaker"), kwargs.get("features"))
    for h in hooks:
        h.remove()
    assert torch.equal(cache.positions, torch.full((B,), n))
    assert torch.equal(cache.last_tokens, tokens[:, -1])
    offset, R = 0, model.config.residual_channels
    for l, d in enumerate(model.config.dilations):
        q = (kernel_size - 1) * d
        padded = layer_inputs[l]  # [B, R, q + n] (left zero padding of q)
        ring = cache.queues[:, offset:offset + q, :R]
        expected = torch.stack([padded[:, :, q + t] if t >= 0 else padded[:, :, 0]
                                for t in range(n - q, n)], dim=1)  # times n-q .. n-1
        slots = [(t % q) for t in range(n - q, n)]
        assert_rel_close(ring[:, slots], expected, 1e-5, f"layer {l} ring", gen.initial_seed())
        offset += q


def test_stream_resumed_from_cache_equals_uninterrupted():
    gen = fresh_generator()
    model = make(gen, 2, **cases.CONDITIONINGS["global"])
    speaker = torch.tensor([0, 2])
    seed = gen.initial_seed()
    whole = model.generate(90, speaker=speaker, seed=seed, batch=2)
    cache = model.allocate_cache(2, seed=seed)
    first = model.generate(31, cache=cache, speaker=speaker)
    second = torch.cat(list(model.stream(50, cache=cache, speaker=speaker, chunk=7)), dim=1)
    one = torch.stack([model.step(cache, speaker=speaker) for _ in range(9)], dim=1)
    assert torch.equal(torch.cat([first, second, one], dim=1), whole)


def test_finished_rows_stop_and_others_are_unchanged():
    gen = fresh_generator()
    model = make(gen)
    u = torch.rand(3, 40, generator=gen)
    full = model.generate(40, 3, uniforms=u)
    cache = model.allocate_cache(3)
    lengths = torch.tensor([40, 0, 13])
    part = model.generate(40, cache=cache, uniforms=u, lengths=lengths, chunk=16)
    assert torch.equal(part[0], full[0])
    assert (part[1] == -1).all() and torch.equal(part[2, :13], full[2, :13]) and (part[2, 13:] == -1).all()
    assert cache.positions.tolist() == [40, 0, 13]
    assert cache.last_tokens[1] == ops.silence_token(32) and cache.last_tokens[2] == full[2, 12]
    assert (cache.queues[1] == 0).all()
    reference = model.generate(40, 3, uniforms=u, lengths=lengths, backend="reference")
    assert torch.equal(reference, part)


def test_bfloat16_weights_match_the_model_with_rounded_weights():
    gen = fresh_generator()
    model = make(gen)
    B, n = 2, 50
    u = torch.rand(B, n, generator=gen)
    fast = model.generate(n, B, uniforms=u, weight_dtype=torch.bfloat16)
    rounded = make(gen)
    with torch.no_grad():  # the kernel keeps biases and the embedding in float32
        for name, p in rounded.named_parameters():
            if p.dim() > 1 and not name.startswith("embed"):
                p.copy_(p.to(torch.bfloat16).float())
    assert torch.equal(fast, rounded.generate(n, B, uniforms=u, backend="reference"))


def test_waveform_output_decodes_tokens():
    gen = fresh_generator()
    model = make(gen)
    u = torch.rand(1, 20, generator=gen)
    wave = model.generate(20, uniforms=u, output="waveform")
    from fastgen.data import mu_law_decode

    assert torch.allclose(wave, mu_law_decode(model.generate(20, uniforms=u), 32))
    assert wave.abs().max() <= 1


def test_opcheck():
    gen = fresh_generator()
    model = make(gen)
    cache = model.allocate_cache(2)
    args = (cache.queues, cache.positions, cache.last_tokens, cache.weights, cache.dilations, None,
            torch.rand(2, 5, generator=gen), torch.tensor([5, 3]), 1.0)
    torch.library.opcheck(torch.ops.fastgen.wavenet_generate, args,
                          test_utils=("test_schema", "test_faketensor", "test_aot_dispatch_dynamic"))


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(n_samples=0), ValueError, "n_samples must be a positive int"),
    (dict(n_samples=-3), ValueError, "n_samples must be a positive int"),
    (dict(temperature=-1.0), ValueError, "temperature"),
    (dict(backend="gpu"), ValueError, "unknown backend"),
    (dict(uniforms=torch.rand(1, 4)), ValueError, r"uniforms must be a float tensor \[1, 5\]"),
    (dict(uniforms=torch.full((1, 5), 1.0)), ValueError, r"uniforms must lie in \[0, 1\)"),
    (dict(lengths=torch.tensor([6])), ValueError, "lengths"),
    (dict(speaker=torch.tensor([0])), ValueError, "no global conditioning"),
    (dict(output="mp3"), ValueError, "output must be"),
    (dict(chunk=0), ValueError, "chunk"),
])
def test_bad_generate_arguments(kwargs, error, match):
    model = make(fresh_generator())
    kwargs = {"n_samples": 5, **kwargs}
    with pytest.raises(error, match=match):
        model.generate(kwargs.pop("n_samples"), **kwargs)


def test_bad_conditioning_for_generation():
    gen = fresh_generator()
    model = make(gen, **cases.CONDITIONINGS["both"])
    good = cases.conditioning(model, gen, 2, 12)
    with pytest.raises(ValueError, match="speaker ids must be in"):
        model.generate(12, 2, speaker=torch.tensor([0, 5]), features=good["features"])
    with pytest.raises(ValueError, match=r"row 0 generates samples \[0, 12\).*cover samples \[0, 6\)"):
        model.generate(12, 2, speaker=good["speaker"], features=good["features"][:, :, :2])
    with pytest.raises(ValueError, match=r"features must be \[2, 5, frames\]"):
        model.generate(12, 2, speaker=good["speaker"], features=good["features"][:1])
    with pytest.raises(ValueError, match="takes no cache"):
        model.generate(12, cache=model.allocate_cache(2), backend="reference", **good)
    with pytest.raises(ValueError, match="seed applies to a new cache"):
        model.generate(12, cache=model.allocate_cache(2), seed=1, **good)
    with pytest.raises(ValueError, match="another config"):
        make(gen).generate(3, cache=model.allocate_cache(2))


@pytest.mark.parametrize("case", cases.bad_op_args_for("cpu"))
def test_op_checks_name_the_argument(case):
    gen = fresh_generator()
    model = make(gen)
    args = cases.op_args(model.allocate_cache(2), torch.rand(2, 4, generator=gen), torch.tensor([4, 4]))
    cases.assert_bad_op_args(case, "cpu", lambda **a: torch.ops.fastgen.wavenet_generate(*a.values()), model, args)


def test_sample_tokens_rule():
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0], [5.0, 1.0, 5.0, -2.0]])
    # uniform cdf [.25, .5, .75, 1]: u = 0.25 sits on a boundary and takes the next class (cdf > u)
    assert ref.sample_tokens(logits[:1], torch.tensor([0.25]), 1.0).item() == 1
    assert ref.sample_tokens(logits[:1], torch.tensor([0.0]), 1.0).item() == 0
    assert ref.sample_tokens(logits[:1], torch.tensor([0.999999]), 1.0).item() == 3
    assert ref.sample_tokens(logits[1:], torch.tensor([0.9]), 0.0).item() == 0  # first argmax
