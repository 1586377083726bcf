"""Triton cached WaveNet generation (fastgen.triton.wavenet) vs the reference queues and the C++ kernel.

Run under TRITON_INTERPRET=1 on CPU tensors here (set first thing, before triton is imported), on a
GPU when there is one and triton was imported earlier. Every test builds a fresh random model and
fresh uniforms; the seed is printed (pin it with FASTGEN_TEST_SEED=<int>) so a failure can be
replayed. Tokens must be equal to the reference's (fastgen.reference.wavenet.generate_queues) and to
the cpu backend's; the cache state after a call (queues, positions, last tokens) must match the cpu
backend's. Models are tiny so the interpreter stays quick (one row-step costs tens of ms there).
"""
from tests.triton.device import DEVICE  # first: sets TRITON_INTERPRET=1 before triton is imported

import copy  # noqa: E402
import os  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from fastgen import _extension  # noqa: E402
from fastgen.models.wavenet import WaveNet  # noqa: E402
from fastgen.models.wavenet.generation import WaveNetCache, pack_conditioning, silence_token  # noqa: E402
from fastgen.triton import wavenet as kernels  # noqa: E402
from tests.cases import wavenet_generate as cases  # noqa: E402
from tests.helpers import assert_rel_close  # noqa: E402

HAS_CPU_OP = _extension.available()
needs_cpu_op = pytest.mark.skipif(not HAS_CPU_OP, reason="fastgen C++ extension not built")

# Two tiny shapes: R = 12 (padded to 16: exercises the pad8 columns) with kernel 2, and R = 8 with
# kernel 3 (three taps, two of them from the ring); both 2 stacks of 3 layers (dilations 1, 2, 4).
CONFIGS = {
    "k2_R12": dict(classes=24, residual_channels=12, skip_channels=16, head_channels=16, kernel_size=2,
                   layers_per_stack=3, stacks=2),
    "k3_R8": dict(classes=32, residual_channels=8, skip_channels=16, head_channels=12, kernel_size=3,
                  layers_per_stack=3, stacks=2),
}


@pytest.fixture(autouse=True)
def _fresh_seed():
    seed = int(os.environ.get("FASTGEN_TEST_SEED", int.from_bytes(os.urandom(4), "little")))
    torch.manual_seed(seed)
    print(f"seed={seed}")
    yield


def _model(config: str = "k2_R12", **overrides) -> WaveNet:
    model = WaveNet(**{**CONFIGS[config], **overrides}).eval()
    with torch.no_grad():
        # Sharper logits than the default init gives, so the draws depend on the model.
        model.head2.weight.mul_(4.0)
    return model


def _on_device(model: WaveNet) -> WaveNet:
    return model if DEVICE == "cpu" else copy.deepcopy(model).to(DEVICE)


def _kwargs_to(kwargs: dict, device) -> dict:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()}


def _state(cache: WaveNetCache) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return cache.queues.cpu(), cache.positions.cpu(), cache.last_tokens.cpu()


def _triton(model: WaveNet, n: int, batch: int, cache=None, **kwargs):
    """Tokens [B, n] from the triton backend on DEVICE (model moved there), and the cache used."""
    dev_model = _on_device(model) if cache is None else cache.model  # a cache serves its own model
    if cache is None:
        cache = WaveNetCache(dev_model, batch, kwargs.pop("weight_dtype", torch.float32))
    tokens = dev_model.generate(n, batch, backend="triton", cache=cache, **_kwargs_to(kwargs, DEVICE))
    return tokens.cpu(), cache


def _assert_same_state(tri_cache: WaveNetCache, cpu_cache: WaveNetCache, what: str) -> None:
    q_t, p_t, l_t = _state(tri_cache)
    q_c, p_c, l_c = _state(cpu_cache)
    assert torch.equal(p_t, p_c), f"{what}: positions {p_t.tolist()} != cpu {p_c.tolist()}"
    assert torch.equal(l_t, l_c), f"{what}: last_tokens {l_t.tolist()} != cpu {l_c.tolist()}"
    assert_rel_close(q_t, q_c, 1e-5, f"{what}: queues")
    assert torch.allclose(q_t, q_c, rtol=1e-5, atol=1e-5), f"{what}: queues differ beyond 1e-5"


