"""The fast PixelRNN sampler (fastgen.models.pixelrnn.fast_sampling over the C++ op pixelrnn_sample):
the naive path's images for the same uniforms (Row LSTM and Diagonal BiLSTM, binary and 256-level
colour), stop-and-resume through the cache equal to one call, teacher-forced logits equal to the full
forward (also with saturated gates), the cache really used, and clear errors."""
import pytest
import torch

import fastgen
from fastgen import _extension
from fastgen.models.pixelcnn import sampling
from fastgen.models.pixelrnn.fast_sampling import RnnSamplerCache, fast_logits, sample_fast
from fastgen.models.pixelrnn.plan import build_plan
from fastgen.ops import _route
from fastgen.ops import pixelrnn_sampler as ops
from tests.cases.pixelrnn_sample import MODELS, build, uniforms_for
from tests.helpers import assert_rel_close, fresh_generator
from tests.models.test_pixelcnn import random_levels, zero_weights

pytestmark = pytest.mark.skipif(not _extension.available(), reason="fastgen._C not built")


@pytest.mark.parametrize("n", [1, 3])
@pytest.mark.parametrize("name", list(MODELS))
def test_fast_gives_the_naive_images(name, n):
    gen = fresh_generator()
    model = build(name, gen)
    u = uniforms_for(model, n, gen)
    fast = sample_fast(model, n, u)
    assert fast.dtype == torch.float32
    assert torch.equal(model.sample(n, uniforms=u), fast)  # "fastgen" is the default method
    # the definition, one forward per sub-pixel, on the first image (batch 1 keeps it cheap); the batch's
    # images must be those drawn one at a time (catches rows that read another image's state)
    assert torch.equal(fast[:1], model.sample(1, uniforms=u[:1], method="naive")), f"seed {gen.initial_seed()}"
    if n > 1:
        assert torch.equal(fast, torch.cat([sample_fast(model, 1, u[i:i + 1]) for i in range(n)]))


@pytest.mark.parametrize("name", ["diagonal-binary", "row-colour-256-k5-skips"])
def test_spread_logits_and_saturated_gates_draw_the_same_levels(name):
    # logits spread by hundreds of nats (exp underflows for most levels) and gates driven far into
    # saturation; a colour pass reading a stale group of its own pixel would change the draws
    gen = fresh_generator()
    model = build(name, gen, spread=300.0, gain=20.0)
    u = uniforms_for(model, 1, gen)
    assert torch.equal(sample_fast(model, 1, u), sampling.sample_naive(model, 1, u)), f"seed {gen.initial_seed()}"


@pytest.mark.parametrize("name", ["row-colour-256-k5-skips", "diagonal-binary"])
def test_each_uniform_draws_its_own_subpixel(name):
    # a zero-weight model is uniform: sub-pixel (ch, r, c) must be floor(K u[ch, r, c]) (binary: u < 1/2);
    # catches a kernel that reads another sub-pixel's or another image's uniform
    gen = fresh_generator()
    model = zero_weights(build(name, gen))
    K = model.config.levels
    u = uniforms_for(model, 3, gen)
    expected = (u < 0.5).float() if K == 2 else torch.floor(u * K) / (K - 1)
    assert torch.equal(sample_fast(model, 3, u), expected)


@pytest.mark.parametrize("name", ["row-colour-256-k5-skips", "diagonal-binary"])
def test_stop_and_resume_equals_one_call(name):
    gen = fresh_generator()
    model = build(name, gen)
    u = uniforms_for(model, 3, gen)
    whole = sample_fast(model, 3, u)
    cache = RnnSamplerCache(model, 3)
    flat, W = u.flatten(2), model.config.width
    total = flat.shape[2]
    # one pixel, mid-row, ending exactly at a row's end (the Diagonal's right direction runs there),
    # crossing a row, then the rest
    for start, stop in ((0, 1), (1, 3), (3, W), (W, 2 * W + 1), (2 * W + 1, total)):
        cache.step(flat[:, :, start:stop])
        assert cache.pixels_done == stop
        assert (cache.levels.flatten(2)[:, :, stop:] == 0).all(), "pixels beyond the chunk were drawn"
    assert torch.equal(cache.images(), whole)
    assert torch.equal(sample_fast(model, 3, u, chunk=7), whole)


@pytest.mark.parametrize("gain", [1.0, 20.0])
@pytest.mark.parametrize("name", list(MODELS))
def test_teacher_forced_logits_equal_the_forward(name, gain):
    # catches a right direction not shifted down (or not mirrored), a state read from the wrong row or
    # column, a gate permutation applied wrongly to the state-to-state weights, a missed skip
    gen = fresh_generator()
    model = build(name, gen, gain=gain)
    images = random_levels(model, 3, gen)
    logits = fast_logits(model, images)
    reference = model.double()(images)  # float64: the fast float32 path is compared with the truth
    assert_rel_close(logits, reference, 1e-5, f"{name} teacher-forced logits (gain {gain})", gen.initial_seed())


