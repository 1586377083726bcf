"""WaveNet: A Generative Model for Raw Audio (van den Oord et al. 2016), with fast cached generation
(Paine et al. 2016, "Fast Wavenet Generation Algorithm").

The model, over mu-law tokens x_0 .. x_T (256 classes by default)::

    h^0_t   = E[x_t]                                         input embedding (a 1x1 conv of one-hot)
    z^l_t   = sum_j W^l_j h^l_{t-(k-1-j) d_l} + b^l + c^l_t   dilated causal conv, k taps, d_l = 2^(l mod m)
    a^l_t   = tanh(z^l_t[:R]) * sigmoid(z^l_t[R:])            gated unit
    s_t     = sum_l (S^l a^l_t + s^l)                          skip connections
    h^l+1_t = h^l_t + V^l a^l_t + v^l                         residual (none after the last layer)
    logits  = W_2 relu(W_1 relu(s_t) + b_1) + b_2              p(x_{t+1} | x_<=t, conditioning)

Conditioning c^l_t (added to every gate pre-activation): global, a learned speaker embedding e_g
projected per layer; local, a feature sequence (e.g. log-mel frames every ``hop_length`` samples)
upsampled to the sample rate by a learned transposed convolution (kernel = stride = hop) or by
repetition, then projected per layer. The conditioning at position t belongs to the predicted sample
x_{t+1}: a generated sample i uses conditioning position i.

Layer inputs before t = 0 are zero (causal zero padding); generation starts from the token of
silence, mu_law(0). Training is teacher forcing over whole crops (``loss``: cross-entropy in nats
and bits per sample). Generation (``generate``, ``stream``, ``step``) is driven by
fastgen.models.wavenet.generation: the cpu / triton / cuda kernels of fastgen.ops.wavenet over a
ring-buffer cache, or fastgen.reference.wavenet (the naive recomputation and the plain-PyTorch queue
algorithm).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fastgen.data.audio import check_sample_rate
from fastgen.models.config_utils import check_model_fits, check_positive_ints, resolve_config
from fastgen.models.pretrained import Pretrained
from fastgen.models.wavenet import generation

UPSAMPLERS = ("transposed", "repeat")


@dataclass
class WaveNetConfig:
    """WaveNet's sizes. Defaults: the benchmark model of fastgen's WaveNet issue (R=64 residual,
    S=128 skip, 2 stacks of 10 layers, kernel 2, 256 mu-law classes), unconditional.

    speakers: number of speakers for global conditioning (0 = none); speaker_dim its embedding size.
    cond_channels: feature channels for local conditioning (0 = none), one frame per hop_length
    samples, upsampled by "transposed" (learned) or "repeat".
    head_channels: width of the output head's hidden 1x1 layer (None = skip_channels).
    """

    classes: int = 256
    residual_channels: int = 64
    skip_channels: int = 128
    head_channels: Optional[int] = None
    kernel_size: int = 2
    layers_per_stack: int = 10
    stacks: int = 2
    speakers: int = 0
    speaker_dim: int = 16
    cond_channels: int = 0
    hop_length: int = 256
    upsample: str = "transposed"
    sample_rate: int = 16000

    def __post_init__(self):
        check_positive_ints(self, "WaveNetConfig", ("classes", "residual_channels", "skip_channels",
                                                    "layers_per_stack", "stacks", "speaker_dim", "hop_length",
                                                    "sample_rate"))
        if self.head_channels is None:
            self.head_channels = self.skip_channels
        check_positive_ints(self, "WaveNetConfig", ("head_channels",))
        if isinstance(self.kernel_size, bool) or not isinstance(self.kernel_size, int) or self.kernel_size < 2:
            raise ValueError(f"WaveNetConfig: kernel_size must be an int >= 2, got {self.kernel_size!r}")
        if self.classes < 2:
            raise ValueError(f"WaveNetConfig: classes must be >= 2, got {self.classes}")
        for field in ("speakers", "cond_channels"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"WaveNetConfig: {field} must be an int >= 0, got {value!r}")
        if self.upsample not in UPSAMPLERS:
            raise ValueError(f"WaveNetConfig: upsample must be one of {', '.join(UPSAMPLERS)}, got {self.upsample!r}")
        check_sample_rate(self.sample_rate, "WaveNetConfig: sample_rate")
        R, S, k = self.residual_channels, self.skip_channels, self.kernel_size
        per_layer = 2 * R * (R * k + 1 + self.speaker_dim + self.cond_channels) + (R + 1) * (S + R)
        weights = (self.layers * per_layer + (self.classes + self.speakers) * R + self.speakers * self.speaker_dim
                   + (S + 1) * self.head_channels + (self.head_channels + 1) * self.classes
                   + self.cond_channels ** 2 * self.hop_length)
        # per example: the generation queues (every layer's last (k-1)*d inputs) and a receptive
        # field of activations in training; 2**40-sample dilations would never fit
        check_model_fits("WaveNetConfig", weights, 2 * R * self.receptive_field)

    @property
    def layers(self) -> int:
        return self.stacks * self.layers_per_stack

    @property
    def dilations(self) -> list[int]:
        return [2 ** i for _ in range(self.stacks) for i in range(self.layers_per_stack)]

    @property
    def receptive_field(self) -> int:
        """Samples the prediction of x_{t+1} sees: x_t and (k-1) * sum(dilations) before it."""
        return (self.kernel_size - 1) * self.stacks * (2 ** self.layers_per_stack - 1) + 1  # sum(dilations)


class WaveNet(Pretrained, nn.Module, kind="wavenet", config_class=WaveNetConfig):
    """WaveNet with optional global and local conditioning (see the module docstring)."""

    def __init__(self, config: Optional[WaveNetConfig] = None, **overrides):
        super().__init__()
        self.config = cfg = resolve_config("WaveNet", WaveNetConfig, config, overrides)
        R, S, L = cfg.residual_channels, cfg.skip_channels, cfg.layers
        self.embed = nn.Embedding(cfg.classes, R)
        self.gates = nn.ModuleList(nn.Conv1d(R, 2 * R, cfg.kernel_size, dilation=d) for d in cfg.dilations)
        self.skips = nn.ModuleList(nn.Conv1d(R, S, 1) for _ in range(L))
        self.residuals = nn.ModuleList(nn.Conv1d(R, R, 1) for _ in range(L - 1))
        self.head1 = nn.Conv1d(S, cfg.head_channels, 1)
        self.head2 = nn.Conv1d(cfg.head_channels, cfg.classes, 1)
        # All layers' conditioning projections in one matrix (rows l*2R .. (l+1)*2R are layer l's).
        if cfg.speakers:
            self.speaker_embed = nn.Embedding(cfg.speakers, cfg.speaker_dim)
            self.speaker_proj = nn.Linear(cfg.speaker_dim, L * 2 * R, bias=False)
        if cfg.cond_channels:
            if cfg.upsample == "transposed":
                self.upsampler = nn.ConvTranspose1d(cfg.cond_channels, cfg.cond_channels, cfg.hop_length,
                                                    stride=cfg.hop_length)
            self.cond_proj = nn.Linear(cfg.cond_channels, L * 2 * R, bias=False)

    # --- conditioning -------------------------------------------------------------------------

    def check_conditioning(self, batch: int, steps: Optional[int], speaker: Optional[Tensor],
                           features: Optional[Tensor], where: str) -> None:
        """Raise a clear error unless speaker/features fit this model, the batch and (when given) the
        number of positions they must cover."""
        cfg = self.config
        if cfg.speakers:
            if speaker is None:
                raise ValueError(f"{where}: this model is globally conditioned: pass speaker ids [B] in [0, {cfg.speakers})")
            if not isinstance(speaker, Tensor) or speaker.dtype not in (torch.int32, torch.int64):
                raise TypeError(f"{where}: speaker must be an integer tensor [B], got {type(speaker).__name__}"
                                f"{'' if not isinstance(speaker, Tensor) else ' of ' + str(speaker.dtype)}")
            if speaker.shape != (batch,):
                raise ValueError(f"{where}: speaker must have shape [{batch}], got {list(speaker.shape)}")
            if speaker.numel() and (int(speaker.min()) < 0 or int(speaker.max()) >= cfg.speakers):
                raise ValueError(f"{where}: speaker ids must be in [0, {cfg.speakers}), got "
                                 f"min {int(speaker.min())}, max {int(speaker.max())}")
        elif speaker is not None:
            raise ValueError(f"{where}: this model has no global conditioning (speakers=0) but speaker ids were given")
        if cfg.cond_channels:
            if features is None:
                raise ValueError(f"{where}: this model is locally conditioned: pass features "
                                 f"[B, {cfg.cond_channels}, frames] (one frame per {cfg.hop_length} samples)")
            dtype = self.embed.weight.dtype
            if not isinstance(features, Tensor) or features.dtype != dtype:
                raise TypeError(f"{where}: features must be a {dtype} tensor like the model's weights, got "
                                f"{features.dtype if isinstance(features, Tensor) else type(features).__name__}")
            if features.dim() != 3 or features.shape[0] != batch or features.shape[1] != cfg.cond_channels:
                raise ValueError(f"{where}: features must be [{batch}, {cfg.cond_channels}, frames], "
                                 f"got {list(features.shape)}")
            if steps is not None and features.shape[2] * cfg.hop_length < steps:
                raise ValueError(f"{where}: features have {features.shape[2]} frames = "
                                 f"{features.shape[2] * cfg.hop_length} samples at hop {cfg.hop_length}, "
                                 f"fewer than the {steps} positions needed")
            if not torch.isfinite(features).all():
                raise ValueError(f"{where}: features contain NaN or Inf")
        elif features is not None:
            raise ValueError(f"{where}: this model has no local conditioning (cond_channels=0) but features were given")

    def upsample_features(self, features: Tensor) -> Tensor:
        """[B, C, frames] -> [B, C, frames * hop]: the feature vector for every sample position."""
        cfg = self.config
        if cfg.upsample == "transposed":
            return self.upsampler(features)
        return features.repeat_interleave(cfg.hop_length, dim=2)

    def conditioning_steps(self, speaker: Optional[Tensor], upsampled: Optional[Tensor], start: int = 0,
                           stop: Optional[int] = None) -> Optional[Tensor]:
        """Every layer's conditioning for positions [start, stop), channels last: [B, stop-start, L*2R],
        or [B, 1, L*2R] (the same for every position) with global conditioning only, or None.

        ``upsampled`` is ``upsample_features(features)``; generation computes it once and slices it
        per chunk so the [B, n, L*2R] tensor never exists for a whole utterance.
        """
        cond = None
        if upsampled is not None:
            cond = self.cond_proj(upsampled[:, :, start:stop].transpose(1, 2))
        if speaker is not None:
            g = self.speaker_proj(self.speaker_embed(speaker))[:, None, :]
            cond = g if cond is None else cond + g
        return cond

    # --- teacher-forced forward ------------------------------------------------------------------

    def logits_from(self, tokens: Tensor, layer_cond: Callable[[int], Optional[Tensor]]) -> Tensor:
        """Logits [B, classes, T] for inputs tokens [B, T]; layer_cond(l) is layer l's conditioning
        [B, 2R, T or 1] (or None). Position t's logits predict the token after tokens[:, t]."""
        cfg = self.config
        h = self.embed(tokens).transpose(1, 2)
        skip = None
        for l, (gate, d) in enumerate(zip(self.gates, cfg.dilations)):
            z = gate(F.pad(h, ((cfg.kernel_size - 1) * d, 0)))
            c = layer_cond(l)
            if c is not None:
                z = z + c
            zt, zs = z.chunk(2, dim=1)
            a = torch.tanh(zt) * torch.sigmoid(zs)
            s = self.skips[l](a)
            skip = s if skip is None else skip + s
            if l < cfg.layers - 1:
                h = h + self.residuals[l](a)
        return self.head2(F.relu(self.head1(F.relu(skip))))

    def forward(self, tokens: Tensor, speaker: Optional[Tensor] = None, features: Optional[Tensor] = None,
                feature_offset: int = 0) -> Tensor:
        """Logits [B, classes, T] for inputs tokens [B, T] (mu-law ints): position t predicts x_{t+1}.

        features [B, cond_channels, frames] (one frame per hop_length samples) give position t the
        upsampled feature vector of sample t + feature_offset; speaker [B] the global conditioning.
        """
        self.check_tokens(tokens, "WaveNet.forward")
        B, T = tokens.shape
        self.check_conditioning(B, T + feature_offset, speaker, features, "WaveNet.forward")
        cfg = self.config
        R2 = 2 * cfg.residual_channels
        g = self.speaker_proj(self.speaker_embed(speaker))[:, :, None] if cfg.speakers else None
        up = self.upsample_features(features)[:, :, feature_offset:feature_offset + T] if cfg.cond_channels else None

        def layer_cond(l: int) -> Optional[Tensor]:
            # Project per layer (a slice of cond_proj) so [B, L*2R, T] is never materialised.
            c = None
            if up is not None:
                c = F.conv1d(up, self.cond_proj.weight[l * R2:(l + 1) * R2, :, None])
            if g is not None:
                gl = g[:, l * R2:(l + 1) * R2]
                c = gl if c is None else c + gl
            return c

        return self.logits_from(tokens, layer_cond)

    def check_tokens(self, tokens: Tensor, where: str) -> None:
        if not isinstance(tokens, Tensor) or tokens.dtype not in (torch.int32, torch.int64):
            raise TypeError(f"{where}: tokens must be an integer tensor [B, T] of mu-law classes")
        if tokens.dim() != 2 or tokens.shape[1] < 1:
            raise ValueError(f"{where}: tokens must be [B, T] with T >= 1, got {list(tokens.shape)}")
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= self.config.classes):
            raise ValueError(f"{where}: tokens must be in [0, {self.config.classes}), got "
                             f"min {int(tokens.min())}, max {int(tokens.max())}")

    def loss(self, tokens: Tensor, speaker: Optional[Tensor] = None,
             features: Optional[Tensor] = None) -> tuple[Tensor, dict[str, Tensor]]:
        """Teacher-forced cross-entropy of tokens[:, 1:] given tokens[:, :-1]. features, when given,
        cover the whole crop tokens[:, :] (frame f = samples f*hop .. (f+1)*hop - 1, as
        fastgen.data.SpeechDataset.crops gives them); the prediction of sample s uses its feature
        vector. Returns (mean nats per sample, metrics with bits_per_sample)."""
        self.check_tokens(tokens, "WaveNet.loss")
        if tokens.shape[1] < 2:
            raise ValueError(f"WaveNet.loss: need at least 2 tokens per row, got {tokens.shape[1]}")
        logits = self(tokens[:, :-1], speaker, features, feature_offset=1)
        nats = F.cross_entropy(logits, tokens[:, 1:].long())
        return nats, {"nats_per_sample": nats.detach(), "bits_per_sample": nats.detach() / math.log(2)}

    # --- generation ----------------------------------------------------------------------------

    def allocate_cache(self, batch: int = 1, weight_dtype: torch.dtype = torch.float32,
                       seed: Optional[int] = None) -> generation.WaveNetCache:
        """A fresh generation state (ring-buffer queues at time 0, input = the silence token) for
        ``batch`` independent rows, with this model's weights packed for the kernels (a snapshot:
        allocate a new cache after changing the weights)."""
        return generation.WaveNetCache(self, batch, weight_dtype, seed)

    def generate(self, n_samples: int, batch: int = 1, **kwargs) -> Tensor:
        """n_samples new samples for each of ``batch`` rows: mu-law tokens [B, n] (or a float waveform
        in [-1, 1] with output="waveform"). See fastgen.models.wavenet.generation.stream for every
        option (speaker, features, temperature, seed/uniforms, backend, cache, chunk, progress)."""
        return generation.generate(self, n_samples, batch=batch, **kwargs)

    def stream(self, n_samples: int, batch: int = 1, **kwargs):
        """Iterator over chunks [B, <= chunk] of the same samples generate() returns."""
        return generation.stream(self, n_samples, batch=batch, **kwargs)

    def step(self, cache: generation.WaveNetCache, uniforms: Optional[Tensor] = None, **kwargs) -> Tensor:
        """One new sample per row [B] from the cache's state (advances the cache)."""
        return generation.step(self, cache, uniforms=uniforms, **kwargs)


def loss_fn(model: WaveNet, batch, generator: Optional[torch.Generator]) -> tuple[Tensor, dict[str, Tensor]]:
    """fastgen.train contract: batch = tokens [B, T+1], or a fastgen.data.SpeechBatch / dict with
    tokens, and speakers / mels when the model is conditioned on them. No noise is drawn."""
    del generator
    if isinstance(batch, Tensor):
        return model.loss(batch)
    get = batch.get if isinstance(batch, dict) else lambda name: getattr(batch, name, None)
    cfg = model.config
    return model.loss(get("tokens"), get("speakers") if cfg.speakers else None,
                      get("mels") if cfg.cond_channels else None)
