"""fastgen.ops.masked_conv2d (the C++ CPU kernel) against its plain-PyTorch twin: the masks themselves
against an independent construction, values and every gradient on every case (float64 tight, float32),
masked weights ignored and their gradients exactly zero, gradcheck, opcheck, torch.compile, backends,
strided inputs, and bad input."""
import itertools
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import fastgen
from fastgen.benchmarking.timing import threads
from fastgen.ops import masked_conv2d
from fastgen.reference import masked_conv as ref
from tests.cases import assert_bad_input, bad_inputs_for, params
from tests.cases import masked_conv as cases
from tests.helpers import assert_rel_close, fresh_generator, poisoned_empty

pytestmark = pytest.mark.skipif(not fastgen._extension.available(), reason="fastgen._C not built")

TOL = {torch.float32: 1e-5, torch.float64: 1e-12}


def cpu_conv(case):
    def conv(x, w, b):
        with fastgen.use_backend("cpu"):
            return masked_conv2d(x, w, b, case.mask, case.groups)
    return conv


def ref_conv(case):
    return lambda x, w, b: ref.masked_conv2d(x, w, b, case.mask, case.groups)


# ---------------------------------------------------------------------------------------------
# the masks


def explicit_mask(cout, cin, kh, kw, mask, groups):
    """The mask element by element, written from the paper's description independently of the module:
    raster order as tuple order, groups as equal consecutive blocks."""
    m = torch.zeros(cout, cin, kh, kw, dtype=torch.bool)
    centre = (kh // 2, kw // 2)
    for co, ci, ky, kx in itertools.product(range(cout), range(cin), range(kh), range(kw)):
        if mask == "V":
            m[co, ci, ky, kx] = ky <= centre[0]
        elif (ky, kx) < centre:
            m[co, ci, ky, kx] = True
        elif (ky, kx) == centre:
            g_out, g_in = co // (cout // groups), ci // (cin // groups)
            m[co, ci, ky, kx] = g_in < g_out if mask == "A" else g_in <= g_out
    return m


MASK_SHAPES = [(cout, cin, kh, kw, mask, groups)
               for mask, groups in (("A", 1), ("B", 1), ("A", 3), ("B", 3), ("V", 1))
               for cout, cin, kh, kw in ((6, 9, 3, 3), (12, 3, 7, 7), (3, 6, 1, 5), (9, 6, 5, 3), (6, 3, 1, 1))]


@pytest.mark.parametrize("shape", MASK_SHAPES, ids=lambda s: "{4}{5}-{0}x{1}x{2}x{3}".format(*s))
def test_conv_mask_matches_explicit_construction(shape):
    assert torch.equal(ref.conv_mask(*shape), explicit_mask(*shape))


def test_centre_tap_colour_masks_literally():
    """The R,G,B centre-tap connectivity of the PixelCNN paper's figure 2, written out."""
    a = ref.conv_mask(3, 3, 3, 3, "A", 3)[:, :, 1, 1].int()
    b = ref.conv_mask(3, 3, 3, 3, "B", 3)[:, :, 1, 1].int()
    assert a.tolist() == [[0, 0, 0], [1, 0, 0], [1, 1, 0]]
    assert b.tolist() == [[1, 0, 0], [1, 1, 0], [1, 1, 1]]
    assert ref.conv_mask(1, 1, 3, 3, "A")[0, 0].int().tolist() == [[1, 1, 1], [1, 0, 0], [0, 0, 0]]
    assert ref.conv_mask(1, 1, 3, 3, "V")[0, 0].int().tolist() == [[1, 1, 1], [1, 1, 1], [0, 0, 0]]


@pytest.mark.parametrize("case", params(cases.CASES))
def test_kernel_ignores_masked_weights_and_zeroes_their_gradient(case):
    """Masked weights set to large garbage change nothing; the live ones alone set the output. The
    weight gradient is exactly zero on masked entries, and non-zero on every live one wherever every
    tap sees image pixels (a wrong mask in the kernel fails one of the three)."""
    gen = fresh_generator()
    t = case.draw(gen)
    live = ref.conv_mask(case.Cout, case.Cin, case.kh, case.kw, case.mask, case.groups)
    garbage = torch.randn(t["weight"].shape, generator=gen, dtype=torch.float64) * 1e6
    conv = cpu_conv(case)
    only_masked = torch.where(live, 0.0, garbage)
    out = conv(t["x"], only_masked, t["bias"])
    bias = t["bias"] if t["bias"] is not None else torch.zeros(case.Cout, dtype=torch.float64)
    assert torch.equal(out, bias.view(1, -1, 1, 1).expand_as(out)), "a masked weight reached the output"
    w = torch.where(live, t["weight"], garbage).requires_grad_()
    x = t["x"].clone().requires_grad_()
    out = conv(x, w, t["bias"])
    assert_rel_close(out, ref.masked_conv2d(t["x"], t["weight"], t["bias"], case.mask, case.groups), 1e-12, "out",
                     gen.initial_seed())
    (grad_w,) = torch.autograd.grad(out, (w,), t["grad_out"])
    assert torch.all(grad_w[~live] == 0), "gradient of a masked weight is not exactly zero"
    if case.H >= case.kh and case.W >= case.kw:
        assert torch.all(grad_w[live] != 0), "a live weight got no gradient"


# ---------------------------------------------------------------------------------------------
# values and gradients


@pytest.mark.parametrize("case", params(cases.CASES))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_values_and_gradients_match_reference(case, dtype):
    """Output, grad x, grad weight and grad bias against the float64 twin (outputs poisoned with NaN
    before the call, so an element the kernel never writes fails)."""
    gen = fresh_generator()
    t = case.draw(gen)
    with poisoned_empty():
        got = cases.results(cpu_conv(case), {k: None if v is None else v.to(dtype) for k, v in t.items()})
    want = cases.results(ref_conv(case), t)
    assert got.keys() == want.keys()
    for key in want:
        assert_rel_close(got[key], want[key], TOL[dtype], key, gen.initial_seed())


@pytest.mark.parametrize("case", params([cases.CASES[0], cases.CASES[7], cases.CASES[9]]))
def test_first_layer_without_input_gradient(case):
    """x without requires_grad (the image): the backward skips grad_x, and the weight and bias
    gradients are unchanged."""
    gen = fresh_generator()
    t = case.draw(gen)
    got = cases.results(cpu_conv(case), t, x_grad=False)
    want = cases.results(ref_conv(case), t, x_grad=False)
    assert "grad x" not in got
    for key in want:
        assert_rel_close(got[key], want[key], 1e-12, key, gen.initial_seed())


def test_weight_gradient_does_not_depend_on_the_thread_count():
    """grad_weight sums fixed chunks of row tiles in a fixed order, so 1 and 2 threads give bit-identical
    float32 gradients (partial sums per thread would round differently)."""
    case = cases.CASES[-1]
    t = {k: v.float() for k, v in case.draw(fresh_generator()).items()}
    f = torch.ops.fastgen.masked_conv2d_backward

    def grad_w():
        return f(t["grad_out"], t["x"], t["weight"], case.mask, case.groups, [False, True, False])[1]

    with threads(1):
        one = grad_w()
    with threads(2):
        two = grad_w()
    assert torch.equal(one, two)


@pytest.mark.parametrize("capability", ["generic", "avx2", "best"])
def test_every_cpu_build_matches_reference(capability):
    """The kernel table is fixed per process: each build (portable, AVX2, AVX-512 where the CPU has
    it; FASTGEN_CPU_CAPABILITY picks) runs in a child process, on cases that reach every register-tile
    and weight-gradient tile remainder, float32 and float64."""
    script = (
        "import torch, fastgen\n"
        "from fastgen.reference import masked_conv as ref\n"
        "from tests.cases import masked_conv as cases\n"
        "from tests.helpers import fresh_generator\n"
        "worst = {torch.float32: 0.0, torch.float64: 0.0}\n"
        "for case in (cases.CASES[0], cases.CASES[17], cases.CASES[-1]):\n"
        "    t = case.draw(fresh_generator())\n"
        "    conv = lambda x, w, b: fastgen.ops.masked_conv2d(x, w, b, case.mask, case.groups)\n"
        "    want = cases.results(lambda x, w, b: ref.masked_conv2d(x, w, b, case.mask, case.groups), t)\n"
        "    for dtype in worst:\n"
        "        got = cases.results(conv, {k: v.to(dtype) for k, v in t.items()})\n"
        "        for k in want:\n"
        "            err = ((got[k].double() - want[k]).norm() / want[k].norm()).item()\n"
        "            worst[dtype] = max(worst[dtype], err)\n"
        "print(worst[torch.float32], worst[torch.float64])\n"
    )
    env = dict(os.environ, FASTGEN_CPU_CAPABILITY=capability)
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr[-2000:]
    f32, f64 = map(float, out.stdout.split())
    assert f32 < 1e-5 and f64 < 1e-12, (capability, f32, f64)


def test_strided_inputs():
    """x, weight, bias and the output gradient sliced or transposed out of larger tensors."""
    gen = fresh_generator()
    case = cases.Case(2, 6, 9, 7, 5, 3, 3, "B", 3, "strided")
    r = dict(generator=gen, dtype=torch.float64)
    t = {
        "x": torch.randn(4, 12, 7, 10, **r)[::2, ::2, :, ::2],
        "weight": torch.randn(9, 6, 3, 3, **r).transpose(2, 3),
        "bias": torch.randn(18, **r)[::2],
        "grad_out": torch.randn(2, 9, 5, 7, **r).transpose(2, 3),
    }
    assert not any(v.is_contiguous() for v in t.values())
    got, want = cases.results(cpu_conv(case), t), cases.results(ref_conv(case), t)
    for key in want:
        assert_rel_close(got[key], want[key], 1e-12, key, gen.initial_seed())


# ---------------------------------------------------------------------------------------------
# autograd, torch.library and torch.compile


@pytest.mark.parametrize("case", params(cases.GRADCHECK))
def test_gradcheck(case):
    t = case.draw(fresh_generator())
    inputs = [t["x"].requires_grad_(), t["weight"].requires_grad_()]
    if t["bias"] is not None:
        inputs.append(t["bias"].requires_grad_())
    conv = cpu_conv(case)
    assert torch.autograd.gradcheck(lambda x, w, *b: conv(x, w, b[0] if b else None), tuple(inputs))


@pytest.mark.parametrize("case", params(cases.OPCHECK))
@pytest.mark.parametrize("requires_grad", [False, True])
def test_opcheck(case, requires_grad):
    t = case.draw(fresh_generator())
    grad = lambda k: t[k].clone().requires_grad_(requires_grad)  # noqa: E731
    f = torch.ops.fastgen
    torch.library.opcheck(f.masked_conv2d.default, (grad("x"), grad("weight"), grad("bias"), case.mask, case.groups))
    torch.library.opcheck(f.masked_conv2d.default, (grad("x"), grad("weight"), None, case.mask, case.groups))
    for output_mask in ([True, True, True], [False, True, False], [True, False, True]):
        torch.library.opcheck(f.masked_conv2d_backward.default,
                              (t["grad_out"], t["x"], t["weight"], case.mask, case.groups, output_mask))


def test_torch_compile_has_no_graph_break():
    torch._dynamo.reset()
    gen = fresh_generator()
    x = torch.randn(2, 3, 8, 7, generator=gen)
    w1 = (torch.randn(6, 3, 7, 7, generator=gen) * 0.1).requires_grad_()
    w2 = (torch.randn(6, 6, 3, 3, generator=gen) * 0.1).requires_grad_()
    b2 = torch.randn(6, generator=gen).requires_grad_()

    def net(x, w1, w2, b2):
        h = torch.relu(masked_conv2d(x, w1, None, "A", 3))
        return masked_conv2d(h, w2, b2, "B", 3)

    compiled = torch.compile(net, fullgraph=True, backend="aot_eager")  # fullgraph: a break is an error
    with fastgen.use_backend("cpu"):
        out = compiled(x, w1, w2, b2)
        grads = torch.autograd.grad(out.square().sum(), (w1, w2, b2))
        expected = net(x, w1, w2, b2)
        expected_grads = torch.autograd.grad(expected.square().sum(), (w1, w2, b2))
    torch.testing.assert_close(out, expected)
    for a, b in zip(grads, expected_grads):
        torch.testing.assert_close(a, b)


# ---------------------------------------------------------------------------------------------
# backends and bad input


def test_reference_backend_runs_the_twin_and_cpu_the_kernel():
    gen = fresh_generator()
    x = torch.randn(2, 3, 5, 6, generator=gen)
    w = torch.randn(6, 3, 3, 3, generator=gen).requires_grad_()
    with fastgen.use_backend("reference"):
        r = masked_conv2d(x, w, None, "B", 3)
    assert "Convolution" in type(r.grad_fn).__name__
    with fastgen.use_backend("cpu"):
        c = masked_conv2d(x, w, None, "B", 3)
    assert "Convolution" not in type(c.grad_fn).__name__
    torch.testing.assert_close(c, r)
    torch.testing.assert_close(masked_conv2d(x, w, None, "B", 3), c, rtol=0, atol=0)  # "auto" is the kernel


@pytest.mark.parametrize("case", bad_inputs_for(cases.BAD_INPUTS, "cpu"))
def test_bad_input(case):
    assert_bad_input(case, "cpu")


def test_kernel_checks_its_own_arguments():
    """Calls straight to torch.ops.fastgen (past the Python checks) get a clear error too."""
    f = torch.ops.fastgen
    x, w = torch.randn(1, 3, 4, 4), torch.randn(6, 3, 3, 3)
    with pytest.raises(RuntimeError, match="masked_conv2d: mask must be 'A', 'B' or 'V', got 'Q'"):
        f.masked_conv2d(x, w, None, "Q", 1)
    with pytest.raises(RuntimeError, match="masked_conv2d: the kernel size must be odd"):
        f.masked_conv2d(x, torch.randn(6, 3, 2, 2), None, "A", 1)
    with pytest.raises(RuntimeError, match="masked_conv2d_backward: grad_out must be"):
        f.masked_conv2d_backward(torch.randn(1, 5, 4, 4), x, w, "A", 3, [True, True, True])