def test_the_cache_is_used_not_the_network(monkeypatch):
    gen = fresh_generator()
    model = build("diagonal-binary", gen)
    monkeypatch.setattr(model, "network", lambda *a, **k: pytest.fail("the fast sampler ran a full forward"))
    sample_fast(model, 2, uniforms_for(model, 2, gen))


def test_the_fallback_runs_naive_for_a_float64_model():
    gen = fresh_generator()
    model = build("row-binary", gen).double()
    u = uniforms_for(model, 2, gen).double()
    assert torch.equal(sample_fast(model, 2, u), sampling.sample_naive(model, 2, u))
    with pytest.raises(_route.BackendUnavailableError, match="pixelrnn_sample: the 'cpu' backend cannot run "
                                                             "torch.float64 tensors"):
        RnnSamplerCache(model, 2)


# ---------------------------------------------------------------------------------------------
# bad input


def test_bad_calls_are_named():
    gen = fresh_generator()
    model = build("row-binary", gen)
    with pytest.raises(ValueError, match="method must be 'fastgen' or 'naive'"):
        model.sample(1, method="cached")
    with pytest.raises(ValueError, match=r"uniforms must be \[2, 1, 5, 6\]"):
        sample_fast(model, 2, torch.rand(2, 1, 6, 5))
    with pytest.raises(ValueError, match="chunk must be a positive int"):
        sample_fast(model, 2, chunk=0)
    with pytest.raises(ValueError, match="n must be a positive int"):
        RnnSamplerCache(model, 0)
    with pytest.raises(ValueError, match="31 pixels asked, 30 left"):
        RnnSamplerCache(model, 2).step(torch.rand(2, 1, 31))
    with pytest.raises(ValueError, match="this model is unconditional"):
        sample_fast(model, 1, labels=torch.zeros(1, dtype=torch.long))
    with pytest.raises(TypeError, match="expected a PixelRNN, got Linear"):
        build_plan(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="integer images must hold levels 0..1"):
        fast_logits(model, torch.full((1, 1, 5, 6), 2))


def _op_args(name="diagonal-binary", n=2, **changes):
    model = build(name, fresh_generator())
    cache = RnnSamplerCache(model, n)
    args = dict(caches=cache.caches, levels=cache.levels, position=cache.position, weights=cache.plan.weights,
                dims=cache.plan.dims, uniforms=torch.rand(n, model.config.channels, 4), pixels=4)
    args.update({k: (v(args) if callable(v) else v) for k, v in changes.items()})
    return args


@pytest.mark.parametrize("changes, message", [
    (dict(weights=lambda a: a["weights"][:-1]), "weights has .* too few .*missing layer 2 out bias"),
    (dict(weights=lambda a: a["weights"] + a["weights"][-2:]), "weights has 33 tensors, the plan uses 31"),
    (dict(weights=lambda a: a["weights"][:5] + [a["weights"][5][:-8]] + a["weights"][6:]),
     "first conv weight must have shape"),
    (dict(weights=lambda a: [a["weights"][0].double()] + a["weights"][1:]), "input_table must be float32"),
    (dict(dims=lambda a: [0] + a["dims"][1:]), r"do not fit the Row LSTM"),  # a Row plan over Diagonal weights
    (dict(dims=lambda a: a["dims"][:-1]), "dims must have 13 entries"),
    (dict(caches=lambda a: a["caches"][:-1]), r"caches has 15 tensors, too few \(missing layer 2 right c row\)"),
    (dict(caches=lambda a: a["caches"][:2] + [a["caches"][2][:, :, 1:]] + a["caches"][3:]),
     r"caches\[2\] \(layer 0 left h rows\) must have shape"),
    (dict(uniforms=torch.rand(2, 1, 3)), r"uniforms must have shape \[2, 1, 4\]"),
    (dict(pixels=31, uniforms=torch.rand(2, 1, 31)), r"pixels 0 \.\. 31 do not lie in the image's 30"),
    (dict(levels=torch.zeros(2, 1, 5, 6, dtype=torch.int32)), "levels must be a contiguous int64"),
])
def test_bad_op_arguments_are_named(changes, message):
    with pytest.raises(RuntimeError, match=message):
        ops.pixelrnn_sample(**_op_args(**changes))


def test_the_op_refuses_the_reference_and_is_opchecked():
    args = _op_args()
    with pytest.raises(ValueError, match="works on a model, not on packed weights"):
        ops.pixelrnn_sample(**args, backend="reference")
    with fastgen.use_backend("cuda"), pytest.raises(_route.BackendUnavailableError, match="runs on CUDA tensors"):
        ops.pixelrnn_sample(**args)
    torch.library.opcheck(torch.ops.fastgen.pixelrnn_sample.default,
                          (args["caches"], args["levels"], args["position"], args["weights"], args["dims"],
                           args["uniforms"], 4), test_utils=("test_schema", "test_faketensor"))
