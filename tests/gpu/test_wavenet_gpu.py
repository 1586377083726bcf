"""The persistent CUDA WaveNet generation kernel (csrc/cuda/wavenet.cu) on a real GPU, token for token
against the C++ CPU kernel and fastgen.reference.wavenet.generate_queues (skipped without a GPU or
without the compiled CUDA kernel).

Run on a GPU machine with `python -m pytest tests/gpu -v`. Tokens must be equal. The one allowed
exception is a genuine near tie at the first differing step (two classes whose logits, or a cdf value
and the threshold, agree to ~1e-4 in float64 on the reference's logits): float32 paths with different
summation orders may legitimately split those, and the rows' later tokens then legitimately differ.
Each such case is printed with the seed. Cache state after a call (positions, last tokens, queues)
must match the CPU kernel's.
"""
from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys

import pytest
import torch

from fastgen import _extension
from fastgen.models import WaveNet
from fastgen.models.wavenet import generation as ops
from fastgen.reference import wavenet as ref
from tests.cases import wavenet_generate as cases
from tests.helpers import assert_rel_close, fresh_generator, triton_available

pytestmark = pytest.mark.skipif(not _extension.has_kernel("wavenet_generate", "CUDA"),
                                reason="fastgen built without its CUDA kernels (FASTGEN_FORCE_CUDA=1)")

DEVICE = "cuda"    # where the fast path runs
BACKEND = "cuda"   # fastgen.ops.wavenet backend under test
ENV = "FASTGEN_WAVENET_CUDA_WEIGHTS"  # auto | global | shared (csrc/cuda/wavenet_binding.cpp)

SMALL = {  # odd widths (R=12 pads to 16, C=37), so the pad8 columns are exercised
    "k2": dict(classes=37, residual_channels=12, skip_channels=20, head_channels=26, kernel_size=2,
               layers_per_stack=4, stacks=2),
    "k3": dict(classes=32, residual_channels=10, skip_channels=14, head_channels=8, kernel_size=3,
               layers_per_stack=3, stacks=2),
}
CONDITIONINGS = {"none": {}, "both": dict(speakers=2, speaker_dim=5, cond_channels=5, hop_length=3)}
BENCHMARK = {}  # WaveNetConfig's defaults: R=64, S=128, 2 stacks of 10 layers, kernel 2, 256 classes


@pytest.fixture(autouse=True)
def _exact_float32_on_gpu():
    """The conditioning is computed by the model on the GPU: no TF32 there, so it matches the CPU's."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def round_to_bfloat16(model: WaveNet) -> WaveNet:
    """The float model the bfloat16-packed weights represent exactly: the packed matrices (gates, skips,
    residuals, head) rounded; biases, the embedding and the conditioning projections (computed by the
    model in float32, outside the kernel) unchanged."""
    rounded = copy.deepcopy(model)
    packed = ("gates.", "skips.", "residuals.", "head1.", "head2.")
    with torch.no_grad():
        for name, p in rounded.named_parameters():
            if name.startswith(packed) and name.endswith(".weight"):
                p.copy_(p.to(torch.bfloat16).float())
    return rounded


def to_device(kwargs: dict) -> dict:
    return {k: v.to(DEVICE) for k, v in kwargs.items()}


@torch.no_grad()
def reference_with_logits(model, B, n, uniforms, temperature, speaker=None, features=None):
    """generate_queues's tokens [B, n] and the logits [B, n, C] (float64) each step sampled from."""
    upsampled = model.upsample_features(features) if features is not None else None
    state = ref.QueueState(model, B)
    tokens = torch.full((B,), ops.silence_token(model.config.classes), dtype=torch.int64)
    out, logits = [], []
    for i in range(n):
        cond = model.conditioning_steps(speaker, upsampled, i, i + 1)
        step_logits = ref.queue_step(model, state, tokens, None if cond is None else cond[:, 0])
        tokens = ref.sample_tokens(step_logits, uniforms[:, i], temperature)
        out.append(tokens)
        logits.append(step_logits.double())
    return torch.stack(out, dim=1), torch.stack(logits, dim=1)


def near_tie(logits, u, temperature, a, b, tol=1e-4) -> bool:
    """Whether classes a != b are both defensible draws from logits [C] (float64) with uniform u."""
    if temperature == 0:
        top = logits.max()
        scale = 1 + top.abs()
        return bool((top - logits[a]).abs() <= tol * scale and (top - logits[b]).abs() <= tol * scale)
    cdf = torch.exp((logits - logits.max()) / temperature).cumsum(0)
    threshold = u * cdf[-1]
    return bool((cdf[min(a, b)] - threshold).abs() <= tol * cdf[-1])


