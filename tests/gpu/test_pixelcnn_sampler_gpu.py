"""The fast PixelCNN sampler's Triton kernel (fastgen.triton.pixelcnn_sampler) on a real GPU (skipped
without one), on the models the CPU tests use (tests/cases/pixelcnn_sample.py MODELS): the images of
the C++ kernel and of sample_cached for the same uniforms, teacher-forced logits equal to the float64
forward, a chunked run equal to one call, and "auto" on CUDA tensors running Triton (the op's only
CUDA kernel, in its CUDA dispatch slot too).

Run on a GPU machine with `python -m pytest tests/gpu -v`.
"""
from __future__ import annotations

import copy

import pytest
import torch

from fastgen import _extension
from fastgen.models.pixelcnn import sample_cached
from fastgen.models.pixelcnn.fast_sampling import SamplerCache, fast_logits, sample_fast
from fastgen.ops import _route
from fastgen.ops import pixelcnn_sampler as ops
from tests.cases.pixelcnn_sample import MODELS, build, uniforms_for
from tests.helpers import assert_rel_close, fresh_generator, triton_available
from tests.models.test_pixelcnn import random_levels

pytestmark = pytest.mark.skipif(not triton_available(), reason="triton is not installed")


def on_gpu(model, labels):
    return copy.deepcopy(model).cuda(), None if labels is None else labels.cuda()


@pytest.mark.parametrize("n", [1, 5])
@pytest.mark.parametrize("name", list(MODELS))
def test_triton_draws_the_cpu_images(name, n):
    gen = fresh_generator()
    model, labels = build(name, gen, n=n)
    u = uniforms_for(model, n, gen)
    gpu_model, gpu_labels = on_gpu(model, labels)
    got = sample_fast(gpu_model, n, u.cuda(), labels=gpu_labels).cpu()  # auto on CUDA: the Triton kernel
    assert torch.equal(got, sample_cached(model, n, u, labels=labels)), f"seed {gen.initial_seed()}"
    if _extension.available():
        assert torch.equal(got, sample_fast(model, n, u, labels=labels, backend="cpu")), f"seed {gen.initial_seed()}"


@pytest.mark.parametrize("name", ["pixelcnn-colour-256", "gated-colour-256-conditional"])
def test_spread_logits_draw_the_same_levels(name):
    gen = fresh_generator()
    model, labels = build(name, gen, spread=300.0)
    u = uniforms_for(model, 2, gen)
    gpu_model, gpu_labels = on_gpu(model, labels)
    got = sample_fast(gpu_model, 2, u.cuda(), labels=gpu_labels, backend="triton").cpu()
    assert torch.equal(got, sample_cached(model, 2, u, labels=labels)), f"seed {gen.initial_seed()}"


@pytest.mark.parametrize("name", list(MODELS))
def test_teacher_forced_logits_equal_the_forward(name):
    gen = fresh_generator()
    model, labels = build(name, gen, n=3)
    images = random_levels(model, 3, gen)
    gpu_model, gpu_labels = on_gpu(model, labels)
    got = fast_logits(gpu_model, images.cuda(), gpu_labels, backend="triton").cpu()
    assert_rel_close(got, model.double()(images, labels), 1e-5, f"{name} teacher-forced logits", gen.initial_seed())


@pytest.mark.parametrize("name", ["gated-colour-256-conditional", "pixelcnn-colour-256"])
def test_stop_and_resume_equals_one_call(name):
    gen = fresh_generator()
    model, labels = build(name, gen, n=3)
    u = uniforms_for(model, 3, gen)
    gpu_model, gpu_labels = on_gpu(model, labels)
    whole = sample_fast(gpu_model, 3, u.cuda(), labels=gpu_labels)
    cache = SamplerCache(gpu_model, 3, gpu_labels)
    flat, W = u.flatten(2).cuda(), model.config.width
    for start, stop in ((0, 1), (1, 3), (3, W + 2), (W + 2, flat.shape[2])):
        cache.step(flat[:, :, start:stop])
        assert cache.pixels_done == stop
    assert torch.equal(cache.images(), whole)


def test_auto_on_cuda_runs_triton_and_cuda_refuses():
    model, _ = build("pixelcnn-binary", fresh_generator())
    cache = SamplerCache(model.cuda(), 2)
    assert cache.backend == "triton"
    with pytest.raises(_route.BackendUnavailableError, match="built without its CUDA kernels"):
        SamplerCache(model, 2, backend="cuda")
    if _extension.available():  # the op's CUDA dispatch slot holds the Triton kernel
        u = torch.rand(2, 1, 3, device="cuda")
        torch.ops.fastgen.pixelcnn_sample(cache.caches, cache.levels, cache.position, cache.weights, cache.plan.dims,
                                          None, u, 3)
        assert int(cache.position) == 3 and ops._TRITON_IS_CUDA_KERNEL
