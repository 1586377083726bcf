"""DRAW: A Recurrent Neural Network For Image Generation (Gregor, Danihelka, Graves, Rezende &
Wierstra, ICML 2015).

The model, per step t = 1..T (the paper's eqs. 3-8; c_0 = 0 and all LSTM states start at 0)::

    x^_t    = x - sigmoid(c_{t-1})                       error image
    r_t     = read(x, x^_t, h^dec_{t-1})                 Gaussian glimpse of both (or both, flat)
    h^enc_t = LSTM^enc(h^enc_{t-1}, [r_t, h^dec_{t-1}])
    z_t     = mu_t + sigma_t * eps_t,  eps_t ~ N(0, I)   q(z_t | h^enc_t) = N(mu_t, sigma_t)
    h^dec_t = LSTM^dec(h^dec_{t-1}, z_t)
    c_t     = c_{t-1} + write(h^dec_t)

With attention, read is fastgen's GaussianRead on [x, x^] stacked as channels (one op call; the
window comes from a linear head on h^dec_{t-1}) and write is GaussianWrite's patch and window heads
with the canvas add fused into the op. Without attention, read is [x, x^] flattened and write is a
linear map to the whole canvas.

Loss per image, in nats (eqs. 9-12): L^x + L^z with
    L^x = -log D(x | c_T)                                 the output distribution, see ``likelihood``
    L^z = sum_t KL(N(mu_t, sigma_t) || N(0, I)) = sum_t 0.5 * sum_j (mu^2 + sigma^2 - 2 log sigma - 1)
which is the negative variational lower bound of log p(x) ("nll_bound"). Every bit of noise comes
from the torch.Generator passed in (fastgen.train's loss_fn contract), so a seed fixes the loss.

The helpers here (read/write blocks, the KL terms, the output likelihood) are shared with
fastgen.models.aligndraw.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fastgen import _extension
from fastgen.backend import BACKENDS, get_backend, use_backend
from fastgen.nn.attention import GaussianRead, GaussianWrite
from fastgen.nn.recurrent import lstm_gate_weights, stacked_linears, step_linears, step_lstm
from fastgen.models.draw_bptt import CoreWeights, draw_core
from fastgen.models.config_utils import (check_model_fits, check_positive_ints, is_positive_int,
                                         lstm_weights, resolve_config)
from fastgen.ops.draw import draw_generate

LIKELIHOODS = ("bernoulli", "gaussian_fixed_var")


# ---------------------------------------------------------------------------------------------
# distributions


def kl_standard_normal(mu: Tensor, log_sigma: Tensor) -> Tensor:
    """Elementwise KL(N(mu, sigma) || N(0, 1)) = 0.5 * (mu^2 + sigma^2 - 2 log sigma - 1), in nats."""
    return 0.5 * (mu.square() + torch.exp(2 * log_sigma) - 2 * log_sigma - 1)


def core_applies(x: Tensor, weight: Tensor) -> bool:
    """Whether a model may train through its hand-written core (fastgen.models.draw_bptt,
    aligndraw_bptt): the cpu kernels (cpu or auto backend, CPU float32/float64 weights) and images
    that need no gradient. Anything else runs the step loop under autograd."""
    return (get_backend() in ("auto", "cpu") and x.device.type == "cpu" and weight.device.type == "cpu"
            and weight.dtype in (torch.float32, torch.float64) and not x.requires_grad
            and _extension.available())


def kl_normal(mu_q: Tensor, log_sigma_q: Tensor, mu_p: Tensor, log_sigma_p: Tensor) -> Tensor:
    """Elementwise KL(N(mu_q, sigma_q) || N(mu_p, sigma_p)), exact, in nats:

    log sigma_p - log sigma_q + (sigma_q^2 + (mu_q - mu_p)^2) / (2 sigma_p^2) - 1/2
    """
    inv_var_p = torch.exp(-2 * log_sigma_p)
    return (
        log_sigma_p
        - log_sigma_q
        + 0.5 * (torch.exp(2 * (log_sigma_q - log_sigma_p)) + (mu_q - mu_p).square() * inv_var_p)
        - 0.5
    )


def reconstruction_nll(logits: Tensor, x: Tensor, likelihood: str, output_std: float) -> Tensor:
    """-log D(x | c_T) per image [B], summed over channels and pixels, in nats.

    "bernoulli": x ~ Bernoulli(sigmoid(c_T)) per pixel, i.e. binary cross-entropy with logits c_T.
        For binary images this is an exact log-likelihood. For grey images in [0, 1] (e.g. MNIST with
        captions) it is the usual cross-entropy with soft targets: a fine training loss, but not a
        normalised likelihood, so its "nats" are not comparable to a density's.
    "gaussian_fixed_var": x ~ N(sigmoid(c_T), output_std^2) per pixel, the variance fixed (not
        learned): 0.5 * (x - sigmoid(c_T))^2 / s^2 + 0.5 * log(2 pi s^2). A density on continuous grey
        values in nats; it can be negative and is not comparable to the Bernoulli numbers either.
    """
    if likelihood == "bernoulli":
        nll = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    elif likelihood == "gaussian_fixed_var":
        var = output_std * output_std
        nll = 0.5 * (x - torch.sigmoid(logits)).square() / var + 0.5 * math.log(2 * math.pi * var)
    else:
        raise ValueError(f"unknown likelihood {likelihood!r}; choose one of {', '.join(LIKELIHOODS)}")
    return nll.flatten(1).sum(1)


def standard_noise(like: Tensor, generator: Optional[torch.Generator]) -> Tensor:
    """eps ~ N(0, I) shaped like ``like``, drawn from ``generator`` (fresh numbers on every call)."""
    return torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)


def noise_per_step(eps: Tensor, generator: Optional[torch.Generator]) -> Tensor:
    """eps [T, B, Z] filled with standard_noise one step at a time: the numbers a step loop that draws
    each step's noise as it goes gets from the same generator (so a core and its loop agree)."""
    for t in range(eps.shape[0]):
        eps[t] = standard_noise(eps[t], generator)
    return eps