def assert_same_tokens(got, want, logits, uniforms, temperature, what, seed, lengths=None):
    """got == want, except that a row may part from want after a genuine near tie (see the module
    docstring); steps past lengths must read -1."""
    got, want = got.cpu(), want.cpu()
    assert got.shape == want.shape and got.dtype == torch.int64, f"{what}: {got.shape} {got.dtype}"
    B, n = got.shape
    for b in range(B):
        m = n if lengths is None else int(lengths[b])
        assert (got[b, m:] == -1).all(), f"{what}: row {b} has tokens past its length {m} (seed {seed})"
        diff = (got[b, :m] != want[b, :m]).nonzero()
        if len(diff) == 0:
            continue
        i = int(diff[0])
        g, w = int(got[b, i]), int(want[b, i])
        assert near_tie(logits[b, i], float(uniforms[b, i]), temperature, g, w), (
            f"{what}: row {b} differs first at step {i}: {g} vs {w} (not a near tie; seed {seed}); "
            f"got {got[b, max(0, i - 3):i + 3].tolist()} want {want[b, max(0, i - 3):i + 3].tolist()}")
        print(f"{what}: row {b} parts at step {i} on a near tie ({g} vs {w}); seed {seed}")


def generate_both(model, B, n, uniforms, temperature, weight_dtype=torch.float32, chunk=ops.DEFAULT_CHUNK,
                  lengths=None, backend=BACKEND, **cond):
    """Tokens and caches of the CPU kernel and of the backend under test, same inputs."""
    cpu_cache = model.allocate_cache(B, weight_dtype)
    cpu = model.generate(n, cache=cpu_cache, uniforms=uniforms, temperature=temperature, backend="cpu",
                         lengths=lengths, chunk=chunk, **cond)
    dev_model = copy.deepcopy(model).to(DEVICE)
    dev_cache = dev_model.allocate_cache(B, weight_dtype)
    dev = dev_model.generate(n, cache=dev_cache, uniforms=uniforms.to(DEVICE), temperature=temperature,
                             backend=backend, lengths=lengths, chunk=chunk, **to_device(cond))
    assert dev.device.type == torch.device(DEVICE).type
    return cpu, cpu_cache, dev.cpu(), dev_cache


def assert_same_state(dev_cache, cpu_cache, what, seed):
    assert torch.equal(dev_cache.positions.cpu(), cpu_cache.positions), f"{what}: positions (seed {seed})"
    assert torch.equal(dev_cache.last_tokens.cpu(), cpu_cache.last_tokens), f"{what}: last tokens (seed {seed})"
    assert_rel_close(dev_cache.queues.cpu(), cpu_cache.queues, 1e-5, f"{what}: queues", seed)


def check_against_cpu_and_reference(model, gen, B, n, temperature, weight_dtype=torch.float32, chunk=17,
                                    check_helper=True, backend=BACKEND):
    seed = gen.initial_seed()
    uniforms = torch.rand(B, n, generator=gen)
    cond = cases.conditioning(model, gen, B, n)
    truth = round_to_bfloat16(model) if weight_dtype == torch.bfloat16 else model
    want, logits = reference_with_logits(truth, B, n, uniforms, temperature, **cond)
    if check_helper:  # reference_with_logits reproduces generate_queues through the public API
        assert torch.equal(truth.generate(n, B, uniforms=uniforms, temperature=temperature, backend="reference",
                                          **cond), want)
    cpu, cpu_cache, dev, dev_cache = generate_both(model, B, n, uniforms, temperature, weight_dtype, chunk,
                                                   backend=backend, **cond)
    what = f"{backend} {weight_dtype} T={temperature}"
    assert_same_tokens(dev, want, logits, uniforms, temperature, f"{what} vs reference", seed)
    assert_same_tokens(cpu, want, logits, uniforms, temperature, f"cpu {weight_dtype} vs reference", seed)
    if torch.equal(dev, cpu):  # the usual case: then the states must agree too
        assert_same_state(dev_cache, cpu_cache, what, seed)
    if temperature:  # the test model's distribution is not degenerate
        assert len(set(dev.flatten().tolist())) > 3, f"{what}: degenerate samples (seed {seed})"


# The compiled Triton kernel too (under the interpreter it is compared on the CPU in tests/triton).
GPU_BACKENDS = [BACKEND] + (["triton"] if triton_available() else [])


