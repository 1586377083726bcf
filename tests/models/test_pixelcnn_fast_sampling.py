"""The fast PixelCNN sampler (fastgen.models.pixelcnn.fast_sampling over the C++ op pixelcnn_sample):
the same images as the naive and cached paths for the same uniforms, stop-and-resume through the
cache equal to one call, teacher-forced logits equal to the full forward, and clear errors."""
import pytest
import torch

import fastgen
from fastgen import _extension
from fastgen.models.pixelcnn import sample_cached, sample_naive, sampling
from fastgen.models.pixelcnn.fast_sampling import SamplerCache, fast_logits, sample_fast
from fastgen.ops import _route
from fastgen.ops import pixelcnn_sampler as ops
from tests.cases.pixelcnn_sample import MODELS, build, uniforms_for
from tests.helpers import assert_rel_close, fresh_generator
from tests.models.test_pixelcnn import random_levels, zero_weights

pytestmark = pytest.mark.skipif(not _extension.available(), reason="fastgen._C not built")


@pytest.mark.parametrize("n", [1, 3])
@pytest.mark.parametrize("name", list(MODELS))
def test_fast_gives_the_naive_and_cached_images(name, n):
    gen = fresh_generator()
    model, labels = build(name, gen, n=n)
    u = uniforms_for(model, n, gen)
    fast = sample_fast(model, n, u, labels=labels)
    assert fast.dtype == torch.float32
    assert torch.equal(fast, sample_cached(model, n, u, labels=labels)), f"seed {gen.initial_seed()}"
    if n == 1:  # the definition, one forward per sub-pixel: batch 1 keeps it cheap
        assert torch.equal(fast, sample_naive(model, n, u, labels=labels)), f"seed {gen.initial_seed()}"
    assert torch.equal(sampling.sample(model, n, u, labels=labels), fast)  # "fastgen" is the default method


@pytest.mark.parametrize("name", ["pixelcnn-colour-256", "gated-colour-256-conditional", "gated-binary"])
def test_spread_logits_draw_the_same_levels(name):
    # logits spread by thousands of nats: exp(x - max) underflows for most levels (a wrapped exp would
    # draw impossible levels), and colour passes that read a stale group would change the draws
    gen = fresh_generator()
    model, labels = build(name, gen, spread=300.0)
    u = uniforms_for(model, 2, gen)
    assert torch.equal(sample_fast(model, 2, u, labels=labels), sample_cached(model, 2, u, labels=labels)), \
        f"seed {gen.initial_seed()}"


@pytest.mark.parametrize("name", ["pixelcnn-colour-256", "gated-binary"])
def test_each_uniform_draws_its_own_subpixel(name):
    # a zero-weight model is uniform: sub-pixel (ch, r, c) must be floor(K u[ch, r, c]) (binary: u < 1/2);
    # catches a kernel that reads another sub-pixel's or another image's uniform
    gen = fresh_generator()
    model, labels = build(name, gen, n=3)
    zero_weights(model)
    K = model.config.levels
    u = uniforms_for(model, 3, gen)
    expected = (u < 0.5).float() if K == 2 else torch.floor(u * K) / (K - 1)
    assert torch.equal(sample_fast(model, 3, u, labels=labels), expected)


@pytest.mark.parametrize("name", ["pixelcnn-colour-256", "gated-colour-256-conditional", "gated-binary"])
def test_stop_and_resume_equals_one_call(name):
    gen = fresh_generator()
    model, labels = build(name, gen, n=3)
    u = uniforms_for(model, 3, gen)
    whole = sample_fast(model, 3, u, labels=labels)
    cache = SamplerCache(model, 3, labels)
    flat = u.flatten(2)
    total = flat.shape[2]
    # chunks of 1 pixel, one ending mid-row, one crossing rows, then the rest
    for start, stop in ((0, 1), (1, 3), (3, model.config.width + 2), (model.config.width + 2, total)):
        cache.step(flat[:, :, start:stop])
        assert cache.pixels_done == stop
        drawn = cache.levels.flatten(2)
        assert (drawn[:, :, stop:] == 0).all(), "pixels beyond the chunk were drawn"
    assert torch.equal(cache.images(), whole)
    assert torch.equal(sample_fast(model, 3, u, labels=labels, chunk=7), whole)


@pytest.mark.parametrize("name", list(MODELS))
def test_teacher_forced_logits_equal_the_forward(name):
    gen = fresh_generator()
    model, labels = build(name, gen, n=3)
    images = random_levels(model, 3, gen)
    logits = fast_logits(model, images, labels)
    reference = model.double()(images, labels)  # float64: the fast float32 path is compared with the truth
    assert logits.shape == reference.shape
    assert_rel_close(logits, reference, 1e-5, f"{name} teacher-forced logits", gen.initial_seed())


