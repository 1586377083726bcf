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

AlignDRAW reuses the read/write blocks (read_write.py) and the checks and output likelihood
(family.py); the KL terms and noise come from fastgen.nn.distributions.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

import torch
from torch import Tensor, nn

from fastgen import _extension
from fastgen.backend import get_backend
from fastgen.models.config_utils import check_model_fits, check_positive_ints, lstm_weights, resolve_config
from fastgen.models.draw.bptt import CoreWeights, draw_core
from fastgen.models.draw.family import (backend_context, bound_and_metrics, check_common_config, check_images,
                                        core_applies, image_sizes, reconstruction_nll)
from fastgen.models.draw.read_write import Reader, Writer
from fastgen.models.pretrained import Pretrained
from fastgen.nn.distributions import kl_standard_normal, noise_per_step, sample_normal, standard_noise
from fastgen.nn.recurrent import lstm_gate_weights, stacked_linears, step_linears, step_lstm
from fastgen.ops.draw import draw_generate


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


class DRAW(Pretrained, nn.Module, kind="draw", config_class=DRAWConfig):
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
            z = sample_normal(mu, log_sigma, generator)
            kl_steps.append(kl_standard_normal(mu, log_sigma).sum(1))
            h_dec, c_dec = decoder((h_dec, c_dec), z)
            canvas, _ = self.writer.apply_heads(write_heads(h_dec), canvas)
        return canvas, torch.stack(kl_steps)

    def _run_core(self, x: Tensor, generator: Optional[torch.Generator]) -> tuple[Tensor, Tensor]:
        """(c_T, per-step KL [T, B]) through fastgen.models.draw.bptt's hand-written core."""
        cfg = self.config
        Z = cfg.z_size
        eps = noise_per_step(x.new_empty(cfg.T, x.shape[0], Z), generator)
        canvas, q = draw_core(x, eps, cfg.read_N, cfg.write_N, self.core_weights())
        return canvas, kl_standard_normal(q[..., :Z], q[..., Z:]).sum(2)

    def core_weights(self) -> CoreWeights:
        """The model's linear maps stacked the way fastgen.models.draw.bptt builds its rows."""
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