@pytest.mark.parametrize("weight_dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("temperature", [1.0, 0.7, 0.0], ids=["T1", "T0.7", "argmax"])
@pytest.mark.parametrize("cond", list(CONDITIONINGS))
@pytest.mark.parametrize("config", list(SMALL))
@pytest.mark.parametrize("backend", GPU_BACKENDS)
def test_small_model_matches_cpu_and_reference(backend, config, cond, temperature, weight_dtype):
    gen = fresh_generator()
    model = cases.scaled_model(gen, **SMALL[config], **CONDITIONINGS[cond])
    check_against_cpu_and_reference(model, gen, 3, 80, temperature, weight_dtype, backend=backend)


@pytest.mark.parametrize("weight_dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("temperature", [1.0, 0.0], ids=["T1", "argmax"])
@pytest.mark.parametrize("backend", GPU_BACKENDS)
def test_benchmark_model_matches_cpu_and_reference(backend, temperature, weight_dtype):
    gen = fresh_generator()
    model = cases.scaled_model(gen, **BENCHMARK)
    check_against_cpu_and_reference(model, gen, 2, 200, temperature, weight_dtype, chunk=128, check_helper=False,
                                    backend=backend)


@pytest.mark.parametrize("config", list(SMALL))
def test_weight_placements_give_identical_results(config, monkeypatch):
    """Weights staged in shared memory or read from global memory: the same arithmetic, bit for bit."""
    gen = fresh_generator()
    model = cases.scaled_model(gen, **SMALL[config], **CONDITIONINGS["both"]).to(DEVICE)
    B, n = 3, 50
    uniforms = torch.rand(B, n, generator=gen).to(DEVICE)
    cond = to_device(cases.conditioning(model, gen, B, n))
    results = {}
    for placement in ("auto", "global", "shared"):
        monkeypatch.setenv(ENV, placement)
        cache = model.allocate_cache(B)
        tokens = model.generate(n, cache=cache, uniforms=uniforms, backend=BACKEND, chunk=19, **cond)
        results[placement] = (tokens, cache.queues, cache.positions, cache.last_tokens)
    for placement in ("global", "shared"):
        for got, want in zip(results[placement], results["auto"]):
            assert torch.equal(got, want), f"{placement} vs auto (seed {gen.initial_seed()})"


def test_more_rows_than_multiprocessors():
    """Rows in several waves of blocks (and the auto placement's global-memory choice)."""
    gen = fresh_generator()
    model = cases.scaled_model(gen, **SMALL["k2"])
    B = 2 * torch.cuda.get_device_properties(0).multi_processor_count + 3 if DEVICE == "cuda" else 5
    n = 12
    uniforms = torch.rand(B, n, generator=gen)
    want, logits = reference_with_logits(model, B, n, uniforms, 1.0)
    cpu, cpu_cache, dev, dev_cache = generate_both(model, B, n, uniforms, 1.0)
    assert_same_tokens(dev, want, logits, uniforms, 1.0, "many rows", gen.initial_seed())
    if torch.equal(dev, cpu):
        assert_same_state(dev_cache, cpu_cache, "many rows", gen.initial_seed())


def test_stream_resumed_from_cache_equals_uninterrupted():
    gen = fresh_generator()
    model = cases.scaled_model(gen, **SMALL["k3"], speakers=3, speaker_dim=4).to(DEVICE)
    speaker = torch.tensor([0, 2], device=DEVICE)
    seed = gen.initial_seed()
    whole = model.generate(90, speaker=speaker, seed=seed, batch=2, backend=BACKEND)
    cache = model.allocate_cache(2, seed=seed)
    first = model.generate(31, cache=cache, speaker=speaker, backend=BACKEND)
    second = torch.cat(list(model.stream(50, cache=cache, speaker=speaker, chunk=7, backend=BACKEND)), dim=1)
    one = torch.stack([model.step(cache, speaker=speaker, backend=BACKEND) for _ in range(9)], dim=1)
    assert torch.equal(torch.cat([first, second, one], dim=1), whole), f"seed {seed}"
    assert cache.positions.tolist() == [90, 90] and torch.equal(cache.last_tokens, whole[:, -1])
    # and the same tokens as the CPU kernel from the same seed
    cpu_model = copy.deepcopy(model).cpu()
    uniforms = ops.draw_uniforms(ops.make_generator(seed), 2, 90)
    want, logits = reference_with_logits(cpu_model, 2, 90, uniforms, 1.0, speaker=speaker.cpu())
    assert_same_tokens(whole, want, logits, uniforms, 1.0, "streamed", seed)


def test_finished_rows_stop_and_others_are_unchanged():
    gen = fresh_generator()
    model = cases.scaled_model(gen, **SMALL["k2"])
    B, n = 4, 40
    uniforms = torch.rand(B, n, generator=gen)
    lengths = torch.tensor([40, 0, 13, 1])
    want, logits = reference_with_logits(model, B, n, uniforms, 1.0)
    cpu, cpu_cache, dev, dev_cache = generate_both(model, B, n, uniforms, 1.0, chunk=16, lengths=lengths)
    seed = gen.initial_seed()
    assert_same_tokens(dev, want, logits, uniforms, 1.0, "lengths", seed, lengths=lengths)
    assert dev_cache.positions.tolist() == lengths.tolist()
    assert dev_cache.last_tokens[1] == ops.silence_token(model.config.classes)
    assert (dev_cache.queues[1] == 0).all()
    if torch.equal(dev, cpu):
        assert_same_state(dev_cache, cpu_cache, "lengths", seed)


def test_zero_length_call_changes_nothing():
    gen = fresh_generator()
    model = cases.scaled_model(gen, **SMALL["k2"]).to(DEVICE)
    cache = model.allocate_cache(2)
    queues = cache.queues.clone()
    out = torch.ops.fastgen.wavenet_generate(cache.queues, cache.positions, cache.last_tokens, cache.weights,
                                             cache.dilations, None, torch.rand(2, 6, device=DEVICE),
                                             torch.zeros(2, dtype=torch.int64, device=DEVICE), 1.0)
    assert (out == -1).all() and out.shape == (2, 6)
    assert torch.equal(cache.queues, queues) and cache.positions.tolist() == [0, 0]


def test_opcheck():
    gen = fresh_generator()
    model = cases.scaled_model(gen, **SMALL["k2"]).to(DEVICE)
    cache = model.allocate_cache(2)
    args = (cache.queues, cache.positions, cache.last_tokens, cache.weights, cache.dilations, None,
            torch.rand(2, 5, generator=gen).to(DEVICE), torch.tensor([5, 3], device=DEVICE), 1.0)
    torch.library.opcheck(torch.ops.fastgen.wavenet_generate, args,
                          test_utils=("test_schema", "test_faketensor", "test_aot_dispatch_dynamic"))


@pytest.mark.parametrize("case", cases.bad_op_args_for("cuda"))
def test_op_checks_name_the_argument(case):
    gen = fresh_generator()
    model = cases.scaled_model(gen, **SMALL["k2"]).to(DEVICE)
    args = cases.op_args(model.allocate_cache(2), torch.rand(2, 4, generator=gen).to(DEVICE),
                         torch.tensor([4, 4], device=DEVICE))
    cases.assert_bad_op_args(case, "cuda", lambda **a: torch.ops.fastgen.wavenet_generate(*a.values()), model, args)


# Each wrong shape in a child process: on the first GPU run (H200, torch 2.11+cu130, GCC 13) a wrong
# shape killed the process with a segfault inside the argument checks instead of raising.
SHAPE_CHECK = """
import sys, torch
import fastgen  # noqa: F401  (registers torch.ops.fastgen)
from fastgen.models import WaveNet
model = WaveNet(classes=37, residual_channels=12, skip_channels=20, head_channels=26, kernel_size=2,
                layers_per_stack=4, stacks=2).eval().cuda()
cache = model.allocate_cache(2)
args = [cache.queues, cache.positions, cache.last_tokens, cache.weights, cache.dilations, None,
        torch.rand(2, 4, device="cuda"), torch.tensor([4, 4], device="cuda"), 1.0]
index, cut = {"queues": (0, lambda t: t[:, 1:]), "positions": (1, lambda t: t[:1])}[sys.argv[1]]
args[index] = cut(args[index])
try:
    torch.ops.fastgen.wavenet_generate(*args)
except RuntimeError as e:
    print(str(e).splitlines()[0])
"""


@pytest.mark.parametrize("name", ["queues", "positions"])
def test_wrong_shape_raises_instead_of_crashing(name):
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    command = [sys.executable, "-X", "faulthandler", "-c", SHAPE_CHECK, name]
    child = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    if child.returncode < 0:  # killed by a signal: the native backtrace is what the next fix needs
        debugger = shutil.which("cuda-gdb") or shutil.which("gdb")
        trace = "no gdb or cuda-gdb here for a native backtrace"
        if debugger:
            trace = subprocess.run([debugger, "-batch", "-ex", "run", "-ex", "bt 24", "--args", *command],
                                   capture_output=True, text=True, env=env, timeout=300).stdout[-6000:]
        pytest.fail(f"wrong {name} shape: the process died (rc {child.returncode})\n{child.stderr[-800:]}\n{trace}")
    assert child.returncode == 0, child.stderr[-800:]
    assert f"{name} must have shape" in child.stdout, child.stdout + child.stderr[-800:]
