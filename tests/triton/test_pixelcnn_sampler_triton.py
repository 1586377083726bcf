"""The Triton twin of the fast PixelCNN sampler (fastgen.triton.pixelcnn_sampler, the "triton" backend of
pixelcnn_sample) under the interpreter: for the same weights and uniforms it draws the C++ kernel's
images and sample_cached's, its teacher-forced logits equal the C++ op's and the float64 forward, a
chunked run (stopping mid-row, and resumed by the other kernel on the same state) equals one call,
and bad arguments are named. Tiny models (tests/cases/pixelcnn_sample.py TRITON_MODELS): the
interpreter pays milliseconds per kernel launch, and this sampler launches one per layer per pass.
"""
from tests.triton.device import DEVICE  # first: sets TRITON_INTERPRET=1 before triton is imported

import copy  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

import fastgen  # noqa: E402
from fastgen import _extension  # noqa: E402
from fastgen.models.pixelcnn import sample_cached  # noqa: E402
from fastgen.models.pixelcnn.fast_sampling import SamplerCache, fast_logits, sample_fast  # noqa: E402
from fastgen.ops import pixelcnn_sampler as ops  # noqa: E402
from fastgen.triton import pixelcnn_sampler as kernels  # noqa: E402
from tests.cases.pixelcnn_sample import build, uniforms_for  # noqa: E402
from tests.helpers import assert_rel_close, fresh_generator, poisoned_empty  # noqa: E402
from tests.models.test_pixelcnn import random_levels, zero_weights  # noqa: E402

NEEDS_CPP = pytest.mark.skipif(not _extension.available(), reason="fastgen._C not built (the C++ kernel to match)")
ALL = ["pixelcnn-binary-tiny", "gated-binary-labelled-tiny", "pixelcnn-colour-256-tiny", "gated-colour-256-tiny"]


def on_device(model, labels):
    """The model (a copy) and labels where the Triton kernel runs."""
    return copy.deepcopy(model).to(DEVICE), None if labels is None else labels.to(DEVICE)


def triton_sample(model, n, u, labels, **kw):
    dev_model, dev_labels = on_device(model, labels)
    return sample_fast(dev_model, n, u.to(DEVICE), labels=dev_labels, backend="triton", **kw).cpu()


@NEEDS_CPP
@pytest.mark.parametrize("name", ALL)
def test_triton_draws_the_cpp_and_cached_images(name):
    gen = fresh_generator()
    model, labels = build(name, gen, n=2)
    u = uniforms_for(model, 2, gen)
    got = triton_sample(model, 2, u, labels)
    assert torch.equal(got, sample_fast(model, 2, u, labels=labels, backend="cpu")), f"seed {gen.initial_seed()}"
    assert torch.equal(got, sample_cached(model, 2, u, labels=labels)), f"seed {gen.initial_seed()}"


def test_spread_logits_draw_the_same_levels():
    # logits spread by thousands of nats: exp(x - max) underflows for most levels (a wrapped exp or a
    # cumsum that is not monotone would draw impossible levels); colour passes reading a stale group
    # would change the draws
    gen = fresh_generator()
    model, labels = build("gated-colour-256-tiny", gen, spread=300.0)
    u = uniforms_for(model, 2, gen)
    assert torch.equal(triton_sample(model, 2, u, labels), sample_cached(model, 2, u, labels=labels)), \
        f"seed {gen.initial_seed()}"


@pytest.mark.parametrize("name", [pytest.param("pixelcnn-colour-256-tiny", marks=pytest.mark.slow),
                                  "gated-binary-labelled-tiny"])
def test_each_uniform_draws_its_own_subpixel(name):
    # a zero-weight model is uniform: sub-pixel (ch, r, c) must be floor(K u[ch, r, c]) (binary: u < 1/2);
    # catches a kernel reading another sub-pixel's, colour's or image's uniform, or writing another's level
    gen = fresh_generator()
    model, labels = build(name, gen, n=3)
    zero_weights(model)
    K = model.config.levels
    u = uniforms_for(model, 3, gen)
    expected = (u < 0.5).float() if K == 2 else torch.floor(u * K) / (K - 1)
    assert torch.equal(triton_sample(model, 3, u, labels), expected)


@pytest.mark.parametrize("name", ["gated-binary-labelled-tiny", "pixelcnn-colour-256-tiny"])
def test_teacher_forced_logits_equal_the_cpp_op_and_the_forward(name):
    gen = fresh_generator()
    model, labels = build(name, gen, n=3)
    images = random_levels(model, 3, gen)
    dev_model, dev_labels = on_device(model, labels)
    with poisoned_empty():  # a logit the kernel never writes would be NaN
        got = fast_logits(dev_model, images.to(DEVICE), dev_labels, backend="triton").cpu()
    reference = model.double()(images, labels)  # float64: the truth both float32 kernels approximate
    assert got.shape == reference.shape
    assert_rel_close(got, reference, 1e-5, f"{name} Triton teacher-forced logits", gen.initial_seed())
    if _extension.available():
        cpp = fast_logits(model.float(), images, labels, backend="cpu")
        assert_rel_close(got, cpp.double(), 1e-5, f"{name} Triton vs C++ logits", gen.initial_seed())