def _check_against_cpu_and_reference(model: WaveNet, n: int, batch: int, **kwargs):
    """Run triton, reference and (when built) cpu with the same inputs; tokens equal, state equal.
    Returns triton's tokens and cache."""
    tokens, tri_cache = _triton(model, n, batch, **kwargs)
    assert tokens.shape == (batch, n) and tokens.dtype == torch.int64
    ref_kwargs = {k: v for k, v in kwargs.items() if k != "weight_dtype"}
    expected = model.generate(n, batch, backend="reference", **ref_kwargs)
    print("triton   ", tokens.tolist())
    print("reference", expected.tolist())
    assert torch.equal(tokens, expected), "triton tokens differ from the reference queues"
    if HAS_CPU_OP:
        cpu_cache = WaveNetCache(model, batch, kwargs.get("weight_dtype", torch.float32))
        cpu_tokens = model.generate(n, batch, backend="cpu", cache=cpu_cache, **ref_kwargs)
        assert torch.equal(tokens, cpu_tokens), "triton tokens differ from the cpu backend"
        _assert_same_state(tri_cache, cpu_cache, "after one call")
    return tokens, tri_cache


# ---------------------------------------------------------------- tokens == reference == cpu
@pytest.mark.parametrize("temperature", [0.0, 1.0], ids=["argmax", "T1"])
@pytest.mark.parametrize("config", list(CONFIGS))
def test_unconditional_matches_reference_and_cpu(config, temperature):
    model = _model(config)
    batch, n = (3, 8) if temperature else (2, 8)
    u = torch.rand(batch, n)
    _check_against_cpu_and_reference(model, n, batch, uniforms=u, temperature=temperature)


def test_batch_one_non_unit_temperature():
    model = _model("k3_R8")
    _check_against_cpu_and_reference(model, 10, 1, uniforms=torch.rand(1, 10), temperature=0.7)


def test_global_conditioning():
    model = _model("k2_R12", speakers=3, speaker_dim=4)
    batch, n = 2, 8
    speaker = torch.tensor([2, 1])
    _check_against_cpu_and_reference(model, n, batch, uniforms=torch.rand(batch, n), speaker=speaker)


@pytest.mark.parametrize("upsample,speakers", [("transposed", 0), ("repeat", 2)], ids=["local", "local+global"])
def test_local_conditioning(upsample, speakers):
    model = _model("k3_R8", cond_channels=5, hop_length=4, upsample=upsample, speakers=speakers, speaker_dim=3)
    batch, n = 2, 8
    kwargs = dict(uniforms=torch.rand(batch, n), features=torch.randn(batch, 5, 2))
    if speakers:
        kwargs["speaker"] = torch.tensor([1, 0])
    _check_against_cpu_and_reference(model, n, batch, **kwargs)


def test_single_layer_model():
    """L = 1: no residual layers (res_w is empty), the skip of the only layer feeds the head."""
    model = _model("k2_R12", layers_per_stack=1, stacks=1)
    _check_against_cpu_and_reference(model, 6, 2, uniforms=torch.rand(2, 6))


def test_conditioning_changes_the_samples():
    """Guard against the conditioning being ignored: other features, other layer activations in the
    cache. (Not the argmax tokens: for some random models one token wins under both features.)"""
    model = _model("k2_R12", cond_channels=4, hop_length=4)
    with torch.no_grad():
        model.cond_proj.weight.mul_(10.0)
    feats = torch.randn(1, 4, 2)
    _, cache_a = _triton(model, 6, 1, features=feats, temperature=0.0)
    _, cache_b = _triton(model, 6, 1, features=-feats, temperature=0.0)
    assert not torch.equal(_state(cache_a)[0], _state(cache_b)[0])


