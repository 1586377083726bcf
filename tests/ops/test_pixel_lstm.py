"""fastgen.ops.row_lstm / diagonal_lstm (the C++ CPU kernels) against their plain-PyTorch twins: the
twin's skewed recurrence against a cell-by-cell statement, values and every gradient on every case
(float64 tight, float32), the exact dependency cone of every pixel (wrong neighbour indexing fails
it), the right direction's un-mirroring and the BiLSTM's shift down (causality of a whole layer),
gradcheck, opcheck, torch.compile, backends, strided inputs, and bad input."""
import pytest
import torch
import torch.nn.functional as F

import fastgen
from fastgen.ops import diagonal_bilstm, diagonal_lstm, row_lstm
from fastgen.reference import pixel_lstm as ref
from tests.cases import assert_bad_input, bad_inputs_for, params
from tests.cases import pixel_lstm as cases
from tests.helpers import assert_rel_close, fresh_generator, poisoned_empty

pytestmark = pytest.mark.skipif(not fastgen._extension.available(), reason="fastgen._C not built")

TOL = {torch.float32: 1e-5, torch.float64: 1e-12}


class _Cpu:
    """The ops forced onto the C++ kernels."""

    @staticmethod
    def row_lstm(*args):
        with fastgen.use_backend("cpu"):
            return row_lstm(*args)

    @staticmethod
    def diagonal_lstm(*args):
        with fastgen.use_backend("cpu"):
            return diagonal_lstm(*args)


cpu = _Cpu()


# ---------------------------------------------------------------------------------------------
# the twin itself


def diagonal_cell_by_cell(pre, w_ss, reverse):
    """The Diagonal LSTM written per pixel, independently of the skew: (r, x) sees the cell above
    and the previous cell of its row in the direction's order (x - 1, or x + 1 when reversed)."""
    B, G, H, W = pre.shape
    n = G // 4
    h = pre.new_zeros(B, n, H, W)
    c = pre.new_zeros(B, n, H, W)
    zero = pre.new_zeros(B, n)
    cols = range(W - 1, -1, -1) if reverse else range(W)
    for r in range(H):
        for x in cols:
            xl = x + 1 if reverse else x - 1
            above = h[:, :, r - 1, x] if r > 0 else zero
            left, c_left = (h[:, :, r, xl], c[:, :, r, xl]) if 0 <= xl < W else (zero, zero)
            o, f, i, g = (pre[:, :, r, x] + above @ w_ss[:, :, 0].T + left @ w_ss[:, :, 1].T).chunk(4, 1)
            c[:, :, r, x] = torch.sigmoid(f) * c_left + torch.sigmoid(i) * torch.tanh(g)
            h[:, :, r, x] = torch.sigmoid(o) * torch.tanh(c[:, :, r, x])
    return h


