"""fastgen.ops._route: one backend rule for every op. The rule table per device (builds simulated, so
the CUDA rows are decided here without a GPU), refusals of one form for every op, unknown names, the
fallbacks that warn and those that stay silent, and WaveNet following fastgen.set_backend."""
import re
import warnings

import pytest
import torch

import fastgen
from fastgen import _extension
from fastgen.ops import _route
from fastgen.ops import attention as attention_ops
from fastgen.ops import lstm as lstm_ops
from fastgen.ops import wavenet as wavenet_ops
from fastgen.reference import wavenet as wavenet_ref
from tests import cases
from tests.cases.wavenet_generate import tiny_wavenet
from tests.helpers import fresh_generator

pytestmark = pytest.mark.skipif(not _extension.available(), reason="fastgen._C not built")

CPU, CUDA = torch.device("cpu"), torch.device("cuda")
F32 = torch.float32
DECLARATIONS = _route.declared()
OPS = sorted(DECLARATIONS)
# Ops with GPU kernels (CUDA C++ and Triton); the others have only the CPU kernel.
GPU_OPS = {op for op, k in DECLARATIONS.items() if k.cuda or k.triton}
# Each op's public call and reference twin, from its case module (tests/cases/<family>.py).
CALLS, TWINS = cases.route_calls(), cases.route_twins()


@pytest.fixture(autouse=True)
def fresh_warnings():
    """Each test sees the once-per-process fallback warnings afresh."""
    saved = set(_route._warned)
    _route._warned.clear()
    yield
    _route._warned.clear()
    _route._warned.update(saved)


def simulate(monkeypatch, *, cpu=True, cuda=False, triton=True):
    """Pretend this installation has (or lacks) fastgen._C, its CUDA kernels and triton."""
    monkeypatch.setattr(_extension, "IMPORT_ERROR", None if cpu else ImportError("simulated: no fastgen._C"))
    monkeypatch.setattr(_extension, "has_kernel", lambda op, key: cpu and cuda and key == "CUDA")
    monkeypatch.setattr(_route, "_TRITON_INSTALLED", triton)


def route(op, device, backend="auto", dtype=F32):
    with fastgen.use_backend(backend):
        return _route.resolve(DECLARATIONS[op], device, dtype)


# ---------------------------------------------------------------------------------------------
# the rule table


@pytest.mark.parametrize("op", OPS)
def test_auto_picks_per_device(op, monkeypatch):
    gpu = op in GPU_OPS
    simulate(monkeypatch, cuda=True)
    assert route(op, CPU) == "cpu"
    assert route(op, CUDA) == ("cuda" if gpu else "reference")
    simulate(monkeypatch, cuda=False)  # no CUDA C++ kernels: Triton is next
    assert route(op, CUDA) == ("triton" if gpu else "reference")
    assert route(op, torch.device("meta")) == "reference"  # no kernels for other devices


@pytest.mark.parametrize("op", OPS)
def test_explicit_backends_per_device(op, monkeypatch):
    gpu = op in GPU_OPS
    simulate(monkeypatch, cuda=True)
    assert route(op, CPU, "reference") == route(op, CUDA, "reference") == "reference"
    assert route(op, CPU, "cpu") == "cpu"
    # A backend the op has no kernel of does not concern it: DRAW's LSTM still runs under "cuda".
    assert route(op, CUDA, "cuda") == ("cuda" if gpu else "reference")
    assert route(op, CUDA, "triton") == ("triton" if gpu else "reference")
    monkeypatch.setenv("TRITON_INTERPRET", "0")  # (tests run with it on; see the interpreter test below)
    for backend, device in (("cpu", CUDA), ("cuda", CPU), ("triton", CPU)):
        with pytest.raises(_route.BackendUnavailableError, match="runs on (CPU|CUDA) tensors"):
            route(op, device, backend)


@pytest.mark.parametrize("op", OPS)
def test_an_explicit_argument_wins_and_auto_defers_to_the_context(op, monkeypatch):
    simulate(monkeypatch)
    with fastgen.use_backend("reference"):
        assert _route.resolve(DECLARATIONS[op], CPU, F32, "cpu") == "cpu"
        assert _route.resolve(DECLARATIONS[op], CPU, F32, "auto") == "reference"
        assert _route.resolve(DECLARATIONS[op], CPU, F32, None) == "reference"