def test_bfloat16_weights():
    """bfloat16 matrices: equal to the reference run on a model whose matrices were rounded to bf16
    (embedding and biases stay float32 in the packing), and to the cpu backend's bf16 path."""
    model = _model("k3_R8", speakers=2, speaker_dim=3)
    rounded = copy.deepcopy(model)
    with torch.no_grad():
        for module in [*rounded.gates, *rounded.skips, *rounded.residuals, rounded.head1, rounded.head2]:
            module.weight.copy_(module.weight.bfloat16().float())
    batch, n = 2, 8
    u = torch.rand(batch, n)
    speaker = torch.tensor([1, 0])
    tokens, tri_cache = _triton(model, n, batch, uniforms=u, speaker=speaker, weight_dtype=torch.bfloat16)
    expected = rounded.generate(n, batch, backend="reference", uniforms=u, speaker=speaker)
    assert torch.equal(tokens, expected), f"{tokens.tolist()} != {expected.tolist()}"
    if HAS_CPU_OP:
        cpu_cache = WaveNetCache(model, batch, torch.bfloat16)
        cpu_tokens = model.generate(n, batch, backend="cpu", cache=cpu_cache, uniforms=u, speaker=speaker)
        assert torch.equal(tokens, cpu_tokens)
        _assert_same_state(tri_cache, cpu_cache, "bf16")


# ---------------------------------------------------------------- lengths, streaming, state
def test_lengths_stop_rows_early():
    model = _model("k3_R8")
    batch, n = 3, 8
    lengths = torch.tensor([n, 3, 0])
    u = torch.rand(batch, n)
    tokens, cache = _check_against_cpu_and_reference(model, n, batch, uniforms=u, lengths=lengths)
    assert (tokens[1, 3:] == -1).all() and (tokens[2] == -1).all() and (tokens[0] >= 0).all()
    assert (tokens[1, :3] >= 0).all()

    # The state of a stopped row: advanced exactly lengths[b] steps, then left alone.
    queues, positions, last = _state(cache)
    assert positions.tolist() == [n, 3, 0]
    assert last.tolist() == [int(tokens[0, -1]), int(tokens[1, 2]), silence_token(model.config.classes)]
    assert (queues[2] == 0).all(), "a row with lengths 0 must not touch its queues"
    short, short_cache = _triton(model, 3, 1, uniforms=u[1:2, :3])
    assert torch.equal(short[0], tokens[1, :3])
    assert torch.equal(_state(short_cache)[0][0], queues[1]), "row 1's queues != those of a 3-step run"


