"""fastgen.nn.MaskedConv2d: the op with the layer's weights, masked entries zero at init and after
training, the mask it was asked for, clear errors."""
import pytest
import torch

from fastgen.nn import MaskedConv2d
from fastgen.reference.masked_conv import conv_mask, masked_conv2d
from tests.helpers import assert_rel_close, fresh_generator

LAYERS = [  # (in, out, kernel_size, mask, color_groups)
    (3, 12, 7, "A", 3), (6, 9, 3, "B", 3), (5, 4, (1, 5), "A", 1), (4, 4, (1, 3), "B", 1),
    (2, 6, 5, "V", 1), (6, 3, 1, "B", 3), (1, 8, (3, 5), "A", 1),
]


@pytest.mark.parametrize("spec", LAYERS, ids=str)
def test_layer_is_the_op_with_its_weights_and_mask(spec):
    gen = fresh_generator()
    cin, cout, k, mask, groups = spec
    layer = MaskedConv2d(cin, cout, k, mask, groups).double()
    kh, kw = (k, k) if isinstance(k, int) else k
    assert layer.kernel_size == (kh, kw) and layer.weight.shape == (cout, cin, kh, kw)
    assert torch.equal(layer.weight_mask, conv_mask(cout, cin, kh, kw, mask, groups))
    assert (layer.weight[~layer.weight_mask] == 0).all(), "masked entries must be zero at init"
    assert (layer.weight[layer.weight_mask] != 0).all()
    x = torch.randn(2, cin, 6, 7, generator=gen, dtype=torch.float64)
    assert_rel_close(layer(x), masked_conv2d(x, layer.weight, layer.bias, mask, groups), 1e-12,
                     f"MaskedConv2d{spec}", gen.initial_seed())


def test_masked_entries_stay_zero_under_training():
    gen = fresh_generator()
    layer = MaskedConv2d(6, 6, 5, "B", 3)
    opt = torch.optim.AdamW(layer.parameters(), lr=0.1, weight_decay=0.1)
    for _ in range(3):
        opt.zero_grad()
        layer(torch.randn(2, 6, 7, 7, generator=gen)).square().mean().backward()
        assert (layer.weight.grad[~layer.weight_mask] == 0).all()
        opt.step()
    assert (layer.weight[~layer.weight_mask] == 0).all()
    assert (layer.weight[layer.weight_mask] != 0).all()


def test_masked_values_are_ignored():
    # a weight edited by hand (or loaded) with live values in masked entries still convolves masked
    gen = fresh_generator()
    layer = MaskedConv2d(3, 3, 3, "A", 3)
    x = torch.randn(1, 3, 5, 5, generator=gen)
    before = layer(x)
    with torch.no_grad():
        layer.weight[~layer.weight_mask] = 1e30
    assert torch.equal(layer(x), before)
    assert torch.equal(layer.masked_weight(), torch.where(layer.weight_mask, layer.weight, 0))


def test_mask_buffer_is_not_saved_and_follows_the_module():
    layer = MaskedConv2d(2, 3, 3, "B", bias=False)
    assert set(layer.state_dict()) == {"weight"} and layer.bias is None
    layer = layer.double()
    assert layer.weight_mask.dtype == torch.bool and layer.weight.dtype == torch.float64
    assert repr(layer) == "MaskedConv2d(2, 3, kernel_size=(3, 3), mask='B', color_groups=1, bias=False)"


@pytest.mark.parametrize("args, words", [
    ((3, 3, 4), "kernel_size must be an odd"),
    ((3, 3, (3, 2)), "kernel_size must be an odd"),
    ((3, 3, 0), "kernel_size must be an odd"),
    ((3, 3, 3, "C"), "unknown mask 'C'"),
    ((3, 3, 3, "V", 3), "mask 'V'"),
    ((3, 4, 3, "A", 3), "divisible by 3"),
    ((3, 3, 3, "A", 2), "color_groups must be 1 or 3"),
    ((0, 3, 3), "in_channels must be a positive int"),
    ((3, 2.0, 3), "out_channels must be a positive int"),
])
def test_bad_arguments_raise(args, words):
    with pytest.raises(ValueError, match=words) as info:
        MaskedConv2d(*args)
    assert "MaskedConv2d" in str(info.value)
