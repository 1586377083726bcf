"""What DRAW and AlignDRAW share: the output distribution D(x | c_T), the config and image checks,
the bound's metrics, and when a model may train through its hand-written core."""
from __future__ import annotations

import contextlib

import torch
from torch import Tensor

from fastgen import _extension
from fastgen.backend import BACKENDS, get_backend, use_backend
from fastgen.models.config_utils import check_positive_ints, is_positive_int
from fastgen.nn.distributions import bernoulli_nll, gaussian_nll

LIKELIHOODS = ("bernoulli", "gaussian_fixed_var")


def reconstruction_nll(logits: Tensor, x: Tensor, likelihood: str, output_std: float) -> Tensor:
    """-log D(x | c_T) per image [B], summed over channels and pixels, in nats.

    "bernoulli": x ~ Bernoulli(sigmoid(c_T)) per pixel, i.e. binary cross-entropy with logits c_T.
        For binary images this is an exact log-likelihood. For grey images in [0, 1] (e.g. MNIST with
        captions) it is the usual cross-entropy with soft targets: a fine training loss, but not a
        normalised likelihood, so its "nats" are not comparable to a density's.
    "gaussian_fixed_var": x ~ N(sigmoid(c_T), output_std^2) per pixel, the variance fixed (not
        learned). A density on continuous grey values in nats; it can be negative and is not
        comparable to the Bernoulli numbers either.
    """
    if likelihood == "bernoulli":
        nll = bernoulli_nll(logits, x)
    elif likelihood == "gaussian_fixed_var":
        nll = gaussian_nll(torch.sigmoid(logits), output_std, x)
    else:
        raise ValueError(f"unknown likelihood {likelihood!r}; choose one of {', '.join(LIKELIHOODS)}")
    return nll.flatten(1).sum(1)


def core_applies(x: Tensor, weight: Tensor) -> bool:
    """Whether a model may train through its hand-written core (fastgen.models.draw.bptt,
    fastgen.models.aligndraw.bptt): the cpu kernels (cpu or auto backend, CPU float32/float64 weights) and images
    that need no gradient. Anything else runs the step loop under autograd."""
    return (get_backend() in ("auto", "cpu") and x.device.type == "cpu" and weight.device.type == "cpu"
            and weight.dtype in (torch.float32, torch.float64) and not x.requires_grad
            and _extension.available())


def backend_context(name: str):
    """fastgen.use_backend(name), or nothing for "auto" (then the process-wide choice stands)."""
    return contextlib.nullcontext() if name == "auto" else use_backend(name)


def check_common_config(cfg, name: str) -> None:
    """ValueError naming the field for a DRAW or AlignDRAW config's image, step, attention and
    likelihood settings."""
    check_positive_ints(cfg, name, ("height", "width", "channels", "T", "z_size"))
    for field in ("read_N", "write_N"):
        value = getattr(cfg, field)
        if value is not None and not is_positive_int(value):
            raise ValueError(f"{name}: {field} must be a positive int or None (no attention), got {value!r}")
    if cfg.likelihood not in LIKELIHOODS:
        raise ValueError(f"{name}: likelihood must be one of {', '.join(LIKELIHOODS)}, got {cfg.likelihood!r}")
    if not (cfg.output_std > 0):
        raise ValueError(f"{name}: output_std must be > 0, got {cfg.output_std!r}")
    if cfg.attention_backend not in BACKENDS:
        raise ValueError(f"{name}: attention_backend must be one of {', '.join(BACKENDS)}, got {cfg.attention_backend!r}")


def image_sizes(cfg) -> tuple[int, int, int]:
    """(pixels C*H*W, read vector size, write head outputs) of a DRAW or AlignDRAW config."""
    pixels = cfg.channels * cfg.height * cfg.width
    read = 2 * (cfg.channels * cfg.read_N ** 2 if cfg.read_N else pixels)
    write = cfg.channels * cfg.write_N ** 2 + 5 if cfg.write_N else pixels
    return pixels, read, write


def bound_and_metrics(out: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
    """(mean negative lower bound over the batch, metrics in nats per image) from forward()'s terms."""
    bound = out["recon"] + out["kl"]
    metrics = {"nll_bound": bound.detach().mean(), "recon": out["recon"].detach().mean(),
               "kl": out["kl"].detach().mean()}
    return bound.mean(), metrics


def check_images(name: str, x: Tensor, cfg) -> None:
    """TypeError / ValueError unless x is a [B, C, H, W] tensor of the config's image size."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: images must be a torch.Tensor, got {type(x).__name__}")
    expected = (cfg.channels, cfg.height, cfg.width)
    if x.dim() != 4 or tuple(x.shape[1:]) != expected:
        raise ValueError(f"{name}: images must be [B, {expected[0]}, {expected[1]}, {expected[2]}], got {tuple(x.shape)}")