def backend_context(name: str):
    """fastgen.use_backend(name), or nothing for "auto" (then the process-wide choice stands)."""
    return contextlib.nullcontext() if name == "auto" else use_backend(name)


# ---------------------------------------------------------------------------------------------
# read and write blocks (attention or not)


class Reader(nn.Module):
    """read(x, x^, h): GaussianRead on [x, x^] stacked as channels (one op call), or both flattened.

    Output [B, out_size]: 2*C*N*N with attention, 2*C*H*W without.
    """

    def __init__(self, N: Optional[int], channels: int, height: int, width: int, hidden_size: int):
        super().__init__()
        self.N = N
        self.attention = GaussianRead(N, hidden_size=hidden_size) if N is not None else None
        self.out_size = 2 * channels * (N * N if N is not None else height * width)

    @property
    def heads(self) -> list[nn.Linear]:
        """The linear heads from h to the window parameters (none without attention)."""
        return [] if self.attention is None else [self.attention.to_params]

    def forward(self, x: Tensor, x_hat: Tensor, h: Tensor) -> Tensor:
        return self.apply_heads(x, x_hat, [m(h) for m in self.heads])

    def apply_heads(self, x: Tensor, x_hat: Tensor, outputs: list[Tensor]) -> Tensor:
        """read(x, x^) with the window from the ``heads`` outputs (computed by the caller)."""
        both = torch.cat([x, x_hat], dim=1)  # [B, 2C, H, W]
        if self.attention is None:
            return both.flatten(1)
        return self.attention(both, params=outputs[0]).flatten(1)


