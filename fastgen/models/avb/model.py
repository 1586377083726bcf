"""Adversarial Variational Bayes (Mescheder, Nowozin & Geiger, ICML 2017) and its Gaussian-VAE
comparator with the same decoder.

* Encoder: ``encoder="implicit"`` (AVB): z = f(x, ε), a network with standard-normal noise
  concatenated to its input and to every hidden layer, so q(z|x) has no density;
  ``encoder="gaussian"`` (the VAE of Kingma & Welling 2014): N(μ(x), diag σ²(x)).
* Decoder p(x|z): independent Bernoullis (binary images) or one categorical over the ``data_dim``
  one-hot classes (the paper's toy).
* Adversary T(x, z) (implicit encoder only): a network on (x, z) plus the log prior's negative,
  T = T_net(x, z) − log N(z; 0, I), so that at the optimum of the logistic loss
  T* = log q(z|x) − log p(z) the network itself models log q(z|x) (the paper's advice to build the
  known prior into the adversary). With adaptive contrast the same holds for the normalised z̃ and
  the contrast N(0, I).
* Adaptive contrast (``adaptive_contrast=True``, Section 4 of the paper): ``ac_samples`` draws of z
  per x give the encoder's moments μ(x), σ(x); the adversary compares z̃ = (z − μ)/σ with N(0, I),
  and KL(q‖p) ≈ T(x, z̃) + log r(z|x) − log p(z) with r = N(μ, σ²).

The training objectives and their Trainer phases are in :mod:`fastgen.models.avb.losses`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fastgen.models.config_utils import check_positive_ints
from fastgen.models.pretrained import Pretrained

ENCODERS = ("implicit", "gaussian")
LIKELIHOODS = ("bernoulli", "categorical")
_LOG_2PI = math.log(2 * math.pi)


@dataclass
class AVBConfig:
    data_dim: int = 784
    latent_dim: int = 8
    hidden: int = 300               # width of the encoder's and decoder's hidden layers
    layers: int = 2                 # hidden layers of each network
    noise_dim: int = 16             # implicit encoder: noise units concatenated at each layer
    adversary_hidden: int = 300
    likelihood: str = "bernoulli"
    encoder: str = "implicit"
    adaptive_contrast: bool = False
    ac_samples: int = 4             # z draws per x that give the adaptive contrast's moments

    def __post_init__(self) -> None:
        check_positive_ints(self, "AVBConfig", ("data_dim", "latent_dim", "hidden", "layers", "noise_dim",
                                                "adversary_hidden", "ac_samples"))
        if self.encoder not in ENCODERS:
            raise ValueError(f"AVBConfig.encoder must be one of {', '.join(ENCODERS)}, got {self.encoder!r}")
        if self.likelihood not in LIKELIHOODS:
            raise ValueError(f"AVBConfig.likelihood must be one of {', '.join(LIKELIHOODS)}, got {self.likelihood!r}")
        if not isinstance(self.adaptive_contrast, bool):
            raise TypeError(f"AVBConfig.adaptive_contrast must be a bool, got {self.adaptive_contrast!r}")
        if self.adaptive_contrast and self.encoder != "implicit":
            raise ValueError("AVBConfig.adaptive_contrast applies to the implicit (AVB) encoder only")
        if self.adaptive_contrast and self.ac_samples < 2:
            raise ValueError(f"AVBConfig.ac_samples must be >= 2 with adaptive contrast (a standard deviation "
                             f"needs two draws), got {self.ac_samples}")

    @classmethod
    def toy(cls, **overrides) -> "AVBConfig":
        """The paper's toy: 4 one-hot points in R^4, z in R^2, small networks."""
        values = dict(data_dim=4, latent_dim=2, hidden=64, layers=2, noise_dim=8, adversary_hidden=128,
                      likelihood="bernoulli")
        values.update(overrides)
        return cls(**values)

    @property
    def samples_per_x(self) -> int:
        """z draws per x in a training step."""
        return self.ac_samples if self.adaptive_contrast else 1


def standard_normal_log_prob(z: Tensor) -> Tensor:
    """log N(z; 0, I) summed over the last dimension."""
    return -0.5 * (z.square().sum(-1) + z.shape[-1] * _LOG_2PI)


def _mlp(inputs: int, hidden: int, layers: int, outputs: int) -> nn.Sequential:
    parts: list[nn.Module] = []
    for i in range(layers):
        parts += [nn.Linear(inputs if i == 0 else hidden, hidden), nn.ELU()]
    return nn.Sequential(*parts, nn.Linear(hidden, outputs))