def row_cell_by_cell(pre, w_ss, bias):
    """The Row LSTM per pixel: (r, x) sees h(r - 1, x - k//2 .. x + k//2) and c(r - 1, x)."""
    B, G, H, W = pre.shape
    n, k = G // 4, w_ss.shape[2]
    h = pre.new_zeros(B, n, H + 1, W + k - 1)  # row 0 and k//2 columns each side: the zero border
    c = pre.new_zeros(B, n, H + 1, W)
    for r in range(H):
        for x in range(W):
            s = sum(h[:, :, r, x + t] @ w_ss[:, :, t].T for t in range(k)) + (0 if bias is None else bias)
            o, f, i, g = (pre[:, :, r, x] + s).chunk(4, 1)
            c[:, :, r + 1, x] = torch.sigmoid(f) * c[:, :, r, x] + torch.sigmoid(i) * torch.tanh(g)
            h[:, :, r + 1, x + k // 2] = torch.sigmoid(o) * torch.tanh(c[:, :, r + 1, x])
    return h[:, :, 1:, k // 2:k // 2 + W]


@pytest.mark.parametrize("reverse", [False, True])
def test_reference_skew_matches_the_cell_by_cell_statement(reverse):
    gen = fresh_generator()
    pre = torch.randn(2, 12, 5, 7, generator=gen, dtype=torch.float64)
    w = torch.randn(12, 3, 2, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(ref.diagonal_lstm(pre, w, reverse), diagonal_cell_by_cell(pre, w, reverse),
                               rtol=1e-13, atol=1e-13)
    w3 = torch.randn(12, 3, 5, generator=gen, dtype=torch.float64)
    b = torch.randn(12, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(ref.row_lstm(pre, w3, b), row_cell_by_cell(pre, w3, b), rtol=1e-13, atol=1e-13)


def test_skew_and_unskew():
    x = torch.arange(6.0).view(1, 1, 2, 3)
    assert ref.skew(x)[0, 0].tolist() == [[0, 1, 2, 0], [0, 3, 4, 5]]
    assert torch.equal(ref.unskew(ref.skew(x), 3), x)
    assert ref.shift_down(x)[0, 0].tolist() == [[0, 0, 0], [0, 1, 2]]


# ---------------------------------------------------------------------------------------------
# values and gradients


@pytest.mark.parametrize("case", params(cases.CASES))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_values_and_gradients_match_reference(case, dtype):
    """Output, grad pre, grad w_ss (and grad bias) against the float64 twin (outputs poisoned with NaN
    before the call, so an element the kernel never writes fails); saturated and tiny pre-activations
    included, where a sigmoid or tanh that overflows gives NaN."""
    gen = fresh_generator()
    t = case.draw(gen)
    with poisoned_empty():
        got = cases.results(case.call(cpu), {k: None if v is None else v.to(dtype) for k, v in t.items()})
    want = cases.results(case.call(ref), t)
    assert got.keys() == want.keys()
    assert got["out"].abs().max() <= 1.0
    for key in want:
        assert_rel_close(got[key], want[key], TOL[dtype], key, gen.initial_seed())


def test_strided_inputs():
    """pre sliced out of a larger tensor, w_ss transposed, grad_out channels-last."""
    gen = fresh_generator()
    r = dict(generator=gen, dtype=torch.float64)
    for case in (cases.Case("row", 2, 3, 5, 6, "strided"), cases.Case("diagonal", 2, 3, 5, 6, "strided", reverse=True)):
        t = {
            "pre": torch.randn(4, 24, 5, 12, **r)[::2, ::2, :, ::2],
            "w_ss": torch.randn(case.taps, 3, 12, **r).permute(2, 1, 0),
            "bias": torch.randn(24, **r)[::2] if case.kind == "row" else None,
            "grad_out": torch.randn(2, 3, 5, 6, **r).contiguous(memory_format=torch.channels_last),
        }
        assert not t["pre"].is_contiguous() and not t["w_ss"].is_contiguous()
        got, want = cases.results(case.call(cpu), t), cases.results(case.call(ref), t)
        for key in want:
            assert_rel_close(got[key], want[key], 1e-12, f"{case.id} {key}", gen.initial_seed())


# ---------------------------------------------------------------------------------------------
# what each pixel sees


def changed(call, pre, r0, x0):
    """Bool [H, W]: the output pixels that move when pre at (r0, x0) moves."""
    bumped = pre.clone()
    bumped[:, :, r0, x0] += 1.0
    return (call(bumped) != call(pre)).any(1).any(0)


@pytest.mark.parametrize("kind", ["row", "diagonal", "diagonal-rev"])
def test_each_pixel_reaches_exactly_its_cone(kind):
    """Moving pre at one pixel changes exactly the pixels whose recurrence reads it: Row LSTM the
    widening triangle below (k//2 columns per row), the Diagonal LSTM the quadrant below and right
    (below and left reversed). An off-by-one neighbour or a missed mirror changes other pixels, or
    misses some, and is bit-exact-detectable."""
    gen = fresh_generator()
    H, W, n = 7, 8, 3
    pre = torch.randn(1, 4 * n, H, W, generator=gen, dtype=torch.float64)
    rows, cols = torch.arange(H).view(H, 1), torch.arange(W).view(1, W)
    for r0, x0 in ((0, 0), (2, 3), (4, 7), (6, 0)):
        if kind == "row":
            w = torch.randn(4 * n, n, 3, generator=gen, dtype=torch.float64)
            got = changed(lambda p: cpu.row_lstm(p, w, None), pre, r0, x0)
            want = (rows >= r0) & ((cols - x0).abs() <= rows - r0)
        else:
            w = torch.randn(4 * n, n, 2, generator=gen, dtype=torch.float64)
            reverse = kind == "diagonal-rev"
            got = changed(lambda p: cpu.diagonal_lstm(p, w, reverse), pre, r0, x0)
            want = (rows >= r0) & ((cols <= x0) if reverse else (cols >= x0))
        assert torch.equal(got, want), f"pixel ({r0}, {x0}):\n{got.int()}\nexpected\n{want.int()}"


def test_reverse_is_the_mirrored_forward_direction():
    gen = fresh_generator()
    pre = torch.randn(2, 16, 5, 6, generator=gen, dtype=torch.float64)
    w = torch.randn(16, 4, 2, generator=gen, dtype=torch.float64)
    rev = cpu.diagonal_lstm(pre, w, True)
    torch.testing.assert_close(rev, cpu.diagonal_lstm(pre.flip(3), w, False).flip(3), rtol=1e-13, atol=1e-13)
    assert not torch.allclose(rev, cpu.diagonal_lstm(pre, w, False)), "reverse ignored"
    assert not torch.allclose(rev, cpu.diagonal_lstm(pre.flip(3), w, False)), "reverse left mirrored"


def bilstm_layer(x, w_is, w_left, w_right, shift=True):
    """One Diagonal BiLSTM layer's recurrence from its input x: a 1x1 mask-B input-to-state convolution
    per direction (centre tap only: each pixel's own input), then both directions combined."""
    pre_l, pre_r = F.conv2d(x, w_is).chunk(2, 1)
    if shift:
        with fastgen.use_backend("cpu"):
            return diagonal_bilstm(pre_l, pre_r, w_left, w_right)
    return cpu.diagonal_lstm(pre_l, w_left) + cpu.diagonal_lstm(pre_r, w_right, True)


def test_bilstm_layer_is_causal():
    """Perturbing every input pixel after (r0, x0) in raster order leaves the layer's output at every
    pixel up to (r0, x0) bit-identical. The same layer without the shift down fails this (the right
    direction sees the rest of the row), so the test has teeth."""
    gen = fresh_generator()
    C, n, H, W = 3, 4, 6, 7
    x = torch.randn(2, C, H, W, generator=gen, dtype=torch.float64)
    w_is = torch.randn(8 * n, C, 1, 1, generator=gen, dtype=torch.float64)
    w_left, w_right = (torch.randn(4 * n, n, 2, generator=gen, dtype=torch.float64) for _ in range(2))
    order = torch.arange(H * W).view(H, W)
    for r0, x0 in ((0, 0), (2, 4), (5, 0), (3, 6)):
        future = order > r0 * W + x0
        x2 = torch.where(future, torch.randn(x.shape, generator=gen, dtype=torch.float64), x)
        past = ~future
        for shift in (True, False):
            a, b = bilstm_layer(x, w_is, w_left, w_right, shift), bilstm_layer(x2, w_is, w_left, w_right, shift)
            # unshifted, the right direction at (r0, x <= x0) sees (r0, x0 + 1 ..): the future, unless x0 = W - 1
            assert torch.equal(a[..., past], b[..., past]) == (shift or x0 == W - 1), f"shift={shift} at ({r0}, {x0})"
            if shift:
                assert not torch.equal(a[..., future], b[..., future])


def test_bilstm_adds_the_right_direction_shifted_down():
    gen = fresh_generator()
    pl, pr = (torch.randn(1, 8, 4, 5, generator=gen, dtype=torch.float64) for _ in range(2))
    wl, wr = (torch.randn(8, 2, 2, generator=gen, dtype=torch.float64) for _ in range(2))
    with fastgen.use_backend("cpu"):
        out = diagonal_bilstm(pl, pr, wl, wr)
    left, right = cpu.diagonal_lstm(pl, wl), cpu.diagonal_lstm(pr, wr, True)
    assert torch.equal(out[:, :, 0], left[:, :, 0])
    assert torch.equal(out[:, :, 1:], left[:, :, 1:] + right[:, :, :-1])


# ---------------------------------------------------------------------------------------------
# autograd, torch.library and torch.compile


@pytest.mark.parametrize("case", params(cases.GRADCHECK))
def test_gradcheck(case):
    t = case.draw(fresh_generator())
    inputs = [t["pre"].requires_grad_(), t["w_ss"].requires_grad_()]
    if t["bias"] is not None:
        inputs.append(t["bias"].requires_grad_())
    call = case.call(cpu)
    assert torch.autograd.gradcheck(lambda p, w, *b: call(p, w, b[0] if b else None), tuple(inputs))


@pytest.mark.parametrize("case", params(cases.OPCHECK))
@pytest.mark.parametrize("requires_grad", [False, True])
def test_opcheck(case, requires_grad):
    t = case.draw(fresh_generator())
    grad = lambda k: None if t[k] is None else t[k].clone().requires_grad_(requires_grad)  # noqa: E731
    f = torch.ops.fastgen
    if case.kind == "row":
        torch.library.opcheck(f.row_lstm.default, (grad("pre"), grad("w_ss"), grad("bias")))
        h, act, c = f.row_lstm(t["pre"], t["w_ss"], t["bias"])
        torch.library.opcheck(f.row_lstm_backward.default, (t["grad_out"], h, act, c, t["w_ss"]))
    else:
        torch.library.opcheck(f.diagonal_lstm.default, (grad("pre"), grad("w_ss"), case.reverse))
        h, act, c = f.diagonal_lstm(t["pre"], t["w_ss"], case.reverse)
        torch.library.opcheck(f.diagonal_lstm_backward.default, (t["grad_out"], h, act, c, t["w_ss"], case.reverse))


def test_torch_compile_has_no_graph_break():
    torch._dynamo.reset()
    gen = fresh_generator()
    pre = torch.randn(2, 12, 5, 6, generator=gen)
    w_row = (torch.randn(12, 3, 3, generator=gen) * 0.3).requires_grad_()
    w_l, w_r = ((torch.randn(12, 3, 2, generator=gen) * 0.3).requires_grad_() for _ in range(2))

    def net(pre, w_row, w_l, w_r):
        return row_lstm(pre, w_row) + diagonal_bilstm(pre, pre * 0.5, w_l, w_r)

    compiled = torch.compile(net, fullgraph=True, backend="aot_eager")  # fullgraph: a break is an error
    with fastgen.use_backend("cpu"):
        out = compiled(pre, w_row, w_l, w_r)
        grads = torch.autograd.grad(out.square().sum(), (w_row, w_l, w_r))
        expected = net(pre, w_row, w_l, w_r)
        expected_grads = torch.autograd.grad(expected.square().sum(), (w_row, w_l, w_r))
    torch.testing.assert_close(out, expected)
    for a, b in zip(grads, expected_grads):
        torch.testing.assert_close(a, b)


# ---------------------------------------------------------------------------------------------
# backends and bad input


def test_reference_backend_runs_the_twin_and_cpu_the_kernel():
    gen = fresh_generator()
    pre = torch.randn(2, 12, 4, 5, generator=gen)
    w = torch.randn(12, 3, 2, generator=gen).requires_grad_()
    with fastgen.use_backend("reference"):
        r = diagonal_lstm(pre, w)
    assert "DiagonalLstm" not in type(r.grad_fn).__name__
    with fastgen.use_backend("cpu"):
        c = diagonal_lstm(pre, w)
    assert c.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(c, r)
    torch.testing.assert_close(diagonal_lstm(pre, w), c, rtol=0, atol=0)  # "auto" is the kernel


@pytest.mark.parametrize("case", bad_inputs_for(cases.BAD_INPUTS, "cpu"))
def test_bad_input(case):
    assert_bad_input(case, "cpu")


def test_kernels_check_their_own_arguments():
    """Calls straight to torch.ops.fastgen (past the Python checks) get a clear error too."""
    f = torch.ops.fastgen
    pre, w = torch.randn(1, 12, 4, 4), torch.randn(12, 3, 3)
    with pytest.raises(RuntimeError, match="row_lstm: the state-to-state kernel width k must be odd and >= 3, got 2"):
        f.row_lstm(pre, torch.randn(12, 3, 2), None)
    with pytest.raises(RuntimeError, match=r"diagonal_lstm: w_ss must be \[4h, h, 2\]"):
        f.diagonal_lstm(pre, w, False)
    with pytest.raises(RuntimeError, match="row_lstm: pre has 12 channels but w_ss expects 16"):
        f.row_lstm(pre, torch.randn(16, 4, 3), None)
    with pytest.raises(RuntimeError, match=r"row_lstm: bias must be \[4h\] = \[12\]"):
        f.row_lstm(pre, w, torch.randn(4))
    h, act, c = f.row_lstm(pre, w, None)
    with pytest.raises(RuntimeError, match="row_lstm_backward: act must have shape"):
        f.row_lstm_backward(torch.randn(1, 3, 4, 4), h, act[..., :-1], c, w)
    with pytest.raises(RuntimeError, match="diagonal_lstm_backward: grad_h must have shape"):
        f.diagonal_lstm_backward(torch.randn(1, 3, 4, 5), h, act, c, torch.randn(12, 3, 2), False)
