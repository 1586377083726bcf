"""WaveNet's teacher-forced forward: causality, the cached step against the full forward, the loss,
conditioning and config checks."""
import math

import pytest
import torch

from fastgen.models import WaveNet, WaveNetConfig
from fastgen.models.wavenet import loss_fn
from fastgen.reference import wavenet as ref
from tests.helpers import assert_rel_close, fresh_generator

SMALL = dict(classes=32, residual_channels=12, skip_channels=20, head_channels=24, layers_per_stack=4, stacks=2)
CONDITIONINGS = {
    "none": {},
    "global": dict(speakers=3, speaker_dim=5),
    "local": dict(cond_channels=6, hop_length=4),
    "both_repeat": dict(speakers=2, cond_channels=5, hop_length=3, upsample="repeat"),
}


def make(gen, kernel_size=2, **extra):
    torch.manual_seed(gen.initial_seed())
    return WaveNet(**SMALL, kernel_size=kernel_size, **extra).eval()


def conditioning(model, gen, B, samples):
    cfg = model.config
    speaker = torch.randint(0, cfg.speakers, (B,), generator=gen) if cfg.speakers else None
    features = (torch.randn(B, cfg.cond_channels, -(-samples // cfg.hop_length), generator=gen)
                if cfg.cond_channels else None)
    return speaker, features


@pytest.mark.parametrize("kernel_size", [2, 3])
@pytest.mark.parametrize("cond", list(CONDITIONINGS), ids=str)
def test_future_inputs_do_not_change_earlier_outputs(kernel_size, cond):
    gen = fresh_generator()
    model = make(gen, kernel_size, **CONDITIONINGS[cond])
    B, T, cut = 2, 40, 23
    tokens = torch.randint(0, 32, (B, T), generator=gen)
    speaker, features = conditioning(model, gen, B, T)
    changed = tokens.clone()
    changed[:, cut:] = torch.randint(0, 32, (B, T - cut), generator=gen)
    if features is not None:  # later conditioning frames change too
        features2 = features.clone()
        features2[:, :, cut // model.config.hop_length + 1:] += 1.0
    else:
        features2 = None
    with torch.no_grad():
        a = model(tokens, speaker, features)
        b = model(changed, speaker, features2)
    assert torch.equal(a[:, :, :cut], b[:, :, :cut]), "an output before the cut depends on a later input"
    assert not torch.equal(a[:, :, cut:], b[:, :, cut:])


def test_receptive_field_is_exact():
    gen = fresh_generator()
    # float64: the oldest input in the field reaches the last output through every layer, and in
    # float32 its effect fell below one ulp of the output for about 6% of random models.
    model = make(gen).double()
    rf = model.config.receptive_field
    assert rf == 1 + 2 * (1 + 2 + 4 + 8)
    T = rf + 5
    tokens = torch.randint(0, 32, (1, T), generator=gen)
    with torch.no_grad():
        base = model(tokens)[:, :, -1]
        inside, outside = tokens.clone(), tokens.clone()
        inside[0, T - rf] = (inside[0, T - rf] + 1) % 32
        outside[0, T - rf - 1] = (outside[0, T - rf - 1] + 1) % 32
        assert not torch.equal(model(inside)[:, :, -1], base)
        assert torch.equal(model(outside)[:, :, -1], base)


@pytest.mark.parametrize("kernel_size", [2, 3])
@pytest.mark.parametrize("cond", list(CONDITIONINGS), ids=str)
def test_cached_queue_step_fed_true_tokens_reproduces_forward(kernel_size, cond):
    gen = fresh_generator()
    model = make(gen, kernel_size, **CONDITIONINGS[cond])
    B, T = 3, 50
    tokens = torch.randint(0, 32, (B, T), generator=gen)
    speaker, features = conditioning(model, gen, B, T)
    with torch.no_grad():
        full = model(tokens, speaker, features)
        up = model.upsample_features(features) if features is not None else None
        state = ref.QueueState(model, B)
        steps = []
        for t in range(T):
            cond_t = model.conditioning_steps(speaker, up, t, t + 1)
            steps.append(ref.queue_step(model, state, tokens[:, t], None if cond_t is None else cond_t[:, 0]))
    assert_rel_close(torch.stack(steps, dim=2), full, 1e-5, "queue steps vs forward", gen.initial_seed())


def test_loss_is_cross_entropy_in_nats_and_bits():
    gen = fresh_generator()
    model = make(gen, **CONDITIONINGS["local"])
    tokens = torch.randint(0, 32, (2, 33), generator=gen)
    _, mels = conditioning(model, gen, 2, 33)
    loss, metrics = loss_fn(model, {"tokens": tokens, "mels": mels}, None)
    up = model.upsample_features(mels)
    logits = model.logits_from(tokens[:, :-1], lambda l: torch.nn.functional.conv1d(
        up[:, :, 1:33], model.cond_proj.weight[l * 24:(l + 1) * 24, :, None]))
    expected = torch.nn.functional.cross_entropy(logits, tokens[:, 1:])
    assert torch.allclose(loss, expected, rtol=1e-6)
    assert math.isclose(metrics["bits_per_sample"].item(), loss.item() / math.log(2), rel_tol=1e-6)
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_untrained_loss_is_near_uniform():
    model = WaveNet(**SMALL)
    loss, _ = model.loss(torch.randint(0, 32, (4, 64)))
    assert abs(loss.item() - math.log(32)) < 0.5


@pytest.mark.parametrize("bad, match", [
    (dict(kernel_size=1), "kernel_size"),
    (dict(residual_channels=0), "residual_channels"),
    (dict(speakers=-1), "speakers"),
    (dict(upsample="nearest"), "upsample"),
    (dict(classes=1), "classes"),
])
def test_bad_config(bad, match):
    with pytest.raises(ValueError, match=match):
        WaveNetConfig(**bad)


def test_bad_inputs_are_named():
    gen = fresh_generator()
    model = make(gen, **CONDITIONINGS["both_repeat"])
    tokens = torch.randint(0, 32, (2, 12), generator=gen)
    speaker, features = conditioning(model, gen, 2, 12)
    with pytest.raises(ValueError, match="speaker ids must be in"):
        model(tokens, torch.tensor([0, 2]), features)
    with pytest.raises(ValueError, match="speaker must have shape"):
        model(tokens, torch.tensor([0]), features)
    with pytest.raises(ValueError, match="fewer than the 12 positions"):
        model(tokens, speaker, features[:, :, :3])
    with pytest.raises(ValueError, match="features must be"):
        model(tokens, speaker, features[:, :4])
    with pytest.raises(ValueError, match="pass features"):
        model(tokens, speaker, None)
    with pytest.raises(ValueError, match="tokens must be in"):
        model(tokens + 32, speaker, features)
    with pytest.raises(TypeError, match="integer tensor"):
        model(tokens.float(), speaker, features)
    plain = make(gen)
    with pytest.raises(ValueError, match="no global conditioning"):
        plain(tokens, speaker)