class Writer(nn.Module):
    """canvas + write(h): GaussianWrite's patch and window heads with the fused canvas add, or a
    linear map from h to the whole canvas. Returns (new canvas, window params [B, 5] or None)."""

    def __init__(self, N: Optional[int], channels: int, height: int, width: int, hidden_size: int):
        super().__init__()
        self.N, self.shape = N, (channels, height, width)
        if N is not None:
            self.attention = GaussianWrite(N, height, width, channels, hidden_size=hidden_size)
            self.linear = None
        else:
            self.attention = None
            self.linear = nn.Linear(hidden_size, channels * height * width)

    @property
    def heads(self) -> list[nn.Linear]:
        """The linear heads from h: window parameters and patch, or the whole canvas."""
        return [self.linear] if self.attention is None else [self.attention.to_params, self.attention.to_patch]

    def forward(self, h: Tensor, canvas: Tensor) -> tuple[Tensor, Optional[Tensor]]:
        return self.apply_heads([m(h) for m in self.heads], canvas)

    def apply_heads(self, outputs: list[Tensor], canvas: Tensor) -> tuple[Tensor, Optional[Tensor]]:
        """canvas + write, from the ``heads`` outputs (computed by the caller)."""
        if self.attention is None:
            return canvas + outputs[0].view(canvas.shape), None
        head = self.attention
        params, patch = outputs
        patch = patch.view(patch.shape[0], head.channels, head.N, head.N)
        return head(w=patch, params=params, canvas=canvas), params


# ---------------------------------------------------------------------------------------------
# checks shared with AlignDRAW


def check_common_config(cfg, name: str) -> None:
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
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: images must be a torch.Tensor, got {type(x).__name__}")
    expected = (cfg.channels, cfg.height, cfg.width)
    if x.dim() != 4 or tuple(x.shape[1:]) != expected:
        raise ValueError(f"{name}: images must be [B, {expected[0]}, {expected[1]}, {expected[2]}], got {tuple(x.shape)}")


# ---------------------------------------------------------------------------------------------
# DRAW


@dataclass
class DRAWConfig:
    """DRAW's sizes. The defaults are the paper's MNIST generation model (Table 3: 28x28, 64 glimpses,
    256-unit LSTMs, 100-d z, 2x2 read, 5x5 write).

    read_N / write_N: attention patch sizes; None means no attention (read the whole image and error
    image; write the whole canvas through a linear layer).
    likelihood: "bernoulli" (binary images; also usable as cross-entropy on grey values in [0, 1]) or
    "gaussian_fixed_var" (grey values, N(sigmoid(c_T), output_std^2) per pixel); see reconstruction_nll.
    attention_backend: fastgen backend for the attention ops ("auto" keeps the process-wide choice).
    """

    height: int = 28
    width: int = 28
    channels: int = 1
    T: int = 64
    enc_size: int = 256
    dec_size: int = 256
    z_size: int = 100
    read_N: Optional[int] = 2
    write_N: Optional[int] = 5
    likelihood: str = "bernoulli"
    output_std: float = 0.1  # only for likelihood="gaussian_fixed_var"
    attention_backend: str = "auto"

    def __post_init__(self):
        check_common_config(self, "DRAWConfig")
        check_positive_ints(self, "DRAWConfig", ("enc_size", "dec_size"))
        pixels, read, write = image_sizes(self)
        weights = (lstm_weights(read + self.dec_size, self.enc_size) + 2 * self.enc_size * self.z_size
                   + lstm_weights(self.z_size, self.dec_size) + self.dec_size * (write + 5))
        # per example and step: canvas, error image and read vector, LSTM states and gates, z
        per_step = 2 * pixels + read + 6 * (self.enc_size + self.dec_size) + 3 * self.z_size
        check_model_fits("DRAWConfig", weights, self.T * per_step)


