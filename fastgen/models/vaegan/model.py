"""VAE-GAN (Larsen, Sønderby, Larochelle & Winther 2016, "Autoencoding beyond pixels using a learned
similarity metric") and its two baselines on the same networks: a plain VAE and a plain GAN.

Networks (DCGAN-style, the paper's Table / appendix scaled by ``width``; 5x5 kernels, stride-2
convolutions, batch normalisation and ReLU as in the paper)::

    encoder        conv(w) s2 -> conv(2w) s2 -> FC(hidden) -> FC(2 * latent)         q(z|x) = N(mu, sigma^2)
    decoder        FC -> 2w x s/4 x s/4 -> convT(w) s2 -> convT(w/2) s2 -> conv(C)   pixel logits (sigmoid)
    discriminator  conv(w/2) s1 -> conv(w) s2 -> conv(2w) s2 = Dis_l -> FC(hidden) -> FC(1)

``feature_layer`` picks which discriminator conv block's output is Dis_l (the paper: its last conv
block, the default). The decoder's output is cropped to the image size (28 -> 28, 32 -> 32).

Losses (each a per-image sum, averaged over the batch):

* ``kl``: L_prior = KL(q(z|x) || N(0, I)).
* ``llike``: L_llike^Dis_l = -log N(Dis_l(x) | Dis_l(x~), I) without its constant: half the squared
  distance of the discriminator features of x and of its reconstruction x~ = Dec(z), z ~ q(z|x).
* ``pixel`` (the VAE baseline): the Bernoulli cross-entropy of the grey values in [0, 1] given the
  decoder's logits (the usual pixel likelihood of the MNIST family).
* ``gan``: L_GAN, the discriminator's binary cross-entropy on real x (label 1) and the fakes
  (label 0): reconstructions x~ and decoded prior samples x_p = Dec(z_p), z_p ~ N(0, I) (``fakes``;
  the paper uses both), one batch mean per kind. The discriminator sees them in one batch [x; x~; x_p],
  so its batch statistics mix them, as in the authors' code.
* ``gen`` (``gan_loss="nonsaturating"`` only): -log D(fake), the generator loss of most public ports.

Who learns from what (the paper's Algorithm 1):

    encoder        grad(L_prior + L_llike)
    decoder        gamma * grad(L_llike) - grad(L_GAN)       (gan_loss="minimax", the paper's)
                   gamma * grad(L_llike) + grad(L_gen)       (gan_loss="nonsaturating")
    discriminator  grad(L_GAN)                               (L_llike does not train it)

``gamma`` defaults to 1e-2, the authors' code's ``recon_vs_gan_weight``. The VAE: encoder and decoder
both follow grad(L_prior + L_pixel). The GAN: decoder (the generator) and discriminator as above on
prior samples only. :mod:`.step` computes these gradients from one forward of each network;
:mod:`.reference_step` is the straightforward twin.

Balancing (``balance=True``, off by default; the authors' code, not the paper): from the
discriminator's mean real and fake costs of a step, skip the discriminator's update when either is
below ``equilibrium - margin`` (it is far ahead) and the decoder's when either is above
``equilibrium + margin`` (it is far behind); when both would be skipped, both update.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fastgen.models.config_utils import check_model_fits, check_positive_ints
from fastgen.models.pretrained import Pretrained

VARIANTS = ("vaegan", "vae", "gan")
GAN_LOSSES = ("minimax", "nonsaturating")
FAKES = ("recon", "prior")
CONV_BLOCKS = 3  # discriminator conv blocks: the choices of feature_layer


@dataclass
class VAEGANConfig:
    """Sizes and loss options (see the module docstring). ``variant``: "vaegan", "vae" or "gan"."""

    variant: str = "vaegan"
    image_size: int = 28          # square images; 28 (Fashion-MNIST), 32 (faces resized)
    channels: int = 1
    latent: int = 32
    width: int = 32               # w: the channel scale of every network
    hidden: int = 256             # the fully connected layer of encoder and discriminator
    feature_layer: int = CONV_BLOCKS
    gamma: float = 1e-2
    gan_loss: str = "minimax"
    fakes: tuple = FAKES
    balance: bool = False
    equilibrium: float = 0.68
    margin: float = 0.4

    def __post_init__(self) -> None:
        name = "VAEGANConfig"
        if self.variant not in VARIANTS:
            raise ValueError(f"{name}: variant must be one of {', '.join(VARIANTS)}, got {self.variant!r}")
        check_positive_ints(self, name, ("image_size", "channels", "latent", "width", "hidden"))
        if self.image_size < 8:
            raise ValueError(f"{name}: image_size must be >= 8 (two stride-2 layers), got {self.image_size}")
        if self.width < 2:
            raise ValueError(f"{name}: width must be >= 2 (the decoder's last block has width / 2), got {self.width}")
        if self.feature_layer not in range(1, CONV_BLOCKS + 1) or isinstance(self.feature_layer, bool):
            raise ValueError(f"{name}: feature_layer must be 1..{CONV_BLOCKS} (a discriminator conv block), "
                             f"got {self.feature_layer!r}")
        if not (isinstance(self.gamma, (int, float)) and self.gamma >= 0):
            raise ValueError(f"{name}: gamma must be a number >= 0, got {self.gamma!r}")
        if self.gan_loss not in GAN_LOSSES:
            raise ValueError(f"{name}: gan_loss must be one of {', '.join(GAN_LOSSES)}, got {self.gan_loss!r}")
        self.fakes = tuple(self.fakes)
        if not self.fakes or any(f not in FAKES for f in self.fakes) or len(set(self.fakes)) != len(self.fakes):
            raise ValueError(f"{name}: fakes must be a non-empty subset of {FAKES}, got {self.fakes!r}")
        if self.variant == "gan" and "recon" in self.fakes:
            self.fakes = ("prior",)  # a GAN has no encoder, hence no reconstructions
        if not (self.margin >= 0 and 0 < self.equilibrium):
            raise ValueError(f"{name}: equilibrium must be > 0 and margin >= 0, got {self.equilibrium}, {self.margin}")
        flat = 2 * self.width * self.base ** 2  # the flattened map after two stride-2 layers
        check_model_fits(name, 3 * (25 * 2 * self.width ** 2 + flat * max(self.hidden, self.latent)),
                         8 * self.width * self.image_size ** 2)

    @property
    def has_encoder(self) -> bool:
        return self.variant != "gan"

    @property
    def has_discriminator(self) -> bool:
        return self.variant != "vae"

    @property
    def base(self) -> int:
        """Side of the decoder's first feature map (two stride-2 layers up to >= image_size)."""
        return -(-self.image_size // 4)


def _conv(c_in: int, c_out: int, stride: int, norm: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 5, stride, 2, bias=not norm)]
    return nn.Sequential(*layers, *([nn.BatchNorm2d(c_out)] if norm else []), nn.ReLU())