def test_the_fallback_runs_the_twin_for_a_float64_model():
    gen = fresh_generator()
    model, _ = build("pixelcnn-binary", gen)
    model = model.double()
    u = uniforms_for(model, 2, gen).double()
    assert torch.equal(sample_fast(model, 2, u), sample_cached(model, 2, u))
    with pytest.raises(_route.BackendUnavailableError, match="pixelcnn_sample: the 'cpu' backend cannot run "
                                                             "torch.float64 tensors"):
        SamplerCache(model, 2)


# ---------------------------------------------------------------------------------------------
# bad input


def test_bad_uniforms_are_named():
    gen = fresh_generator()
    model, _ = build("pixelcnn-binary", gen)
    with pytest.raises(ValueError, match=r"uniforms must be \[2, 1, 5, 6\]"):
        sample_fast(model, 2, torch.rand(2, 1, 6, 5))
    with pytest.raises(TypeError, match="uniforms must be a float tensor"):
        sample_fast(model, 2, torch.zeros(2, 1, 5, 6, dtype=torch.long))
    with pytest.raises(ValueError, match=r"uniforms must lie in \[0, 1\)"):
        sample_fast(model, 2, torch.ones(2, 1, 5, 6))
    cache = SamplerCache(model, 2)
    with pytest.raises(ValueError, match="uniforms must be on the CPU"):
        cache.step(torch.rand(2, 1, 3, device="meta"))
    with pytest.raises(ValueError, match=r"uniforms must be \[2, 1, pixels\]"):
        cache.step(torch.rand(3, 1, 4))
    with pytest.raises(ValueError, match="31 pixels asked, 30 left"):
        cache.step(torch.rand(2, 1, 31))
    with pytest.raises(ValueError, match="chunk must be a positive int"):
        sample_fast(model, 2, chunk=0)


def test_a_cache_resumes_only_with_its_model():
    gen = fresh_generator()
    model, _ = build("pixelcnn-binary", gen)
    cache = SamplerCache(model, 2)
    cache.check_model(model, "resume")
    other, _ = build("pixelcnn-binary", gen)
    with pytest.raises(ValueError, match="resume: this cache was made for another model"):
        cache.check_model(other, "resume")
    with torch.no_grad():
        model.head.out.bias.add_(1.0)  # an optimizer step: the packed weights are stale
    with pytest.raises(ValueError, match="before its weights changed"):
        cache.check_model(model, "resume")


def _op_args(name="pixelcnn-binary", n=2, **changes):
    model, labels = build(name, fresh_generator(), n=n)
    cache = SamplerCache(model, n, labels)
    args = dict(caches=cache.caches, levels=cache.levels, position=cache.position, weights=cache.plan.weights,
                dims=cache.plan.dims, cond=cache.cond, uniforms=torch.rand(n, model.config.channels, 4), pixels=4)
    args.update({k: (v(args) if callable(v) else v) for k, v in changes.items()})
    return args


@pytest.mark.parametrize("changes, message", [
    (dict(weights=lambda a: a["weights"][:-1]), "weights has .* too few .*missing block 1 expand bias"),
    (dict(weights=lambda a: a["weights"][:5] + [a["weights"][5][:-8]] + a["weights"][6:]),
     r"first conv weight must have shape"),
    (dict(weights=lambda a: [a["weights"][0].double()] + a["weights"][1:]), "input_table must be float32"),
    (dict(dims=lambda a: [1] + a["dims"][1:]), "pixelcnn_sample"),  # a Gated plan over PixelCNN weights
    (dict(caches=lambda a: a["caches"][:-1]), r"caches has 2 tensors, too few"),
    (dict(uniforms=torch.rand(2, 1, 3)), r"uniforms must have shape \[2, 1, 4\]"),
    (dict(uniforms=torch.rand(2, 1, 4, dtype=torch.float64)), "uniforms must be float32"),
    (dict(pixels=31, uniforms=torch.rand(2, 1, 31)), r"pixels 0 \.\. 31 do not lie in the image's 30"),
    (dict(levels=torch.zeros(2, 1, 5, 6, dtype=torch.int32)), "levels must be a contiguous int64"),
    (dict(cond=torch.zeros(2, 2, 16)), "cond is for a class-conditional Gated PixelCNN only"),
])
def test_bad_op_arguments_are_named(changes, message):
    with pytest.raises(RuntimeError, match=message):
        ops.pixelcnn_sample(**_op_args(**changes))


def test_the_op_refuses_the_reference_and_is_opchecked():
    args = _op_args()
    with pytest.raises(ValueError, match="works on a model, not on packed weights"):
        ops.pixelcnn_sample(**args, backend="reference")
    with fastgen.use_backend("cuda"), pytest.raises(_route.BackendUnavailableError, match="runs on CUDA tensors"):
        ops.pixelcnn_sample(**args)
    torch.library.opcheck(torch.ops.fastgen.pixelcnn_sample.default,
                          (args["caches"], args["levels"], args["position"], args["weights"], args["dims"], None,
                           args["uniforms"], 4), test_utils=("test_schema", "test_faketensor"))