class DRAW(nn.Module):
    """DRAW with or without attention (see the module docstring for the equations)."""

    def __init__(self, config: Optional[DRAWConfig] = None, **overrides):
        super().__init__()
        self.config = cfg = resolve_config("DRAW", DRAWConfig, config, overrides)
        C, H, W = cfg.channels, cfg.height, cfg.width
        self.reader = Reader(cfg.read_N, C, H, W, cfg.dec_size)
        self.encoder = nn.LSTMCell(self.reader.out_size + cfg.dec_size, cfg.enc_size)
        self.q_mu = nn.Linear(cfg.enc_size, cfg.z_size)
        self.q_log_sigma = nn.Linear(cfg.enc_size, cfg.z_size)
        self.decoder = nn.LSTMCell(cfg.z_size, cfg.dec_size)
        self.writer = Writer(cfg.write_N, C, H, W, cfg.dec_size)

    def _zeros(self, n: int, size: int, ref: Tensor) -> Tensor:
        return ref.new_zeros(n, size)

    def forward(self, x: Tensor, generator: Optional[torch.Generator] = None) -> dict[str, Tensor]:
        """One pass of the inference and generative networks over images x [B, C, H, W].

        Returns per-image terms: "recon" [B] (-log D(x | c_T)), "kl" [B] (summed over steps),
        "kl_steps" [T, B], and "logits" (c_T, [B, C, H, W]).
        """
        cfg = self.config
        check_images("DRAW", x, cfg)
        x = x.to(self.q_mu.weight.dtype)
        with backend_context(cfg.attention_backend):
            run = self._run_core if core_applies(x, self.q_mu.weight) else self._run_steps
            canvas, kl_steps = run(x, generator)
        recon = reconstruction_nll(canvas, x, cfg.likelihood, cfg.output_std)
        return {"recon": recon, "kl": kl_steps.sum(0), "kl_steps": kl_steps, "logits": canvas}

    def _run_steps(self, x: Tensor, generator: Optional[torch.Generator]) -> tuple[Tensor, Tensor]:
        """(c_T, per-step KL [T, B]) step by step under autograd: the reference backend, CUDA, and images
        that need a gradient."""
        cfg = self.config
        B = x.shape[0]
        # Off the reference backend the recurrent layers take fastgen.nn.recurrent's fast path
        # (fused gate products, weight gradients once per sequence); same values either way.
        fast = get_backend() != "reference"
        encoder = step_lstm(self.encoder, cfg.T, fast)
        decoder = step_lstm(self.decoder, cfg.T, fast)
        q_heads = step_linears([self.q_mu, self.q_log_sigma], cfg.T, fast)
        read_heads = step_linears(self.reader.heads, cfg.T, fast)
        write_heads = step_linears(self.writer.heads, cfg.T, fast)
        canvas = x.new_zeros(x.shape)
        h_enc, c_enc = self._zeros(B, cfg.enc_size, x), self._zeros(B, cfg.enc_size, x)
        h_dec, c_dec = self._zeros(B, cfg.dec_size, x), self._zeros(B, cfg.dec_size, x)
        kl_steps = []
        for _ in range(cfg.T):
            x_hat = x - torch.sigmoid(canvas)
            r = self.reader.apply_heads(x, x_hat, read_heads(h_dec))
            h_enc, c_enc = encoder((h_enc, c_enc), r, h_dec)
            mu, log_sigma = q_heads(h_enc)
            z = mu + torch.exp(log_sigma) * standard_noise(mu, generator)
            kl_steps.append(kl_standard_normal(mu, log_sigma).sum(1))
            h_dec, c_dec = decoder((h_dec, c_dec), z)
            canvas, _ = self.writer.apply_heads(write_heads(h_dec), canvas)
        return canvas, torch.stack(kl_steps)

    def _run_core(self, x: Tensor, generator: Optional[torch.Generator]) -> tuple[Tensor, Tensor]:
        """(c_T, per-step KL [T, B]) through fastgen.models.draw_bptt's hand-written core."""
        cfg = self.config
        Z = cfg.z_size
        eps = noise_per_step(x.new_empty(cfg.T, x.shape[0], Z), generator)
        canvas, q = draw_core(x, eps, cfg.read_N, cfg.write_N, self.core_weights())
        return canvas, kl_standard_normal(q[..., :Z], q[..., Z:]).sum(2)

    def core_weights(self) -> CoreWeights:
        """The model's linear maps stacked the way fastgen.models.draw_bptt builds its rows."""
        ref = self.q_mu.weight
        read = stacked_linears(self.reader.heads) if self.reader.heads else (ref.new_zeros(0, self.config.dec_size),
                                                                              ref.new_zeros(0))
        return CoreWeights(
            *read, *lstm_gate_weights(self.encoder),
            *stacked_linears([self.q_mu, self.q_log_sigma]), *lstm_gate_weights(self.decoder),
            *stacked_linears(self.writer.heads))

    def loss(self, x: Tensor, generator: Optional[torch.Generator] = None) -> tuple[Tensor, dict[str, Tensor]]:
        """(mean negative lower bound over the batch, metrics in nats per image)."""
        return bound_and_metrics(self(x, generator))

    @torch.no_grad()
    def sample(
        self,
        n: int,
        generator: Optional[torch.Generator] = None,
        return_canvases: bool = False,
        return_windows: bool = False,
    ) -> Union[Tensor, tuple]:
        """Draw n images: z_t ~ N(0, I) for t = 1..T, the decoder writes, images = sigmoid(c_T).

        Returns images [n, C, H, W] (the output distribution's mean: Bernoulli probabilities, or the
        Gaussian mean); with return_canvases also sigmoid(c_t) for every step [T, n, C, H, W]; with
        return_windows also the write windows' raw params [T, n, 5] (fastgen.reference.attention's
        convention; None without write attention). Extras follow the images in that order.
        """
        cfg = self.config
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"DRAW.sample: n must be a positive int, got {n!r}")
        ref = self.q_mu.weight
        # All T steps' noise in one draw, shared by the fused op and the step-by-step loop below.
        noise = standard_noise(ref.new_empty(cfg.T, n, cfg.z_size), generator)
        if not (return_canvases or return_windows) and self._can_fuse_sampling():
            with backend_context(cfg.attention_backend):
                return torch.sigmoid(draw_generate(noise, *self._generative_weights(), *self.writer.shape))
        canvas = ref.new_zeros(n, cfg.channels, cfg.height, cfg.width)
        h_dec, c_dec = self._zeros(n, cfg.dec_size, ref), self._zeros(n, cfg.dec_size, ref)
        canvases, windows = [], []
        with backend_context(cfg.attention_backend):
            for z in noise:
                h_dec, c_dec = self.decoder(z, (h_dec, c_dec))
                canvas, params = self.writer(h_dec, canvas)
                if return_canvases:
                    canvases.append(torch.sigmoid(canvas))
                if return_windows and params is not None:
                    windows.append(params)
        images = torch.sigmoid(canvas)
        if not (return_canvases or return_windows):
            return images
        extras = [images]
        if return_canvases:
            extras.append(torch.stack(canvases))
        if return_windows:
            extras.append(torch.stack(windows) if windows else None)
        return tuple(extras)


    def _can_fuse_sampling(self) -> bool:
        """Whether sample() (which runs without autograd) may use the fused fastgen.ops.draw_generate:
        write attention, CPU float32/float64 weights, and the cpu (or auto) backend."""
        weight = self.q_mu.weight
        backend = self.config.attention_backend if self.config.attention_backend != "auto" else get_backend()
        return (self.writer.attention is not None and weight.device.type == "cpu"
                and weight.dtype in (torch.float32, torch.float64) and backend in ("auto", "cpu")
                and _extension.available())

    def _generative_weights(self) -> tuple[Tensor, ...]:
        """The decoder LSTM and write heads' weights in draw_generate's argument order."""
        dec, head = self.decoder, self.writer.attention
        bias = dec.bias_ih + dec.bias_hh if dec.bias else dec.weight_ih.new_zeros(dec.weight_ih.shape[0])
        return (dec.weight_ih, dec.weight_hh, bias, head.to_patch.weight, head.to_patch.bias,
                head.to_params.weight, head.to_params.bias)


def _images_from_batch(batch) -> Tensor:
    if isinstance(batch, (tuple, list)):
        if not batch:
            raise ValueError("draw loss_fn: empty batch tuple")
        batch = batch[0]
    elif isinstance(batch, dict):
        batch = batch["images"]
    return batch


def loss_fn(model: DRAW, batch, generator: Optional[torch.Generator]) -> tuple[Tensor, dict[str, Tensor]]:
    """fastgen.train contract: batch = images [B, C, H, W] float (binary for the Bernoulli bound), or a
    tuple whose first element is that (e.g. (images, labels)). Returns (mean bound, metrics)."""
    return model.loss(_images_from_batch(batch), generator)
