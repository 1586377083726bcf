"""Model sizes checked against the memory this process can have before anything is allocated
(issue 11, item 7), sample rates in the range the data readers accept, and conditioning features in
the model's dtype (item 11). The allocation cases run under an address-space limit
(tests/memory_limit.py): a regressed check is then a fast MemoryError, not an OOM-killed machine."""
from __future__ import annotations

import pytest
import torch

from fastgen.memory import memory_limit
from fastgen.models import WaveNet, WaveNetConfig
from fastgen.models.aligndraw import AlignDRAWConfig
from fastgen.models.draw import DRAWConfig
from tests.memory_limit import LIMIT, expect_error, run_limited


@pytest.mark.parametrize("make, words", [
    (lambda: DRAWConfig(T=10**9), ["DRAWConfig", "TB of memory"]),
    (lambda: DRAWConfig(enc_size=10**7), ["DRAWConfig", "weights"]),
    (lambda: DRAWConfig(height=10**5, width=10**5, read_N=None, write_N=None), ["DRAWConfig"]),
    (lambda: AlignDRAWConfig(T=10**9), ["AlignDRAWConfig", "TB of memory"]),
    (lambda: AlignDRAWConfig(vocab_size=10**8, embed_size=10**4), ["AlignDRAWConfig"]),
    (lambda: WaveNetConfig(layers_per_stack=40), ["WaveNetConfig", "PB of memory"]),
    (lambda: WaveNetConfig(layers_per_stack=10**6), ["WaveNetConfig"]),  # a 2**(10**6) receptive field
    (lambda: WaveNetConfig(stacks=10**9), ["WaveNetConfig"]),
], ids=["draw-T", "draw-enc", "draw-pixels", "aligndraw-T", "aligndraw-vocab", "wavenet-40-layers",
        "wavenet-1e6-layers", "wavenet-stacks"])
def test_sizes_that_cannot_fit_fail_in_the_config(make, words):
    with pytest.raises(ValueError) as info:
        make()
    message = str(info.value)
    assert "more than this process can have" in message
    for word in words:
        assert word in message, message


@pytest.mark.parametrize("make", [DRAWConfig, AlignDRAWConfig, WaveNetConfig,
                                  lambda: DRAWConfig(read_N=None, write_N=None),
                                  lambda: WaveNetConfig(layers_per_stack=10, stacks=5, residual_channels=512)])
def test_real_configs_pass(make):
    make()


def test_the_limit_follows_the_memory_this_process_can_have(monkeypatch):
    DRAWConfig()
    monkeypatch.setattr("fastgen.memory._physical_memory", lambda: 4 << 20)  # a 4 MB machine
    assert memory_limit() == 4 << 20
    with pytest.raises(ValueError, match="more than this process can have \\(4.19 MB\\)"):
        DRAWConfig()  # about 1M weights: 16 MB with gradients and Adam moments


def test_the_limit_includes_the_address_space_cap():
    done = run_limited("from fastgen.memory import memory_limit; print(memory_limit())")
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout) == LIMIT


def test_draw_sampling_with_a_billion_steps_fails_before_allocating():
    # Was: a terabyte of noise allocated by DRAW.sample for a config.json with T = 10**9.
    expect_error("""
        from fastgen.models import DRAW
        DRAW(T=10**9, enc_size=8, dec_size=8, z_size=4).sample(1)
        """, "ValueError", "DRAWConfig", "values per example")


def test_wavenet_with_40_layers_per_stack_fails_before_padding():
    # Was: dilation 2**39, and the first forward padded its input until the OS killed the process.
    expect_error("""
        import torch
        from fastgen.models import WaveNet
        model = WaveNet(residual_channels=4, skip_channels=4, layers_per_stack=40, stacks=1)
        model.loss(torch.zeros(1, 64, dtype=torch.long))
        """, "ValueError", "WaveNetConfig", "TB of memory")


@pytest.mark.parametrize("rate", [1, 999, 384_001])
def test_wavenet_sample_rate_outside_the_range(rate):
    # A stored rate of 1 used to end in a ZeroDivisionError far from the config.
    with pytest.raises(ValueError, match="sample_rate must be an integer from 1,000 to 384,000 Hz"):
        WaveNetConfig(sample_rate=rate)


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16, torch.float16])
def test_wavenet_features_in_another_dtype_than_the_weights(dtype):
    model = WaveNet(residual_channels=4, skip_channels=4, layers_per_stack=2, stacks=1, cond_channels=3, hop_length=4)
    features = torch.randn(1, 3, 4, dtype=dtype)
    tokens = torch.zeros(1, 16, dtype=torch.long)
    for call in (lambda: model(tokens, features=features), lambda: model.generate(8, 1, features=features)):
        with pytest.raises(TypeError, match=f"features must be a torch.float32 tensor.*got {dtype}"):
            call()
    assert model(tokens, features=features.float()).shape == (1, 256, 16)
    assert model.double()(tokens, features=features.double()).dtype == torch.float64
