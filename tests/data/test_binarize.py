"""Binarisation protocols: dynamic (resampled per call), fixed (seeded, once), threshold; bad input."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fastgen.data import BINARIZATION_MODES, binarization_protocol, binarize


def _grey(n=64, seed=None) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed if seed is not None else int(torch.randint(0, 2**31, ())))
    return torch.randint(0, 256, (n, 28, 28), generator=g, dtype=torch.uint8)


def _is_binary(t: torch.Tensor) -> bool:
    return bool(((t == 0) | (t == 1)).all())


@pytest.mark.parametrize("mode", BINARIZATION_MODES)
def test_output_is_binary_with_input_shape(mode):
    images = _grey()
    out = binarize(images, mode)
    assert out.images.shape == images.shape and out.images.dtype == torch.float32
    assert _is_binary(out.images)
    assert out.mode == mode and out.protocol == binarization_protocol(mode)


def test_protocol_strings():
    assert binarization_protocol("dynamic") == "dynamic binarisation, resampled per epoch"
    assert binarization_protocol("fixed", 7) == "fixed binarisation, seed 7"
    assert binarization_protocol("threshold") == "threshold binarisation at 0.5"
    assert binarize(_grey(2), "fixed", seed=3).protocol == "fixed binarisation, seed 3"
    assert binarize(_grey(2), "fixed", seed=3).seed == 3
    assert binarize(_grey(2), "dynamic").seed is None


def test_dynamic_resamples_every_call_and_follows_the_generator():
    images = _grey()
    g = torch.Generator().manual_seed(123)
    first, second = binarize(images, "dynamic", generator=g).images, binarize(images, "dynamic", generator=g).images
    assert not torch.equal(first, second), "two epochs must see different binary images"
    g2 = torch.Generator().manual_seed(123)
    again = binarize(images, "dynamic", generator=g2).images
    assert torch.equal(first, again), "the same generator state must give the same sample"


def test_dynamic_without_generator_uses_the_global_rng():
    images = _grey()
    torch.manual_seed(5)
    a = binarize(images, "dynamic").images
    b = binarize(images, "dynamic").images
    torch.manual_seed(5)
    assert torch.equal(binarize(images, "dynamic").images, a)
    assert not torch.equal(a, b)


def test_dynamic_is_a_bernoulli_of_the_grey_level():
    p = 0.3
    images = torch.full((200, 28, 28), p, dtype=torch.float64)
    out = binarize(images, "dynamic", generator=torch.Generator().manual_seed(0)).images
    n = out.numel()
    mean = float(out.mean())
    assert abs(mean - p) < 5 * (p * (1 - p) / n) ** 0.5, mean
    assert out.dtype == torch.float64  # floating input keeps its dtype


def test_fixed_is_deterministic_and_independent_of_global_state():
    images = _grey()
    torch.manual_seed(1)
    a = binarize(images, "fixed", seed=11).images
    torch.manual_seed(2)
    _ = torch.rand(100)
    b = binarize(images, "fixed", seed=11).images
    assert torch.equal(a, b)
    assert not torch.equal(a, binarize(images, "fixed", seed=12).images)
    # the default seed is 0
    assert torch.equal(binarize(images, "fixed").images, binarize(images, "fixed", seed=0).images)


def test_uint8_and_float_inputs_agree():
    images = _grey()
    as_float = images.float() / 255.0
    for mode in ("fixed", "threshold"):
        assert torch.equal(binarize(images, mode).images, binarize(as_float, mode).images)
    g1, g2 = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    assert torch.equal(binarize(images, generator=g1).images, binarize(as_float, generator=g2).images)


def test_threshold_is_strictly_above_one_half():
    values = torch.tensor([0, 127, 128, 255], dtype=torch.uint8)
    assert binarize(values, "threshold").images.tolist() == [0.0, 0.0, 1.0, 1.0]
    probs = torch.tensor([0.0, 0.5, 0.5001, 1.0])
    assert binarize(probs, "threshold").images.tolist() == [0.0, 0.0, 1.0, 1.0]


@pytest.mark.parametrize("mode", ["dynamic", "fixed"])
def test_extreme_grey_levels_are_certain(mode):
    images = torch.tensor([[0, 255] * 50], dtype=torch.uint8)
    out = binarize(images, mode).images
    assert torch.equal(out, images.float() / 255)


def test_numpy_input():
    images = _grey(4, seed=0).numpy()
    out = binarize(images, "fixed", seed=1)
    assert torch.equal(out.images, binarize(torch.from_numpy(images), "fixed", seed=1).images)


def test_bad_mode_lists_the_modes():
    with pytest.raises(ValueError, match="unknown mode 'random'.*'dynamic', 'fixed', 'threshold'"):
        binarize(_grey(1), "random")
    with pytest.raises(ValueError, match="unknown mode"):
        binarization_protocol("Dynamic")


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool])
def test_integer_dtypes_are_rejected(dtype):
    with pytest.raises(TypeError, match=f"uint8 grey levels .* got dtype {dtype}"):
        binarize(torch.zeros(2, 2, dtype=dtype))


def test_float_out_of_range_and_nan_are_rejected():
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\], got values in \[0, 255\]"):
        binarize(torch.tensor([0.0, 255.0]))
    with pytest.raises(ValueError, match="NaN"):
        binarize(torch.tensor([0.5, float("nan")]))
    with pytest.raises(TypeError, match="torch.Tensor or numpy array"):
        binarize([[0.1, 0.2]])


def test_fixed_refuses_a_generator():
    with pytest.raises(ValueError, match="do not pass a generator"):
        binarize(_grey(1), "fixed", generator=torch.Generator())
    with pytest.raises(TypeError, match="seed must be an int"):
        binarize(_grey(1), "fixed", seed=1.5)


def test_fixed_protocol_matches_numpy_seed_types():
    out = binarize(_grey(1, seed=0), "fixed", seed=np.int64(3))
    assert out.protocol == "fixed binarisation, seed 3" and isinstance(out.seed, int)