def test_triton_on_cpu_tensors_only_under_the_interpreter_and_only_where_declared(monkeypatch):
    simulate(monkeypatch)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert route("wavenet_generate", CPU, "triton") == "triton"
    with pytest.raises(_route.BackendUnavailableError, match=r"runs on CUDA tensors; "):
        route("attention_read", CPU, "triton")  # its op-level Triton route is the CUDA dispatch slot
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(_route.BackendUnavailableError, match=r"runs on CUDA tensors \(or CPU tensors under"):
        route("wavenet_generate", CPU, "triton")


def test_attention_counts_triton_in_the_cuda_slot_as_triton(monkeypatch):
    """In a build without CUDA C++ kernels the ops' CUDA slot holds the Triton kernels: "cuda" must
    then refuse (the C++ kernels are missing) and "auto" must pick triton, run through torch.ops."""
    monkeypatch.setattr(_extension, "has_kernel", lambda op, key: True)
    monkeypatch.setattr(attention_ops, "_TRITON_IS_CUDA_KERNEL", True)
    monkeypatch.setattr(_route, "_TRITON_INSTALLED", True)
    assert route("attention_read", CUDA) == "triton"
    with fastgen.use_backend("triton"):
        assert attention_ops._resolve_backend(CUDA) == "compiled"
    with pytest.raises(_route.BackendUnavailableError, match="built without its CUDA kernels"):
        route("attention_read", CUDA, "cuda")


# ---------------------------------------------------------------------------------------------
# refusals: one form for every op


def refusal(op, backend, device, dtype):
    return re.compile(rf"{op}: the '{backend}' backend cannot run {re.escape(str(dtype))} tensors on {device}: "
                      rf"[^;]+; [^;]+, or use 'auto' or 'reference'")


@pytest.mark.parametrize("op", OPS)
def test_missing_kernels_are_refused_in_one_form(op, monkeypatch):
    gpu = op in GPU_OPS
    simulate(monkeypatch, cpu=False)
    with pytest.raises(_route.BackendUnavailableError) as cpu_missing:
        route(op, CPU, "cpu")
    assert refusal(op, "cpu", "cpu", F32).fullmatch(str(cpu_missing.value))
    assert "simulated: no fastgen._C" in str(cpu_missing.value) and "pip install" in str(cpu_missing.value)

    simulate(monkeypatch, cuda=False, triton=False)
    for backend, why in (("cuda", "built without its CUDA kernels"), ("triton", "triton is not installed")):
        if gpu:
            with pytest.raises(_route.BackendUnavailableError) as missing:
                route(op, CUDA, backend)
            assert refusal(op, backend, "cuda", F32).fullmatch(str(missing.value)) and why in str(missing.value)
        else:
            assert route(op, CUDA, backend) == "reference"


@pytest.mark.parametrize("op", sorted(op for op, k in DECLARATIONS.items() if k.cpu and torch.float16 not in k.cpu))
def test_an_explicit_cpu_backend_refuses_a_dtype_its_kernel_lacks(op):
    with pytest.raises(_route.BackendUnavailableError) as e:
        route(op, CPU, "cpu", torch.float16)
    assert refusal(op, "cpu", "cpu", torch.float16).fullmatch(str(e.value))
    assert f"takes {', '.join(map(str, DECLARATIONS[op].cpu))};" in str(e.value)
    assert route(op, CPU, "auto", torch.float16) == "reference"  # auto: the twin, by design silently


def test_every_declared_op_has_its_public_call_in_its_case_module():
    assert set(CALLS) == set(DECLARATIONS), "declare ROUTE_CALLS in the op's tests/cases module"
    assert set(TWINS) <= set(DECLARATIONS)


@pytest.mark.parametrize("op", OPS)
def test_every_op_refuses_through_its_public_call_in_the_same_words(op):
    """The real entry points (WaveNet through model.generate) under use_backend("cuda") on CPU
    tensors: one sentence, only the op's name differs."""
    with fastgen.use_backend("cuda"), pytest.raises(_route.BackendUnavailableError) as e:
        CALLS[op]()()
    assert str(e.value) == (f"{op}: the 'cuda' backend cannot run torch.float32 tensors on cpu: it runs on CUDA "
                            "tensors; move the tensors, or use 'auto' or 'reference'")


# ---------------------------------------------------------------------------------------------
# the calls run what the rule picked: no silent fallback where it raises


def spy(monkeypatch, module, name):
    calls = []
    real = getattr(module, name)
    monkeypatch.setattr(module, name, lambda *a, **k: calls.append(name) or real(*a, **k))
    return calls