class ImplicitEncoder(nn.Module):
    """z = f(x, ε): fresh noise concatenated to the input and to every hidden layer."""

    def __init__(self, cfg: AVBConfig):
        super().__init__()
        self.noise_dim = cfg.noise_dim
        self.hidden = nn.ModuleList(nn.Linear((cfg.data_dim if i == 0 else cfg.hidden) + cfg.noise_dim, cfg.hidden)
                                    for i in range(cfg.layers))
        self.out = nn.Linear(cfg.hidden, cfg.latent_dim)

    def forward(self, x: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
        h = x
        for layer in self.hidden:
            eps = torch.randn(*h.shape[:-1], self.noise_dim, generator=generator, dtype=h.dtype, device=h.device)
            h = F.elu(layer(torch.cat([h, eps], -1)))
        return self.out(h)


class GaussianEncoder(nn.Module):
    """(μ(x), log σ(x)) of a diagonal Gaussian q(z|x)."""

    def __init__(self, cfg: AVBConfig):
        super().__init__()
        self.net = _mlp(cfg.data_dim, cfg.hidden, cfg.layers, 2 * cfg.latent_dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mu, log_sigma = self.net(x).chunk(2, -1)
        return mu, log_sigma


class Adversary(nn.Module):
    """T(x, z) = T_net(x, z) − log N(z; 0, I) (see the module docstring)."""

    def __init__(self, cfg: AVBConfig):
        super().__init__()
        self.net = _mlp(cfg.data_dim + cfg.latent_dim, cfg.adversary_hidden, cfg.layers, 1)

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        return self.net(torch.cat([x, z], -1)).squeeze(-1) - standard_normal_log_prob(z)


class AVB(Pretrained, nn.Module, kind="avb", config_class=AVBConfig):
    """Encoder, decoder and (implicit encoder only) adversary; see the module docstring."""

    def __init__(self, config: Optional[AVBConfig] = None):
        super().__init__()
        self.config = cfg = config if config is not None else AVBConfig()
        self.encoder = ImplicitEncoder(cfg) if cfg.encoder == "implicit" else GaussianEncoder(cfg)
        self.decoder = _mlp(cfg.latent_dim, cfg.hidden, cfg.layers, cfg.data_dim)
        self.adversary = Adversary(cfg) if cfg.encoder == "implicit" else None

    @property
    def implicit(self) -> bool:
        return self.config.encoder == "implicit"

    def primal_parameters(self) -> list[nn.Parameter]:
        """The encoder's and decoder's parameters: what the primal (ELBO) objective trains."""
        return list(self.encoder.parameters()) + list(self.decoder.parameters())

    def check_data(self, x: Tensor) -> None:
        if not isinstance(x, Tensor) or not x.is_floating_point():
            raise TypeError(f"AVB: x must be a floating-point tensor, got "
                            f"{x.dtype if isinstance(x, Tensor) else type(x).__name__}")
        if x.dim() != 2 or x.shape[1] != self.config.data_dim:
            raise ValueError(f"AVB: x must have shape [batch, {self.config.data_dim}], got {tuple(x.shape)}")

    def posterior_samples(self, x: Tensor, n: int = 1, generator: Optional[torch.Generator] = None) -> Tensor:
        """z ~ q(z|x), [batch, n, latent_dim], reparameterised (differentiable in the encoder)."""
        self.check_data(x)
        rows = x.unsqueeze(1).expand(-1, n, -1)
        if self.implicit:
            return self.encoder(rows, generator)
        mu, log_sigma = self.encoder(rows)
        return mu + log_sigma.exp() * torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        """log p(x|z) per row (x and z broadcast over their leading dimensions); the decoder alone,
        as fastgen.eval.ais wants it."""
        logits = self.decoder(z)
        if self.config.likelihood == "bernoulli":
            return -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none").sum(-1)
        return (torch.log_softmax(logits, -1) * x).sum(-1)

    @torch.no_grad()
    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> Tensor:
        """n draws of the decoder's mean (Bernoulli probabilities / class probabilities) at z ~ p(z)."""
        p = next(self.parameters())
        z = torch.randn(n, self.config.latent_dim, generator=generator, dtype=p.dtype, device=p.device)
        logits = self.decoder(z)
        return torch.sigmoid(logits) if self.config.likelihood == "bernoulli" else torch.softmax(logits, -1)


__all__ = ["AVB", "AVBConfig", "Adversary", "ENCODERS", "GaussianEncoder", "ImplicitEncoder", "LIKELIHOODS",
           "standard_normal_log_prob"]