def _up(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 5, 2, 2, output_padding=1, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU())


class Encoder(nn.Module):
    def __init__(self, cfg: VAEGANConfig):
        super().__init__()
        w, side = cfg.width, cfg.base
        self.convs = nn.Sequential(_conv(cfg.channels, w, 2), _conv(w, 2 * w, 2), nn.Flatten())
        self.fc = nn.Sequential(nn.Linear(2 * w * side * side, cfg.hidden, bias=False), nn.BatchNorm1d(cfg.hidden),
                                nn.ReLU(), nn.Linear(cfg.hidden, 2 * cfg.latent))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mu, logvar = self.fc(self.convs(x)).chunk(2, dim=1)
        return mu, logvar


class Decoder(nn.Module):
    def __init__(self, cfg: VAEGANConfig):
        super().__init__()
        w, b = cfg.width, cfg.base
        self.size, self.shape = cfg.image_size, (2 * w, b, b)
        self.fc = nn.Sequential(nn.Linear(cfg.latent, 2 * w * b * b, bias=False), nn.BatchNorm1d(2 * w * b * b),
                                nn.ReLU())
        self.ups = nn.Sequential(_up(2 * w, w), _up(w, w // 2), nn.Conv2d(w // 2, cfg.channels, 5, 1, 2))

    def forward(self, z: Tensor) -> Tensor:
        """Pixel logits [B, C, S, S] (the image is their sigmoid)."""
        out = self.ups(self.fc(z).view(-1, *self.shape))
        start = (out.shape[-1] - self.size) // 2
        return out[..., start:start + self.size, start:start + self.size]


class Discriminator(nn.Module):
    def __init__(self, cfg: VAEGANConfig):
        super().__init__()
        w, side = cfg.width, cfg.base
        self.blocks = nn.ModuleList([_conv(cfg.channels, w // 2, 1, norm=False), _conv(w // 2, w, 2),
                                     _conv(w, 2 * w, 2)])
        self.feature_layer = cfg.feature_layer
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(2 * w * side * side, cfg.hidden, bias=False),
                                  nn.BatchNorm1d(cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, 1))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(features of block ``feature_layer`` flattened [B, F], logits [B])."""
        features = None
        for i, block in enumerate(self.blocks, 1):
            x = block(x)
            if i == self.feature_layer:
                features = x.flatten(1)
        return features, self.head(x).squeeze(1)


class Pass(NamedTuple):
    """One forward of every network over a batch (see :func:`forward_pass`)."""

    mu: Optional[Tensor]
    logvar: Optional[Tensor]
    decoded: Tensor            # decoder logits, one block of B rows per kind: x~ ("recon"), x_p ("prior")
    kinds: tuple               # the kinds decoded, in row order
    features: Optional[Tensor]  # Dis_l of the discriminator's batch [x; decoded]
    logits: Optional[Tensor]    # its logits


class Losses(NamedTuple):
    kl: Tensor
    recon: Tensor      # L_llike (VAE-GAN), the pixel cross-entropy (VAE), 0 (GAN)
    gan: Tensor        # L_GAN, the discriminator's loss (0 for the VAE)
    gen: Tensor        # -log D(fake) (nonsaturating decoder loss; 0 otherwise)
    real_cost: Tensor  # the discriminator's mean cost on real images and on the fakes (balancing, logs)
    fake_cost: Tensor


class VAEGAN(Pretrained, nn.Module, kind="vaegan", config_class=VAEGANConfig):
    """The encoder, decoder and discriminator of the config's variant (None where it has none)."""

    def __init__(self, config: Optional[VAEGANConfig] = None, **overrides):
        super().__init__()
        self.config = config if config is not None else VAEGANConfig(**overrides)
        cfg = self.config
        self.encoder = Encoder(cfg) if cfg.has_encoder else None
        self.decoder = Decoder(cfg)
        self.discriminator = Discriminator(cfg) if cfg.has_discriminator else None

    def networks(self) -> dict[str, nn.Module]:
        """{"encoder", "decoder", "discriminator"}: the variant's networks, in update order."""
        nets = {"encoder": self.encoder, "decoder": self.decoder, "discriminator": self.discriminator}
        return {k: v for k, v in nets.items() if v is not None}

    def check_images(self, x: Tensor, where: str) -> None:
        cfg = self.config
        if not isinstance(x, Tensor) or not x.is_floating_point():
            raise TypeError(f"{where}: images must be a float tensor in [0, 1], got "
                            f"{x.dtype if isinstance(x, Tensor) else type(x).__name__}")
        if x.dim() != 4 or tuple(x.shape[1:]) != (cfg.channels, cfg.image_size, cfg.image_size):
            raise ValueError(f"{where}: images must have shape [B, {cfg.channels}, {cfg.image_size}, "
                             f"{cfg.image_size}], got {list(x.shape)}")
        if x.shape[0] < 2 and self.training:
            raise ValueError(f"{where}: batch normalisation needs a batch of at least 2 images in training, got 1")

    # -- inference --------------------------------------------------------------------------------

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(mu, log sigma^2) of q(z|x)."""
        if self.encoder is None:
            raise ValueError("encode: a GAN has no encoder")
        self.check_images(x, "encode")
        return self.encoder(x)

    def decode(self, z: Tensor) -> Tensor:
        """Images in [0, 1] for latents z [B, latent]."""
        if z.dim() != 2 or z.shape[1] != self.config.latent:
            raise ValueError(f"decode: z must have shape [B, {self.config.latent}], got {list(z.shape)}")
        return torch.sigmoid(self.decoder(z))

    def reconstruct(self, x: Tensor) -> Tensor:
        """Dec(mu(x)): the posterior mean's reconstruction."""
        return self.decode(self.encode(x)[0])

    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> Tensor:
        p = next(self.parameters())
        z = torch.randn(n, self.config.latent, generator=generator, device=p.device, dtype=p.dtype)
        return self.decode(z)

    # -- training ---------------------------------------------------------------------------------

    def draw_noise(self, batch: int, generator: Optional[torch.Generator], like: Tensor) -> tuple:
        """(eps for z = mu + sigma eps, z_p prior samples or None): every random number of a step."""
        cfg = self.config
        kw = dict(generator=generator, device=like.device, dtype=like.dtype)
        eps = torch.randn(batch, cfg.latent, **kw) if cfg.has_encoder else None
        z_prior = torch.randn(batch, cfg.latent, **kw) if "prior" in cfg.fakes and cfg.has_discriminator else None
        return eps, z_prior


def forward_pass(model: VAEGAN, x: Tensor, eps: Optional[Tensor], z_prior: Optional[Tensor],
                 train_dis_inputs: bool = True) -> Pass:
    """Each network once: the encoder on x, the decoder on [z; z_p], the discriminator on [x; x~; x_p].
    ``train_dis_inputs=False`` cuts the graph at the discriminator's input (the fakes are constants)."""
    mu = logvar = None
    latents, kinds = [], []
    if model.encoder is not None:
        mu, logvar = model.encoder(x)
        latents.append(mu + torch.exp(0.5 * logvar) * eps)
        kinds.append("recon")
    if z_prior is not None:
        latents.append(z_prior)
        kinds.append("prior")
    decoded = model.decoder(torch.cat(latents) if len(latents) > 1 else latents[0])
    if model.discriminator is None:
        return Pass(mu, logvar, decoded, tuple(kinds), None, None)
    fakes = torch.sigmoid(decoded if train_dis_inputs else decoded.detach())
    features, logits = model.discriminator(torch.cat([x, fakes]))
    return Pass(mu, logvar, decoded, tuple(kinds), features, logits)


def compute_losses(model: VAEGAN, x: Tensor, p: Pass) -> Losses:
    """The loss terms of one forward (see the module docstring)."""
    cfg, b = model.config, x.shape[0]
    zero = x.new_zeros(())
    kl = zero
    if p.mu is not None:
        kl = 0.5 * (p.mu.square() + p.logvar.exp() - 1 - p.logvar).sum(1).mean()
    if cfg.variant == "vae":
        recon = F.binary_cross_entropy_with_logits(p.decoded, x, reduction="sum") / b
        return Losses(kl, recon, zero, zero, zero, zero)
    recon = zero
    if cfg.variant == "vaegan":
        real_f, recon_f = p.features[:b], p.features[b:2 * b]
        recon = 0.5 * (real_f - recon_f).square().sum(1).mean()
    logits = p.logits.view(-1, b)  # rows: real, then each kind of decoded image
    real_cost = F.softplus(-logits[0]).mean()
    judged = [logits[i] for i, kind in enumerate(p.kinds, 1) if kind in cfg.fakes]
    fake_costs = [F.softplus(row).mean() for row in judged]
    gan = real_cost + sum(fake_costs)
    gen = sum(F.softplus(-row).mean() for row in judged) if cfg.gan_loss == "nonsaturating" else zero
    return Losses(kl, recon, gan, gen, real_cost.detach(), (sum(fake_costs) / len(fake_costs)).detach())


def network_losses(model: VAEGAN, losses: Losses) -> dict[str, Tensor]:
    """Each network's own loss: the gradient of this scalar w.r.t. the network's parameters (and
    nothing else) is the network's update direction (the module docstring's table)."""
    cfg, out = model.config, {}
    if cfg.has_encoder:
        out["encoder"] = losses.kl + losses.recon
    if cfg.variant == "vae":
        out["decoder"] = losses.kl + losses.recon
        return out
    adversarial = losses.gen if cfg.gan_loss == "nonsaturating" else -losses.gan
    out["decoder"] = cfg.gamma * losses.recon + adversarial
    out["discriminator"] = losses.gan
    return out


def balance_updates(model: VAEGAN, losses: Losses) -> dict[str, bool]:
    """Which networks update this step under the balancing option (all of them without it)."""
    cfg = model.config
    update = {name: True for name in model.networks()}
    if not cfg.balance or not cfg.has_discriminator:
        return update
    costs = torch.stack([losses.real_cost, losses.fake_cost]).detach().double()
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(costs)  # every process takes the same decision
        costs /= torch.distributed.get_world_size()
    real, fake = costs.tolist()
    low, high = cfg.equilibrium - cfg.margin, cfg.equilibrium + cfg.margin
    dis = not (real < low or fake < low)
    dec = not (real > high or fake > high)
    if not (dis or dec):
        dis = dec = True
    update["discriminator"], update["decoder"] = dis, dec
    return update