@pytest.mark.parametrize("op", sorted(TWINS))
def test_calls_run_the_kernel_or_the_twin_as_routed(op, monkeypatch):
    reference_module, reference_name = TWINS[op]
    calls = spy(monkeypatch, reference_module, reference_name)
    kernel_out = CALLS[op]()()
    assert calls == [], f"{op}: auto on CPU float32 ran the reference"
    with fastgen.use_backend("reference"):
        CALLS[op]()()
    assert calls == [reference_name]
    assert torch.isfinite(kernel_out[0] if isinstance(kernel_out, tuple) else kernel_out).all()


@pytest.mark.parametrize("op", sorted(op for op, k in DECLARATIONS.items()
                                     if op in TWINS and k.cpu and not (k.cuda or k.triton)))
def test_unsupported_dtype_raises_under_cpu_and_runs_the_twin_under_auto(op, monkeypatch):
    reference_module, reference_name = TWINS[op]
    calls = spy(monkeypatch, reference_module, reference_name)
    call = CALLS[op](torch.bfloat16)
    with fastgen.use_backend("cpu"), pytest.raises(_route.BackendUnavailableError, match="takes torch.float32"):
        call()
    assert calls == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a fallback by design is silent
        call()
    assert calls == [reference_name]


@pytest.mark.parametrize("op", OPS)
def test_auto_without_the_extension_warns_once_and_runs_the_twin(op, monkeypatch):
    simulate(monkeypatch, cpu=False)
    with pytest.warns(RuntimeWarning, match=rf"{op}: running the slow reference on cpu .*simulated: no fastgen._C"):
        assert route(op, CPU) == "reference"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert route(op, CPU) == "reference"  # once per op and device
        assert route("lstm_cell_pointwise", CUDA) == "reference"  # no kernel by design: silent


# ---------------------------------------------------------------------------------------------
# names


def test_unknown_names_list_the_choices():
    with pytest.raises(ValueError, match=r"lstm_cell_pointwise: unknown backend 'gpu'; choose one of auto, "
                                         r"reference, cpu, triton, cuda$"):
        _route.resolve(lstm_ops.KERNELS, CPU, F32, "gpu")
    with pytest.raises(ValueError, match=r"wavenet: unknown backend 'gpu'; choose one of auto, reference, cpu, "
                                         r"triton, cuda, naive$"):
        tiny_wavenet().generate(4, backend="gpu")
    with pytest.raises(ValueError, match="unknown backend 'fast'"):
        fastgen.set_backend("fast")
    assert fastgen.get_backend() == "auto"


# ---------------------------------------------------------------------------------------------
# WaveNet follows fastgen.set_backend / use_backend when its argument is "auto" or None


def test_wavenet_follows_the_context_backend(monkeypatch):
    model = tiny_wavenet()
    u = torch.rand(2, 7, generator=fresh_generator())
    kernel = spy(monkeypatch, wavenet_ops, "wavenet_generate")
    queues = spy(monkeypatch, wavenet_ref, "generate_queues")

    expected = model.generate(7, 2, uniforms=u)
    assert (len(kernel), len(queues)) == (1, 0), "auto on CPU must run the cpu kernel"
    for backend in ("auto", None):
        with fastgen.use_backend("reference"):
            assert torch.equal(model.generate(7, 2, uniforms=u, backend=backend), expected)
    assert (len(kernel), len(queues)) == (1, 2), "use_backend('reference') was ignored"
    try:
        fastgen.set_backend("reference")
        model.generate(7, 2, uniforms=u)
        assert (len(kernel), len(queues)) == (1, 3), "set_backend('reference') was ignored"
        with fastgen.use_backend("cpu"):  # the block wins over the process default
            model.generate(7, 2, uniforms=u)
        assert torch.equal(model.generate(7, 2, uniforms=u, backend="cpu"), expected)  # the argument wins
        assert (len(kernel), len(queues)) == (3, 3)
        with pytest.raises(ValueError, match="takes no cache"):
            model.generate(7, cache=model.allocate_cache(2))
    finally:
        fastgen.set_backend("auto")


def test_wavenet_refuses_an_unrunnable_backend_before_generating(monkeypatch):
    model = tiny_wavenet()
    with fastgen.use_backend("triton"):
        monkeypatch.setenv("TRITON_INTERPRET", "0")
        with pytest.raises(_route.BackendUnavailableError, match="wavenet_generate: the 'triton' backend cannot run"):
            model.generate(4)
    with pytest.raises(ValueError, match="works on a model, not on packed weights"):
        cache = model.allocate_cache(1)
        wavenet_ops.wavenet_generate(cache.queues, cache.positions, cache.last_tokens, cache.weights,
                                     cache.dilations, None, torch.rand(1, 3), torch.tensor([3]), 1.0, "reference")