@pytest.mark.parametrize("n1,n2", [(4, 4), (3, 2)])
def test_streaming_equals_one_call(n1, n2):
    """n1 then n2 samples through one cache == n1 + n2 at once (local conditioning: both calls get the
    whole utterance's features; the cache knows where each row stands)."""
    hop = 4
    local = n1 % hop == 0
    model = _model("k2_R12", cond_channels=3 if local else 0, hop_length=hop, speakers=0 if local else 2,
                   speaker_dim=3)
    batch, n = 2, n1 + n2
    u = torch.rand(batch, n)
    kw = {}
    first, second = {}, {}
    if local:
        feats = torch.randn(batch, 3, (n + hop - 1) // hop)
        kw["features"] = feats
        first["features"] = second["features"] = feats
    else:
        kw["speaker"] = first["speaker"] = second["speaker"] = torch.tensor([1, 0])
    a, cache = _triton(model, n1, batch, uniforms=u[:, :n1], **first)
    b, cache = _triton(model, n2, batch, cache=cache, uniforms=u[:, n1:], **second)
    streamed = torch.cat([a, b], dim=1)
    expected = model.generate(n, batch, backend="reference", uniforms=u, **kw)
    assert torch.equal(streamed, expected), f"{streamed.tolist()} != {expected.tolist()}"
    if HAS_CPU_OP:
        cpu_cache = WaveNetCache(model, batch)
        cpu_tokens = model.generate(n, batch, backend="cpu", cache=cpu_cache, uniforms=u, **kw)
        assert torch.equal(streamed, cpu_tokens)
        _assert_same_state(cache, cpu_cache, "after streaming")


def test_step_by_step():
    """model.step (one launch per sample) == generate."""
    model = _model("k3_R8")
    batch, n = 2, 4
    u = torch.rand(batch, n)
    dev_model = _on_device(model)
    cache = WaveNetCache(dev_model, batch)
    steps = torch.stack([dev_model.step(cache, uniforms=u[:, i].to(DEVICE), backend="triton").cpu()
                         for i in range(n)], dim=1)
    expected = model.generate(n, batch, backend="reference", uniforms=u)
    assert torch.equal(steps, expected)
    assert _state(cache)[1].tolist() == [n] * batch


def test_direct_call_constant_and_per_step_cond():
    """The launcher on its own: constant conditioning [B, 1, W] == the same row repeated [B, n, W]."""
    model = _model("k2_R12", speakers=2, speaker_dim=3)
    batch, n = 2, 4
    dev_model = _on_device(model)
    cond = pack_conditioning(dev_model.conditioning_steps(torch.tensor([1, 0], device=DEVICE), None),
                             model.config.residual_channels)
    u = torch.rand(batch, n, device=DEVICE)
    lengths = torch.full((batch,), n, dtype=torch.int64, device=DEVICE)
    outs = []
    for c in (cond, cond.expand(batch, n, cond.shape[2]).contiguous()):
        cache = WaveNetCache(dev_model, batch)
        outs.append(kernels.wavenet_generate(cache.queues, cache.positions, cache.last_tokens, cache.weights,
                                             cache.dilations, c, u, lengths, 1.0).cpu())
    assert torch.equal(outs[0], outs[1])


# ---------------------------------------------------------------- bad input
def _args(model: WaveNet, batch: int = 2, n: int = 4) -> dict:
    return cases.op_args(WaveNetCache(_on_device(model), batch), torch.rand(batch, n, device=DEVICE),
                         torch.full((batch,), n, dtype=torch.int64, device=DEVICE))


@pytest.mark.parametrize("case", cases.bad_op_args_for("triton"))
def test_bad_input_names_the_argument(case):
    model = _model("k2_R12")
    cases.assert_bad_op_args(case, "triton", kernels.wavenet_generate, model, _args(model),
                             prefix=r"wavenet_generate \(triton\): .*")


def test_bad_uniforms_through_generate():
    model = _model("k2_R12")
    with pytest.raises(ValueError, match="uniforms must be a float tensor"):
        _triton(model, 4, 2, uniforms=torch.rand(2, 5))


@pytest.mark.skipif(DEVICE != "cpu", reason="only meaningful for CPU tensors")
def test_cpu_tensors_need_the_interpreter(monkeypatch):
    monkeypatch.setattr(kernels, "_INTERPRET", False)
    with pytest.raises(RuntimeError, match=r"wavenet_generate \(triton\): CPU tensors need TRITON_INTERPRET=1"):
        kernels.wavenet_generate(**_args(_model("k2_R12")))


@pytest.mark.parametrize("temperature", cases.TEMPERATURES, ids=lambda t: f"T{t}")
@pytest.mark.parametrize("spread", cases.SPREADS, ids=lambda s: f"spread{s:g}")
def test_spread_logits_and_low_temperatures(spread, temperature):
    """(logit - peak) / T down to -2e4: the same tokens as the reference and the C++ kernel (whose
    vector exp once wrapped below -87; tests/ops/test_wavenet_spread_logits.py)."""
    model = cases.spread_model(spread, torch.Generator().manual_seed(int(torch.randint(0, 2**31, ()))), **CONFIGS["k2_R12"])
    _check_against_cpu_and_reference(model, 6, 2, uniforms=torch.rand(2, 6), temperature=temperature)