@NEEDS_CPP
def test_chunks_stopping_mid_row_and_resumed_by_the_cpp_kernel_equal_one_call():
    # the Gated model: row starts (vertical stack, links) must happen once per row whatever the chunks;
    # the C++ kernel finishing the Triton kernel's state checks that both keep the same state layout
    gen = fresh_generator()
    model, labels = build("gated-binary-labelled-tiny", gen, n=2)
    u = uniforms_for(model, 2, gen)
    whole = sample_fast(model, 2, u, labels=labels, backend="cpu")
    dev_model, dev_labels = on_device(model, labels)
    cache = SamplerCache(dev_model, 2, dev_labels, backend="triton")
    flat, W = u.flatten(2), model.config.width
    for start, stop in ((0, 1), (1, W + 1)):  # one pixel, then across a row start into mid-row
        cache.step(flat[:, :, start:stop])
        assert cache.pixels_done == stop
        assert (cache.levels.flatten(2)[:, :, stop:] == 0).all(), "pixels beyond the chunk were drawn"
    if DEVICE == "cpu":
        cache.backend = "cpu"  # the rest by the C++ kernel, on the same caches
    cache.step(flat[:, :, W + 1:])
    assert torch.equal(cache.images().cpu(), whole)
    assert torch.equal(triton_sample(model, 2, u, labels, chunk=5), whole)


def test_the_op_routes_to_triton(monkeypatch):
    calls = []
    real = kernels.pixelcnn_sample
    monkeypatch.setattr(kernels, "pixelcnn_sample", lambda *a: calls.append(1) or real(*a))
    gen = fresh_generator()
    model, _ = build("pixelcnn-binary-tiny", gen)
    model = model.to(DEVICE)
    cache = SamplerCache(model, 2, backend="triton")
    assert cache.backend == "triton"
    ops.pixelcnn_sample(cache.caches, cache.levels, cache.position, cache.weights, cache.plan.dims, None,
                        torch.rand(2, 1, 1, device=DEVICE), 1, backend="triton")
    assert calls == [1] and int(cache.position) == 1
    with fastgen.use_backend("triton"):  # sample_fast follows the context like every op
        SamplerCache(model, 2).step(torch.rand(2, 1, 1))
    assert calls == [1, 1]


# ---------------------------------------------------------------------------------------------
# bad input: the launcher's checks, before any launch


def _op_args(name="pixelcnn-binary-tiny", n=2, **changes):
    model, labels = build(name, fresh_generator(), n=n)
    dev_model, dev_labels = on_device(model, labels)
    cache = SamplerCache(dev_model, n, dev_labels, backend="triton")
    args = dict(caches=cache.caches, levels=cache.levels, position=cache.position, weights=cache.weights,
                dims=cache.plan.dims, cond=cache.cond, uniforms=torch.rand(n, model.config.channels, 4, device=DEVICE),
                pixels=4)
    args.update({k: v(args) if callable(v) else v.to(DEVICE) if isinstance(v, torch.Tensor) else v
                 for k, v in changes.items()})
    return args


@pytest.mark.parametrize("changes, error, message", [
    (dict(weights=lambda a: a["weights"][:-1]), ValueError, "weights has .* too few .*missing block 0 expand bias"),
    (dict(weights=lambda a: a["weights"][:5] + [a["weights"][5][:-8]] + a["weights"][6:]), ValueError,
     r"first conv weight must have shape"),
    (dict(weights=lambda a: [a["weights"][0].double()] + a["weights"][1:]), TypeError, "input_table must be "
                                                                                       "torch.float32"),
    (dict(dims=lambda a: [1] + a["dims"][1:]), ValueError, r"pixelcnn_sample \(triton\)"),  # Gated plan
    (dict(caches=lambda a: a["caches"][:-1]), ValueError, r"caches has 1 tensors, too few"),
    (dict(uniforms=torch.rand(2, 1, 3)), ValueError, r"uniforms must have shape \[2, 1, 4\]"),
    (dict(uniforms=torch.rand(2, 1, 4, dtype=torch.float64)), TypeError, "uniforms must be torch.float32"),
    (dict(pixels=13, uniforms=torch.rand(2, 1, 13)), ValueError, r"pixels 0 \.\. 13 do not lie in the image's 12"),
    (dict(levels=torch.zeros(2, 1, 3, 4, dtype=torch.int32)), ValueError, "levels must be a contiguous int64"),
    (dict(cond=torch.zeros(2, 1, 16)), ValueError, "cond is for a class-conditional Gated PixelCNN only"),
    (dict(uniforms=None, levels=lambda a: a["levels"] + 2), ValueError, r"teacher-forced levels must lie in \[0, 2\)"),
])
def test_bad_arguments_are_named(changes, error, message):
    args = _op_args(**changes)
    position = int(args["position"])
    with pytest.raises(error, match=message):
        kernels.pixelcnn_sample(**args)
    assert int(args["position"]) == position, "a refused call advanced the state"


def test_a_labelled_model_needs_cond_of_its_shape():
    with pytest.raises(ValueError, match=r"cond must have shape \[2, 2, \d+\], got \[2, 2, 8\]"):
        kernels.pixelcnn_sample(**_op_args("gated-binary-labelled-tiny", cond=torch.zeros(2, 2, 8, device=DEVICE)))
