"""Cases of cached WaveNet generation (torch.ops.fastgen.wavenet_generate and the Triton launcher):
model shapes and conditionings, the spread-logits / low-temperature regime, and wrong op arguments with
the message each backend gives. Every model is random; the tests compare tokens between paths."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from fastgen.models import WaveNet
from tests.helpers import fresh_generator

CONDITIONINGS = {
    "none": {},
    "global": dict(speakers=3, speaker_dim=5),
    "local": dict(cond_channels=6, hop_length=4),
    "both": dict(speakers=2, cond_channels=5, hop_length=3),
}

# Logits spread by 10, 100 and 1,000 nats and temperatures from 0.05 to 2: (logit - peak) / T reaches
# -2e4, far below where float exp leaves the normal range (the C++ sampler once drew class 0 or C-1 there).
SPREADS = [10.0, 100.0, 1000.0]
TEMPERATURES = [0.05, 0.3, 1.0, 2.0]
SPREAD_CONFIG = dict(classes=40, residual_channels=8, skip_channels=16, head_channels=16, kernel_size=2,
                     layers_per_stack=3, stacks=2)


def scaled_model(gen: torch.Generator, scale: float = 2.0, **config) -> WaveNet:
    """A random WaveNet (seeded from gen) with every weight times scale: peaked, varied distributions."""
    torch.manual_seed(gen.initial_seed())
    model = WaveNet(**config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(scale)
    return model


def spread_model(spread: float, gen: torch.Generator, **config) -> WaveNet:
    """A random WaveNet whose output logits span about `spread` nats (max - min, per sample)."""
    torch.manual_seed(gen.initial_seed())
    model = WaveNet(**{**SPREAD_CONFIG, **config}).eval()
    with torch.no_grad():
        tokens = torch.randint(0, model.config.classes, (4, 64), generator=gen)
        logits = model(tokens)  # [B, C, T]
        measured = (logits.amax(dim=1) - logits.amin(dim=1)).median().item()
        model.head2.weight.mul_(spread / measured)
        model.head2.bias.mul_(spread / measured)
    return model


def conditioning(model: WaveNet, gen: torch.Generator, B: int, n: int) -> dict:
    """speaker ids and/or local features for B rows of n samples, as the model's config asks."""
    cfg = model.config
    kwargs = {}
    if cfg.speakers:
        kwargs["speaker"] = torch.randint(0, cfg.speakers, (B,), generator=gen)
    if cfg.cond_channels:
        kwargs["features"] = torch.randn(B, cfg.cond_channels, -(-n // cfg.hop_length), generator=gen)
    return kwargs


def op_args(cache, uniforms: torch.Tensor, lengths: torch.Tensor, temperature: float = 1.0) -> dict:
    """The arguments of wavenet_generate for a fresh cache, by name and in schema order."""
    return dict(queues=cache.queues, positions=cache.positions, last_tokens=cache.last_tokens,
                weights=list(cache.weights), dilations=list(cache.dilations), cond=None, uniforms=uniforms,
                lengths=lengths, temperature=temperature)


# ---------------------------------------------------------------------------------------------
# wrong op arguments: (error, message regex) per backend; "cpu" and "cuda" are torch.ops.fastgen's C++
# checks, "triton" the launcher's (messages prefixed "wavenet_generate (triton): ").


def _set(name: str, make: Callable[[dict, WaveNet], object]) -> Callable[[dict, WaveNet], None]:
    def mutate(a: dict, model: WaveNet) -> None:
        a[name] = make(a, model)
    return mutate


def _cond_width(a, model):
    B, n = a["uniforms"].shape
    return torch.zeros(B, 1, model.config.layers * 2 * 16 + 1, device=a["queues"].device)


def _cond_steps(a, model):
    B, n = a["uniforms"].shape
    return torch.zeros(B, n + 1, model.config.layers * 2 * 16, device=a["queues"].device)


@dataclass(frozen=True)
class BadOpArgs:
    name: str
    mutate: Callable[[dict, WaveNet], None]
    expect: dict = field(default_factory=dict)  # backend -> (error type, message regex)

    @property
    def id(self) -> str:
        return self.name


_RT = RuntimeError
BAD_OP_ARGS = [
    BadOpArgs("weights-count", _set("weights", lambda a, m: a["weights"][:-1]),
              {"cpu": (_RT, "expected 11 packed weight tensors"), "triton": (ValueError, "11 packed weight tensors")}),
    BadOpArgs("queues-shape", _set("queues", lambda a, m: a["queues"][:, 1:].contiguous()),
              {"cpu": (_RT, "queues must have shape"), "triton": (ValueError, "queues must have shape")}),
    BadOpArgs("gate_b-dtype", _set("weights", lambda a, m: [w.double() if i == 2 else w
                                                           for i, w in enumerate(a["weights"])]),
              {"cpu": (_RT, "gate_b must be Float")}),
    BadOpArgs("weight-shape", _set("weights", lambda a, m: [w[:, :8].contiguous() if i == 9 else w
                                                           for i, w in enumerate(a["weights"])]),
              {"triton": (ValueError, "weight head2_w must have shape")}),
    BadOpArgs("lengths-range", _set("lengths", lambda a, m: a["lengths"] + 1),
              {"cpu": (_RT, r"lengths must be in \[0, n=4\]"), "cuda": (_RT, r"lengths must be in \[0, n=4\]"),
               "triton": (ValueError, "lengths must be in")}),
    BadOpArgs("last-tokens-range", _set("last_tokens", lambda a, m: torch.full_like(a["last_tokens"], m.config.classes)),
              {"cpu": (_RT, "last_tokens must be in"), "cuda": (_RT, "last_tokens must be in"),
               "triton": (ValueError, "last_tokens must be in")}),
    BadOpArgs("negative-position", _set("positions", lambda a, m: torch.full_like(a["positions"], -1)),
              {"triton": (ValueError, "positions must be >= 0")}),
    BadOpArgs("temperature-nan", _set("temperature", lambda a, m: float("nan")),
              {"cpu": (_RT, "temperature must be finite")}),
    BadOpArgs("temperature-negative", _set("temperature", lambda a, m: -1.0), {"triton": (ValueError, "temperature")}),
    BadOpArgs("cond-rank", _set("cond", lambda a, m: torch.zeros(2, 3, 5, device=a["queues"].device)),
              {"cpu": (_RT, "cond must be"), "cuda": (_RT, "cond must be")}),
    BadOpArgs("cond-width", _set("cond", _cond_width), {"triton": (ValueError, "cond must have shape")}),
    BadOpArgs("cond-steps", _set("cond", _cond_steps), {"triton": (ValueError, "cond must be")}),
    BadOpArgs("dilations", _set("dilations", lambda a, m: [0] + a["dilations"][1:]),
              {"cpu": (_RT, "dilations must be >= 1"), "triton": (ValueError, "dilations must be >= 1")}),
    BadOpArgs("uniforms-shape", _set("uniforms", lambda a, m: torch.rand(3, 4, device=a["queues"].device)),
              {"triton": (ValueError, "uniforms")}),
    BadOpArgs("uniforms-dtype", _set("uniforms", lambda a, m: a["uniforms"].double()), {"triton": (TypeError, "uniforms")}),
    BadOpArgs("uniforms-noncontiguous", _set("uniforms", lambda a, m: torch.rand(4, 2, device=a["queues"].device).t()),
              {"triton": (ValueError, "uniforms must be contiguous")}),
    BadOpArgs("uniforms-device", _set("uniforms", lambda a, m: a["uniforms"].cpu()),
              {"cuda": (_RT, "uniforms is on cpu but queues is on cuda")}),
    BadOpArgs("embed-device", _set("weights", lambda a, m: [w.cpu() if i == 0 else w for i, w in enumerate(a["weights"])]),
              {"cuda": (_RT, "embed is on cpu but queues is on cuda")}),
]


def bad_op_args_for(backend: str) -> list:
    import pytest

    return [pytest.param(c, id=c.name) for c in BAD_OP_ARGS if backend in c.expect]


def assert_bad_op_args(case: BadOpArgs, backend: str, call: Callable[..., object], model: WaveNet, args: dict,
                       prefix: str = "") -> None:
    """call(**args) with case's wrong argument raises the backend's error, its message naming it."""
    import pytest

    case.mutate(args, model)
    error, message = case.expect[backend]
    with pytest.raises(error, match=prefix + message):
        call(**args)


# -- the op's public call for tests/ops/test_route.py (through model.generate) ----------------------


def tiny_wavenet() -> WaveNet:
    torch.manual_seed(fresh_generator().initial_seed())
    return WaveNet(classes=16, residual_channels=8, skip_channels=8, layers_per_stack=3, stacks=1).eval()


def route_call(dtype=torch.float32):
    model = tiny_wavenet()
    return lambda: model.generate(6, 2, seed=0)


ROUTE_CALLS = {"wavenet_generate": route_call}
